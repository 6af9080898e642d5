"""Smoke tests of experiments.py: every study runs on a tiny budget and shows its point.

The studies train on the spiral here (generated, nothing on disk); one test
reads Fashion-MNIST and is skipped where it is not installed.
"""
import json
import math

import numpy as np
import pytest

import experiments
from data_utils import DEBIAN_FASHION_MNIST_DIR


def load_json(path):
    """Parse a JSON file, refusing NaN and Infinity, which are not JSON."""
    def refuse(constant):
        raise ValueError(f'{path} holds {constant}')
    return json.loads(path.read_text(), parse_constant=refuse)


def assert_written(out_dir, name, figures):
    """The study's JSON and every figure exist, and the JSON is valid."""
    for figure in figures:
        assert (out_dir / figure).stat().st_size > 0, figure
    record = load_json(out_dir / f'{name}.json')
    assert record['study'] == name
    assert record['seconds'] > 0
    return record


def test_lr_sweep_largest_rate_ends_worse(tmp_path):
    record = experiments.run_study('lr_sweep', tmp_path, epochs=200, n_train=300)
    assert_written(tmp_path, 'lr_sweep', ['lr_sweep_curves.png', 'lr_sweep_boundaries.png'])
    results = record['results']
    assert set(results) == {'lr 0.2', 'lr 1', 'lr 5'}
    assert results['lr 5']['final_train_loss'] > results['lr 1']['final_train_loss']
    assert results['lr 1']['final_train_accuracy'] > 0.9


def test_lr_sweep_records_a_non_finite_loss_and_goes_on(tmp_path):
    record = experiments.run_study('lr_sweep', tmp_path, learning_rates=(1.0, 1e6),
                                   epochs=30, n_train=300)
    results = record['results']
    diverged_at = results['lr 1e+06']['diverged_at_epoch']
    assert diverged_at is not None and diverged_at <= 30
    assert len(results['lr 1e+06']['train_loss']) == diverged_at - 1
    assert results['lr 1']['diverged_at_epoch'] is None
    assert len(results['lr 1']['train_loss']) == 30
    assert (tmp_path / 'lr_sweep_boundaries.png').exists()


def test_deep_sigmoid_gradients_vanish_towards_the_input(tmp_path):
    record = experiments.run_study('activations', tmp_path, dataset='spiral',
                                   hidden=(16,) * 5, epochs=1, n_train=300, n_test=100,
                                   batch_size=50)
    assert_written(tmp_path, 'activations', ['activations_functions.png',
                                             'activations_training.png',
                                             'activations_gradients.png'])
    results = record['results']
    assert set(results) == set(experiments.ACTIVATION_NAMES)
    sigmoid_norms = results['sigmoid']['gradient_norm_first_epoch']
    assert len(sigmoid_norms) == 6
    assert sigmoid_norms[0] < sigmoid_norms[-1]
    # ReLU passes gradients on at full strength where it is active: far less decay.
    assert (results['relu']['first_to_last_layer_gradient_ratio']
            > 10 * results['sigmoid']['first_to_last_layer_gradient_ratio'])


def test_saddle_hessians_have_one_positive_and_one_negative_eigenvalue(tmp_path):
    record = experiments.run_study('saddle', tmp_path, steps=100, n_noisy_runs=2)
    assert_written(tmp_path, 'saddle', ['saddle_surface.png', 'saddle_escape.png'])
    results = record['results']
    for key in ('surface_hessian_eigenvalues', 'network_hessian_eigenvalues'):
        negative, positive = sorted(results[key])
        assert negative < 0 < positive
        assert negative == pytest.approx(-2, abs=1e-4) and positive == pytest.approx(2, abs=1e-4)
    # Plain gradient descent from the stable line stops at the saddle; noise escapes it.
    assert results['plain_final_loss'] == pytest.approx(1.0, abs=1e-6)
    assert all(step is not None for step in results['noisy_escape_steps'])


def test_finite_difference_hessian_of_a_quadratic():
    matrix = np.array([[3.0, 1.0], [1.0, -2.0]])
    hessian = experiments.finite_difference_hessian(lambda point: matrix @ point, [0.3, -0.7])
    np.testing.assert_allclose(hessian, matrix, atol=1e-8)


