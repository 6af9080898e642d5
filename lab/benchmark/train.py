"""`benchmark.py train` and `table`: training epochs of this project and its peers."""
import collections
import contextlib
import io
import json
import os
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cifar10_utils import get_cifar10
from lab import cifar10_files
from lab.cli import positive_int
from lab.fileio import load_json, printable, save_json
from lab.benchmark.common import (BATCH_SIZE, ENTRY_POINT, LEARNING_RATE, N_CLASSES, N_HIDDEN,
                                  REPOSITORY, SHAPES, interleaved_seconds, machine_facts,
                                  run_worker, summary, thread_environment)

SWEEP = ((16, 128), (128, 128), (512, 128), (128, 512), (128, 2048))
"""(batch size, hidden width) of the one-step sweep, on 3072 input features."""

MLP_OVER_MATMULS_TARGET = {'fashion_mnist': 1.6, 'cifar10': 1.3}
MLP_OVER_EAGER_TARGET = {'one thread': 0.9, 'all threads': 1.0}
MAIN_JOB_OVER_EAGER_TARGET = 1.2
SWEEP_TARGET = 1.0


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


def numpy_mlp_epoch(images, labels, optimizer_class=None):
    """This NumPy MLP, trained by train_mlp_numpy.train_epoch over our loader, with
    ``optimizers.SGD`` or ``optimizer_class``, a variant of it."""
    import train_mlp_numpy
    from lab.loaders import ArrayDataset, ArrayLoader
    from mlp_numpy import MLP
    from modules import SoftmaxCrossEntropyModule
    from lab.optimizers import SGD

    loader = ArrayLoader(ArrayDataset(images, labels, list(range(N_CLASSES))), BATCH_SIZE,
                         shuffle=True, drop_last=True, return_numpy=True)
    model = MLP(int(np.prod(images.shape[1:])), [N_HIDDEN], N_CLASSES, dtype=np.float32,
                rng=np.random.default_rng(0))
    optimizer = (optimizer_class or SGD)(model, LEARNING_RATE)
    loss_module = SoftmaxCrossEntropyModule()

    def epoch():
        return train_mlp_numpy.train_epoch(model, loader, loss_module, optimizer)
    epoch.model, epoch.loader, epoch.loss_module, epoch.optimizer = (model, loader, loss_module,
                                                                     optimizer)
    return epoch


def pytorch_mlp_epoch(images, labels):
    """This PyTorch MLP on the CPU, trained by train_mlp_pytorch.train_epoch."""
    import torch

    import train_mlp_pytorch
    from lab.loaders import ArrayDataset, ArrayLoader
    from mlp_pytorch import MLP

    loader = ArrayLoader(ArrayDataset(images, labels, list(range(N_CLASSES))), BATCH_SIZE,
                         shuffle=True, drop_last=True, device='cpu')
    model = MLP(int(np.prod(images.shape[1:])), [N_HIDDEN], N_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    return lambda: train_mlp_pytorch.train_epoch(model, loader, optimizer)


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
    from lab.datasets import DEBIAN_FASHION_MNIST_DIR, get_dataset

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
    from lab.optimizers import SGD

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

    resolve_quick_defaults(args)
    torch.set_num_threads(args.threads)
    results = {'threads': args.threads, 'torch': torch.__version__, 'blas': blas_facts(),
               'load_average_start': os.getloadavg()[0], 'shapes': {}, 'sweep': {},
               'memory_bandwidth': memory_bandwidth(16 if args.quick else 256)}
    systems = {name: make for name, make in SYSTEMS.items()
               if name != 'scikit-learn MLPClassifier' or has_sklearn()}
    for shape in () if args.main_job_only else SHAPES:
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
    for batch_size, n_hidden in () if args.main_job_only else SWEEP:
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
    cpu_seconds = {'main job': [], 'eager epochs': []}
    with tempfile.TemporaryDirectory() as scratch:
        def main_job():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([*command, '--out_dir', scratch], check=True, capture_output=True,
                           env=thread_environment(args.threads))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu_seconds['main job'].append(after.ru_utime + after.ru_stime
                                           - before.ru_utime - before.ru_stime)

        def eager_run():
            before = os.times()
            for _ in range(eager_epochs):
                eager()
            after = os.times()
            cpu_seconds['eager epochs'].append(after.user + after.system
                                               - before.user - before.system)
        seconds = interleaved_seconds({'main job': main_job, 'eager epochs': eager_run},
                                      args.main_job_repeats)
    return {'command': ' '.join(command[1:]), 'eager_epochs': eager_epochs,
            'seconds': {name: summary(values) for name, values in seconds.items()},
            'cpu_seconds': {name: summary(values) for name, values in cpu_seconds.items()}}


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
    resolve_quick_defaults(args)
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
        else:
            get_cifar10(cifar_dir)  # a bad file is named now, not after the first worker
        for label, threads in thread_counts.items():
            command = [sys.executable, str(ENTRY_POINT), 'train-worker', '--threads', str(threads),
                       '--cifar_dir', cifar_dir, *worker_flags(args)]
            finished = run_worker(command, env=thread_environment(threads))
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
    return (flags + (['--quick'] if args.quick else [])
            + (['--main_job_only'] if args.main_job_only else []))


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
        print_main_job(run['main_job'])
        if run['sweep']:
            print("sweep, milliseconds per step: batch x hidden: numpy / eager")
        for point, result in run['sweep'].items():
            steps = [result['seconds'][name]['median'] / result['steps'] * 1e3
                     for name in ('numpy MLP (this)', 'pytorch eager loop')]
            print(f"  {point:>9}: " + " / ".join(f"{step:7.3f}" for step in steps))
        print_targets(label, ratios(run))


def print_main_job(main_job):
    """The main job's and the eager epochs' wall seconds, and their CPU seconds (user + system:
    what other processes on the machine do not add to) where measured."""
    for kind, unit in (('seconds', 'wall'), ('cpu_seconds', 'CPU')):
        if kind not in main_job:
            continue
        times = main_job[kind]
        print(f"main job (whole process) {seconds_cell(times['main job'])} s {unit}, "
              f"{main_job['eager_epochs']} eager epochs {seconds_cell(times['eager epochs'])} "
              f"s {unit}: {times['main job']['median'] / times['eager epochs']['median']:.2f}")


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
    except ValueError as error:
        sys.exit(f"benchmark.py table: error: {error}")
    tables = io.StringIO()
    try:
        with contextlib.redirect_stdout(tables):
            print_train_tables(results)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration,
            ZeroDivisionError) as error:
        sys.exit(f"benchmark.py table: error: {printable(args.json)} is not the JSON of "
                 f"`python benchmark.py train` ({type(error).__name__}: "
                 f"{printable(error)[:200]}); pass the file that command wrote")
    print(tables.getvalue(), end='')


