"""What every benchmark shares: the workload's constants, interleaved timing, machine facts."""
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


REPOSITORY = Path(__file__).resolve().parents[2]
ENTRY_POINT = REPOSITORY / 'benchmark.py'
"""The script that starts the benchmarks' worker processes."""

BATCH_SIZE = 128
LEARNING_RATE = 0.1
N_HIDDEN = 128
N_CLASSES = 10
SHAPES = {'fashion_mnist': ((1, 28, 28), 55000), 'cifar10': ((3, 32, 32), 45000)}
"""Image shape and number of training images (after validation) of each benchmarked shape."""


def interleaved_seconds(tasks, rounds):
    """Run every task once per round, in turn, for ``rounds`` rounds.

    Parameters
    ----------
    tasks : dict of str to callable
    rounds : int

    Returns
    -------
    dict of str to list of float
        The wall seconds of each run of each task, in order.
    """
    seconds = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def summary(values):
    """Median, min and max of a list of seconds, and the list itself."""
    return {'median': statistics.median(values), 'min': min(values), 'max': max(values),
            'all': list(values)}


def machine_facts():
    """Date, processor, cores, load and library versions: what a timing depends on."""
    processor = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            processor = next(line.split(':', 1)[1].strip() for line in cpuinfo
                             if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return {'date': time.strftime('%Y-%m-%d'), 'processor': processor,
            'cpu_count': os.cpu_count(), 'load_average': os.getloadavg()[0],
            'python': platform.python_version(), 'numpy': np.__version__}


def thread_environment(threads):
    """The environment of a child process whose BLAS and OpenMP use ``threads`` threads."""
    names = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
    return {**os.environ, **{name: str(threads) for name in names}}


class WorkerError(RuntimeError):
    """A benchmark's worker process failed; the text is the worker's own last line."""


def run_worker(command, **options):
    """``subprocess.run(command, **options)`` with its output captured as text.

    Raises
    ------
    WorkerError
        If the worker fails, with the last line of its error output (a data file
        that cannot be read, say) in place of a ``CalledProcessError``.
    """
    finished = subprocess.run(command, capture_output=True, text=True, **options)
    if finished.returncode != 0:
        lines = finished.stderr.strip().splitlines() or [f"exit status {finished.returncode}"]
        raise WorkerError(f"a worker process failed: {lines[-1]}")
    return finished


def check_output_file(path):
    """Check, before anything is measured, that a file can be written at ``path``.

    Raises
    ------
    OSError
        Naming the folder and why not; the folder is created if missing.
    """
    folder = Path(path).parent
    try:
        if Path(path).is_dir():
            raise IsADirectoryError(21, 'it is a folder')
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(f"cannot write {path} ({error.strerror or error}); choose a writable "
                      f"--json path") from None
