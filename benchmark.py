"""Benchmarks of this repository, one sub-command each.

    python benchmark.py train [--data_dir data/] [--repeats 3] [--json PATH]
    python benchmark.py data [--data_dir data/] [--batch_size 128] [--json PATH]

`train` times one training epoch (batch 128, learning rate 0.1, float32) of
this NumPy MLP, this PyTorch MLP on the CPU, a plain PyTorch eager loop and
scikit-learn's MLPClassifier, side by side in one run, on the Fashion-MNIST
shape (784-128-10) and the CIFAR-10 shape (3072-128-10), and compares each with
the floor: the floating-point operations of the epoch divided by the rate of a
large float32 matrix product measured in the same run. It also times the main
job, `python train_mlp_numpy.py` with its defaults, as a whole process.

`data` measures the data pipeline on this machine: loading CIFAR-10 from its
extracted batches (wall time and peak memory, in a fresh process), and one
epoch of training batches from our loader against torch's DataLoader over a
TensorDataset, which gathers and collates one example at a time. Without
data/cifar-10-batches-py it writes random images of the real size and format
(50 000 + 10 000) to a temporary folder and loads those.
"""
import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cifar10_utils
from cifar10_utils import get_cifar10, get_dataloader
from fileio import save_json

REPOSITORY = Path(__file__).resolve().parent

# Targets of the data pipeline (issue 3).
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


def write_random_cifar10(data_dir, seed=0):
    """Write random uint8 images in CIFAR-10's python format and sizes:
    data_dir/cifar-10-batches-py with five 10 000-image batches, a test batch
    and batches.meta. Pickle protocol 4 stores the pixels as raw bytes, as the
    real (Python 2) files do, so they read as fast as the real ones."""
    rng = np.random.default_rng(seed)
    batches_dir = Path(data_dir) / cifar10_utils.CIFAR10_FOLDER
    batches_dir.mkdir(parents=True)
    for name in (*cifar10_utils.CIFAR10_TRAIN_BATCHES, cifar10_utils.CIFAR10_TEST_BATCH):
        batch = {b'data': rng.integers(0, 256, (10000, 3072), dtype=np.uint8),
                 b'labels': rng.integers(0, 10, 10000).tolist()}
        (batches_dir / name).write_bytes(pickle.dumps(batch, protocol=4))
    meta = {b'label_names': [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog',
                             b'frog', b'horse', b'ship', b'truck']}
    (batches_dir / cifar10_utils.CIFAR10_META).write_bytes(pickle.dumps(meta, protocol=2))


