"""The command line both training scripts share: flags, their checks, and exit codes.

Exit codes: 2 for settings that cannot work (argparse's code, with a one-line
reason, before anything is written), 1 for data that cannot be had or read or
outputs that cannot be written, 130 after Ctrl-C, 143 after SIGTERM.
"""
import argparse
import difflib
import math
import os
import re
import signal
import sys

from lab.checkpoints import CheckpointError, read_checkpoint
from lab.downloads import CorruptDataError, DownloadError
from lab.datasets import DATASETS, DataDirError, data_source, dataset_shape
from lab.fileio import LinkOutOfFolderError, Terminated
from lab.settings import NOT_SETTINGS, ConfigurationError
from lab.threads import first_layer_product, print_thread_policy

class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, which also names the nearest flag to one it does not know:
    ``--hiden_dims`` gets "did you mean --hidden_dims?". Its sub-commands' parsers are
    of this class too, and their flags are among those suggested."""

    def error(self, message):
        unknown = message.partition('unrecognized arguments: ')[2].split()
        if any(nearest_flag(word, self) for word in unknown):
            message = "unrecognized arguments: " + " ".join(
                f"{word} (did you mean {nearest_flag(word, self)}?)" if nearest_flag(word, self)
                else word for word in unknown)
        super().error(message)


def nearest_flag(typed, parser):
    """The flag of ``parser`` or its sub-commands closest to ``typed`` (``--flag`` or
    ``--flag=value``), or None if none is close."""
    if not typed.startswith('--'):
        return None
    flags = set()
    parsers = [parser]
    while parsers:
        current = parsers.pop()
        flags.update(flag for flag in current._option_string_actions if flag.startswith('--'))
        parsers += [choice for action in current._actions
                    if isinstance(action, argparse._SubParsersAction)
                    for choice in action.choices.values()]
    matches = difflib.get_close_matches(typed.split('=', 1)[0], sorted(flags), n=1, cutoff=0.6)
    return matches[0] if matches else None


MAX_SEED = 2 ** 32 - 1
"""The largest seed both NumPy's and PyTorch's generators accept."""


def positive_int(text):
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seed(text):
    """argparse type: a whole number in [0, 2**32 - 1]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must lie in [0, {MAX_SEED}], got {value}")
    return value


DECIMAL_LITERAL = re.compile(r'[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?')
"""A plain decimal number: ``float`` alone would also take '1_0' (10), 'inf', 'nan' and
digits of other scripts ('１０')."""


