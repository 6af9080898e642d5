"""Benchmarks of this repository against its peers, one sub-command each.

    python benchmark.py train [--epochs 7] [--json results/benchmark_train.json]
    python benchmark.py table [--json results/benchmark_train.json]
    python benchmark.py levers [--repeats 7] [--json results/benchmark_levers.json]
    python benchmark.py data  [--repeats 3] [--json results/benchmark_data.json]

`train` times training epochs (batch 128, learning rate 0.1, float32) of this
NumPy MLP, this PyTorch MLP on the CPU, a plain PyTorch eager loop and, where
it is installed, scikit-learn's MLPClassifier, on the Fashion-MNIST shape
(784-128-10) and the CIFAR-10 shape (3072-128-10). Beside them it times the
NumPy matrix products of the same epoch and nothing else, the floor that the
NumPy MLP is measured against. It runs everything twice, in a fresh process
with one thread and in one with all the machine's threads (BLAS and PyTorch
alike), and in each process it interleaves the systems epoch by epoch, so
that whatever else the machine does hits them alike; it reports the median of
the epochs with their min and max. It also times the main job,
`python train_mlp_numpy.py` with its defaults as a whole process, against ten
PyTorch-eager epochs in the same process, and sweeps one training step over
batch sizes and widths. To show where the NumPy MLP's time goes, it profiles
its training step stage by stage and measures the machine's memory copy
bandwidth, the ceiling of the stages that only move memory. The JSON keeps
every measurement, with the BLAS library and its threads where threadpoolctl
is installed; `table` prints the README's tables from it.

`levers` times the speed-ups that were tried and not kept, each beside what
the code does: the SGD update against a blocked one and SciPy's BLAS axpy, the
first layer's products with a column-major weight and in PyTorch, a
fresh batch against a reused buffer, page faults per step, the first pass over
a product's result with one BLAS thread and with all, element-wise work beside
a busy core, `SGD.step` against a bare loop, and (where SciPy is installed)
training epochs with a second OpenBLAS thread pool in the process.

`data` measures the data pipeline: loading CIFAR-10 from its extracted
batches (wall time and peak memory, in a fresh process), and one epoch of
training batches from our loader against torch's DataLoader over a
TensorDataset. Without data/cifar-10-batches-py it writes random images of the
real size and format (50 000 + 10 000) to a temporary folder and loads those.
"""
import argparse
import collections
import contextlib
import json
import os
import pickle
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cifar10_files
from cifar10_utils import get_cifar10, get_dataloader
from cli import ReaderSafeStream, positive_int
from fileio import load_json, save_json

REPOSITORY = Path(__file__).resolve().parent

BATCH_SIZE = 128
LEARNING_RATE = 0.1
N_HIDDEN = 128
N_CLASSES = 10
SHAPES = {'fashion_mnist': ((1, 28, 28), 55000), 'cifar10': ((3, 32, 32), 45000)}
"""Image shape and number of training images (after validation) of each benchmarked shape."""
SWEEP = ((16, 128), (128, 128), (512, 128), (128, 512), (128, 2048))
"""(batch size, hidden width) of the one-step sweep, on 3072 input features."""

MLP_OVER_MATMULS_TARGET = {'fashion_mnist': 1.6, 'cifar10': 1.3}
MLP_OVER_EAGER_TARGET = {'one thread': 0.9, 'all threads': 1.0}
MAIN_JOB_OVER_EAGER_TARGET = 1.2
SWEEP_TARGET = 1.0


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# train: the systems, each a function of (images, labels) returning an epoch
# ---------------------------------------------------------------------------

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


def numpy_mlp_epoch(images, labels, optimizer_class=None):
    """This NumPy MLP, trained by train_mlp_numpy.train_epoch over our loader, with
    ``optimizers.SGD`` or ``optimizer_class``, a variant of it."""
    import train_mlp_numpy
    from cifar10_utils import ArrayDataset, ArrayLoader
    from mlp_numpy import MLP
    from modules import SoftmaxCrossEntropyModule
    from optimizers import SGD

    loader = ArrayLoader(ArrayDataset(images, labels, list(range(N_CLASSES))), BATCH_SIZE,
                         shuffle=True, drop_last=True, return_numpy=True)
    model = MLP(int(np.prod(images.shape[1:])), [N_HIDDEN], N_CLASSES, dtype=np.float32,
                rng=np.random.default_rng(0))
    optimizer = (optimizer_class or SGD)(model, LEARNING_RATE)
    loss_module = SoftmaxCrossEntropyModule()

    def epoch():
        return train_mlp_numpy.train_epoch(model, loader, loss_module, optimizer, quiet_run())
    epoch.model, epoch.loader, epoch.loss_module, epoch.optimizer = (model, loader, loss_module,
                                                                     optimizer)
    return epoch


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


def eager_pytorch_epoch(images, labels):
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


SYSTEMS = {'numpy matrix products only': matrix_products_epoch,
           'numpy MLP (this)': numpy_mlp_epoch,
           'pytorch MLP (this, CPU)': pytorch_mlp_epoch,
           'pytorch eager loop': eager_pytorch_epoch,
           'scikit-learn MLPClassifier': sklearn_epoch}


