"""How many threads NumPy's BLAS and PyTorch use: the CPUs this process may use, less those
another process keeps busy, and one for products too small to share.

Why: both BLAS libraries (OpenBLAS under NumPy, MKL and OpenMP under PyTorch) split each
matrix product between their threads and wait for the last one to finish. When another
process runs on one of the cores, the thread that shares that core gets a time slice
(milliseconds) now and then, and every product, a tenth of a millisecond of work, waits
for it: with one busy process beside it an epoch on two threads took 4-5 times as long as
on one, and up to 40 times on a machine loaded by several (docs/speed.md). One thread per
free core never waits for a core it does not have. On a quiet machine a second thread pays
only for large products (a 128 x 3072 batch into 128 units, not a 128 x 784 one), so the
size of the first layer's product decides there.

Order of precedence: thread-count variables the user set in the environment
(``OMP_NUM_THREADS`` and the like) are left as given; then ``--threads``; then the policy
above, decided once, at start.
"""
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

THREAD_VARIABLES = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
"""The environment variables that set the BLAS and OpenMP thread counts at import."""

SHARED_PRODUCT_SIZE = 25_000_000
"""Multiply-adds of the first layer's product (batch x inputs x units) from which a second
thread pays on a quiet machine: 128 x 784 x 128 (12.8 million) ran faster on one thread,
128 x 3072 x 128 (50 million) on two (docs/speed.md)."""

SAMPLE_SECONDS = 0.2
"""How long the CPUs' use by other processes is watched at start."""


class ThreadChoice(NamedTuple):
    """The thread count decided, and why, in words a user can act on."""
    threads: int
    reason: str
    source: str
    """'environment', 'flag' or 'policy'."""

    def line(self, torch_too=False):
        """The line the scripts print first, e.g. 'BLAS: 1 thread (2 CPUs, 1.0 busy)'."""
        libraries = 'BLAS and PyTorch' if torch_too else 'BLAS'
        return f"{libraries}: {self.threads} thread{'s' * (self.threads != 1)} ({self.reason})"


