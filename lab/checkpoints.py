"""Checkpoints: everything a run needs to continue exactly where it stopped.

After every epoch a run saves its settings, its log, the model, the best model
so far, the optimiser, the learning-rate schedule and the random generators.
Resuming restores all of them, so a run continued after epoch k ends with
exactly the numbers of the run that was never interrupted.

Two file formats, one per framework, neither of which can run code on loading:

- ``NumpyFiles``: an ``.npz`` of plain arrays plus one JSON string for
  everything else, read with ``np.load(..., allow_pickle=False)``;
- ``TorchFiles``: ``torch.save``, read with ``torch.load(..., weights_only=True)``,
  which refuses anything but tensors and plain containers. PyTorch is imported
  only when these are used, so the NumPy path never loads it.
"""
import hashlib
import json
import math
import os
import pickle
import stat
import zipfile
import zlib

import numpy as np

from lab.fileio import atomic_write, printable

ARRAY_REFERENCE = '__array__'
META_KEY = '__meta__'
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError,
               RecursionError, pickle.UnpicklingError, zipfile.BadZipFile, zlib.error)
"""What reading a damaged file raises, in NumPy, zipfile, pickle and PyTorch."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the run."""


def run_name(framework, settings):
    """A folder name that says what the run is and is unique to its settings.

    The readable part names the main settings; the hash covers every setting,
    so two runs that differ in anything never share a name.
    """
    hidden = 'x'.join(str(width) for width in settings['hidden_dims']) or 'linear'
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return (f"{framework}_{settings['dataset']}_{hidden}_{settings['optimizer']}"
            f"_lr{settings['lr']:g}_bs{settings['batch_size']}_seed{settings['seed']}_{digest}")


def save_checkpoint(path, run):
    """Write every part of ``run`` (a ``runs.TrainingRun``) to ``path``, atomically."""
    contents = {name: part.state_dict() for name, part in run.parts.items() if part is not None}
    contents.update(best_model=run.best_state, run=run.state_dict(), settings=run.settings)
    run.files.write(contents, path)


def read_checkpoint(files, path):
    """Read a checkpoint written by ``save_checkpoint``.

    Raises
    ------
    CheckpointError
        If the file is missing, not a regular file (a device such as /dev/zero or
        a FIFO would never end), truncated, damaged, not a checkpoint of this
        framework, or holds anything but plain data; nothing is run from it.
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CheckpointError(f"{printable(path)} is not a regular file; pass the "
                                  f"checkpoint{files.suffix} of a run of {files.script}")
        contents = files.read(path)
        for key in ('settings', 'run', 'model', 'best_model', 'optimizer'):
            contents[key]
    except CheckpointError:
        raise
    except READ_ERRORS as error:
        raise CheckpointError(f"not a readable checkpoint: {printable(path)} "
                              f"({describe_read_error(error)}); pass the checkpoint"
                              f"{files.suffix} of a run of {files.script}") from None
    return contents


def describe_read_error(error):
    """One line on why a file could not be read, quoting none of its content raw.

    ``torch.load`` refuses a pickled object in several lines with terminal colours
    and the advice to load with ``weights_only=False``, which would run the
    object's code: that advice is never passed on.
    """
    if isinstance(error, pickle.UnpicklingError):
        return ("it holds Python objects besides tensors and plain containers, and "
                "loading them could run code: refused")
    lines = str(error).strip().splitlines() or ['']
    return f"{type(error).__name__}: {printable(lines[0])[:300]}"


def check_members(archive, path):
    """Check a zip archive's members against how this project writes them, before any is read.

    ``np.savez`` and ``torch.save`` store their members uncompressed, so each
    member takes on disk the bytes it declares, and the whole can cost no more
    memory or time than the file's size: a compressed member (a zip bomb) or a
    size that overruns the file is refused. An ``.npy`` member's header must
    announce exactly the bytes the member holds, so no header's shape is
    allocated on trust.

    Raises
    ------
    zipfile.BadZipFile
        Naming the first member that breaks a rule.
    """
    file_size = os.stat(path).st_size
    for member in archive.infolist():
        if member.compress_type != zipfile.ZIP_STORED or member.file_size != member.compress_size:
            raise zipfile.BadZipFile(f"the member {printable(member.filename)} is compressed, "
                                     f"which no checkpoint of this project is")
        if member.header_offset + member.file_size > file_size:
            raise zipfile.BadZipFile(f"the member {printable(member.filename)} declares "
                                     f"{member.file_size} bytes, more than the file holds")
        if member.filename.endswith('.npy'):
            check_npy_header(archive, member)


def check_npy_header(archive, member):
    """Check that an ``.npy`` member's header announces exactly the bytes the member holds."""
    with archive.open(member) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            reader = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                      else np.lib.format.read_array_header_2_0)
            shape, _, dtype = reader(stream)
        except ValueError as error:
            raise zipfile.BadZipFile(f"the member {printable(member.filename)} has no "
                                     f"readable array header ({printable(error)})") from None
        announced = stream.tell() + dtype.itemsize * math.prod(shape)
    if dtype.hasobject or announced != member.file_size:
        raise zipfile.BadZipFile(f"the member {printable(member.filename)} announces "
                                 f"{dtype} {shape}, which its {member.file_size} bytes do "
                                 f"not hold")


