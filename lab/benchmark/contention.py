"""`benchmark.py contention`: training epochs beside 0, 1 and 2 busy processes, on 1 thread,
on all threads and on the project's default (lab/threads.py), each in a fresh process."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lab.cli import positive_int
from lab.fileio import load_json, save_json
from lab.benchmark.common import (BATCH_SIZE, ENTRY_POINT, N_CLASSES, N_HIDDEN, SHAPES,
                                  interleaved_seconds, machine_facts, summary,
                                  thread_environment)
from lab.threads import THREAD_VARIABLES, first_layer_product, usable_cpus

FAMILIES = {'numpy': ('numpy MLP (this)',),
            'torch': ('pytorch MLP (this, CPU)', 'pytorch eager loop')}
"""The systems each worker process measures: the NumPy MLP alone, in a process without
torch as its script runs, and the two PyTorch loops interleaved in another."""

SETTINGS = ('1 thread', 'all threads', 'default')
BUSY_LOOP = 'import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass'
"""A competitor: a busy loop, as `while True: pass`, that ends when the benchmark does."""
TARGETS = {0: 1.05, 1: 1.3, 2: 2.2}
"""The default's seconds per epoch over the quiet best of its system, at most, by the number
of busy processes beside it."""


def busy_processes(count):
    """Start ``count`` processes that each keep a core busy; the caller stops them."""
    return [subprocess.Popen([sys.executable, '-c', BUSY_LOOP]) for _ in range(count)]


def stop(processes):
    for process in processes:
        process.kill()
        process.wait()


def setting_environment(setting):
    """The environment of a worker: the thread variables for '1 thread' and 'all threads',
    none for 'default', so that lab/threads.py decides there as in the scripts."""
    if setting == '1 thread':
        return thread_environment(1)
    if setting == 'all threads':
        return thread_environment(usable_cpus()[1])
    return {name: value for name, value in os.environ.items() if name not in THREAD_VARIABLES}


def run_contention_worker(args):
    """Measure one family of systems on one shape with this process's threads; print JSON."""
    from threadpoolctl import threadpool_info

    from lab.benchmark.train import SYSTEMS
    from lab.threads import apply_thread_policy

    if args.family == 'torch':
        import torch  # noqa: F401  (imported before the policy, which then sets its threads)
    image_shape, _ = SHAPES[args.shape]
    n_inputs = int(np.prod(image_shape))
    choice = apply_thread_policy(product_size=first_layer_product(
        BATCH_SIZE, n_inputs, [N_HIDDEN], N_CLASSES))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((args.n_train, *image_shape), dtype=np.float32)
    labels = rng.integers(0, N_CLASSES, args.n_train)
    epochs = {name: SYSTEMS[name](images, labels) for name in FAMILIES[args.family]}
    for epoch in epochs.values():
        epoch()  # warm-up: first-touch allocations, lazy initialisation
    seconds = interleaved_seconds(epochs, args.epochs)
    facts = {'policy_threads': choice.threads, 'policy_line': choice.line(),
             'blas_threads': max(pool['num_threads'] for pool in threadpool_info()
                                 if pool['user_api'] == 'blas')}
    if args.family == 'torch':
        facts['torch_threads'] = sys.modules['torch'].get_num_threads()
    print(json.dumps({**facts, 'seconds': {name: summary(values)
                                           for name, values in seconds.items()}}))


def measure(args, shape, family, setting, busy):
    """One worker process beside ``busy`` busy processes; its results and the load."""
    competitors = busy_processes(busy)
    try:
        time.sleep(0.5)  # the competitors are running before the worker looks at the load
        load_start = os.getloadavg()[0]
        command = [sys.executable, str(ENTRY_POINT), 'contention-worker', '--shape', shape,
                   '--family', family, '--n_train', str(args.n_train or SHAPES[shape][1]),
                   '--epochs', str(args.epochs)]
        finished = subprocess.run(command, capture_output=True, text=True, check=True,
                                  env=setting_environment(setting))
    finally:
        stop(competitors)
    return {**json.loads(finished.stdout.splitlines()[-1]), 'load_average_start': load_start}


def rows(results):
    """One row per measurement: shape, system, setting, busy, threads, seconds, ratio.

    The ratio is the median over the quiet best of the same system and shape: the
    fastest median of its settings with no busy process (None where none was measured).
    """
    table = []
    for shape, measurements in results['shapes'].items():
        for name in (name for family in FAMILIES.values() for name in family):
            cells = [(run['setting'], run['busy'], run) for run in measurements
                     if name in run['seconds']]
            quiet = [run['seconds'][name]['median'] for _, busy, run in cells if busy == 0]
            quiet_best = min(quiet) if quiet else None
            for setting, busy, run in cells:
                median = run['seconds'][name]['median']
                threads = (run['torch_threads'] if 'torch_threads' in run
                           else run['blas_threads'])
                table.append({'shape': shape, 'system': name, 'setting': setting,
                              'busy': busy, 'threads': threads, 'seconds': median,
                              'over_quiet_best': median / quiet_best if quiet_best else None,
                              'load_average_start': run['load_average_start']})
    return table


