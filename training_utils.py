"""What the two training scripts share: run folders, safe writing, the epoch log,
divergence and Ctrl-C handling, the JSON summary and the curves.

The training loops themselves stay in ``train_mlp_numpy.py`` and
``train_mlp_pytorch.py``, where a student reads them next to the maths; this
module holds the bookkeeping around them so that both scripts behave alike.
"""
import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from cifar10_utils import CorruptDataError, DownloadError
from data_utils import DATASETS, get_dataset
from modules import ACTIVATIONS
from optimizers import EarlyStopping


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


def check_finite_loss(loss, lr, epoch, batch):
    """Raise ``DivergenceError`` with advice when ``loss`` is NaN or infinite."""
    if not math.isfinite(loss):
        raise DivergenceError(
            f"the training loss became {loss} in epoch {epoch}, batch {batch}: "
            f"training diverged at learning rate {lr}; try a smaller --lr "
            f"(for example {lr / 10:g})")


# ---------------------------------------------------------------------------
# Writing files so that an interrupted or failed write loses nothing
# ---------------------------------------------------------------------------

def atomic_write(path, write):
    """Call ``write(temporary_path)``, then rename the result to ``path``.

    The file appears under its final name only once complete, so a crash, a
    full disk or Ctrl-C never leaves half a file, and an earlier version of
    the file stays intact until the new one is whole.

    Raises
    ------
    OSError
        With a message naming the file and what to do.
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix='.tmp')
        os.close(handle)
    except OSError as error:
        raise OSError(error.errno, f"cannot write into {path.parent} ({error.strerror}); "
                      f"choose a writable folder with --out_dir") from error
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise OSError(error.errno, f"could not write {path} ({error.strerror}); free "
                      f"some disk space or choose another --out_dir. Earlier "
                      f"results there are unchanged") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_json(path, data):
    """Write ``data`` as indented JSON, atomically."""
    def write(temporary):
        with open(temporary, 'w') as file:
            json.dump(data, file, indent=2)
            file.write('\n')
    atomic_write(path, write)


def run_name(framework, config):
    """A folder name that says what the run is and is unique to its configuration.

    The readable part names the main settings; the hash covers every setting,
    so two runs that differ in anything never share a folder, and rerunning
    the same configuration reuses its own.
    """
    hidden = 'x'.join(str(width) for width in config['hidden_dims']) or 'linear'
    digest = hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return (f"{framework}_{config['dataset']}_{hidden}_{config['optimizer']}"
            f"_lr{config['lr']:g}_bs{config['batch_size']}_seed{config['seed']}_{digest}")


def library_versions():
    """Versions of Python and the libraries a result depends on."""
    versions = {'python': platform.python_version(), 'numpy': np.__version__}
    if 'torch' in sys.modules:
        versions['torch'] = sys.modules['torch'].__version__
    return versions


# ---------------------------------------------------------------------------
# Command-line argument types: bad values stop argparse with exit code 2
# ---------------------------------------------------------------------------

def positive_int(text):
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parse_number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = _parse_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text):
    """argparse type: a finite number >= 0."""
    value = _parse_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def probability(text):
    """argparse type: a number in [0, 1)."""
    value = _parse_number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_common_arguments(parser):
    """The flags both training scripts share, with the assignment's defaults."""
    parser.add_argument('--hidden_dims', default=[128], type=positive_int, nargs='*',
                        help='width of each hidden layer, e.g. "256 128"; no value '
                             'gives logistic regression (default: 128)')
    parser.add_argument('--lr', default=0.1, type=positive_float,
                        help='learning rate (default: 0.1)')
    parser.add_argument('--batch_size', default=128, type=positive_int,
                        help='mini-batch size (default: 128)')
    parser.add_argument('--epochs', default=10, type=positive_int,
                        help='maximum number of epochs (default: 10)')
    parser.add_argument('--seed', default=42, type=int,
                        help='random seed for initialisation and shuffling (default: 42)')
    parser.add_argument('--data_dir', default='data/',
                        help='folder that holds or will receive the data (default: data/)')
    parser.add_argument('--dataset', default='cifar10', choices=DATASETS,
                        help='data set to train on (default: cifar10)')
    parser.add_argument('--validation_size', default=None, type=int,
                        help='training samples held out for validation (default: '
                             '5000 for the image data sets, a fifth for the spiral)')
    parser.add_argument('--activation', default='elu',
                        choices=sorted(ACTIVATIONS),
                        help='hidden-layer activation (default: elu)')
    parser.add_argument('--optimizer', default='sgd', choices=['sgd', 'adam'],
                        help='optimiser (default: sgd)')
    parser.add_argument('--momentum', default=0.0, type=probability,
                        help='SGD momentum in [0, 1) (default: 0)')
    parser.add_argument('--weight_decay', default=0.0, type=non_negative_float,
                        help='L2 weight decay (default: 0)')
    parser.add_argument('--scheduler', default='none', choices=['none', 'step', 'cosine'],
                        help='learning-rate schedule: step divides the rate by 10 '
                             'every third of the epochs, cosine anneals it to 0 '
                             '(default: none)')
    parser.add_argument('--patience', default=None, type=positive_int,
                        help='stop after this many epochs without a better '
                             'validation accuracy (default: never stop early)')
    parser.add_argument('--dropout', default=0.0, type=probability,
                        help='dropout probability after each hidden activation (default: 0)')
    parser.add_argument('--out_dir', default='results/',
                        help='folder for the run folders (default: results/)')
    parser.add_argument('--resume', default=None, metavar='PATH',
                        help="continue the run saved in this checkpoint file")
    parser.add_argument('--no_plot', action='store_true',
                        help='do not draw the loss and accuracy curves')
    parser.add_argument('--no_progress', action='store_true',
                        help='no progress bar, only one line per epoch')