def check_archive(path):
    """Check every member of a zip archive (``.npz``, ``torch.save``'s files) against its CRC-32.

    Reading a member checks it only once read to its end, and neither the
    ``.npy`` header parser nor ``torch.load`` gets that far on damaged data.

    Raises
    ------
    zipfile.BadZipFile
        Naming the first damaged member.
    """
    with zipfile.ZipFile(path) as archive:
        check_members(archive, path)
        for member in archive.infolist():
            # The MS-DOS folder attribute: miniz, inside torch.load, reads such a
            # member as an empty folder, so one flipped bit would load a wrong tensor.
            if member.external_attr & 0x10:
                raise zipfile.BadZipFile(f"the member {member.filename} is marked as a folder")
        damaged = archive.testzip()
    if damaged is not None:
        raise zipfile.BadZipFile(f"bad CRC-32 of the member {damaged}")


class RandomStates:
    """Random generators as one checkpoint part, with ``state_dict`` and ``load_state_dict``.

    Parameters
    ----------
    **generators
        ``numpy.random.Generator`` objects, or torch generators (anything with
        ``get_state`` and ``set_state``, such as ``torch.default_generator``).
    """

    def __init__(self, **generators):
        self.generators = generators

    def state_dict(self):
        return {name: generator.get_state() if hasattr(generator, 'get_state')
                else generator.bit_generator.state
                for name, generator in self.generators.items()}

    def load_state_dict(self, state):
        for name, generator in self.generators.items():
            if hasattr(generator, 'set_state'):
                generator.set_state(state[name])
            else:
                generator.bit_generator.state = state[name]


class NumpyFiles:
    """Checkpoints and weights of the NumPy MLP as ``.npz`` files, without pickle."""

    suffix = '.npz'
    script = 'train_mlp_numpy.py'

    @staticmethod
    def copy(state):
        """A copy of a state dict that later training steps leave alone."""
        return {key: value.copy() for key, value in state.items()}

    @staticmethod
    def save_weights(state, path):
        """Write a model's state dict as an ``.npz`` whose keys are the state dict's."""
        def write(temporary):
            with open(temporary, 'wb') as file:
                np.savez(file, **state)
        atomic_write(path, write)

    @staticmethod
    def read_weights(path):
        """Read weights written by ``save_weights``; never unpickles.

        Raises
        ------
        ValueError
            If the file holds pickled objects, or is not a readable ``.npz``.
        """
        try:
            check_archive(path)
            with np.load(path, allow_pickle=False) as data:
                return {key: data[key] for key in data.files}
        except (ValueError, zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise ValueError(f"{path} is not a file of plain arrays ({error}); refusing to "
                             f"unpickle it") from error

    @staticmethod
    def write(contents, path):
        """Write nested dicts and lists with array leaves: arrays to the ``.npz``, the rest
        as JSON."""
        arrays = {}

        def take_arrays(value, key):
            if isinstance(value, np.ndarray):
                arrays[key] = value
                return {ARRAY_REFERENCE: key}
            if isinstance(value, dict):
                return {name: take_arrays(item, f"{key}/{name}") for name, item in value.items()}
            if isinstance(value, (list, tuple)):
                return [take_arrays(item, f"{key}/{index}") for index, item in enumerate(value)]
            return value.item() if isinstance(value, np.generic) else value

        meta = json.dumps(take_arrays(contents, ''))
        NumpyFiles.save_weights({META_KEY: np.array(meta), **arrays}, path)

    @staticmethod
    def read(path):
        """Read what ``write`` wrote, after ``check_archive``."""
        check_archive(path)
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}

        def put_arrays(value):
            if isinstance(value, dict):
                if set(value) == {ARRAY_REFERENCE}:
                    return arrays[value[ARRAY_REFERENCE]]
                return {name: put_arrays(item) for name, item in value.items()}
            if isinstance(value, list):
                return [put_arrays(item) for item in value]
            return value

        return put_arrays(json.loads(str(arrays.pop(META_KEY))))


