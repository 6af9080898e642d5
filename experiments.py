"""Experiments with the two MLPs: what the learning rate, the activation, batch
normalisation, depth and width do to training, how NumPy and PyTorch compare,
and how networks of a few sizes fit a noisy curve.

Each study is a function that trains small models, draws its figures and
returns its numbers; ``run_study`` times it and writes the numbers, with the
settings used, to ``<study>.json`` beside the figures::

    python experiments.py all                  # every study, full budget
    python experiments.py all --quick          # every study, small budget
    python experiments.py lr_sweep --out_dir results/lr_sweep

The spiral is drawn afresh by ``lab.datasets``; Fashion-MNIST is read from disk
(Debian's ``dataset-fashion-mnist`` package, or ``--data_dir``), and the
studies that use it train on a random subset of it to stay within minutes.

This file is the command line only: each study lives in its own module of the
``lab.studies`` package, and what they share (data subsets, the instrumented
training loops, plot helpers) in ``lab/studies/harness.py``.
"""
import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path

from lab.downloads import CorruptDataError
from lab.cli import ArgumentParser, seed
from lab.fileio import save_json
from lab.studies.activations import activations
from lab.studies.architectures import architectures
from lab.studies.batch_norm import batch_norm
from lab.studies.harness import json_ready
from lab.studies.lr_sweep import lr_sweep
from lab.studies.numpy_vs_pytorch import numpy_vs_pytorch
from lab.studies.regression import regression
from lab.studies.saddle import saddle
from lab.studies.weight_growth import weight_growth
from lab.threads import first_layer_product, print_thread_policy

STUDIES = {
    'lr_sweep': lr_sweep,
    'activations': activations,
    'batch_norm': batch_norm,
    'weight_growth': weight_growth,
    'numpy_vs_pytorch': numpy_vs_pytorch,
    'saddle': saddle,
    'architectures': architectures,
    'regression': regression,
}
"""Each study's name, as its sub-command and its JSON file are named, and its function."""

QUICK_BUDGETS = {
    'lr_sweep': {'epochs': 500},
    'activations': {'epochs': 2, 'n_train': 2000, 'n_test': 1000},
    'batch_norm': {'epochs': 2, 'n_train': 2000, 'n_test': 1000},
    'weight_growth': {'epochs': 5, 'n_train': 2000, 'n_test': 1000},
    'numpy_vs_pytorch': {'epochs': 2, 'n_train': 10000, 'n_test': 2000},
    'saddle': {},
    'architectures': {'spiral_epochs': 200, 'fashion_epochs': 2, 'n_train': 2000,
                      'n_test': 1000},
    'regression': {'epochs': 300},
}
"""The settings ``--quick`` overrides in each study: a small budget for a smoke run."""


def run_study(name, out_dir, **settings):
    """Run one study, time it, and write ``<out_dir>/<name>.json``.

    Parameters
    ----------
    name : str
        A key of ``STUDIES``.
    out_dir : str or Path
        Created if missing; receives the study's PNGs and its JSON.
    **settings
        Keyword arguments of the study function overriding its defaults.

    Returns
    -------
    record : dict
        What the JSON holds: ``'study'``, ``'seconds'``, ``'settings'`` (every
        argument of the study, defaults included) and ``'results'``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = STUDIES[name]
    arguments = inspect.signature(study).bind(out_dir, **settings)
    arguments.apply_defaults()
    start = time.perf_counter()
    results = study(*arguments.args, **arguments.kwargs)
    seconds = time.perf_counter() - start
    record = json_ready({'study': name, 'seconds': seconds,
                         'settings': {key: value for key, value in arguments.arguments.items()
                                      if key != 'out_dir'},
                         'results': results})
    save_json(out_dir / f'{name}.json', record)
    return record


def build_parser():
    """The command line: one sub-command per study, and ``all``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--out_dir', default='results/experiments/', type=Path,
                        help='folder for the figures and the JSON files '
                             '(default: results/experiments/)')
    common.add_argument('--quick', action='store_true',
                        help='a small budget (fewer epochs, smaller subsets): every study '
                             'together took 16 s (78 s without --quick) on a quiet 2-core '
                             'AMD EPYC, 2026-11-22; a busy machine takes several times longer')
    common.add_argument('--seed', default=0, type=seed,
                        help='seed of the data, the initial weights and the batch order, '
                             'in [0, 2**32 - 1] (default: 0)')
    common.add_argument('--data_dir', default='data/',
                        help='folder searched for Fashion-MNIST before '
                             '/usr/share/datasets/fashion-mnist (default: data/)')
    parser = ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="`all` took 78 s, and `all --quick` 16 s, on a quiet 2-core AMD EPYC\n"
               "(2026-11-22, Python's start-up included); a busy machine takes several\n"
               "times longer. Each study's own time is in docs/experiments.md.")
    subparsers = parser.add_subparsers(dest='study', required=True, metavar='STUDY',
                                       help=f'one of {", ".join(STUDIES)}, or all')
    for name, study in STUDIES.items():
        subparsers.add_parser(name, parents=[common], help=inspect.getdoc(study).split('\n')[0],
                              description=inspect.getdoc(study),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers.add_parser('all', parents=[common], help='every study, one after the other')
    return parser


def check_output_folder(parser, folder):
    """Create ``folder`` if it is missing and try writing a file into it; else exit 2.

    Checked before any study runs, so a bad ``--out_dir`` costs no training.
    The trial file is anonymous and vanishes when closed.
    """
    if folder.exists() and not folder.is_dir():
        parser.error(f"argument --out_dir: {folder} is a file, not a folder; "
                     f"choose a folder (it is created if missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        parser.error(f"argument --out_dir: cannot write into {folder} "
                     f"({error.strerror or error}); choose a writable folder")


def main(argv=None):
    """Run the studies named on the command line; print where their files went.

    Exit codes: 2 for a bad setting, before anything is written; 1 for data
    that cannot be read or files that cannot be written (every file is written
    whole or not at all); 130 after Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check_output_folder(parser, args.out_dir)
    # The studies' largest product: Fashion-MNIST batches of 128 into 128 units.
    print_thread_policy(product_size=first_layer_product(128, 28 * 28, [128], 10))
    names = list(STUDIES) if args.study == 'all' else [args.study]
    total_start = time.perf_counter()
    for name in names:
        parameters = inspect.signature(STUDIES[name]).parameters
        settings = {key: value for key, value in (('seed', args.seed), ('data_dir', args.data_dir))
                    if key in parameters}
        if args.quick:
            settings.update(QUICK_BUDGETS[name])
        try:
            record = run_study(name, args.out_dir, **settings)
        except (CorruptDataError, OSError) as error:
            sys.exit(f"{parser.prog}: error: {name}: {error}")
        except KeyboardInterrupt:
            sys.exit(130)
        print(f'{name}: {record["seconds"]:.1f} s -> {args.out_dir / name}.json and its PNGs')
    if len(names) > 1:
        print(f'all studies: {time.perf_counter() - total_start:.1f} s')


if __name__ == '__main__':
    main()
