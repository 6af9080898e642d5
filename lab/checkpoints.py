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
import pickle
import zipfile
import zlib

import numpy as np

from lab.fileio import atomic_write

ARRAY_REFERENCE = '__array__'
META_KEY = '__meta__'
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, RuntimeError,
               pickle.UnpicklingError, zipfile.BadZipFile, zlib.error)
"""What reading a damaged file raises, in NumPy, zipfile, pickle and PyTorch."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the run."""


def run_name(framework, settings):
    """A folder name that says what the run is and is unique to its settings.

    The readable part names the main settings; the hash covers every setting,
    so two runs that differ in anything never share a name.
    """
    hidden = 'x'.join(str(width) for width in settings['hidden_dims']) or 'linear'
    if settings['use_batch_norm']:
        hidden += '_batchnorm'
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
        If the file is missing, truncated, damaged, not a checkpoint of this
        framework, or holds anything but plain data; nothing is run from it.
    """
    try:
        contents = files.read(path)
        for key in ('settings', 'run', 'model', 'best_model', 'optimizer'):
            contents[key]
    except READ_ERRORS as error:
        raise CheckpointError(f"not a readable checkpoint: {path} ({type(error).__name__}: "
                              f"{error}); pass the checkpoint{files.suffix} of a run of "
                              f"{files.script}") from error
    return contents


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