def has_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def shape_data(name, data_dir, n_train):
    """Training images and labels of a shape: real data where this machine has it, else
    random data of the same shape (an epoch's time does not depend on the values)."""
    from data_utils import DEBIAN_FASHION_MNIST_DIR, get_dataset

    image_shape, _ = SHAPES[name]
    on_disk = {'fashion_mnist': (Path(data_dir) / 'FashionMNIST' / 'raw').is_dir()
               or DEBIAN_FASHION_MNIST_DIR.is_dir(),
               'cifar10': (Path(data_dir) / cifar10_files.CIFAR10_FOLDER).is_dir()}[name]
    if on_disk:
        train = get_dataset(name, data_dir=data_dir)['train']
        return train.images[:n_train], train.labels[:n_train], 'real data'
    rng = np.random.default_rng(0)
    return (rng.standard_normal((n_train, *image_shape), dtype=np.float32),
            rng.integers(0, N_CLASSES, n_train), 'random data of the real shape')


def sweep_steps(batch_size, n_hidden, steps):
    """One task per system, each running ``steps`` training steps of a 3072-``n_hidden``-10
    MLP on a fixed batch: the NumPy MLP with ``optimizers.SGD``, and PyTorch eager."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from mlp_numpy import MLP
    from modules import SoftmaxCrossEntropyModule
    from optimizers import SGD

    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch_size, 3072), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, batch_size)
    model = MLP(3072, [n_hidden], N_CLASSES, dtype=np.float32, rng=rng)
    optimizer, loss_module = SGD(model, 1e-3), SoftmaxCrossEntropyModule()
    torch_model = nn.Sequential(nn.Linear(3072, n_hidden), nn.ELU(),
                                nn.Linear(n_hidden, N_CLASSES))
    torch_optimizer = torch.optim.SGD(torch_model.parameters(), lr=1e-3)
    torch_images, torch_labels = torch.from_numpy(images), torch.from_numpy(labels)

    def numpy_steps():
        for _ in range(steps):
            loss_module.forward(model.forward(images), labels)
            model.backward(loss_module.backward())
            optimizer.step()

    def eager_steps():
        for _ in range(steps):
            loss = F.cross_entropy(torch_model(torch_images), torch_labels)
            torch_optimizer.zero_grad()
            loss.backward()
            torch_optimizer.step()
    return {'numpy MLP (this)': numpy_steps, 'pytorch eager loop': eager_steps}


def stage_profile(images, labels, rounds):
    """Where a NumPy MLP epoch's time goes.

    Runs the training step of ``train_mlp_numpy.train_epoch`` with a clock
    between its stages: the batch gather, the input check, each module's
    forward and backward, the loss, the accuracy and the SGD step.

    Returns
    -------
    dict
        ``'seconds'``: stage -> median seconds per epoch over ``rounds`` epochs.
        ``'bytes'``: the least memory traffic per epoch of the two stages that do
        nothing but move memory (the gather reads and writes each batch; the
        update reads gradient and parameter and writes the parameter).
    """
    from train_mlp_numpy import accuracy

    make_epoch = numpy_mlp_epoch(images, labels)
    model, loader = make_epoch.model, make_epoch.loader
    loss_module, optimizer = make_epoch.loss_module, make_epoch.optimizer

    def epoch():
        totals = collections.Counter()
        mark = time.perf_counter()

        def lap(stage):
            nonlocal mark
            now = time.perf_counter()
            totals[stage] += now - mark
            mark = now
        for batch_images, batch_labels in loader:
            lap('gather batch')
            out = model._input_batch(batch_images)
            lap('input check')
            for index, module in enumerate(model.modules):
                out = module.forward(out)
                lap(f'{index} {type(module).__name__} forward')
            loss_module.forward(out, batch_labels)
            lap('loss forward')
            accuracy(out, batch_labels)
            lap('accuracy')
            dout = loss_module.backward()
            lap('loss backward')
            for index, module in reversed(list(enumerate(model.modules))):
                dout = module.backward(dout)
                lap(f'{index} {type(module).__name__} backward')
            optimizer.step()
            lap('SGD step')
        return totals
    epoch()
    epochs = [epoch() for _ in range(rounds)]
    n_batches = len(images) // BATCH_SIZE
    parameter_bytes = sum(param.nbytes for param, _ in model.parameters())
    return {'seconds': {stage: statistics.median(totals[stage] for totals in epochs)
                        for stage in epochs[0]},
            'bytes': {'gather batch': 2 * n_batches * BATCH_SIZE * images[0].nbytes,
                      'SGD step': 3 * n_batches * parameter_bytes}}


def memory_bandwidth(megabytes=256, repeats=5):
    """This machine's copy bandwidth in bytes per second (read plus write), best of
    ``repeats`` copies of ``megabytes`` MB: the ceiling of memory-bound stages."""
    source = np.ones(megabytes * 2**20 // 4, dtype=np.float32)
    target = np.empty_like(source)
    fastest = min(interleaved_seconds({'copy': lambda: np.copyto(target, source)},
                                      repeats)['copy'])
    return 2 * source.nbytes / fastest


def blas_facts():
    """The BLAS library NumPy calls and its threads, where threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    return {info['internal_api']: {key: info.get(key) for key in
                                   ('version', 'architecture', 'threading_layer', 'num_threads')}
            for info in threadpool_info() if info['user_api'] == 'blas'}


# ---------------------------------------------------------------------------
# train: one child process per thread count
# ---------------------------------------------------------------------------

