"""The thread policy (lab/threads.py): what it decides from the CPUs, their load and the
product size; `--threads`; the line the scripts print first; the user's environment wins."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_main, run_script
from lab import threads
from lab.threads import THREAD_VARIABLES, choose_threads

LARGE = threads.SHARED_PRODUCT_SIZE * 2
SMALL = threads.SHARED_PRODUCT_SIZE // 2
NO_THREAD_VARIABLES = {}

# Runs a script's main() with its train() replaced by one that prints the thread counts in
# effect (BLAS through threadpoolctl, PyTorch where imported), so no training is needed.
THREADS_IN_EFFECT = """
import json, sys
from threadpoolctl import threadpool_info
import {module} as script

def report(**settings):
    torch = sys.modules.get('torch')
    print(json.dumps({{'blas': [pool['num_threads'] for pool in threadpool_info()
                               if pool['user_api'] == 'blas'],
                      'torch': torch.get_num_threads() if torch else None}}))
script.train = report
script.main(sys.argv[1:])
"""


def without_thread_variables(**variables):
    """This environment without the thread-count variables (the suite sets them), plus
    ``variables``."""
    environment = {name: value for name, value in os.environ.items()
                   if name not in THREAD_VARIABLES}
    return {**environment, **variables}


def threads_in_effect(module, *arguments, **variables):
    """The printed line and the thread counts in effect when ``module``'s main() reaches
    train(), in a fresh process."""
    result = subprocess.run([sys.executable, '-c', THREADS_IN_EFFECT.format(module=module),
                             '--dataset', 'spiral', *arguments], cwd=REPO, capture_output=True,
                            text=True, timeout=120, env=without_thread_variables(**variables))
    assert result.returncode == 0, result.stderr
    first_line, *_, last_line = result.stdout.splitlines()
    return first_line, json.loads(last_line)


@pytest.fixture
def four_cpus(monkeypatch):
    """A machine of four usable CPUs, whatever this one has; no load is measured."""
    monkeypatch.setattr(threads, 'usable_cpus', lambda: ([0, 1, 2, 3], 4))
    monkeypatch.setattr(threads, 'busy_cpus', lambda cpus: pytest.fail('load measured'))


@pytest.mark.parametrize('busy, expected', [(0.0, 4), (0.4, 4), (1.0, 3), (2.6, 1), (4.0, 1)])
def test_one_thread_per_cpu_no_other_process_keeps_busy(four_cpus, busy, expected):
    choice = choose_threads(product_size=LARGE, environ=NO_THREAD_VARIABLES, busy=busy)
    assert (choice.threads, choice.source) == (expected, 'policy')
    assert choice.reason == f'4 CPUs, {busy:.1f} busy'


def test_small_products_run_on_one_thread_without_measuring_the_load(four_cpus):
    choice = choose_threads(product_size=SMALL, environ=NO_THREAD_VARIABLES)
    assert choice.threads == 1
    assert choice.reason.startswith('4 CPUs; products of ')


def test_the_load_is_measured_when_not_given(monkeypatch):
    monkeypatch.setattr(threads, 'usable_cpus', lambda: ([0, 1], 2))
    monkeypatch.setattr(threads, 'busy_cpus', lambda cpus: 1.1)
    assert choose_threads(product_size=LARGE, environ=NO_THREAD_VARIABLES).line() == (
        'BLAS: 1 thread (2 CPUs, 1.1 busy)')


def test_the_flag_beats_the_policy_and_the_environment_beats_the_flag(four_cpus):
    assert choose_threads(3, LARGE, NO_THREAD_VARIABLES, busy=3.0).threads == 3
    choice = choose_threads(3, LARGE, {'OMP_NUM_THREADS': '2'}, busy=0.0)
    assert (choice.threads, choice.source) == (2, 'environment')
    assert choice.line(torch_too=True) == (
        'BLAS and PyTorch: 2 threads (OMP_NUM_THREADS=2 set in the environment)')


def test_busy_cpus_counts_the_ticks_others_used(monkeypatch):
    ticks = iter([(1000, 4000), (1100, 4200)])  # (busy, total) before and after
    monkeypatch.setattr(threads, '_cpu_ticks', lambda cpus: next(ticks))
    assert threads.busy_cpus([0, 1], seconds=0) == pytest.approx(2 * 100 / 200, abs=0.05)


@pytest.mark.parametrize('files, expected', [
    ({'cgroup': '0::/job\n', 'job/cpu.max': '150000 100000\n'}, 1.5),
    ({'cgroup': '0::/job\n', 'job/cpu.max': 'max 100000\n'}, None),
    ({'cgroup': '4:cpu,cpuacct:/job\n', 'cpu,cpuacct/job/cpu.cfs_quota_us': '300000\n',
      'cpu,cpuacct/job/cpu.cfs_period_us': '100000\n'}, 3.0),
    ({'cgroup': '4:cpu,cpuacct:/job\n', 'cpu,cpuacct/job/cpu.cfs_quota_us': '-1\n',
      'cpu,cpuacct/job/cpu.cfs_period_us': '100000\n'}, None),
])
def test_a_cgroup_quota_is_read_from_cgroup_v2_and_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads._cgroup_quota(tmp_path / 'cgroup', tmp_path) == expected


def test_a_quota_caps_the_cpus(monkeypatch):
    monkeypatch.setattr(threads, '_cgroup_quota', lambda: 1.5)
    cpus, count = threads.usable_cpus()
    assert count == 1 and len(cpus) == len(os.sched_getaffinity(0))


@pytest.mark.parametrize('module', ['train_mlp_numpy', 'train_mlp_pytorch'])
@pytest.mark.parametrize('requested', [1, 2])
@pytest.mark.slow
def test_threads_flag_sets_blas_and_pytorch_and_is_printed_first(module, requested):
    line, in_effect = threads_in_effect(module, '--threads', str(requested))
    libraries = 'BLAS and PyTorch' if module == 'train_mlp_pytorch' else 'BLAS'
    assert line == f"{libraries}: {requested} thread{'s' * (requested > 1)} " \
                   f"(--threads {requested})"
    assert in_effect['blas'] == [requested]
    assert in_effect['torch'] == (requested if module == 'train_mlp_pytorch' else None)


@pytest.mark.slow
def test_a_users_omp_num_threads_wins_over_the_flag():
    line, in_effect = threads_in_effect('train_mlp_pytorch', '--threads', '2',
                                        OMP_NUM_THREADS='1')
    assert line == 'BLAS and PyTorch: 1 thread (OMP_NUM_THREADS=1 set in the environment)'
    assert in_effect == {'blas': [1], 'torch': 1}


def test_the_numpy_script_never_imports_torch_for_its_policy():
    _, in_effect = threads_in_effect('train_mlp_numpy')
    assert in_effect['torch'] is None and in_effect['blas'] == [1]  # the spiral's products


@pytest.mark.slow
@pytest.mark.parametrize('script', ['train_mlp_numpy.py', 'train_mlp_pytorch.py'])
def test_a_real_run_prints_the_policy_first(tmp_path, script):
    result = run_script(script, '--dataset', 'spiral', '--epochs', '1', '--no_plot',
                        '--no_progress', '--out_dir', str(tmp_path), cwd=tmp_path,
                        env=without_thread_variables())
    assert result.returncode == 0, result.stderr
    first_line = result.stdout.splitlines()[0]
    assert first_line.startswith(('BLAS: 1 thread (', 'BLAS and PyTorch: 1 thread ('))
    assert 'multiply-adds run faster on one' in first_line


def test_threads_zero_is_refused_in_one_line(tmp_path):
    result = run_main('train_mlp_numpy.py', '--threads', '0', cwd=tmp_path)
    assert result.returncode == 2
    assert 'argument --threads: must be at least 1, got 0' in result.stderr


def test_the_suite_runs_the_scripts_it_starts_under_the_same_policy(suite_thread_policy):
    """The policy's one thread for the suite's small products, or fewer than each pytest-xdist
    worker's share of the CPUs, exported to every script and kernel a test starts."""
    if suite_thread_policy.source == 'environment':
        pytest.skip('the thread count is set in the environment pytest runs in')
    assert suite_thread_policy.threads == 1  # its products are small
    assert {os.environ[name] for name in THREAD_VARIABLES} == {'1'}


def test_each_xdist_worker_gets_its_share_of_the_cpus(monkeypatch):
    import conftest
    monkeypatch.setattr(conftest, 'usable_cpus', lambda: ([0, 1, 2, 3, 4], 5))
    monkeypatch.setenv('PYTEST_XDIST_WORKER_COUNT', '2')
    assert conftest.worker_share_of_the_cpus() == 2
    monkeypatch.setenv('PYTEST_XDIST_WORKER_COUNT', '8')
    assert conftest.worker_share_of_the_cpus() == 1
    monkeypatch.delenv('PYTEST_XDIST_WORKER_COUNT')
    assert conftest.worker_share_of_the_cpus() is None
