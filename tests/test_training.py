"""The training scripts: mirror, real data, outputs, divergence, determinism."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mlp_numpy
import mlp_pytorch
import train_mlp_numpy
import train_mlp_pytorch
from conftest import REPO, SPIRAL, needs_fashion_mnist, only_run_dir, run_main
from lab.datasets import get_dataloader, get_dataset
from lab.mirror import copy_numpy_to_torch
from modules import SoftmaxCrossEntropyModule
from lab.optimizers import SGD


def test_accuracy_functions_agree():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    assert train_mlp_numpy.accuracy(logits, labels) == 0.75
    assert train_mlp_numpy.accuracy(logits, np.eye(2)[labels]) == 0.75
    assert train_mlp_pytorch.accuracy(torch.from_numpy(logits), torch.from_numpy(labels)) == 0.75
    with pytest.raises(ValueError, match="3 predictions but 4 targets"):
        train_mlp_numpy.accuracy(logits[:3], labels)


def test_evaluate_model_averages_over_every_sample():
    """A last batch smaller than the others must not weigh as much as a full one."""
    data = get_dataset('spiral', validation_size=None)
    loaders = get_dataloader(data, 64, return_numpy=True)
    model = mlp_numpy.MLP(2, [8], 3, rng=np.random.default_rng(0))
    test = data['test']
    expected = train_mlp_numpy.accuracy(model.forward(test.images), test.labels)
    assert len(test) % 64 != 0
    assert train_mlp_numpy.evaluate_model(model, loaders['test']) == pytest.approx(expected)


def test_numpy_and_pytorch_training_steps_agree():
    """Same weights, same batches, same order (float64): equal losses at every step."""
    data = get_dataset('spiral')
    loader = get_dataloader(data, 32, return_numpy=True, seed=3)['train']
    numpy_model = mlp_numpy.MLP(2, [16, 16], 3, rng=np.random.default_rng(0))
    torch_model = mlp_pytorch.MLP(2, [16, 16], 3).double()
    copy_numpy_to_torch(numpy_model, torch_model)
    numpy_optimizer = SGD(numpy_model, lr=0.5, momentum=0.9)
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.5, momentum=0.9)
    loss_module = SoftmaxCrossEntropyModule()
    n_steps = 0
    for images, labels in loader:
        images = images.astype(np.float64)
        numpy_loss = loss_module.forward(numpy_model.forward(images), labels)
        numpy_model.backward(loss_module.backward())
        numpy_optimizer.step()
        torch_loss = F.cross_entropy(torch_model(torch.from_numpy(images)),
                                     torch.from_numpy(labels))
        torch_optimizer.zero_grad()
        torch_loss.backward()
        torch_optimizer.step()
        assert numpy_loss == pytest.approx(torch_loss.item(), rel=1e-6, abs=1e-9)
        n_steps += 1
    assert n_steps == len(loader) > 10


@pytest.mark.slow
@needs_fashion_mnist
@pytest.mark.parametrize('script', ['numpy', 'pytorch'])
def test_two_epochs_of_fashion_mnist(script, tmp_path):
    common = dict(hidden_dims=[128], lr=0.1, batch_size=128, epochs=2, seed=42,
                  data_dir=str(tmp_path / 'data'), dataset='fashion_mnist',
                  out_dir=str(tmp_path), plot=False, progress=False)
    if script == 'numpy':
        _, val_accuracies, test_accuracy, _ = train_mlp_numpy.train(**common)
    else:
        _, val_accuracies, test_accuracy, _ = train_mlp_pytorch.train(
            use_batch_norm=False, device='cpu', **common)
    assert len(val_accuracies) == 2
    assert test_accuracy > 0.82


@pytest.mark.parametrize('script', ['train_mlp_numpy.py', 'train_mlp_pytorch.py'])
def test_command_line_writes_curves_summary_and_weights(script, tmp_path):
    result = run_main(script, '--dataset', 'spiral', '--epochs', '3', '--hidden_dims', '16',
                      '--out_dir', str(tmp_path / 'out'), '--no_progress', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'test accuracy' in result.stdout
    run_dir = only_run_dir(tmp_path / 'out')
    weights = 'model.npz' if 'numpy' in script else 'model.pt'
    checkpoint = 'checkpoint.npz' if 'numpy' in script else 'checkpoint.pt'
    for name in ('loss.png', 'accuracy.png', 'summary.json', weights, checkpoint):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert summary['status'] == 'completed'
    assert summary['epochs_completed'] == 3
    assert len(summary['metrics']['validation_accuracy']) == 3
    best = summary['best_epoch']
    best_accuracy = summary['metrics']['validation_accuracy'][best - 1]
    assert best_accuracy == summary['best_validation_accuracy']
    assert 0 <= summary['test_accuracy'] <= 1
    assert 'numpy' in summary['versions']
    assert not list(run_dir.glob('.*.tmp'))


def test_numpy_script_does_not_import_torch():
    code = ("import sys, train_mlp_numpy; "
            "sys.exit(1 if any(m.split('.')[0] == 'torch' for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, '-c', code], cwd=REPO).returncode == 0


def test_every_run_gets_a_folder_of_its_own(tmp_path):
    """Other settings, other name; the same settings again, a fresh folder (_2): a
    finished run is never overwritten."""
    for lr in (0.1, 0.2, 0.1):
        train_mlp_numpy.train([8], lr, 32, 1, 0, out_dir=str(tmp_path), **SPIRAL)
    first, again, other = sorted(path.name for path in tmp_path.iterdir())
    assert 'lr0.1_' in first and again == f'{first}_2' and 'lr0.2_' in other


def test_numpy_runs_are_deterministic(tmp_path):
    first = train_mlp_numpy.train([16], 0.1, 32, 3, 7, out_dir=str(tmp_path / 'a'), **SPIRAL)
    second = train_mlp_numpy.train([16], 0.1, 32, 3, 7, out_dir=str(tmp_path / 'b'), **SPIRAL)
    assert first[1] == second[1]
    assert first[2] == second[2]


@pytest.mark.filterwarnings('ignore:overflow encountered:RuntimeWarning',
                            'ignore:invalid value encountered:RuntimeWarning')
@pytest.mark.parametrize('lr', [1e3, 1e4, 1e5, 1e6, 1e7])
@pytest.mark.parametrize('script', ['numpy', 'pytorch'])
def test_divergence_in_the_first_epoch_stops_cleanly_with_nothing_to_test(script, lr, tmp_path,
                                                                           capsys):
    """The command line's defaults on the spiral: the loss runs away to 1e12 and more (or
    NaN) in epoch 1."""
    arguments = dict(hidden_dims=[128], lr=lr, batch_size=128, epochs=5, seed=0,
                     out_dir=str(tmp_path), **{**SPIRAL, 'plot': True})
    if script == 'numpy':
        model, val_accuracies, test_accuracy, logs = train_mlp_numpy.train(**arguments)
    else:
        model, val_accuracies, test_accuracy, logs = train_mlp_pytorch.train(
            use_batch_norm=False, device='cpu', **arguments)
    assert val_accuracies == [] and test_accuracy is None
    assert 'no epoch finished' in capsys.readouterr().out
    summary = json.loads((only_run_dir(tmp_path) / 'summary.json').read_text())
    assert summary['status'] == 'diverged'
    assert summary['test_accuracy'] is None and summary['best_epoch'] is None
    assert 'smaller --lr' in summary['message']


@pytest.mark.parametrize('script', ['numpy', 'pytorch'])
def test_a_loss_that_jumps_and_recovers_is_not_divergence(script, tmp_path):
    """Adam at lr 1 on the spiral: the first epoch's mean loss reaches 20-40 times the
    starting loss (about ln 3), then the run recovers (measured for seeds 0-7)."""
    arguments = dict(hidden_dims=[128], lr=1.0, batch_size=128, epochs=10, seed=0,
                     optimizer='adam', out_dir=str(tmp_path), **SPIRAL)
    if script == 'numpy':
        _, val_accuracies, _, logs = train_mlp_numpy.train(**arguments)
    else:
        _, val_accuracies, _, logs = train_mlp_pytorch.train(use_batch_norm=False,
                                                             device='cpu', **arguments)
    summary = json.loads((only_run_dir(tmp_path) / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('completed', 10)
    assert max(logs['train_loss']) > 10
    assert val_accuracies[-1] > 0.8


@pytest.mark.parametrize('script, arguments, expected', [
    ('train_mlp_numpy', ['--hiden_dims', '64'], '--hiden_dims (did you mean --hidden_dims?) 64'),
    ('train_mlp_pytorch', ['--use_batchnorm'], '--use_batchnorm (did you mean --use_batch_norm?)'),
    ('benchmark', ['train', '--main_jobs_only'], '--main_jobs_only (did you mean --main_job_only?)'),
    ('experiments', ['lr_sweep', '--quik'], '--quik (did you mean --quick?)'),
    ('lab.grading.cli', ['--no_sandbx'], '--no_sandbx (did you mean --no_sandbox?)'),
])
def test_a_mistyped_flag_gets_the_nearest_flag_suggested(script, arguments, expected, capsys):
    import importlib
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(script).main(arguments)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"error: unrecognized arguments: {expected}")


WITHOUT_TQDM = """
import runpy, sys
sys.modules['tqdm'] = None  # as if it were not installed: importing it fails, find_spec is None
sys.argv = [sys.argv[1], '--help']
runpy.run_path(sys.argv[0], run_name='__main__')
"""


@pytest.mark.parametrize('script', ['train_mlp_numpy.py', 'benchmark.py', 'experiments.py',
                                    'grade.py'])
def test_a_script_outside_the_environment_says_so_in_one_line(script):
    result = subprocess.run([sys.executable, '-c', WITHOUT_TQDM, script], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == (f"error: {sys.executable} lacks tqdm: activate the project's "
                             f"environment (source .venv/bin/activate) or install the "
                             f"requirements (pip install -r requirements-lock.txt)\n")
