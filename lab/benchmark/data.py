"""`benchmark.py data`: the CIFAR-10 data pipeline, loading and batching."""
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cifar10_utils import get_cifar10, get_dataloader
from lab import cifar10_files
from lab.cli import positive_int
from lab.fileio import save_json
from lab.benchmark.common import REPOSITORY, WorkerError, run_worker
from lab.benchmark.train import write_random_cifar10

LOAD_SECONDS_TARGET = 2.0
LOAD_PEAK_GB_TARGET = 1.5
EPOCH_FRACTION_TARGET = 0.05
NOMINAL_TRAINING_EPOCH_SECONDS = 1.0


def peak_memory_bytes():
    """This process's peak resident memory so far, in bytes (Linux and macOS)."""
    try:  # Linux: the high-water mark of this process alone (exec resets it)
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # Unix only
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024  # bytes on macOS, KiB elsewhere


def report_load(data_dir):
    """Load CIFAR-10 from `data_dir` and print, as JSON, the load's wall and CPU
    seconds and the peak memory before and after it. Run by `measure_load` in a fresh
    interpreter, so the peak is the load's own."""
    before = peak_memory_bytes()
    start, start_cpu = time.perf_counter(), time.process_time()
    get_cifar10(data_dir)
    print(json.dumps({'seconds': time.perf_counter() - start,
                      'cpu_seconds': time.process_time() - start_cpu,
                      'peak_before_bytes': before, 'peak_bytes': peak_memory_bytes()}))


def measure_load(data_dir, repeats):
    """Load CIFAR-10 in `repeats` fresh processes; return the median wall and CPU
    seconds, the largest peak memory, and the share of it the interpreter and
    imports hold."""
    program = 'import sys; from lab.benchmark.data import report_load; report_load(sys.argv[1])'
    runs = []
    for _ in range(repeats):
        finished = run_worker([sys.executable, '-c', program, str(Path(data_dir).resolve())],
                              cwd=REPOSITORY)
        runs.append(json.loads(finished.stdout.splitlines()[-1]))
    return {'load_seconds': statistics.median(run['seconds'] for run in runs),
            'load_cpu_seconds': statistics.median(run['cpu_seconds'] for run in runs),
            'load_peak_bytes': max(run['peak_bytes'] for run in runs),
            'interpreter_peak_bytes': max(run['peak_before_bytes'] for run in runs)}


def median_seconds(task, repeats):
    """Run `task()` `repeats` times; return the median wall and CPU seconds (CPU
    time counts every thread of this process, and is what other processes on
    the machine disturb least)."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        task()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def draw_epoch(loader):
    """Draw every batch of one epoch from `loader`, doing nothing with them."""
    for _images, _labels in loader:
        pass


def training_matmuls(n_batches, batch_size, n_inputs, n_hidden=128, n_classes=10):
    """Return a task that runs the matrix products and SGD updates of one training
    epoch of the default MLP (n_inputs-128-10), forward and backward, in
    float32: a lower bound on a NumPy training epoch, to compare the loader's
    epoch with."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((batch_size, n_inputs), dtype=np.float32)
    weight_1 = rng.standard_normal((n_hidden, n_inputs), dtype=np.float32)
    weight_2 = rng.standard_normal((n_classes, n_hidden), dtype=np.float32)
    learning_rate = np.float32(1e-9)  # small enough to keep the numbers finite

    def epoch():
        nonlocal weight_1, weight_2
        for _ in range(n_batches):
            hidden = inputs @ weight_1.T
            logits = hidden @ weight_2.T
            grad_hidden = logits @ weight_2
            weight_2 -= learning_rate * (logits.T @ hidden)
            weight_1 -= learning_rate * (grad_hidden.T @ inputs)
    return epoch