def _cgroup_quota(cgroup_file='/proc/self/cgroup', mount='/sys/fs/cgroup'):
    """The CPUs a cgroup CPU quota grants this process (cgroup v2 or v1), or None."""
    try:
        lines = Path(cgroup_file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(':', 2)
        if controllers == '':
            files = [Path(mount, path.lstrip('/'), 'cpu.max')]
        elif 'cpu' in controllers.split(','):
            folder = Path(mount, controllers, path.lstrip('/'))
            files = [folder / 'cpu.cfs_quota_us', folder / 'cpu.cfs_period_us']
        else:
            continue
        try:
            words = ' '.join(file.read_text() for file in files).split()
        except OSError:
            continue
        if words and words[0] not in ('max', '-1'):
            return int(words[0]) / int(words[1])
    return None


def usable_cpus():
    """The CPUs this process may run on: its affinity, capped by a cgroup quota.

    Returns
    -------
    cpus : list of int
        The CPUs of the affinity mask.
    count : int
        How many threads can run at once (the quota, rounded down, at least 1).
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else list(
        range(os.cpu_count() or 1))
    quota = _cgroup_quota()
    count = len(cpus) if quota is None else max(1, min(len(cpus), math.floor(quota)))
    return cpus, count


def _cpu_ticks(cpus):
    """Busy and total clock ticks of ``cpus`` since boot, from /proc/stat."""
    busy = total = 0
    wanted = {f'cpu{cpu}' for cpu in cpus}
    for line in Path('/proc/stat').read_text().splitlines():
        name, *fields = line.split()
        if name in wanted:
            ticks = [int(field) for field in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]  # all but idle and waiting for I/O
            total += sum(ticks)
    return busy, total


def busy_cpus(cpus, seconds=SAMPLE_SECONDS):
    """How many of ``cpus`` other processes kept busy over the next ``seconds``, or None
    where /proc/stat cannot be read. This process's own time is taken out."""
    try:
        busy_before, total_before = _cpu_ticks(cpus)
        own_before = sum(os.times()[:2])
        time.sleep(seconds)
        busy_after, total_after = _cpu_ticks(cpus)
    except (OSError, ValueError):
        return None
    own_seconds = sum(os.times()[:2]) - own_before
    if total_after <= total_before:
        return None
    tick = os.sysconf('SC_CLK_TCK')
    busy_share = (busy_after - busy_before - own_seconds * tick) / (total_after - total_before)
    return max(0.0, busy_share) * len(cpus)


def environment_threads(environ=None):
    """The thread-count variables the user set, as 'NAME=value' words (empty if none)."""
    environ = os.environ if environ is None else environ
    return [f'{name}={environ[name]}' for name in THREAD_VARIABLES if environ.get(name)]


def choose_threads(requested=None, product_size=None, environ=None, busy=None):
    """Decide the thread count.

    Parameters
    ----------
    requested : int, optional
        ``--threads``: used as given unless the environment sets the count.
    product_size : int, optional
        Multiply-adds of the largest product a training step makes; None for unknown
        (then a quiet machine gets all its threads).
    environ : mapping, optional
        The environment (default: ``os.environ``).
    busy : float, optional
        CPUs other processes keep busy; measured over ``SAMPLE_SECONDS`` when None.

    Returns
    -------
    ThreadChoice
    """
    set_by_user = environment_threads(environ)
    if set_by_user:
        value = set_by_user[0].split('=', 1)[1]
        threads = int(value) if value.isdigit() and int(value) > 0 else 1
        return ThreadChoice(threads, f"{', '.join(set_by_user)} set in the environment",
                            'environment')
    if requested is not None:
        return ThreadChoice(requested, f'--threads {requested}', 'flag')
    cpus, count = usable_cpus()
    where = f"{count} CPU{'s' * (count != 1)}"
    if count < len(cpus):
        where += f' (cgroup quota; {len(cpus)} in the affinity mask)'
    if count > 1 and product_size is not None and product_size < SHARED_PRODUCT_SIZE:
        return ThreadChoice(1, f'{where}; products of {product_size:,} multiply-adds run '
                               f'faster on one', 'policy')
    if count == 1:
        return ThreadChoice(1, where, 'policy')
    busy = busy_cpus(cpus) if busy is None else busy
    if busy is None:
        return ThreadChoice(count, f'{where}, load unknown', 'policy')
    free = max(1, min(count, round(count - busy)))
    return ThreadChoice(free, f'{where}, {busy:.1f} busy', 'policy')


def first_layer_product(batch_size, n_inputs, hidden_dims, n_classes):
    """Multiply-adds of the first layer's product: batch x inputs x its units."""
    return batch_size * n_inputs * (hidden_dims[0] if hidden_dims else n_classes)


def apply_thread_policy(requested=None, product_size=None, environ=None):
    """Decide the thread count (``choose_threads``) and set it in this process.

    NumPy's BLAS is set through threadpoolctl; PyTorch with ``torch.set_num_threads``
    where torch is already imported (the NumPy path never imports it). When the
    environment sets the count, nothing is changed: the libraries read it at import.
    A notebook calls this once, after its imports. With the count set in the
    environment, the returned count is the one NumPy's BLAS runs with.

    Returns
    -------
    ThreadChoice
    """
    from threadpoolctl import threadpool_info, threadpool_limits

    choice = choose_threads(requested, product_size, environ)
    if choice.source == 'environment':
        in_effect = [pool['num_threads'] for pool in threadpool_info()
                     if pool['user_api'] == 'blas']
        return choice._replace(threads=max(in_effect, default=choice.threads))
    threadpool_limits(choice.threads)
    torch = sys.modules.get('torch')
    if torch is not None:
        torch.set_num_threads(choice.threads)
    return choice


def print_thread_policy(requested=None, product_size=None):
    """``apply_thread_policy``, then print its line; the first line a script prints."""
    choice = apply_thread_policy(requested, product_size)
    print(choice.line(torch_too='torch' in sys.modules), flush=True)
    return choice
