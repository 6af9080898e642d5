"""`benchmark.py contention`: the ratios come from the numbers, each row says the thread
count in effect, the default's row the one the policy chose, and the competitors stop."""
import json
from pathlib import Path

import pytest

from conftest import run_main
from lab.benchmark.contention import BUSY_LOOP, rows, usable_cpus


def worker_result(seconds_by_system, threads, busy, setting):
    """What one worker reports (and `measure` adds), with made-up seconds."""
    return {'setting': setting, 'busy': busy, 'load_average_start': 1.5,
            'policy_threads': threads, 'policy_line': '', 'blas_threads': threads,
            'seconds': {name: {'median': value} for name, value in seconds_by_system.items()}}


def test_each_row_is_over_the_quiet_best_of_its_own_system_and_shape():
    results = {'shapes': {'cifar10': [
        worker_result({'numpy MLP (this)': 2.0}, 1, 0, '1 thread'),
        worker_result({'numpy MLP (this)': 1.6}, 2, 0, 'all threads'),
        worker_result({'numpy MLP (this)': 6.4}, 2, 1, 'all threads'),
        {**worker_result({'pytorch eager loop': 3.0}, 2, 0, 'default'), 'torch_threads': 2},
        {**worker_result({'pytorch eager loop': 4.5}, 1, 1, 'default'), 'torch_threads': 1},
    ], 'fashion_mnist': [worker_result({'numpy MLP (this)': 0.9}, 1, 1, 'default')]}}
    table = {(row['shape'], row['system'], row['setting'], row['busy']): row
             for row in rows(results)}
    assert len(table) == 6
    assert table['cifar10', 'numpy MLP (this)', '1 thread', 0]['over_quiet_best'] == 2.0 / 1.6
    assert table['cifar10', 'numpy MLP (this)', 'all threads', 1]['over_quiet_best'] == 4.0
    eager = table['cifar10', 'pytorch eager loop', 'default', 1]
    assert (eager['over_quiet_best'], eager['threads']) == (1.5, 1)
    assert table['fashion_mnist', 'numpy MLP (this)', 'default', 1]['over_quiet_best'] is None


def busy_loops_running():
    """Processes running the benchmark's busy loop, on this machine."""
    running = []
    for cmdline in Path('/proc').glob('[0-9]*/cmdline'):
        try:
            if BUSY_LOOP.encode() in cmdline.read_bytes():
                running.append(cmdline.parent.name)
        except OSError:
            pass
    return running


@pytest.mark.slow
def test_quick_run_records_the_policys_threads_and_its_table(tmp_path):
    json_path = tmp_path / 'contention.json'
    others = set(busy_loops_running())  # another benchmark's, if one is running beside
    result = run_main('benchmark.py', 'contention', '--quick', '--busy', '0', '1',
                      '--shapes', 'fashion_mnist', '--json', str(json_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(busy_loops_running()) <= others, 'the benchmark left busy loops running'
    results = json.loads(json_path.read_text())
    assert {'date', 'processor', 'load_average', 'load_average_end', 'usable_cpus'} <= set(
        results)
    measurements = results['shapes']['fashion_mnist']
    assert len(measurements) == 2 * 2 * 3  # busy counts, families, settings
    expected_threads = {'1 thread': 1, 'all threads': usable_cpus()[1], 'default': 1}
    for run in measurements:
        assert run['blas_threads'] == expected_threads[run['setting']]
        assert run.get('torch_threads', run['blas_threads']) == run['blas_threads']
        if run['setting'] == 'default':  # 128 x 784 x 128 products: one thread, and it says so
            assert run['policy_threads'] == 1
            assert 'multiply-adds run faster on one' in run['policy_line']
    assert len(results['rows']) == 2 * 3 * 3  # busy counts, systems, settings
    table = result.stdout[result.stdout.index('| shape |'):]
    for row in results['rows']:
        assert (f"| {row['system']} | {row['setting']} | {row['busy']} | {row['threads']} "
                f"| {row['seconds']:.3f} | {row['over_quiet_best']:.2f}") in table
    again = run_main('benchmark.py', 'contention', '--table', '--json', str(json_path),
                     cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.strip() in result.stdout