def measure_load(data_dir, repeats):
    """Load CIFAR-10 in `repeats` fresh processes; return the median wall and CPU
    seconds, the largest peak memory, and the share of it the interpreter and
    imports hold."""
    program = 'import sys, benchmark; benchmark.report_load(sys.argv[1])'
    runs = []
    for _ in range(repeats):
        finished = subprocess.run([sys.executable, '-c', program, str(data_dir)],
                                  cwd=REPOSITORY, check=True, capture_output=True, text=True)
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
        if (data_dir / cifar10_utils.CIFAR10_FOLDER).is_dir():
            results['source'] = f'{data_dir / cifar10_utils.CIFAR10_FOLDER}'
        else:
            data_dir = Path(scratch)
            write_random_cifar10(data_dir)
            results['source'] = 'random images in the real format (50000 + 10000)'
        results.update(measure_load(data_dir, args.repeats))
        datasets = get_cifar10(data_dir)
    results.update(measure_epochs(datasets, args.batch_size, args.repeats))
    print_data_table(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print(f'Numbers written to {args.json}')


# ---------------------------------------------------------------------------
# train: seconds per training epoch, side by side with peers and the floor
# ---------------------------------------------------------------------------

# Targets of the training speed (issue 5).
NUMPY_OVER_EAGER_TARGET = 0.8
NUMPY_OVER_FLOOR_TARGET = 1.5
MAIN_JOB_SECONDS_TARGET = 10.0
MAIN_JOB_PEAK_GB_TARGET = 2.0
BATCH_SIZE = 128
LEARNING_RATE = 0.1
N_HIDDEN = 128
N_CLASSES = 10


def fastest_seconds(task, repeats):
    """Wall seconds of the fastest of `repeats` runs of `task()`.

    On a shared machine other work only ever adds time, so the fastest run is
    the best estimate of what the code itself costs (as `timeit` advises).
    """
    fastest = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        task()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def matmul_rate(size=4096, repeats=5):
    """Floating-point operations per second of a large float32 matrix product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    return 2 * size ** 3 / fastest_seconds(lambda: a @ b, repeats)


def epoch_flops(n_samples, n_inputs):
    """Operations of one epoch of the n_inputs-128-10 MLP, counting the matrix
    products only (everything else is linear in the layer widths):
    forward 2(DH + HC) per sample, weight gradients 2(DH + HC), and the input
    gradient of the second layer 2HC (the first layer needs none)."""
    per_sample = 4 * (n_inputs * N_HIDDEN + N_HIDDEN * N_CLASSES) + 2 * N_HIDDEN * N_CLASSES
    return n_samples * per_sample


def benchmark_shapes(data_dir):
    """The two shapes to time: real data where this machine has it, else random
    data of the same shape (the time of an epoch does not depend on the values)."""
    from data_utils import get_dataset

    from data_utils import DEBIAN_FASHION_MNIST_DIR

    on_disk = {'fashion_mnist': (Path(data_dir) / 'FashionMNIST' / 'raw').is_dir()
                                or DEBIAN_FASHION_MNIST_DIR.is_dir(),
               'cifar10': (Path(data_dir) / cifar10_utils.CIFAR10_FOLDER).is_dir()}
    rng = np.random.default_rng(0)
    shapes = {}
    for name, image_shape, n_train in (('fashion_mnist', (1, 28, 28), 55000),
                                       ('cifar10', (3, 32, 32), 45000)):
        if on_disk[name]:
            train = get_dataset(name, data_dir=data_dir)['train']
            images, labels, source = train.images, train.labels, 'real data'
        else:
            images = rng.standard_normal((n_train, *image_shape), dtype=np.float32)
            labels = rng.integers(0, N_CLASSES, n_train)
            source = 'random data of the real shape'
        shapes[name] = (images, labels, source)
    return shapes


def matrix_products_epoch(images, labels):
    """The matrix products of a NumPy training epoch and nothing else: the
    forward products of both layers, the weight gradients and the hidden
    layer's input gradient, written as LinearModule writes them. The gap
    between this and the NumPy MLP is everything that is not BLAS: the batch
    gather, activations, loss and parameter updates."""
    rng = np.random.default_rng(0)
    n_inputs = int(np.prod(images.shape[1:]))
    inputs = rng.standard_normal((BATCH_SIZE, n_inputs), dtype=np.float32)
    grad_hidden = rng.standard_normal((BATCH_SIZE, N_HIDDEN), dtype=np.float32)
    grad_logits = rng.standard_normal((BATCH_SIZE, N_CLASSES), dtype=np.float32)
    weight_1 = rng.standard_normal((N_HIDDEN, n_inputs), dtype=np.float32)
    weight_2 = rng.standard_normal((N_CLASSES, N_HIDDEN), dtype=np.float32)
    n_batches = len(images) // BATCH_SIZE

    def epoch():
        for _ in range(n_batches):
            hidden = inputs @ weight_1.T
            hidden @ weight_2.T
            grad_logits.T @ hidden
            grad_logits @ weight_2
            grad_hidden.T @ inputs
    return epoch


def quiet_run():
    """A stand-in for ``runs.TrainingRun`` as ``train_epoch`` uses it: no bar, no Ctrl-C."""
    from types import SimpleNamespace

    from runs import EpochProgress

    run = SimpleNamespace(stop_requested=False, show_progress=False, epochs_done=0,
                          settings={'lr': LEARNING_RATE})
    run.progress = lambda loader: EpochProgress(run, loader, epoch=1)
    return run


def numpy_mlp_epoch(images, labels):
    """This NumPy MLP, trained by train_mlp_numpy.train_epoch over our loader."""
    import train_mlp_numpy
    from cifar10_utils import ArrayDataset, ArrayLoader
    from mlp_numpy import MLP
    from modules import SoftmaxCrossEntropyModule
    from optimizers import SGD

    loader = ArrayLoader(ArrayDataset(images, labels, list(range(N_CLASSES))), BATCH_SIZE,
                         shuffle=True, drop_last=True, return_numpy=True)
    model = MLP(int(np.prod(images.shape[1:])), [N_HIDDEN], N_CLASSES, dtype=np.float32)
    optimizer = SGD(model, LEARNING_RATE)
    loss_module = SoftmaxCrossEntropyModule()
    return lambda: train_mlp_numpy.train_epoch(model, loader, loss_module, optimizer,
                                               quiet_run())


def pytorch_mlp_epoch(images, labels):
    """This PyTorch MLP on the CPU, trained by train_mlp_pytorch.train_epoch."""
    import torch

    import train_mlp_pytorch
    from cifar10_utils import ArrayDataset, ArrayLoader
    from mlp_pytorch import MLP

    loader = ArrayLoader(ArrayDataset(images, labels, list(range(N_CLASSES))), BATCH_SIZE,
                         shuffle=True, drop_last=True, device='cpu')
    model = MLP(int(np.prod(images.shape[1:])), [N_HIDDEN], N_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    return lambda: train_mlp_pytorch.train_epoch(model, loader, optimizer, quiet_run())


def plain_pytorch_epoch(images, labels):
    """The textbook PyTorch eager loop: nn.Sequential, randperm batches, SGD."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    inputs = torch.from_numpy(images.reshape(len(images), -1))
    targets = torch.from_numpy(labels)
    model = nn.Sequential(nn.Linear(inputs.shape[1], N_HIDDEN), nn.ELU(),
                          nn.Linear(N_HIDDEN, N_CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    n_batches = len(inputs) // BATCH_SIZE

    def epoch():
        order = torch.randperm(len(inputs))
        for batch in range(n_batches):
            indices = order[batch * BATCH_SIZE:(batch + 1) * BATCH_SIZE]
            loss = F.cross_entropy(model(inputs[indices]), targets[indices])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


def sklearn_epoch(images, labels):
    """scikit-learn's MLPClassifier, one epoch of the same SGD (ReLU: it has no ELU)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    inputs = images.reshape(len(images), -1)

    def epoch():
        classifier = MLPClassifier(hidden_layer_sizes=(N_HIDDEN,), activation='relu',
                                   solver='sgd', learning_rate_init=LEARNING_RATE,
                                   momentum=0.0, alpha=0.0, batch_size=BATCH_SIZE,
                                   max_iter=1, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ConvergenceWarning)
            classifier.fit(inputs, labels)
    return epoch


SYSTEMS = (('numpy: matrix products only', matrix_products_epoch),
           ('numpy MLP (this)', numpy_mlp_epoch),
           ('pytorch MLP (this, CPU)', pytorch_mlp_epoch),
           ('pytorch eager loop', plain_pytorch_epoch),
           ('scikit-learn MLPClassifier', sklearn_epoch))


def measure_main_job(repeats):
    """Wall time (fastest of `repeats` runs) and peak memory of
    `python train_mlp_numpy.py` with its defaults, each run a fresh process, on
    CIFAR-10 from extracted batches (random images of the real size and format
    where data/ has none)."""
    import resource

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = REPOSITORY / 'data'
        if not (data_dir / cifar10_utils.CIFAR10_FOLDER).is_dir():
            data_dir = Path(scratch) / 'data'
            write_random_cifar10(data_dir)
        command = [sys.executable, str(REPOSITORY / 'train_mlp_numpy.py'), '--data_dir',
                   str(data_dir), '--out_dir', str(Path(scratch) / 'out'), '--no_progress']
        seconds = fastest_seconds(
            lambda: subprocess.run(command, check=True, capture_output=True), repeats)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {'main_job_seconds': seconds, 'main_job_peak_bytes': peak_kib * 1024}


def run_train_benchmark(args):
    """The `train` sub-command."""
    import platform

    import torch
    import sklearn

    results = {'date': time.strftime('%Y-%m-%d'), 'machine': platform.machine(),
               'processor': platform.processor() or platform.machine(),
               'cpu_count': os.cpu_count(), 'load_average': os.getloadavg()[0],
               'numpy': np.__version__, 'torch': torch.__version__,
               'sklearn': sklearn.__version__, 'repeats': args.repeats, 'shapes': {}}
    if results['load_average'] > 0.5:
        print(f"warning: load average {results['load_average']:.1f}: other processes "
              f"are running, and BLAS threads slow down badly when they must share cores")
    results['matmul_flops_per_second'] = matmul_rate()
    for shape_name, (images, labels, source) in benchmark_shapes(args.data_dir).items():
        n_inputs = int(np.prod(images.shape[1:]))
        n_samples = len(images) // BATCH_SIZE * BATCH_SIZE
        floor = epoch_flops(n_samples, n_inputs) / results['matmul_flops_per_second']
        shape = {'source': source, 'layers': f'{n_inputs}-{N_HIDDEN}-{N_CLASSES}',
                 'n_samples': n_samples, 'floor_seconds': floor, 'seconds': {}}
        for system, make_epoch in SYSTEMS:
            epoch = make_epoch(images, labels)
            epoch()  # warm-up: first-touch allocations, lazy initialisation
            shape['seconds'][system] = fastest_seconds(epoch, args.repeats)
        results['shapes'][shape_name] = shape
    results.update(measure_main_job(min(args.repeats, 3)))
    print_train_table(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print(f'Numbers written to {args.json}')


def print_train_table(results):
    """Seconds per epoch with ratios to PyTorch eager and to the floor, and the targets."""
    print(f"{results['date']}, {results['cpu_count']} cores ({results['processor']}), "
          f"load average {results['load_average']:.1f} at the start; NumPy "
          f"{results['numpy']}, PyTorch {results['torch']}, scikit-learn {results['sklearn']}; "
          f"float32 matrix product at {results['matmul_flops_per_second'] / 1e9:.0f} GFLOP/s; "
          f"fastest of {results['repeats']} epochs")
    for shape_name, shape in results['shapes'].items():
        eager = shape['seconds']['pytorch eager loop']
        print(f"\n{shape_name} shape {shape['layers']}, {shape['n_samples']} samples "
              f"({shape['source']})")
        print(f"{'system':<28} {'s/epoch':>8} {'/ eager':>8} {'/ floor':>8}")
        for system, seconds in shape['seconds'].items():
            print(f"{system:<28} {seconds:8.3f} {seconds / eager:8.2f} "
                  f"{seconds / shape['floor_seconds']:8.2f}")
        print(f"{'floor (FLOPs / matmul rate)':<28} {shape['floor_seconds']:8.3f}")
    print('\ntargets')
    for shape_name, shape in results['shapes'].items():
        ratio = shape['seconds']['numpy MLP (this)'] / shape['seconds']['pytorch eager loop']
        print(f"  {shape_name}: numpy / eager = {ratio:.2f} "
              f"(target <= {NUMPY_OVER_EAGER_TARGET}) "
              f"{'ok' if ratio <= NUMPY_OVER_EAGER_TARGET else 'MISSED'}")
    cifar = results['shapes']['cifar10']
    floor_ratio = cifar['seconds']['numpy MLP (this)'] / cifar['floor_seconds']
    print(f"  cifar10: numpy / floor = {floor_ratio:.2f} (target <= {NUMPY_OVER_FLOOR_TARGET}) "
          f"{'ok' if floor_ratio <= NUMPY_OVER_FLOOR_TARGET else 'MISSED'}")
    seconds, peak_gb = results['main_job_seconds'], results['main_job_peak_bytes'] / 1e9
    print(f"  python train_mlp_numpy.py (defaults, whole process): {seconds:.1f} s "
          f"(target < {MAIN_JOB_SECONDS_TARGET:g}) "
          f"{'ok' if seconds < MAIN_JOB_SECONDS_TARGET else 'MISSED'}, peak memory "
          f"{peak_gb:.2f} GB (target < {MAIN_JOB_PEAK_GB_TARGET:g}) "
          f"{'ok' if peak_gb < MAIN_JOB_PEAK_GB_TARGET else 'MISSED'}")


def add_train_command(subcommands):
    parser = subcommands.add_parser(
        'train', help='time a training epoch of this project and its peers')
    parser.add_argument('--data_dir', default='data/',
                        help='folder with the data sets (random data of the same '
                             'shape stands in for what is missing)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='epochs timed per system; the fastest is reported')
    parser.add_argument('--json', default='results/benchmark_train.json',
                        help='where to write the numbers')
    parser.set_defaults(run=run_train_benchmark)


def add_data_command(subcommands):
    parser = subcommands.add_parser('data', help='time and size the CIFAR-10 data pipeline')
    parser.add_argument('--data_dir', default='data/',
                        help='folder holding cifar-10-batches-py (else random data is used)')
    parser.add_argument('--batch_size', type=int, default=128)
    parser.add_argument('--repeats', type=int, default=3,
                        help='runs of each measurement; the median is reported')
    parser.add_argument('--json', default='results/benchmark_data.json',
                        help='where to write the numbers')
    parser.set_defaults(run=run_data_benchmark)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(title='benchmarks', dest='benchmark', required=True)
    add_train_command(subcommands)
    add_data_command(subcommands)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == '__main__':
    main()
