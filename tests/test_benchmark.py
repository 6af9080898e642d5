"""benchmark.py on a tiny budget: every system is measured with one thread and with all,
the JSON keeps every timing, and the README's tables come out of it."""
import argparse
import json
import mmap
import statistics
import subprocess
import sys

import pytest

from conftest import REPO, last_line, run_main
from lab.benchmark import common, levers
from test_data import write_cifar

TINY = ['--quick', '--epochs', '2', '--n_train', '256', '--sweep_steps', '2',
        '--sweep_repeats', '2', '--main_job_repeats', '1']


class FakeClock:
    """``time.perf_counter`` for tests: it moves only when a task says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def task(self, *seconds):
        """A task that takes ``seconds[0]``, then ``seconds[1]``, ... on successive calls."""
        durations = iter(seconds)

        def run():
            self.now += next(durations)
        return run


def test_interleaved_seconds_times_each_task_alone_in_turn(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(common.time, 'perf_counter', clock)
    seconds = common.interleaved_seconds({'a': clock.task(3.0, 1.0, 2.0),
                                          'b': clock.task(0.5, 0.25, 4.0)}, rounds=3)
    assert seconds == {'a': [3.0, 1.0, 2.0], 'b': [0.5, 0.25, 4.0]}
    assert common.summary(seconds['a']) == {'median': 2.0, 'min': 1.0, 'max': 3.0,
                                            'all': [3.0, 1.0, 2.0]}


def test_in_turn_reports_the_median_seconds_of_one_call(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(common.time, 'perf_counter', clock)
    # 3 timings of 4 calls each: 4 s, 8 s and 40 s; the median timing, 8 s, is 2 s a call.
    calls = [1.0] * 4 + [2.0] * 4 + [10.0] * 4
    assert levers.in_turn({'a': clock.task(*calls)}, repeats=3, number=4) == {'a': 2.0}


def test_page_faults_per_step_counts_the_pages_a_step_touches_for_the_first_time():
    """A step that maps and writes 64 fresh pages faults on each; one that rewrites the
    same, already touched pages does not."""
    page = mmap.PAGESIZE
    kept = mmap.mmap(-1, 64 * page)

    def fresh_pages():
        for _ in range(4):  # 4 steps
            fresh = mmap.mmap(-1, 64 * page)
            for offset in range(0, 64 * page, page):
                fresh[offset] = 1
            fresh.close()

    def same_pages():
        for _ in range(4):
            for offset in range(0, 64 * page, page):
                kept[offset] = 1
    assert levers.page_faults_per_step(fresh_pages, steps=4) >= 60
    assert levers.page_faults_per_step(same_pages, steps=4) < 4


ON_THE_WORKER_OF_THE_TINY_RUN = pytest.mark.xdist_group('benchmark_tiny_run')
"""With pytest-xdist's ``--dist loadgroup``, the tests of the tiny run share one worker, so
the run (half a minute) is made once."""


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp('benchmark')
    result = run_main('benchmark.py', 'train', *TINY, '--json', str(folder / 'train.json'),
                      cwd=folder)
    assert result.returncode == 0, result.stderr
    return folder, result.stdout, json.loads((folder / 'train.json').read_text())


@pytest.mark.slow
@ON_THE_WORKER_OF_THE_TINY_RUN
def test_train_measures_every_system_with_one_and_all_threads(tiny_run):
    _, stdout, results = tiny_run
    assert set(results['runs']) == {'one thread', 'all threads'}
    assert results['runs']['one thread']['threads'] == 1
    for run in results['runs'].values():
        assert set(run['shapes']) == {'fashion_mnist', 'cifar10'}
        for shape in run['shapes'].values():
            assert shape['n_samples'] == 256
            for name in ('numpy matrix products only', 'numpy MLP (this)',
                         'pytorch MLP (this, CPU)', 'pytorch eager loop'):
                seconds = shape['seconds'][name]
                assert len(seconds['all']) == 2
                assert seconds == {'median': statistics.median(seconds['all']),
                                   'min': min(seconds['all']), 'max': max(seconds['all']),
                                   'all': seconds['all']}
            stages = shape['profile']['seconds']
            assert {'gather batch', 'input check', '0 LinearModule forward',
                    '0 LinearModule backward', 'loss forward', 'SGD step'} <= set(stages)
            # The gather reads and writes each of the 2 batches of 128 images once.
            assert shape['profile']['bytes']['gather batch'] == 2 * 256 * 4 * (
                784 if shape['layers'].startswith('784') else 3072)
        assert run['memory_bandwidth'] > 1e8  # bytes per second
        assert len(run['sweep']) == 5
        assert len(run['main_job']['seconds']['main job']['all']) == 1
    assert stdout.count('numpy MLP / matrix products =') == 4
    assert 'main job / eager epochs' in stdout and 'sweep 128x2048' in stdout


@pytest.mark.slow
@ON_THE_WORKER_OF_THE_TINY_RUN
def test_train_prints_the_ratios_of_the_medians_it_measured(tiny_run):
    _, stdout, results = tiny_run
    for label, run in results['runs'].items():
        printed = stdout[stdout.index(f'targets, {label}:'):]
        for shape, result in run['shapes'].items():
            seconds = result['seconds']
            ratio = (seconds['numpy MLP (this)']['median']
                     / seconds['numpy matrix products only']['median'])
            assert f'{shape}: numpy MLP / matrix products = {ratio:.2f} ' in printed
        main_job = run['main_job']['seconds']
        ratio = main_job['main job']['median'] / main_job['eager epochs']['median']
        assert f'main job / eager epochs = {ratio:.2f} ' in printed


@pytest.mark.slow
@ON_THE_WORKER_OF_THE_TINY_RUN
def test_table_prints_the_readme_tables(tiny_run):
    folder, _, results = tiny_run
    result = run_main('benchmark.py', 'table', '--json', str(folder / 'train.json'),
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


@pytest.mark.slow
@ON_THE_WORKER_OF_THE_TINY_RUN
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


@pytest.mark.slow
def test_levers_measures_each_lever_beside_what_the_code_does(tmp_path):
    result = run_main('benchmark.py', 'levers', '--n_train', '512', '--repeats', '2',
                      '--json', str(tmp_path / 'levers.json'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    measured = json.loads((tmp_path / 'levers.json').read_text())
    for case in ('128x3072', '2048x3072'):
        variants = set(measured['update, one thread'][case])
        assert {'param -= lr * grad (this)', 'in blocks of 2**18'} <= variants
    assert set(measured['gather']) == {'take, a fresh batch (this)', 'take into one buffer'}
    faults = measured['page faults per step']
    assert set(faults) == {'numpy MLP, 3072-128-10 epoch', 'numpy MLP, 3072-2048-10 step'}
    assert "minor page faults per step: " + ", ".join(
        f"{case} {value:.1f}" for case, value in faults.items()) in result.stdout
    assert set(measured['optimizer step']) == {'784-128-10', '3072-128-10'}
    for case, timings in measured['optimizer step'].items():
        assert set(timings) == {'SGD.step (this)', 'bare loop'}
        assert f"  {case}: " + ", ".join(f"{name} {seconds * 1e3:.3f}"
                                         for name, seconds in timings.items()) in result.stdout
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
    result = run_main('benchmark.py', *arguments, cwd=tmp_path)
    assert result.returncode in (1, 2) and message in result.stderr
    assert 'Traceback' not in result.stderr


# ---------------------------------------------------------------- bad input, one line

@pytest.mark.parametrize('command', [['data', '--repeats', '1'],
                                     ['train', '--quick', '--epochs', '1']])
def test_benchmark_names_a_bad_data_file_at_once(command, tmp_path):
    data_dir = write_cifar(tmp_path / 'data', 20, test_batch=b'\x80\x04not a pickle')
    result = run_main('benchmark.py', *command, '--data_dir', str(data_dir),
                      '--json', str(tmp_path / 'out.json'), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    line = last_line(result)  # after, perhaps, a warning that the machine is busy
    assert line.startswith(f'benchmark.py {command[0]}: error: ') and 'test_batch' in line
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'out.json').exists()


@pytest.mark.parametrize('command', [['data'], ['train', '--quick'], ['levers']])
def test_benchmark_checks_its_output_path_before_measuring(command, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    result = run_main('benchmark.py', *command, '--json', str(blocker / 'out.json'),
                      cwd=tmp_path)
    assert result.returncode == 2
    assert 'argument --json: cannot write' in last_line(result)


def test_benchmark_data_refuses_a_batch_larger_than_cifar10(tmp_path):
    result = run_main('benchmark.py', 'data', '--batch_size', '100000', cwd=tmp_path)
    assert result.returncode == 2 and 'argument --batch_size' in last_line(result)


@pytest.mark.parametrize('content', ['{"runs": ', '{"status": "completed", "config": {}}',
                                     '[1, 2]', '{"runs": {}}'])
def test_benchmark_table_refuses_what_train_did_not_write(content, tmp_path):
    path = tmp_path / 'summary.json'
    path.write_text(content)
    result = run_main('benchmark.py', 'table', '--json', str(path), cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith('benchmark.py table: error:') and 'summary.json' in line
    assert result.stdout == ''


def test_a_lever_without_scipy_says_so_instead_of_an_empty_heading(capsys):
    results = {'date': '2026-12-03', 'processor': 'cpu', 'cpu_count': 2, 'load_average': 0.0,
               'blas': {}, 'threads': '1',
               'update, one thread': {'128x3072': {'this': 1e-3}},
               'products, one thread': {'128x3072': {'this': 2e-3}},
               'gather': {'take': 3e-3}, 'optimizer step': {'784-128-10': {'this': 4e-3}},
               'busy neighbour core': {'relu': {'this': 5e-3}},
               'two BLAS thread pools, all threads': {},
               'first pass after a product': {}, 'page faults per step': {}}
    levers.print_levers(results, argparse.Namespace(n_train=512, repeats=2))
    printed = capsys.readouterr().out
    assert ("two BLAS thread pools, all threads: not measured (it needs SciPy, which is not "
            "installed)") in printed
    assert "  relu: this 5.000" in printed


def test_the_main_job_alone_prints_its_wall_and_cpu_ratios(capsys):
    from lab.benchmark import train

    def times(main_job, eager):
        return {'main job': common.summary([main_job]), 'eager epochs': common.summary([eager])}
    run = {'threads': 1, 'torch': '2', 'blas': {}, 'memory_bandwidth': 1e10, 'shapes': {},
           'sweep': {}, 'main_job': {'eager_epochs': 10, 'seconds': times(12.0, 10.0),
                                     'cpu_seconds': times(11.0, 10.0)}}
    results = {'date': 'd', 'processor': 'p', 'cpu_count': 2, 'load_average': 0.5,
               'load_average_end': 0.7, 'numpy': '2', 'epochs': 1, 'runs': {'one thread': run}}
    train.print_train_results(results)
    printed = capsys.readouterr().out
    assert "10 eager epochs 10.000 [10.000, 10.000] s wall: 1.20" in printed
    assert "10 eager epochs 10.000 [10.000, 10.000] s CPU: 1.10" in printed
    assert "main job / eager epochs = 1.20 (target <= 1.2) ok" in printed
    assert "sweep" not in printed
    train.print_train_tables(results)
    assert "| 1 | 12.000 [12.000, 12.000] | 10.000 [10.000, 10.000] | 1.20 (≤ 1.2) |" in (
        capsys.readouterr().out)