def run_train_worker(args):
    """Measure every system with the threads of this process; print the results as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    results = {'threads': args.threads, 'torch': torch.__version__, 'blas': blas_facts(),
               'load_average_start': os.getloadavg()[0], 'shapes': {}, 'sweep': {},
               'memory_bandwidth': memory_bandwidth(16 if args.quick else 256)}
    systems = {name: make for name, make in SYSTEMS.items()
               if name != 'scikit-learn MLPClassifier' or has_sklearn()}
    for shape in SHAPES:
        images, labels, source = shape_data(shape, args.data_dir, args.n_train or SHAPES[shape][1])
        epochs = {name: make(images, labels) for name, make in systems.items()}
        for epoch in epochs.values():
            epoch()  # warm-up: first-touch allocations, lazy initialisation
        seconds = interleaved_seconds(epochs, args.epochs)
        results['shapes'][shape] = {
            'source': source, 'n_samples': len(images) // BATCH_SIZE * BATCH_SIZE,
            'layers': f"{int(np.prod(images.shape[1:]))}-{N_HIDDEN}-{N_CLASSES}",
            'seconds': {name: summary(values) for name, values in seconds.items()},
            'profile': stage_profile(images, labels, min(args.epochs, 3))}
    for batch_size, n_hidden in SWEEP:
        tasks = sweep_steps(batch_size, n_hidden, args.sweep_steps)
        for task in tasks.values():
            task()
        seconds = interleaved_seconds(tasks, args.sweep_repeats)
        results['sweep'][f"{batch_size}x{n_hidden}"] = {
            'batch_size': batch_size, 'n_hidden': n_hidden, 'steps': args.sweep_steps,
            'seconds': {name: summary(values) for name, values in seconds.items()}}
    results['main_job'] = measure_main_job(args)
    results['load_average_end'] = os.getloadavg()[0]
    print(json.dumps(results))


def measure_main_job(args):
    """The main job as a whole process, interleaved with ten PyTorch-eager epochs on the same
    data in this process: ``python train_mlp_numpy.py`` with its defaults (or, with
    ``--quick``, one epoch of the spiral against one eager epoch)."""
    command = [sys.executable, str(REPOSITORY / 'train_mlp_numpy.py'), '--no_progress',
               '--no_plot', '--data_dir', args.cifar_dir]
    eager_epochs = 10
    if args.quick:
        command += ['--dataset', 'spiral', '--epochs', '1']
        eager_epochs = 1
    images, labels, _ = shape_data('cifar10', args.cifar_dir, args.n_train or 45000)
    eager = eager_pytorch_epoch(images, labels)
    eager()
    with tempfile.TemporaryDirectory() as scratch:
        def main_job():
            subprocess.run([*command, '--out_dir', scratch], check=True, capture_output=True,
                           env=thread_environment(args.threads))

        def eager_run():
            for _ in range(eager_epochs):
                eager()
        seconds = interleaved_seconds({'main job': main_job, 'eager epochs': eager_run},
                                      args.main_job_repeats)
    return {'command': ' '.join(command[1:]), 'eager_epochs': eager_epochs,
            'seconds': {name: summary(values) for name, values in seconds.items()}}


def write_random_cifar10(data_dir, seed=0, n_per_batch=10000):
    """Write random uint8 images in CIFAR-10's python format and sizes:
    data_dir/cifar-10-batches-py with five batches of ``n_per_batch`` images, a
    test batch and batches.meta. Pickle protocol 4 stores the pixels as raw
    bytes, as the real (Python 2) files do, so they read as fast as the real ones."""
    rng = np.random.default_rng(seed)
    batches_dir = Path(data_dir) / cifar10_files.CIFAR10_FOLDER
    batches_dir.mkdir(parents=True)
    for name in (*cifar10_files.CIFAR10_TRAIN_BATCHES, cifar10_files.CIFAR10_TEST_BATCH):
        batch = {b'data': rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b'labels': rng.integers(0, 10, n_per_batch).tolist()}
        (batches_dir / name).write_bytes(pickle.dumps(batch, protocol=4))
    meta = {b'label_names': [b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog',
                             b'frog', b'horse', b'ship', b'truck']}
    (batches_dir / cifar10_files.CIFAR10_META).write_bytes(pickle.dumps(meta, protocol=2))


def run_train_benchmark(args):
    """The `train` sub-command: a child process per thread count, then the tables."""
    results = {**machine_facts(), 'epochs': args.epochs, 'quick': args.quick, 'runs': {}}
    if results['load_average'] > 0.5:
        print(f"warning: load average {results['load_average']:.1f}: other processes are "
              f"running; BLAS and PyTorch threads slow down badly when they share cores",
              file=sys.stderr)
    thread_counts = {'one thread': 1, 'all threads': os.cpu_count()}
    with tempfile.TemporaryDirectory() as scratch:
        cifar_dir = args.data_dir
        if not (Path(cifar_dir) / cifar10_files.CIFAR10_FOLDER).is_dir():
            cifar_dir = str(Path(scratch) / 'data')
            write_random_cifar10(cifar_dir, n_per_batch=2000 if args.quick else 10000)
        for label, threads in thread_counts.items():
            command = [sys.executable, __file__, 'train-worker', '--threads', str(threads),
                       '--cifar_dir', cifar_dir, *worker_flags(args)]
            finished = subprocess.run(command, capture_output=True, text=True, check=True,
                                      env=thread_environment(threads))
            results['runs'][label] = json.loads(finished.stdout.splitlines()[-1])
    results['load_average_end'] = os.getloadavg()[0]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print_train_results(results)
    print(f'\nNumbers written to {args.json}; `python benchmark.py table --json {args.json}` '
          f'prints them as the README tables')


def worker_flags(args):
    """The flags a worker process needs from the `train` command line."""
    flags = ['--data_dir', args.data_dir, '--epochs', str(args.epochs),
             '--sweep_steps', str(args.sweep_steps), '--sweep_repeats', str(args.sweep_repeats),
             '--main_job_repeats', str(args.main_job_repeats)]
    if args.n_train:
        flags += ['--n_train', str(args.n_train)]
    return flags + (['--quick'] if args.quick else [])


# ---------------------------------------------------------------------------
# train: ratios, targets and tables
# ---------------------------------------------------------------------------

def ratios(run):
    """The ratios the targets are set on, for one thread count's results.

    Returns
    -------
    dict
        ``'mlp_over_matmuls'`` and ``'mlp_over_eager'`` per shape (of medians),
        ``'main_job_over_eager'``, and ``'sweep'``: NumPy over eager per point.
    """
    def median(seconds, name):
        return seconds[name]['median']

    out = {'mlp_over_matmuls': {}, 'mlp_over_eager': {}, 'sweep': {}}
    for shape, result in run['shapes'].items():
        seconds = result['seconds']
        mlp = median(seconds, 'numpy MLP (this)')
        out['mlp_over_matmuls'][shape] = mlp / median(seconds, 'numpy matrix products only')
        out['mlp_over_eager'][shape] = mlp / median(seconds, 'pytorch eager loop')
    main_job = run['main_job']['seconds']
    out['main_job_over_eager'] = median(main_job, 'main job') / median(main_job, 'eager epochs')
    for point, result in run['sweep'].items():
        seconds = result['seconds']
        out['sweep'][point] = (median(seconds, 'numpy MLP (this)')
                               / median(seconds, 'pytorch eager loop'))
    return out


def verdict(value, target):
    return f"{value:.2f} (target <= {target:g}) {'ok' if value <= target else 'MISSED'}"


def print_train_results(results):
    """Every measurement with its spread, then each ratio against its target."""
    print(f"{results['date']}, {results['processor']}, {results['cpu_count']} cores, "
          f"load average {results['load_average']:.1f} at the start and "
          f"{results['load_average_end']:.1f} at the end; NumPy {results['numpy']}; "
          f"medians of {results['epochs']} interleaved epochs [min, max]")
    for label, run in results['runs'].items():
        print(f"\n== {label} ({run['threads']}), PyTorch {run['torch']}, "
              f"BLAS {blas_summary(run['blas'])}, "
              f"copy bandwidth {run['memory_bandwidth'] / 1e9:.1f} GB/s")
        for shape, result in run['shapes'].items():
            print(f"{shape} {result['layers']}, {result['n_samples']} samples "
                  f"({result['source']})")
            for system, seconds in result['seconds'].items():
                print(f"  {system:<28} {seconds['median']:7.3f} s "
                      f"[{seconds['min']:.3f}, {seconds['max']:.3f}]")
            print_profile(result['profile'], run['memory_bandwidth'])
        main_job = run['main_job']['seconds']
        print(f"main job (whole process) {main_job['main job']['median']:.2f} s, "
              f"{run['main_job']['eager_epochs']} eager epochs "
              f"{main_job['eager epochs']['median']:.2f} s")
        print("sweep, milliseconds per step: batch x hidden: numpy / eager")
        for point, result in run['sweep'].items():
            steps = [result['seconds'][name]['median'] / result['steps'] * 1e3
                     for name in ('numpy MLP (this)', 'pytorch eager loop')]
            print(f"  {point:>9}: " + " / ".join(f"{step:7.3f}" for step in steps))
        print_targets(label, ratios(run))


def print_profile(profile, bandwidth):
    """A stage profile as milliseconds per epoch, with the memory-bound stages' GB/s."""
    print("    where the NumPy MLP's epoch goes, ms:")
    for stage, seconds in profile['seconds'].items():
        traffic = profile['bytes'].get(stage)
        speed = (f"  {traffic / seconds / 1e9:5.1f} GB/s ({traffic / seconds / bandwidth:.0%} "
                 f"of copy bandwidth)" if traffic else "")
        print(f"      {stage:<28} {seconds * 1e3:7.1f}{speed}")