class TorchFiles:
    """Checkpoints and weights of the PyTorch MLP: ``torch.save``, loaded with ``weights_only``."""

    suffix = '.pt'
    script = 'train_mlp_pytorch.py'

    @staticmethod
    def copy(state):
        """A copy of a state dict that later training steps leave alone."""
        return {key: value.detach().clone() for key, value in state.items()}

    @staticmethod
    def save_weights(state, path):
        """Write a model's state dict with ``torch.save``."""
        TorchFiles.write(state, path)

    @staticmethod
    def read_weights(path, device='cpu'):
        """Read weights written by ``save_weights``; never unpickles objects.

        Raises
        ------
        ValueError
            If the file holds anything but tensors and plain containers.
        """
        try:
            return TorchFiles.read(path, device)
        except pickle.UnpicklingError as error:
            raise ValueError(f"{path} holds more than tensors; refusing to unpickle it "
                             f"({error})") from error

    @staticmethod
    def write(contents, path):
        """``torch.save`` through an open file, so a full disk is an ``OSError`` like any other.

        ``torch.save`` reports a failed write as ``RuntimeError: [enforce fail at
        inline_container.cc] ... unexpected pos``; the file's own error, kept by
        ``WriteErrorKeeper``, is raised in its place.
        """
        import torch

        def write(temporary):
            with open(temporary, 'wb') as file:
                keeper = WriteErrorKeeper(file)
                try:
                    torch.save(contents, keeper)
                except RuntimeError:
                    if keeper.error is None:
                        raise
                    raise keeper.error from None
        atomic_write(path, write)

    @staticmethod
    def read(path, device='cpu'):
        """Read what ``write`` wrote, after ``check_archive``: ``torch.load``
        checks none of the checksums its files carry."""
        import torch
        check_archive(path)
        return torch.load(path, map_location=device, weights_only=True)


class WriteErrorKeeper:
    """A binary file that keeps the ``OSError`` of its first failed write.

    See ``TorchFiles.write``.
    """

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def flush(self):
        self.file.flush()


# -- what a checkpoint holds, checked against the run's settings ----------------------------