def print_train_tables(results):
    """Print the README's tables from the results of `train`."""
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
    if points:
        print_sweep_table(results['runs'], points)
    if all('profile' in result for run in results['runs'].values()
           for result in run['shapes'].values()) and first_run['shapes']:
        print_profile_table(results['runs'])


def print_sweep_table(runs, points):
    """NumPy over eager per point of the sweep, one row per thread count."""
    print("\n| threads | " + " | ".join(f"batch {point.replace('x', ', hidden ')}"
                                         for point in points) + " |")
    print("| --- |" + " --- |" * len(points))
    for run in runs.values():
        print(f"| {run['threads']} | " + " | ".join(
            f"{value:.2f}" for value in ratios(run)['sweep'].values()) + " |")


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


def add_train_commands(subcommands):
    parser = subcommands.add_parser(
        'train', help='time training epochs of this project and its peers, 1 and all threads '
                      '(about 9 minutes; --main_job_only about 4)')
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


FULL_AND_QUICK = {'epochs': (7, 2), 'sweep_steps': (60, 2), 'sweep_repeats': (5, 1),
                  'main_job_repeats': (3, 1), 'n_train': (None, 512)}
"""The defaults of the `train` flags, for a full run and for a ``--quick`` smoke run
(``n_train`` None: the real sizes). A flag given on the command line wins."""


def resolve_quick_defaults(args):
    """Fill the flags not given with the full run's defaults, or the smoke run's."""
    for name, (full, quick) in FULL_AND_QUICK.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def add_train_flags(parser):
    parser.add_argument('--data_dir', default='data/',
                        help='folder with the data sets (random data of the same shape '
                             'stands in for what is missing)')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help='epochs timed per system, interleaved; the median is reported '
                             '(default: 7, or 2 with --quick)')
    parser.add_argument('--sweep_steps', type=positive_int, default=None,
                        help='training steps per timing in the sweep (default: 60, or 2 '
                             'with --quick)')
    parser.add_argument('--sweep_repeats', type=positive_int, default=None,
                        help='timings per system and point of the sweep (default: 5, or 1 '
                             'with --quick)')
    parser.add_argument('--main_job_repeats', type=positive_int, default=None,
                        help='runs of the main job and of the eager epochs (default: 3, or 1 '
                             'with --quick)')
    parser.add_argument('--n_train', type=positive_int, default=None,
                        help='training images per shape (default: the real sizes, or 512 '
                             'with --quick)')
    parser.add_argument('--main_job_only', action='store_true',
                        help='time only the main job against the eager epochs, with one '
                             'thread and with all (about 4 minutes on 2 quiet cores)')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 512 images per shape, 2 epochs, 1 repeat, the '
                             'main job on one spiral epoch; its numbers are not measurements')
    parser.add_argument('--json', default='results/benchmark_train.json',
                        help='where to write the numbers (default: results/benchmark_train.json)')