def measure_epochs(datasets, batch_size, repeats):
    """Seconds of one epoch of training batches: ours (NumPy and torch paths)
    against torch.utils.data.DataLoader over a TensorDataset, and the matrix
    products of a training epoch for scale."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    train = datasets['train']
    ours_numpy = get_dataloader(datasets, batch_size, return_numpy=True)['train']
    ours_torch = get_dataloader(datasets, batch_size)['train']
    peer = DataLoader(TensorDataset(torch.from_numpy(train.images),
                                    torch.from_numpy(train.labels)),
                      batch_size=batch_size, shuffle=True, drop_last=True)
    matmuls = training_matmuls(len(ours_numpy), batch_size, int(np.prod(train.images.shape[1:])))
    results = {}
    for name, task in (('epoch_numpy', lambda: draw_epoch(ours_numpy)),
                       ('epoch_torch', lambda: draw_epoch(ours_torch)),
                       ('epoch_peer', lambda: draw_epoch(peer)),
                       ('training_matmuls', matmuls)):
        results[f'{name}_seconds'], results[f'{name}_cpu_seconds'] = median_seconds(task, repeats)
    best_ours = min(results['epoch_numpy_seconds'], results['epoch_torch_seconds'])
    results['peer_over_ours'] = results['epoch_peer_seconds'] / best_ours
    results['ours_over_training_matmuls'] = best_ours / results['training_matmuls_seconds']
    results['ours_over_nominal_epoch'] = best_ours / NOMINAL_TRAINING_EPOCH_SECONDS
    return results


def print_data_table(results):
    """Print the numbers of the `data` benchmark against their targets."""
    def row(name, key, target=None):
        wall = results[f'{key}_seconds']
        cpu = results.get(f'{key}_cpu_seconds')
        verdict = '' if target is None else ('ok' if wall < target else 'MISSED')
        return (name, f'{wall:.3f}', '' if cpu is None else f'{cpu:.3f}',
                '' if target is None else f'< {target:g}', verdict)

    def fraction(name, key, target):
        value = results[key]
        return name, f'{value:.1%}', '', f'< {target:.0%}', 'ok' if value < target else 'MISSED'

    peak_gb = results['load_peak_bytes'] / 1e9
    rows = [
        row('load CIFAR-10 from its batches (s)', 'load', LOAD_SECONDS_TARGET),
        ('peak memory of the load (GB)', f'{peak_gb:.2f}', '', f'< {LOAD_PEAK_GB_TARGET:g}',
         'ok' if peak_gb < LOAD_PEAK_GB_TARGET else 'MISSED'),
        ('  of which interpreter and imports (GB)',
         f"{results['interpreter_peak_bytes'] / 1e9:.2f}", '', '', ''),
        row('epoch of batches, ours, NumPy (s)', 'epoch_numpy'),
        row('epoch of batches, ours, torch (s)', 'epoch_torch'),
        row('epoch of batches, torch DataLoader (s)', 'epoch_peer'),
        ('DataLoader time / ours', f"{results['peer_over_ours']:.1f}x", '', '', ''),
        row('training epoch, matrix products only (s)', 'training_matmuls'),
        fraction('ours / training matrix products', 'ours_over_training_matmuls',
                 EPOCH_FRACTION_TARGET),
        fraction(f'ours / a {NOMINAL_TRAINING_EPOCH_SECONDS:g} s training epoch',
                 'ours_over_nominal_epoch', EPOCH_FRACTION_TARGET),
    ]
    print(f"CIFAR-10 data pipeline: {results['source']}; batch {results['batch_size']}; "
          f"{results['cpu_count']} CPU cores, load average {results['load_average']:.1f} at "
          f"the start; medians of {results['repeats']} runs")
    width = max(len(name) for name, *_ in rows)
    print(f"{'measure':<{width}}  {'value':>7}  {'cpu s':>7}  {'target':>7}")
    for name, wall, cpu, target, verdict in rows:
        print(f'{name:<{width}}  {wall:>7}  {cpu:>7}  {target:>7}  {verdict}'.rstrip())


def run_data_benchmark(args):
    """The `data` sub-command."""
    results = {'batch_size': args.batch_size, 'repeats': args.repeats,
               'cpu_count': os.cpu_count(), 'load_average': os.getloadavg()[0],
               'numpy': np.__version__}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(args.data_dir)
        if (data_dir / cifar10_files.CIFAR10_FOLDER).is_dir():
            results['source'] = f'{data_dir / cifar10_files.CIFAR10_FOLDER}'
        else:
            data_dir = Path(scratch)
            write_random_cifar10(data_dir)
            results['source'] = 'random images in the real format (50000 + 10000)'
        datasets = get_cifar10(data_dir)  # first, so that a bad file is named at once
        if args.batch_size > len(datasets['train']):
            raise WorkerError(f"--batch_size {args.batch_size} is larger than the "
                              f"{len(datasets['train'])} training images")
        results.update(measure_load(data_dir, args.repeats))
    results.update(measure_epochs(datasets, args.batch_size, args.repeats))
    print_data_table(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print(f'Numbers written to {args.json}')


def add_data_command(subcommands):
    parser = subcommands.add_parser(
        'data', help='time and size the CIFAR-10 data pipeline (13 s at load average 1.5, '
                     '2026-12-03)')
    parser.add_argument('--data_dir', default='data/',
                        help='folder holding cifar-10-batches-py (else random data is used)')
    parser.add_argument('--batch_size', type=positive_int, default=128,
                        help='images per batch (default: 128)')
    parser.add_argument('--repeats', type=positive_int, default=3,
                        help='runs of each measurement; the median is reported (default: 3)')
    parser.add_argument('--json', default='results/benchmark_data.json',
                        help='where to write the numbers (default: results/benchmark_data.json)')
    parser.set_defaults(run=run_data_benchmark)