def run_contention(args):
    """The `contention` sub-command: every shape, family, setting and busy count, in turn."""
    results = {**machine_facts(), 'usable_cpus': usable_cpus()[1], 'epochs': args.epochs,
               'n_train': args.n_train, 'busy_counts': args.busy, 'shapes': {}}
    for shape in args.shapes:
        measurements = results['shapes'][shape] = []
        for busy in args.busy:
            for family in FAMILIES:
                for setting in SETTINGS:
                    run = measure(args, shape, family, setting, busy)
                    measurements.append({'setting': setting, 'busy': busy, **run})
                    print(f"{shape} {family} {setting}, {busy} busy: " + ", ".join(
                        f"{name} {seconds['median']:.3f} s" for name, seconds
                        in run['seconds'].items()) + f" (load {run['load_average_start']:.1f})",
                        flush=True)
    results['load_average_end'] = os.getloadavg()[0]
    results['rows'] = rows(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    save_json(args.json, results)
    print_table(results)
    print(f'\nNumbers written to {args.json}')


def print_table(results):
    """The contention table: seconds per epoch and each over its system's quiet best."""
    print(f"\nMeasured {results['date']} on {results['processor']}, {results['usable_cpus']} "
          f"usable CPUs, load average {results['load_average']:.1f} at the start and "
          f"{results['load_average_end']:.1f} at the end; NumPy {results['numpy']}; median "
          f"of {results['epochs']} epochs after a warm-up, each setting in a fresh process.\n")
    print("| shape | system | threads setting | busy processes | threads | s/epoch "
          "| / quiet best | load at start |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in results['rows']:
        ratio = row['over_quiet_best']
        verdict = ''
        if row['setting'] == 'default' and ratio is not None:
            target = TARGETS.get(row['busy'])
            verdict = '' if target is None else f" (≤ {target:g}{'' if ratio <= target else ' MISSED'})"
        layers = f"{int(np.prod(SHAPES[row['shape']][0]))}-{N_HIDDEN}-{N_CLASSES}"
        print(f"| {layers} | {row['system']} | {row['setting']} | {row['busy']} "
              f"| {row['threads']} | {row['seconds']:.3f} "
              f"| {'-' if ratio is None else f'{ratio:.2f}'}{verdict} "
              f"| {row['load_average_start']:.1f} |")


def run_contention_table(args):
    """`contention --table`: the table again, from a JSON `contention` wrote."""
    print_table(load_json(args.json))


def add_contention_commands(subcommands):
    parser = subcommands.add_parser(
        'contention', help='time epochs beside 0, 1 and 2 busy processes, on 1 thread, '
                           'all threads and the default (the longest; its full size is not '
                           'timed: docs/speed.md uses --n_train 10000 --epochs 3)')
    parser.add_argument('--epochs', type=positive_int, default=3,
                        help='epochs timed per setting after a warm-up; the median is '
                             'reported (default: 3)')
    parser.add_argument('--n_train', type=positive_int, default=None,
                        help='training images per shape (default: the real sizes)')
    parser.add_argument('--busy', type=int, nargs='+', default=[0, 1, 2],
                        choices=range(0, 9), metavar='N',
                        help='numbers of busy processes to run beside (default: 0 1 2)')
    parser.add_argument('--shapes', nargs='+', choices=list(SHAPES), default=list(SHAPES),
                        help='shapes to measure (default: both)')
    parser.add_argument('--quick', action='store_true',
                        help='a smoke run: 256 images per shape, one epoch')
    parser.add_argument('--table', action='store_true',
                        help='print the table of an earlier run from --json, measure nothing')
    parser.add_argument('--json', default='results/benchmark_contention.json',
                        help='where to write the numbers (default: '
                             'results/benchmark_contention.json)')
    parser.set_defaults(run=lambda args: (run_contention_table if args.table
                                          else run_contention)(quick_budget(args)))
    worker = subcommands.add_parser('contention-worker')  # one family, shape and setting
    worker.add_argument('--shape', choices=sorted(SHAPES), required=True)
    worker.add_argument('--family', choices=sorted(FAMILIES), required=True)
    worker.add_argument('--n_train', type=positive_int, required=True)
    worker.add_argument('--epochs', type=positive_int, required=True)
    worker.set_defaults(run=run_contention_worker)


def quick_budget(args):
    if args.quick:
        args.n_train, args.epochs = args.n_train or 256, 1
    return args