def parse_arguments(parser, argv, read_saved_config):
    """Parse the command line; with ``--resume`` the saved run's settings are the defaults.

    So ``--resume PATH`` alone continues a run as it was started, and a flag
    given next to it (``--epochs 20``) overrides the saved value.
    """
    args = parser.parse_args(argv)
    if args.optimizer == 'adam' and args.momentum:
        parser.error("argument --momentum: applies to --optimizer sgd only "
                     "(Adam keeps its own moving averages)")
    if args.resume:
        try:
            saved_config = read_saved_config(args.resume)
        except (OSError, ValueError) as error:
            parser.error(f"argument --resume: {error}")
        parser.set_defaults(**saved_config)
        args = parser.parse_args(argv)
    return args


class ConfigurationError(ValueError):
    """A setting that cannot work with the data or the checkpoint given."""


def load_data(dataset, data_dir, validation_size, batch_size):
    """Load a data set by name and check that the settings fit it.

    Raises
    ------
    ConfigurationError
        For a validation size or batch size that does not fit the data set;
        nothing has been written when it is raised.
    DownloadError, CorruptDataError
        When the data cannot be had or read (see ``cifar10_utils``).
    """
    if validation_size is not None and validation_size < 1:
        raise ConfigurationError(f"validation_size must be at least 1 to select the "
                                 f"best epoch, got {validation_size}")
    try:
        data = get_dataset(dataset, data_dir=data_dir, validation_size=validation_size)
    except CorruptDataError:
        raise
    except ValueError as error:
        raise ConfigurationError(str(error)) from error
    n_train = len(data['train'])
    if batch_size > n_train:
        raise ConfigurationError(f"batch_size {batch_size} is larger than the {n_train} "
                                 f"training samples of {dataset}")
    return data


def check_resumable(saved_config, config, path):
    """Refuse to continue a run with other settings than it was started with."""
    changed = sorted(key for key in config
                     if key != 'epochs' and saved_config.get(key) != config[key])
    if changed:
        details = ', '.join(f"{key}: saved {saved_config.get(key)!r}, now {config[key]!r}"
                            for key in changed)
        raise ConfigurationError(f"{path} was saved by a run with other settings ({details}); "
                                 f"resume with the saved settings (only --epochs may change)")


