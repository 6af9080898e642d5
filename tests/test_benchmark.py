"""benchmark.py on a tiny budget: every system is measured with one thread and with all,
the JSON keeps every timing, and the README's tables come out of it."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, run_script

TINY = ['--quick', '--epochs', '2', '--n_train', '256', '--sweep_steps', '2',
        '--sweep_repeats', '2', '--main_job_repeats', '1']


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp('benchmark')
    result = run_script('benchmark.py', 'train', *TINY, '--json', str(folder / 'train.json'),
                        cwd=folder, timeout=300)
    assert result.returncode == 0, result.stderr
    return folder, result.stdout, json.loads((folder / 'train.json').read_text())


def test_train_measures_every_system_with_one_and_all_threads(tiny_run):
    _, stdout, results = tiny_run
    assert set(results['runs']) == {'one thread', 'all threads'}
    assert results['runs']['one thread']['threads'] == 1
    for run in results['runs'].values():
        assert set(run['shapes']) == {'fashion_mnist', 'cifar10'}
        for shape in run['shapes'].values():
            for name in ('numpy matrix products only', 'numpy MLP (this)',
                         'pytorch MLP (this, CPU)', 'pytorch eager loop'):
                seconds = shape['seconds'][name]
                assert len(seconds['all']) == 2
                assert seconds['min'] <= seconds['median'] <= seconds['max']
            stages = shape['profile']['seconds']
            assert {'gather batch', 'input check', '0 LinearModule forward',
                    '0 LinearModule backward', 'loss forward', 'SGD step'} <= set(stages)
            assert all(value > 0 for value in stages.values())
            assert set(shape['profile']['bytes']) == {'gather batch', 'SGD step'}
        assert run['memory_bandwidth'] > 1e8  # bytes per second
        assert len(run['sweep']) == 5
        assert len(run['main_job']['seconds']['main job']['all']) == 1
    assert stdout.count('numpy MLP / matrix products =') == 4
    assert 'main job / eager epochs' in stdout and 'sweep 128x2048' in stdout


def test_table_prints_the_readme_tables(tiny_run):
    folder, _, results = tiny_run
    result = run_script('benchmark.py', 'table', '--json', str(folder / 'train.json'),
                        cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"Measured {results['date']}")
    threads = {run['threads'] for run in results['runs'].values()}
    rows = [line for line in lines if any(line.startswith(f'| {n} |') for n in threads)]
    assert len(rows) == 2 * 2 + 2 + 2  # epochs per shape, main job, sweep; per thread count
    profile = lines[lines.index(next(line for line in lines if line.startswith('| stage'))):]
    all_threads = results['runs']['all threads']['threads']
    assert '784-128-10, 1 thread |' in profile[0]
    assert f"3072-128-10, {all_threads} thread" in profile[0]
    assert any(line.startswith('| SGD step |') and 'of copy bandwidth' in line
               for line in profile)


def test_a_closed_stdout_is_not_an_error(tiny_run):
    """`benchmark.py table | head -1`: the reader leaves before the tables are written."""
    folder, _, _ = tiny_run
    process = subprocess.Popen([sys.executable, str(REPO / 'benchmark.py'), 'table', '--json',
                                str(folder / 'train.json')], cwd=folder,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # long before the interpreter has imported NumPy and printed
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stderr == b''


def test_levers_measures_each_lever_beside_what_the_code_does(tmp_path):
    result = run_script('benchmark.py', 'levers', '--n_train', '512', '--repeats', '2',
                        '--json', str(tmp_path / 'levers.json'), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    levers = json.loads((tmp_path / 'levers.json').read_text())
    for case in ('128x3072', '2048x3072'):
        variants = set(levers['update, one thread'][case])
        assert {'param -= lr * grad (this)', 'in blocks of 2**18'} <= variants
    assert set(levers['gather']) == {'take, a fresh batch (this)', 'take into one buffer'}
    assert all(faults >= 0 for faults in levers['page faults per step'].values())
    assert set(levers['optimizer step']) == {'784-128-10', '3072-128-10'}
    assert all(seconds > 0 for case in levers['optimizer step'].values()
               for seconds in case.values())
    assert 'first pass over a product' in result.stdout


@pytest.mark.parametrize('arguments, message', [
    (['data', '--repeats', '0'], 'argument --repeats: must be at least 1, got 0'),
    (['data', '--batch_size', '0'], 'argument --batch_size: must be at least 1, got 0'),
    (['train', '--epochs', '-1'], 'argument --epochs: must be at least 1, got -1'),
    (['levers', '--n_train', '100'], 'argument --n_train: must be at least one batch, 128'),
    (['train', '--n_train', '5'], 'argument --n_train: must be at least one batch, 128'),
    (['table', '--json', 'missing.json'], 'cannot read missing.json'),
])
def test_bad_arguments_are_one_line_errors(arguments, message, tmp_path):
    result = run_script('benchmark.py', *arguments, cwd=tmp_path)
    assert result.returncode in (1, 2) and message in result.stderr
    assert 'Traceback' not in result.stderr