def decimal_number(text):
    """argparse type: a plain, finite decimal number."""
    if not DECIMAL_LITERAL.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"expected a number such as 0.1 or 1e-3, got {text!r}")
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0."""
    value = decimal_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text):
    """argparse type: a finite number >= 0."""
    value = decimal_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def probability(text):
    """argparse type: a number in [0, 1)."""
    value = decimal_number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def folder_path(text):
    """argparse type: a non-empty path (an empty one would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected the path of a folder, got ''")
    return text


def file_path(text):
    """argparse type: a non-empty path."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected the path of a checkpoint file, got ''")
    return text


def add_common_arguments(parser, activations):
    """The flags both training scripts share, with the assignment's defaults.

    Each flag's ``dest`` is the name of ``train``'s parameter, so a script calls
    ``train(**vars(args))``.
    """
    parser.add_argument('--hidden_dims', default=[128], type=positive_int, nargs='*',
                        help='width of each hidden layer, e.g. "256 128"; no value '
                             'gives logistic regression (default: 128)')
    parser.add_argument('--lr', default=0.1, type=positive_float,
                        help='learning rate (default: 0.1)')
    parser.add_argument('--batch_size', default=128, type=positive_int,
                        help='mini-batch size (default: 128)')
    parser.add_argument('--epochs', default=10, type=positive_int,
                        help='maximum number of epochs (default: 10)')
    parser.add_argument('--seed', default=42, type=seed,
                        help='random seed for initialisation and shuffling (default: 42)')
    parser.add_argument('--data_dir', default='data/',
                        help='folder that holds or will receive the data (default: data/)')
    parser.add_argument('--dataset', default='cifar10', choices=DATASETS,
                        help='data set to train on (default: cifar10)')
    parser.add_argument('--validation_size', default=None, type=int,
                        help='training samples held out for validation (default: '
                             '5000 for the image data sets, a fifth for the spiral)')
    parser.add_argument('--activation', default='elu', choices=sorted(activations),
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
    parser.add_argument('--use_batch_norm', action='store_true',
                        help='batch normalisation between each hidden linear layer '
                             'and its activation')
    parser.add_argument('--dropout', default=0.0, type=decimal_number,
                        help='dropout probability in [0, 1) after each hidden activation '
                             '(default: 0)')
    parser.add_argument('--out_dir', default=None, type=folder_path,
                        help='folder for the run folders (default: results/)')
    parser.add_argument('--resume', default=None, type=file_path, metavar='PATH',
                        help='continue the run saved in this checkpoint file, in its '
                             'folder, with its settings (give --epochs to train longer)')
    parser.add_argument('--no_plot', dest='plot', action='store_false',
                        help='do not draw the loss and accuracy curves')
    parser.add_argument('--no_progress', dest='progress', action='store_false',
                        help='no progress bar, only one line per epoch')
    parser.add_argument('--threads', default=None, type=positive_int,
                        help='threads for the matrix products (BLAS, PyTorch); '
                             'OMP_NUM_THREADS and the like, when set, win (default: one '
                             'per free CPU, one for small products; see docs/speed.md)')


def saved_settings_as_flags(parser, settings):
    """The command-line flags that give ``settings``, for the flags that define a run.

    Only flags of this parser whose ``dest`` is a run setting are produced, so
    a checkpoint cannot set paths (``--data_dir``, ``--out_dir``) or anything
    else. Each value is one ``--flag=value`` word (and the widths whole
    numbers), so no saved value can smuggle in another flag, and every value
    passes the same checks as one typed by hand.

    Raises
    ------
    CheckpointError
        For settings no run could have saved: the file was edited or damaged.
    """
    if not isinstance(settings, dict):
        raise CheckpointError(f"the settings saved in the checkpoint are a "
                              f"{type(settings).__name__}, not a dict; the file was edited "
                              f"or damaged")
    flags = []
    for action in parser._actions:
        value = settings.get(action.dest)
        if not action.option_strings or action.dest in NOT_SETTINGS or value is None:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse._StoreTrueAction):
            flags += [flag] if value is True else []
        elif action.nargs == '*' and isinstance(value, list) and all(
                type(item) is int for item in value):
            flags += [flag, *(str(item) for item in value)]
        else:
            flags.append(f"{flag}={value}")
    parser.exit_on_error = False  # raise ArgumentError instead of exiting, to say where from
    try:
        parser.parse_args(flags)
    except argparse.ArgumentError as error:
        raise CheckpointError(f"the settings saved in the checkpoint are not ones a run "
                              f"could have saved ({error}); the file was edited or "
                              f"damaged") from error
    finally:
        parser.exit_on_error = True
    return flags


def parse_arguments(parser, argv, files):
    """Parse the command line; with ``--resume`` the saved run's settings come first.

    So ``--resume PATH`` alone continues a run as it was started, and a flag
    given next to it (``--epochs 20``) overrides the saved value.
    """
    args = parser.parse_args(argv)
    if args.resume is None:
        return args
    try:
        saved = read_checkpoint(files, args.resume)['settings']
        saved_flags = saved_settings_as_flags(parser, saved)
    except CheckpointError as error:
        parser.error(f"argument --resume: {error}")
    return parser.parse_args([*saved_flags, *(sys.argv[1:] if argv is None else argv)])


class ReaderSafeStream:
    """A text stream whose reader may leave (``... | head -1``) without stopping the run.

    At the first broken pipe the stream's file descriptor is pointed at the
    null device: later output, Python's final flush included, goes nowhere
    instead of raising ``BrokenPipeError`` into training.
    """

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._discard_output()
            return len(text)
        except UnicodeEncodeError:  # a path in another alphabet, PYTHONIOENCODING=ascii
            encoding = self.stream.encoding or 'ascii'
            self.stream.write(text.encode(encoding, 'backslashreplace').decode(encoding))
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._discard_output()

    def _discard_output(self):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self.stream.fileno())
        os.close(null)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def open_stream(stream):
    """``stream`` made safe to write to: the null device when it was closed before Python
    started (``>&-``), so that training never depends on anyone reading it."""
    if stream is None or stream.closed:
        stream = open(os.devnull, 'w')
    return ReaderSafeStream(stream)


def terminate(signum, frame):
    """SIGTERM (``kill``, ``timeout``, Slurm, Docker) before or after training: stop as
    Ctrl-C stops. During training ``TrainingRun`` takes it over and saves first."""
    raise Terminated


def run_command_line(parser, train, files, argv=None):
    """Parse the arguments, call ``train(**vars(args))`` and turn failures into exit codes.

    A run whose output is no longer read (its pipe closed, or closed from the start)
    trains on and exits with 0. Ctrl-C exits with 130 and SIGTERM with 143, even while
    a checkpoint to resume is still being read.
    """
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = open_stream(sys.stdout), open_stream(sys.stderr)
    try:
        previous_handler = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread, where only the default handling is possible
        previous_handler = None
    try:
        args = parse_arguments(parser, argv, files)
        threads = vars(args).pop('threads')
        n_inputs, n_classes, _ = dataset_shape(args.dataset)
        print_thread_policy(threads, first_layer_product(args.batch_size, n_inputs,
                                                         args.hidden_dims, n_classes))
        data_line = data_source(args.dataset, args.data_dir)
        if data_line:
            print(data_line, flush=True)
        train(**vars(args))
    except (ConfigurationError, CheckpointError, DataDirError) as error:
        parser.error(str(error))
    except LinkOutOfFolderError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    except (DownloadError, CorruptDataError, OSError) as error:
        sys.exit(f"error: {error}")
    except Terminated:
        sys.exit(143)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        sys.stdout, sys.stderr = streams