def run_command_line(parser, argv, read_saved_config, train):
    """Parse the arguments, call ``train(args)`` and turn failures into exit codes.

    Exit codes: 2 for settings that cannot work (argparse's code, with a one-line
    reason, before anything is written), 1 for data that cannot be had or read
    or outputs that cannot be written, 130 after Ctrl-C.
    """
    args = parse_arguments(parser, argv, read_saved_config)
    try:
        train(args)
    except ConfigurationError as error:
        parser.error(str(error))
    except (DownloadError, CorruptDataError, OSError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit(130)


# ---------------------------------------------------------------------------
# One training run: the epoch log, the best epoch, stopping, and its outputs
# ---------------------------------------------------------------------------

METRICS = ('train_loss', 'train_accuracy', 'validation_loss', 'validation_accuracy',
           'learning_rate', 'epoch_seconds')


class TrainingRun:
    """Bookkeeping of one training run.

    Keeps the per-epoch metrics (``logging_dict``), knows the best epoch on
    validation accuracy, decides about early stopping, turns Ctrl-C into a
    stop after the current batch, and writes the summary and curves.

    Parameters
    ----------
    framework : str
        'numpy' or 'pytorch', for the folder name and the summary.
    config : dict
        Every setting of the run, JSON-serialisable.
    out_dir : str or Path
        Parent folder; the run's own folder is named by ``run_name``.
    patience : int or None
        Early-stopping patience in epochs; None never stops early.
    run_dir : str or Path, optional
        Use this folder instead (a resumed run keeps its folder).
    """

    def __init__(self, framework, config, out_dir, patience=None, run_dir=None):
        self.framework = framework
        self.config = config
        self.run_dir = Path(run_dir) if run_dir else Path(out_dir) / run_name(framework, config)
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(error.errno, f"cannot create the output folder {self.run_dir} "
                          f"({error.strerror}); choose a writable --out_dir") from error
        if not os.access(self.run_dir, os.W_OK):
            raise PermissionError(f"the output folder {self.run_dir} is not writable; "
                                  f"choose another --out_dir")
        self.logging_dict = {name: [] for name in METRICS}
        self.stopper = EarlyStopping(patience)
        self.status = 'running'
        self.message = ''
        self.stop_requested = False
        self.started = time.perf_counter()
        self.elapsed_before = 0.0

    # -- the epoch loop -----------------------------------------------------

    @property
    def epochs_done(self):
        return len(self.logging_dict['validation_accuracy'])

    @property
    def best_epoch(self):
        """Index (0-based) of the epoch with the best validation accuracy, -1 if none."""
        return self.stopper.best_epoch

    def end_epoch(self, **metrics):
        """Record one finished epoch and print its line.

        Parameters
        ----------
        **metrics
            One value for each name in ``METRICS``.

        Returns
        -------
        bool
            True when this epoch is the best so far on validation accuracy.
        """
        for name in METRICS:
            self.logging_dict[name].append(float(metrics[name]))
        epoch = self.epochs_done
        stop = self.stopper.step(metrics['validation_accuracy'])
        improved = self.stopper.best_epoch == epoch - 1
        print(f"epoch {epoch:3d}/{self.config['epochs']}  "
              f"train loss {metrics['train_loss']:.4f}  acc {metrics['train_accuracy']:.4f}  "
              f"| val loss {metrics['validation_loss']:.4f}  "
              f"acc {metrics['validation_accuracy']:.4f}{' *' if improved else '  '}  "
              f"| {metrics['epoch_seconds']:.2f} s", flush=True)
        if stop:
            self.status = 'early_stopped'
            self.message = (f"stopped early: no better validation accuracy for "
                            f"{self.stopper.patience} epochs")
            print(self.message, flush=True)
        return improved

    def should_stop(self):
        """True once early stopping, divergence or Ctrl-C has ended the run."""
        return self.stop_requested or self.status in ('early_stopped', 'diverged')

    def diverged(self, error):
        """Record a divergence: the run ends, the best model so far is kept."""
        self.status = 'diverged'
        self.message = str(error)
        print(f"\n{self.message}. Keeping the best model so far "
              f"(epoch {self.best_epoch + 1}).", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def stop_on_interrupt(self):
        """Turn the first Ctrl-C into a request to stop after the current batch.

        A second Ctrl-C interrupts at once. Outside the main thread (where
        signal handlers cannot be set) Ctrl-C keeps its usual effect.
        """
        def request_stop(signum, frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            print("\nCtrl-C: stopping after this batch and saving what is finished "
                  "(press Ctrl-C again to quit at once)", file=sys.stderr, flush=True)

        try:
            previous = signal.signal(signal.SIGINT, request_stop)
        except ValueError:
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self.stop_requested:
            self.status = 'interrupted'
            self.message = f"interrupted by Ctrl-C after {self.epochs_done} complete epochs"

    # -- state for checkpoints ------------------------------------------------

    def state_dict(self):
        """The run's progress as plain JSON-serialisable values."""
        return {'logging_dict': self.logging_dict,
                'stopper': self.stopper.state_dict(),
                'elapsed_seconds': self.elapsed_before + time.perf_counter() - self.started}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``."""
        self.logging_dict = {name: list(state['logging_dict'][name]) for name in METRICS}
        self.stopper.load_state_dict(state['stopper'])
        self.elapsed_before = state['elapsed_seconds']

    # -- outputs -------------------------------------------------------------

    def finish(self, test_accuracy, plot=True):
        """Write ``summary.json`` and, unless ``plot`` is False, the curves.

        Returns
        -------
        dict
            The summary.
        """
        if self.status == 'running':
            self.status = 'completed'
        best = self.best_epoch
        summary = {
            'framework': self.framework,
            'status': self.status,
            'message': self.message,
            'config': self.config,
            'epochs_completed': self.epochs_done,
            'best_epoch': best + 1 if best >= 0 else None,
            'best_validation_accuracy': self.stopper.best if best >= 0 else None,
            'test_accuracy': test_accuracy,
            'metrics': self.logging_dict,
            'wall_seconds': self.elapsed_before + time.perf_counter() - self.started,
            'finished_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'versions': library_versions(),
        }
        save_json(self.run_dir / 'summary.json', summary)
        if plot and self.epochs_done:
            from plotting import plot_training_curves
            title = f"{self.framework} MLP {self.config['hidden_dims']} on {self.config['dataset']}"
            plot_training_curves(self.logging_dict, self.run_dir, title, best)
        if test_accuracy is not None:
            print(f"best epoch {best + 1}: validation accuracy {self.stopper.best:.4f}, "
                  f"test accuracy {test_accuracy:.4f}")
        print(f"results in {self.run_dir}", flush=True)
        return summary