def test_batch_norm_numpy_retraces_pytorch(tmp_path):
    record = experiments.run_study('batch_norm', tmp_path, dataset='spiral', hidden=(16, 16),
                                   activation_names=('relu',), epochs=2, lr=0.1, batch_size=50,
                                   n_train=300, n_test=100)
    assert_written(tmp_path, 'batch_norm', ['batch_norm_curves.png', 'batch_norm_units.png'])
    results = record['results']
    for label in ('relu', 'relu, batch norm'):
        np.testing.assert_allclose(results['numpy'][label]['train_loss'],
                                   results['pytorch'][label]['train_loss'], rtol=1e-4)
        fractions = results['pytorch'][label]['inactive_fraction_per_layer']
        assert len(fractions) == 2 and all(0 <= value <= 1 for value in fractions[-1])


def test_weight_growth_starts_at_one(tmp_path):
    record = experiments.run_study('weight_growth', tmp_path, dataset='spiral', hidden=(16, 8),
                                   epochs=3, batch_size=50, n_train=300, n_test=100)
    assert_written(tmp_path, 'weight_growth', ['weight_growth.png'])
    growth = np.array(record['results']['growth'])
    assert growth.shape == (4, 3)
    np.testing.assert_allclose(growth[0], 1.0)
    assert np.all(growth[-1] != 1.0)


def test_numpy_and_pytorch_agree_from_the_same_weights(tmp_path):
    record = experiments.run_study('numpy_vs_pytorch', tmp_path, dataset='spiral',
                                   hidden=(16,), epochs=2, batch_size=50, n_train=300,
                                   n_test=100)
    assert_written(tmp_path, 'numpy_vs_pytorch', ['numpy_vs_pytorch.png'])
    results = record['results']
    assert results['max_test_accuracy_difference'] <= 0.02
    assert results['lines_of_code']['NumPy'] > results['lines_of_code']['PyTorch'] > 0
    assert all(seconds > 0 for seconds in results['seconds_per_epoch'].values())


def test_architectures_on_the_spiral(tmp_path):
    record = experiments.run_study('architectures', tmp_path, datasets=('spiral',),
                                   depths=(1, 2), widths=(4, 16), spiral_epochs=20)
    assert_written(tmp_path, 'architectures', ['architectures_accuracy.png',
                                               'architectures_spiral.png'])
    runs = record['results']['spiral']
    assert len(runs) == 4
    assert runs['depth 2, width 16']['parameters'] == 2 * 16 + 16 + 16 * 16 + 16 + 16 * 3 + 3


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST_DIR.is_dir(),
                    reason='Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist')
def test_architectures_on_fashion_mnist_learn_something(tmp_path):
    record = experiments.run_study('architectures', tmp_path, datasets=('fashion_mnist',),
                                   depths=(1,), widths=(32,), fashion_epochs=1,
                                   n_train=2000, n_test=500)
    assert_written(tmp_path, 'architectures', ['architectures_accuracy.png'])
    assert not (tmp_path / 'architectures_spiral.png').exists()
    assert record['results']['fashion_mnist']['depth 1, width 32']['final_test_accuracy'] > 0.3


def test_count_code_lines_skips_blanks_comments_and_docstrings(tmp_path):
    source = tmp_path / 'example.py'
    source.write_text('"""Module docstring,\non two lines."""\n'
                      'import math  # a comment\n'
                      '\n'
                      '# a comment line\n'
                      'CONSTANT = 1\n'
                      '"""An attribute docstring."""\n'
                      'def f(x):\n'
                      '    """Docstring."""\n'
                      '    text = """a string\n'
                      'over two lines"""\n'
                      '    return math.sqrt(x)\n')
    assert experiments.count_code_lines(source) == 6


def test_json_ready_turns_non_finite_numbers_into_null():
    ready = experiments.json_ready({'a': np.float32(0.1234567891), 'b': [np.inf, math.nan],
                                    'c': (np.int64(3), np.bool_(True))})
    assert ready == {'a': 0.123457, 'b': [None, None], 'c': [3, True]}
    json.dumps(ready, allow_nan=False)


def test_command_line_runs_one_study(tmp_path, capsys):
    experiments.main(['saddle', '--out_dir', str(tmp_path), '--quick', '--seed', '3'])
    record = assert_written(tmp_path, 'saddle', ['saddle_surface.png', 'saddle_escape.png'])
    assert record['settings']['seed'] == 3
    assert 'saddle' in capsys.readouterr().out


def test_every_study_has_a_sub_command_and_a_quick_budget():
    parser = experiments.build_parser()
    for name in [*experiments.STUDIES, 'all']:
        assert parser.parse_args([name, '--quick']).study == name
    assert set(experiments.QUICK_BUDGETS) == set(experiments.STUDIES)
    with pytest.raises(SystemExit):
        parser.parse_args(['no_such_study'])