def print_targets(label, run_ratios):
    print(f"targets, {label}:")
    for shape, value in run_ratios['mlp_over_matmuls'].items():
        print(f"  {shape}: numpy MLP / matrix products = "
              f"{verdict(value, MLP_OVER_MATMULS_TARGET[shape])}")
    for shape, value in run_ratios['mlp_over_eager'].items():
        print(f"  {shape}: numpy MLP / pytorch eager = "
              f"{verdict(value, MLP_OVER_EAGER_TARGET[label])}")
    print(f"  main job / eager epochs = "
          f"{verdict(run_ratios['main_job_over_eager'], MAIN_JOB_OVER_EAGER_TARGET)}")
    for point, value in run_ratios['sweep'].items():
        print(f"  sweep {point}: numpy / eager = {verdict(value, SWEEP_TARGET)}")


def run_table(args):
    """The `table` sub-command: the README's tables, from a `train` JSON."""
    try:
        results = load_json(args.json)
    except OSError as error:
        sys.exit(f"benchmark.py table: error: cannot read {args.json} ({error.strerror}); "
                 f"run `python benchmark.py train` first")
    first_run = next(iter(results['runs'].values()))
    print(f"Measured {results['date']} on {results['processor']}, {results['cpu_count']} "
          f"cores, load average {results['load_average']:.1f} at the start and "
          f"{results['load_average_end']:.1f} at the end; NumPy {results['numpy']}, "
          f"PyTorch {first_run['torch']}, BLAS {blas_summary(first_run.get('blas', {}))}; "
          f"seconds per epoch, median of {results['epochs']} interleaved epochs [min, max].\n")
    print("| threads | shape | NumPy matrix products only | NumPy MLP | PyTorch eager "
          "| NumPy MLP / matrix products | NumPy MLP / eager |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, run in results['runs'].items():
        run_ratios = ratios(run)
        for shape, result in run['shapes'].items():
            cells = [seconds_cell(result['seconds'][name]) for name in
                     ('numpy matrix products only', 'numpy MLP (this)', 'pytorch eager loop')]
            print(f"| {run['threads']} | {result['layers']} | {' | '.join(cells)} "
                  f"| {run_ratios['mlp_over_matmuls'][shape]:.2f} "
                  f"(≤ {MLP_OVER_MATMULS_TARGET[shape]:g}) "
                  f"| {run_ratios['mlp_over_eager'][shape]:.2f} "
                  f"(≤ {MLP_OVER_EAGER_TARGET[label]:g}) |")
    eager_epochs = first_run['main_job']['eager_epochs']
    print(f"\n| threads | main job, whole process | {eager_epochs} PyTorch-eager epochs | ratio |")
    print("| --- | --- | --- | --- |")
    for run in results['runs'].values():
        seconds = run['main_job']['seconds']
        print(f"| {run['threads']} | {seconds_cell(seconds['main job'])} "
              f"| {seconds_cell(seconds['eager epochs'])} "
              f"| {ratios(run)['main_job_over_eager']:.2f} (≤ {MAIN_JOB_OVER_EAGER_TARGET:g}) |")
    points = list(first_run['sweep'])
    print("\n| threads | " + " | ".join(f"batch {point.replace('x', ', hidden ')}"
                                         for point in points) + " |")
    print("| --- |" + " --- |" * len(points))
    for run in results['runs'].values():
        print(f"| {run['threads']} | " + " | ".join(
            f"{value:.2f}" for value in ratios(run)['sweep'].values()) + " |")
    if all('profile' in result for run in results['runs'].values()
           for result in run['shapes'].values()):
        print_profile_table(results['runs'])


def print_profile_table(runs):
    """Where the NumPy MLP's epoch goes, one column per thread count and shape."""
    columns = [(run, shape, result) for run in runs.values()
               for shape, result in run['shapes'].items()]
    print("\n| stage, ms per epoch | " + " | ".join(
        f"{result['layers']}, {run['threads']} thread{'s' * (run['threads'] > 1)}"
        for run, _, result in columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for stage in columns[0][2]['profile']['seconds']:
        cells = []
        for run, _, result in columns:
            seconds = result['profile']['seconds'][stage]
            traffic = result['profile']['bytes'].get(stage)
            cells.append(f"{seconds * 1e3:.1f}" + (
                f" ({traffic / seconds / run['memory_bandwidth']:.0%} of copy bandwidth)"
                if traffic else ""))
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("| copy bandwidth, GB/s | " + " | ".join(
        f"{run['memory_bandwidth'] / 1e9:.1f}" for run, _, _ in columns) + " |")


def blas_summary(blas):
    """'OpenBLAS 0.3.31 (SkylakeX kernels, pthreads)', or 'unknown' without threadpoolctl."""
    return ", ".join(f"{name} {facts['version']} ({facts['architecture']} kernels, "
                     f"{facts['threading_layer']})" for name, facts in blas.items()) or 'unknown'


def seconds_cell(seconds):
    return f"{seconds['median']:.3f} [{seconds['min']:.3f}, {seconds['max']:.3f}]"


# ---------------------------------------------------------------------------
# data: the CIFAR-10 pipeline
# ---------------------------------------------------------------------------

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
        if (data_dir / cifar10_files.CIFAR10_FOLDER).is_dir():
            results['source'] = f'{data_dir / cifar10_files.CIFAR10_FOLDER}'
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
# levers: the speed-ups tried and not kept, each against what the code does
# ---------------------------------------------------------------------------

def in_turn(tasks, repeats, number=1):
    """Median seconds of one call of each task, the tasks timed in turn, ``number`` calls
    per timing; each call's result is dropped before the next, as in training."""
    def repeated(task):
        def calls():
            for _ in range(number):
                task()
        return calls
    seconds = interleaved_seconds({name: repeated(task) for name, task in tasks.items()}, repeats)
    return {name: statistics.median(values) / number for name, values in seconds.items()}


def scipy_axpy(dtype=np.float32):
    """SciPy's BLAS axpy (y <- a x + y), or None where SciPy is not installed."""
    try:
        from scipy.linalg.blas import get_blas_funcs
    except ImportError:
        return None
    return get_blas_funcs('axpy', dtype=dtype)


def one_blas_thread():
    """A context holding every BLAS library of the process to one thread (a no-op without
    threadpoolctl, where the process's own threads are used)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api='blas')


def update_levers(repeats):
    """``param -= lr * grad`` as SGD does it, against a blocked update and SciPy's axpy,
    with one BLAS thread."""
    rng = np.random.default_rng(0)
    axpy = scipy_axpy()
    results = {}
    for rows in (128, 2048):
        param = rng.standard_normal((rows, 3072), dtype=np.float32)
        grad = rng.standard_normal((rows, 3072), dtype=np.float32)
        flat_param, flat_grad = param.reshape(-1), grad.reshape(-1)

        def blocked(block=2**18):
            for start in range(0, flat_param.size, block):
                flat_param[start:start + block] -= 1e-9 * flat_grad[start:start + block]
        tasks = {'param -= lr * grad (this)': lambda: param.__isub__(1e-9 * grad),
                 'in blocks of 2**18': blocked}
        if axpy is not None:
            tasks['SciPy axpy'] = lambda: axpy(flat_grad, flat_param, a=-1e-9)
        with one_blas_thread():
            results[f'{rows}x3072'] = in_turn(tasks, repeats, number=20 if rows == 128 else 3)
    return results


def gather_levers(n_train, repeats):
    """An epoch of CIFAR-shaped batches gathered fresh (this) and into one buffer."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((n_train, 3072), dtype=np.float32)
    order = rng.permutation(n_train)
    buffer = np.empty((BATCH_SIZE, 3072), dtype=np.float32)
    batches = [order[start:start + BATCH_SIZE]
               for start in range(0, n_train - BATCH_SIZE + 1, BATCH_SIZE)]

    def fresh():
        for batch in batches:
            images.take(batch, axis=0)  # each batch freed before the next, as in training

    def into_buffer():
        for batch in batches:
            images.take(batch, axis=0, out=buffer)
    return in_turn({'take, a fresh batch (this)': fresh, 'take into one buffer': into_buffer},
                   repeats)


def page_faults_per_step(task, steps):
    """Minor page faults per step of ``task`` (which runs ``steps`` steps), after a warm-up."""
    import resource
    task()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    task()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps


def page_fault_levers(n_train):
    """Page faults per training step: what raising glibc's mmap thresholds could save."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((n_train, 3, 32, 32), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, n_train)
    epoch = numpy_mlp_epoch(images, labels)
    wide = sweep_steps(BATCH_SIZE, 2048, steps=10)['numpy MLP (this)']
    return {'numpy MLP, 3072-128-10 epoch': page_faults_per_step(epoch, n_train // BATCH_SIZE),
            'numpy MLP, 3072-2048-10 step': page_faults_per_step(wide, 10)}


def run_first_pass_worker(args):
    """With this process's BLAS threads: one pass of ``W -= lr * g`` right after
    ``g = dout.T @ x``, then a second pass; print the medians as JSON."""
    rng = np.random.default_rng(0)
    results = {}
    for n_inputs in (784, 3072):
        inputs = rng.standard_normal((BATCH_SIZE, n_inputs), dtype=np.float32)
        dout = rng.standard_normal((BATCH_SIZE, N_HIDDEN), dtype=np.float32)
        weight = rng.standard_normal((N_HIDDEN, n_inputs), dtype=np.float32)
        first, second = [], []
        for _ in range(30 * args.repeats):
            grad = dout.T @ inputs
            start = time.perf_counter()
            weight -= 1e-9 * grad
            middle = time.perf_counter()
            weight -= 1e-9 * grad
            first.append(middle - start)
            second.append(time.perf_counter() - middle)
        results[f'{n_inputs} inputs'] = {'first pass': statistics.median(first),
                                         'second pass': statistics.median(second)}
    print(json.dumps(results))


def first_pass_levers(args):
    """``run_first_pass_worker`` in fresh processes with one BLAS thread and with all:
    the cost of reading what the other core wrote."""
    results = {}
    for threads in sorted({1, os.cpu_count()}):
        for case, timings in levers_worker('first_pass', args, threads).items():
            results[f'{case}, {threads} BLAS thread(s)'] = timings
    return results


def levers_worker(lever, args, threads):
    """Run `levers-worker --lever ...` in a fresh process with ``threads`` threads."""
    command = [sys.executable, __file__, 'levers-worker', '--lever', lever,
               '--n_train', str(args.n_train), '--repeats', str(args.repeats)]
    finished = subprocess.run(command, capture_output=True, text=True, check=True,
                              env=thread_environment(threads))
    return json.loads(finished.stdout.splitlines()[-1])


SPINNER = ("import os, sys\nos.sched_setaffinity(0, {int(sys.argv[1])})\n"
           "while True:\n    pass\n")


def busy_neighbour_levers(repeats):
    """Single-threaded gather and update on one core, alone and with a busy loop pinned to
    another core: whether a spinning thread elsewhere slows element-wise work here."""
    if not hasattr(os, 'sched_setaffinity') or len(os.sched_getaffinity(0)) < 2:
        return {}
    own_core, other_core = sorted(os.sched_getaffinity(0))[:2]
    rng = np.random.default_rng(0)
    images = rng.standard_normal((16384, 3072), dtype=np.float32)
    order = rng.permutation(len(images))
    param = rng.standard_normal((N_HIDDEN, 3072), dtype=np.float32)
    grad = rng.standard_normal((N_HIDDEN, 3072), dtype=np.float32)

    def gather():
        for start in range(0, len(images), BATCH_SIZE):
            images.take(order[start:start + BATCH_SIZE], axis=0)

    def update():
        for _ in range(128):
            param.__isub__(1e-9 * grad)
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {own_core})
    try:
        results = {'alone': in_turn({'gather': gather, 'update': update}, repeats)}
        spinner = subprocess.Popen([sys.executable, '-c', SPINNER, str(other_core)])
        try:
            time.sleep(0.2)
            results['beside a busy loop'] = in_turn({'gather': gather, 'update': update},
                                                    repeats)
        finally:
            spinner.kill()
            spinner.wait()
    finally:
        os.sched_setaffinity(0, affinity)
    return results


def product_levers(repeats):
    """The first layer's products at one thread: NumPy as ``LinearModule`` writes them (C-ordered
    weight), NumPy with a column-major weight, and PyTorch's own BLAS."""
    import torch

    rng = np.random.default_rng(0)
    results = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with one_blas_thread():
            for n_hidden in (N_HIDDEN, 2048):
                inputs = rng.standard_normal((BATCH_SIZE, 3072), dtype=np.float32)
                weight = rng.standard_normal((n_hidden, 3072), dtype=np.float32)
                dout = rng.standard_normal((BATCH_SIZE, n_hidden), dtype=np.float32)
                column_major = np.asfortranarray(weight)
                tensors = [torch.from_numpy(array) for array in (inputs, weight, dout)]
                results[f'3072-{n_hidden}'] = in_turn({
                    'x @ W.T (this)': lambda: inputs @ weight.T,
                    'x @ W.T, W column-major': lambda: inputs @ column_major.T,
                    'x @ W.T, PyTorch': lambda: tensors[0] @ tensors[1].T,
                    'dout.T @ x (this)': lambda: dout.T @ inputs,
                    'dout.T @ x, PyTorch': lambda: tensors[2].T @ tensors[0]},
                    repeats, number=20 if n_hidden == N_HIDDEN else 2)
    finally:
        torch.set_num_threads(threads)
    return results


def optimizer_step_levers(repeats):
    """``optimizers.SGD.step`` against a bare loop of the same updates."""
    from mlp_numpy import MLP
    from modules import SoftmaxCrossEntropyModule
    from optimizers import SGD

    rng = np.random.default_rng(0)
    results = {}
    for n_inputs in (784, 3072):
        model = MLP(n_inputs, [N_HIDDEN], N_CLASSES, dtype=np.float32, rng=rng)
        loss_module = SoftmaxCrossEntropyModule()
        loss_module.forward(model.forward(rng.standard_normal((BATCH_SIZE, n_inputs))),
                            rng.integers(0, N_CLASSES, BATCH_SIZE))
        model.backward(loss_module.backward())
        optimizer, pairs = SGD(model, 1e-9), model.parameters()

        def bare_loop():
            for param, grad in pairs:
                param -= 1e-9 * grad
        results[f'{n_inputs}-128-10'] = in_turn(
            {'SGD.step (this)': optimizer.step, 'bare loop': bare_loop}, repeats, number=200)
    return results


def run_two_pools_worker(args):
    """In a process with all threads: NumPy MLP epochs with SGD's update, and with the
    update through SciPy's axpy, which brings a second OpenBLAS and its thread pool."""
    from optimizers import SGD

    axpy = scipy_axpy()

    class AxpySGD(SGD):
        def _update(self, param, grad, state):
            axpy(grad.reshape(-1), param.reshape(-1), a=-self.lr)

    rng = np.random.default_rng(0)
    results = {}
    for shape, (image_shape, _) in SHAPES.items():
        images = rng.standard_normal((args.n_train, *image_shape), dtype=np.float32)
        labels = rng.integers(0, N_CLASSES, args.n_train)
        this = numpy_mlp_epoch(images, labels)
        with_axpy = numpy_mlp_epoch(images, labels, optimizer_class=AxpySGD)
        this(), with_axpy()
        results[shape] = in_turn({'SGD update (this)': this, 'SciPy axpy update': with_axpy},
                                 args.repeats)
    print(json.dumps(results))


def two_pools_levers(args):
    """``run_two_pools_worker`` in a fresh process with all threads, where SciPy is installed."""
    if scipy_axpy() is None:
        return {}
    return levers_worker('two_pools', args, os.cpu_count())


LEVER_WORKERS = {'two_pools': run_two_pools_worker, 'first_pass': run_first_pass_worker}


def run_levers(args):
    """The `levers` sub-command: measure each lever, write the JSON, print the tables."""
    results = {**machine_facts(), 'blas': blas_facts(), 'threads': os.environ.get(
        'OPENBLAS_NUM_THREADS', os.environ.get('OMP_NUM_THREADS', 'all')),
        'update, one thread': update_levers(args.repeats),
        'products, one thread': product_levers(args.repeats),
        'gather': gather_levers(args.n_train, args.repeats),
        'page faults per step': page_fault_levers(args.n_train),
        'first pass after a product': first_pass_levers(args),
        'busy neighbour core': busy_neighbour_levers(args.repeats),
        'optimizer step': optimizer_step_levers(args.repeats),
        'two BLAS thread pools, all threads': two_pools_levers(args)}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print(f"{results['date']}, {results['processor']}, {results['cpu_count']} cores, load "
          f"average {results['load_average']:.1f}, BLAS {blas_summary(results['blas'])}, "
          f"BLAS threads: {results['threads']}; medians of {args.repeats} timings in turn")
    for lever in ('update, one thread', 'products, one thread', 'gather', 'optimizer step',
                  'busy neighbour core', 'two BLAS thread pools, all threads'):
        print(f"\n{lever}, ms:")
        cases = results[lever] if lever != 'gather' else {f'{args.n_train} images': results[lever]}
        for case, timings in cases.items():
            print(f"  {case}: " + ", ".join(f"{name} {seconds * 1e3:.3f}"
                                            for name, seconds in timings.items()))
    print("\nfirst pass over a product's result, then a second pass, µs:")
    for case, timings in results['first pass after a product'].items():
        print(f"  {case}: {timings['first pass'] * 1e6:.0f}, {timings['second pass'] * 1e6:.0f}")
    print("\nminor page faults per step: " + ", ".join(
        f"{case} {faults:.1f}" for case, faults in results['page faults per step'].items()))
    print(f"\nNumbers written to {args.json}")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def add_train_commands(subcommands):
    parser = subcommands.add_parser(
        'train', help='time training epochs of this project and its peers, 1 and all threads')
    add_train_flags(parser)
    parser.set_defaults(run=run_train_benchmark)
    worker = subcommands.add_parser('train-worker')  # one thread count; run by `train`
    add_train_flags(worker)
    worker.add_argument('--threads', type=positive_int, required=True)
    worker.add_argument('--cifar_dir', required=True)
    worker.set_defaults(run=run_train_worker)
    table = subcommands.add_parser('table', help="print the README's tables from a `train` JSON")
    table.add_argument('--json', default='results/benchmark_train.json',
                       help='the JSON `train` wrote (default: results/benchmark_train.json)')
    table.set_defaults(run=run_table)


def add_train_flags(parser):
    parser.add_argument('--data_dir', default='data/',
                        help='folder with the data sets (random data of the same shape '
                             'stands in for what is missing)')
    parser.add_argument('--epochs', type=positive_int, default=7,
                        help='epochs timed per system, interleaved; the median is reported '
                             '(default: 7)')
    parser.add_argument('--sweep_steps', type=positive_int, default=60,
                        help='training steps per timing in the sweep (default: 60)')
    parser.add_argument('--sweep_repeats', type=positive_int, default=5,
                        help='timings per system and point of the sweep (default: 5)')
    parser.add_argument('--main_job_repeats', type=positive_int, default=3,
                        help='runs of the main job and of the eager epochs (default: 3)')
    parser.add_argument('--n_train', type=positive_int, default=None,
                        help='training images per shape (default: the real sizes)')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: the main job on one spiral epoch, small data')
    parser.add_argument('--json', default='results/benchmark_train.json',
                        help='where to write the numbers (default: results/benchmark_train.json)')


def add_data_command(subcommands):
    parser = subcommands.add_parser('data', help='time and size the CIFAR-10 data pipeline')
    parser.add_argument('--data_dir', default='data/',
                        help='folder holding cifar-10-batches-py (else random data is used)')
    parser.add_argument('--batch_size', type=positive_int, default=128,
                        help='images per batch (default: 128)')
    parser.add_argument('--repeats', type=positive_int, default=3,
                        help='runs of each measurement; the median is reported (default: 3)')
    parser.add_argument('--json', default='results/benchmark_data.json',
                        help='where to write the numbers (default: results/benchmark_data.json)')
    parser.set_defaults(run=run_data_benchmark)


def add_levers_commands(subcommands):
    parser = subcommands.add_parser(
        'levers', help='time the speed-ups tried and not kept, against what the code does')
    add_levers_flags(parser)
    parser.add_argument('--json', default='results/benchmark_levers.json',
                        help='where to write the numbers (default: results/benchmark_levers.json)')
    parser.set_defaults(run=run_levers)
    worker = subcommands.add_parser('levers-worker')  # one lever in a fresh process
    add_levers_flags(worker)
    worker.add_argument('--lever', choices=sorted(LEVER_WORKERS), required=True)
    worker.set_defaults(run=lambda args: LEVER_WORKERS[args.lever](args))


def add_levers_flags(parser):
    parser.add_argument('--n_train', type=positive_int, default=45000,
                        help='CIFAR-shaped images per epoch (default: 45000)')
    parser.add_argument('--repeats', type=positive_int, default=7,
                        help='timings of each variant, in turn; the median is reported '
                             '(default: 7)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    subcommands = parser.add_subparsers(title='benchmarks', dest='benchmark', required=True,
                                        metavar='{train,table,levers,data}')
    add_train_commands(subcommands)
    add_levers_commands(subcommands)
    add_data_command(subcommands)
    args = parser.parse_args(argv)
    if getattr(args, 'n_train', None) is not None and args.n_train < BATCH_SIZE:
        parser.error(f"argument --n_train: must be at least one batch, {BATCH_SIZE}, "
                     f"got {args.n_train}")
    sys.stdout = ReaderSafeStream(sys.stdout)  # `... | head` ends the output, not the benchmark
    args.run(args)


if __name__ == '__main__':
    main()
