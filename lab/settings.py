"""The settings of a training run: which arguments define it, and whether they can work.

``run_settings`` is called first thing in each script's ``train``, with the
settings that define the run (``settings_of``: the parameters of ``train``): it
checks them together, against the data set's size and the machine's memory,
before any data is loaded or anything is written. A setting that cannot work is a
``ConfigurationError``, which the command line turns into one line and exit 2.
"""
import inspect
import os

import numpy as np

from lab.datasets import dataset_shape, default_validation_size, pool_size
from lab.loaders import check_validation_size
from lab.optimizers import check_sgd_only_options

NOT_SETTINGS = ('data_dir', 'out_dir', 'resume', 'plot', 'progress', 'device')
"""Arguments of ``train`` that say where and how to run, not what the run is."""


def settings_of(train, arguments):
    """The settings that define a run of ``train``: its arguments by name, in the order of
    its signature, less the paths and display flags (``NOT_SETTINGS``).

    ``train``'s signature is the one list of the settings; ``arguments`` are its
    ``locals()`` on entry, before any other name is bound.
    """
    return {name: arguments[name] for name in inspect.signature(train).parameters
            if name not in NOT_SETTINGS}


class ConfigurationError(ValueError):
    """Settings that cannot work together, or with the data or checkpoint given."""


def run_settings(settings):
    """The settings that define a run, checked together; ``hidden_dims`` as a list of ints.

    Parameters
    ----------
    settings : dict
        Each setting by name, as ``train`` was given it: ``hidden_dims``,
        ``lr``, ``batch_size``, ``epochs``, ``seed``, ``dataset``,
        ``validation_size``, ``activation``, ``optimizer``, ``momentum``,
        ``weight_decay``, ``scheduler``, ``patience``, ``use_batch_norm``,
        ``dropout`` (and ``dtype`` for NumPy). Paths and display flags
        (``NOT_SETTINGS``) are not among them.

    Returns
    -------
    dict
        A copy of ``settings``, the form saved in checkpoints and summaries.

    Raises
    ------
    ConfigurationError
        For settings that cannot work together; nothing has been written.
    """
    settings = dict(settings)
    settings['hidden_dims'] = [int(width) for width in settings['hidden_dims']]
    try:
        check_sgd_only_options(settings['optimizer'], settings['momentum'])
    except ValueError as error:
        raise ConfigurationError(f"--{error}") from error
    if not 0 <= settings['dropout'] < 1:
        raise ConfigurationError(f"--dropout must lie in [0, 1) (the probability of dropping "
                                 f"a hidden unit), got {settings['dropout']}")
    if settings['use_batch_norm'] and settings['batch_size'] < 2:
        raise ConfigurationError("--use_batch_norm needs --batch_size of at least 2: batch "
                                 "statistics of one sample are undefined")
    check_split_sizes(settings['dataset'], settings['validation_size'], settings['batch_size'])
    check_memory(settings)
    return settings


def check_split_sizes(dataset, validation_size, batch_size):
    """Check the validation and batch sizes against the data set's size, without loading it.

    Raises
    ------
    ConfigurationError
        For a validation size outside ``lab.loaders.check_validation_size``'s
        bounds, or a batch larger than the training split.
    """
    pool = pool_size(dataset)
    if validation_size is None:
        validation_size = default_validation_size(dataset)
    try:
        validation_size = check_validation_size(validation_size, pool)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(f"--{error}") from error
    if batch_size > pool - validation_size:
        raise ConfigurationError(f"--batch_size {batch_size} is larger than the "
                                 f"{pool - validation_size} training samples of {dataset}")


def memory_estimate(settings):
    """The memory a run of ``settings`` needs, estimated before anything is allocated.

    Counted: four copies of the parameters (the parameters, their gradients,
    the best model's copy, an update's temporaries) and the optimiser's
    state (one more copy for momentum, two for Adam); six arrays of batch size
    by width per hidden layer (outputs and gradients of the linear layer, the
    batch norm and the activation); the data set in float32. Not counted:
    Python, the libraries and passing temporaries. For four settings of the
    NumPy script it came to 72-103% of the measured peak memory, less that of
    Python and NumPy alone.

    Returns
    -------
    dict of str to int
        Bytes by part, named for the message of ``check_memory``.
    """
    n_inputs, n_classes, n_examples = dataset_shape(settings['dataset'])
    hidden_dims = settings['hidden_dims']
    widths = [n_inputs, *hidden_dims, n_classes]
    n_parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:]))
    if settings['use_batch_norm']:
        n_parameters += 4 * sum(hidden_dims)  # scale, shift, running mean and variance
    state_copies = {'adam': 2, 'sgd': 1 if settings['momentum'] else 0}[settings['optimizer']]
    itemsize = np.dtype(settings.get('dtype', 'float32')).itemsize
    per_example = n_inputs + 6 * sum(hidden_dims) + 2 * n_classes
    return {
        'parameters, gradients and optimiser state': (4 + state_copies) * n_parameters * itemsize,
        'activations of a batch': settings['batch_size'] * per_example * itemsize,
        'the data set': n_examples * n_inputs * np.dtype('float32').itemsize,
    }


def available_memory():
    """Bytes of memory this process can have now: Linux's ``MemAvailable``, else the
    machine's physical memory, else None (then nothing is checked)."""
    try:
        with open('/proc/meminfo') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(settings):
    """Refuse settings whose ``memory_estimate`` exceeds ``available_memory``.

    Raises
    ------
    ConfigurationError
        Naming the estimate, its parts and the memory available.
    """
    parts = memory_estimate(settings)
    needed, available = sum(parts.values()), available_memory()
    if available is not None and needed > available:
        details = ', '.join(f"{name} {readable_size(size)}" for name, size in parts.items())
        raise ConfigurationError(
            f"these settings need about {readable_size(needed)} of memory ({details}) but "
            f"{readable_size(available)} is available; use narrower --hidden_dims or a "
            f"smaller --batch_size")


def readable_size(size):
    """``size`` bytes as text, in the largest binary unit that keeps the number at least 1."""
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if size < 1024:
            return f"{size:.3g} {unit}"
        size /= 1024
    return f"{size:.3g} TiB"