def scheduled_lr(settings, epoch):
    """The learning rate of 0-based ``epoch`` under the schedule of ``settings``.

    The closed forms of ``optimizers.make_scheduler`` (and of PyTorch's StepLR and
    CosineAnnealingLR, which the PyTorch script builds the same way) over
    ``settings['epochs']`` epochs.
    """
    lr, epochs = settings['lr'], settings['epochs']
    if settings['scheduler'] == 'step':
        return lr * 0.1 ** (epoch // max(1, epochs // 3))
    if settings['scheduler'] == 'cosine':
        return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2
    return lr


def same_rate(saved, expected, settings):
    """Whether a saved learning rate is the expected one, up to rounding."""
    return math.isclose(saved, expected, rel_tol=1e-6, abs_tol=1e-9 * settings['lr'])


def _number(value):
    """``value`` as a float if it is a finite real number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def check_run_state(state, metric_names):
    """Check the run's progress saved in a checkpoint: the log, the early stopping, the
    first loss and the time, as a run writes them and nothing else.

    Raises
    ------
    CheckpointError
        Naming the first value that no run could have saved.
    """
    def refuse(what):
        raise CheckpointError(f"the checkpoint's {what}; the file was edited or damaged")

    log = state.get('logging_dict') if isinstance(state, dict) else None
    if not isinstance(log, dict) or not all(isinstance(log.get(name), list)
                                            for name in metric_names):
        refuse(f"log lacks one of {', '.join(metric_names)}")
    lengths = {len(log[name]) for name in metric_names}
    if len(lengths) != 1 or lengths == {0}:
        refuse(f"log has lists of lengths {sorted(lengths)}, not one per finished epoch")
    for name in metric_names:
        values = [_number(value) for value in log[name]]
        ceiling = 1.0 if name.endswith('accuracy') else math.inf
        if any(value is None or not 0 <= value <= ceiling for value in values):
            refuse(f"log holds a {name} outside [0, {ceiling:g}] or not a number")
    accuracies = log['validation_accuracy']
    stopper, best = state.get('stopper'), max(accuracies)
    expected_stopper = {'best': best, 'best_epoch': accuracies.index(best),
                        'epoch': len(accuracies) - 1,
                        'epochs_without_improvement': len(accuracies) - 1 - accuracies.index(best)}
    if not isinstance(stopper, dict) or any(_number(stopper.get(key)) != value
                                            for key, value in expected_stopper.items()):
        refuse(f"early stopping state {printable(stopper)[:200]} does not match its log "
               f"(best validation accuracy {best} at epoch {accuracies.index(best) + 1})")
    initial_loss = _number(state.get('initial_loss'))
    if initial_loss is None or initial_loss <= 0:
        refuse(f"first loss {printable(state.get('initial_loss'))[:40]} is not a positive "
               f"number")
    seconds = _number(state.get('elapsed_seconds'))
    if seconds is None or seconds < 0:
        refuse("elapsed time is not a number of seconds")


def check_finite(state, what):
    """Refuse a state (nested dicts and lists of arrays, tensors and numbers) that holds
    NaN or infinity anywhere."""
    def leaves(value, key):
        if isinstance(value, dict):
            for name, item in value.items():
                yield from leaves(item, f"{key}/{name}" if key else str(name))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                yield from leaves(item, f"{key}/{index}")
        else:
            yield key, value

    for key, value in leaves(state, ''):
        if hasattr(value, 'detach'):
            value = value.detach().cpu().numpy()
        if isinstance(value, (bool, str, type(None))):
            continue
        array = np.asarray(value)
        if array.dtype.kind in 'fc' and not np.isfinite(array).all():
            raise CheckpointError(f"the checkpoint's {what} {printable(key)} holds NaN or "
                                  f"infinite values; the file was edited or damaged")


def optimizer_hyperparameters(optimizer):
    """What a PyTorch optimiser's ``param_groups`` set besides its parameters and rate
    (momentum, weight decay, betas, ...); empty for the NumPy optimisers, which save
    none of theirs (they come from the settings on resuming)."""
    groups = getattr(optimizer, 'param_groups', None)
    if groups is None:
        return []
    return [{key: value for key, value in group.items()
             if key not in ('params', 'lr', 'initial_lr')} for group in groups]


def optimizer_rates(optimizer):
    """The learning rate of every parameter group (one for the NumPy optimisers)."""
    groups = getattr(optimizer, 'param_groups', None)
    return [optimizer.lr] if groups is None else [group['lr'] for group in groups]


def set_optimizer_rate(optimizer, lr):
    if getattr(optimizer, 'param_groups', None) is None:
        optimizer.lr = lr
    else:
        for group in optimizer.param_groups:
            group['lr'] = lr


def check_optimizer(optimizer, fresh_hyperparameters, saved_settings, epochs_done):
    """Check a restored optimiser: its hyperparameters are those the settings build, and
    its learning rate that of the saved run's schedule at the last finished epoch.

    Raises
    ------
    CheckpointError
        Naming the value and the one the settings imply.
    """
    restored = optimizer_hyperparameters(optimizer)
    if restored != fresh_hyperparameters:
        raise CheckpointError(f"the checkpoint's optimiser has {printable(restored)[:200]}, "
                              f"where the settings give {fresh_hyperparameters}; the file "
                              f"was edited or damaged")
    steps = getattr(optimizer, 'step_count', 0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise CheckpointError(f"the checkpoint's optimiser step count {printable(steps)} is "
                              f"not a whole number >= 0; the file was edited or damaged")
    expected = scheduled_lr(saved_settings, epochs_done - 1)
    for rate in optimizer_rates(optimizer):
        if _number(rate) is None or not same_rate(float(rate), expected, saved_settings):
            raise CheckpointError(f"the checkpoint's learning rate is {printable(rate)}, where "
                                  f"the settings' schedule gives {expected:g} after epoch "
                                  f"{epochs_done}; the file was edited or damaged")
