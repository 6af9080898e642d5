"""`benchmark.py levers`: the speed-ups tried and not kept, each beside what the code does."""
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lab.cli import positive_int
from lab.fileio import save_json
from lab.benchmark.common import (BATCH_SIZE, ENTRY_POINT, N_CLASSES, N_HIDDEN, SHAPES,
                                  interleaved_seconds, machine_facts, thread_environment)
from lab.benchmark.train import blas_facts, blas_summary, numpy_mlp_epoch, sweep_steps

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
    command = [sys.executable, str(ENTRY_POINT), 'levers-worker', '--lever', lever,
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
    from lab.optimizers import SGD

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
    from lab.optimizers import SGD

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
    print_levers(results, args)
    print(f"\nNumbers written to {args.json}")


def print_levers(results, args):
    """The levers' tables; a lever that was not measured says why, instead of an empty table."""
    print(f"{results['date']}, {results['processor']}, {results['cpu_count']} cores, load "
          f"average {results['load_average']:.1f}, BLAS {blas_summary(results['blas'])}, "
          f"BLAS threads: {results['threads']}; medians of {args.repeats} timings in turn")
    for lever in ('update, one thread', 'products, one thread', 'gather', 'optimizer step',
                  'busy neighbour core', 'two BLAS thread pools, all threads'):
        cases = results[lever] if lever != 'gather' else {f'{args.n_train} images': results[lever]}
        print(f"\n{lever}, ms:" if cases else
              f"\n{lever}: not measured (it needs SciPy, which is not installed)")
        for case, timings in cases.items():
            print(f"  {case}: " + ", ".join(f"{name} {seconds * 1e3:.3f}"
                                            for name, seconds in timings.items()))
    print("\nfirst pass over a product's result, then a second pass, µs:")
    for case, timings in results['first pass after a product'].items():
        print(f"  {case}: {timings['first pass'] * 1e6:.0f}, {timings['second pass'] * 1e6:.0f}")
    print("\nminor page faults per step: " + ", ".join(
        f"{case} {faults:.1f}" for case, faults in results['page faults per step'].items()))


def add_levers_commands(subcommands):
    parser = subcommands.add_parser(
        'levers', help='time the speed-ups tried and not kept, against what the code does '
                       '(about 2 minutes)')
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
