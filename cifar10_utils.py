"""CIFAR-10 in memory, split as the official assignment splits it, and its mini-batch loaders.

    >>> datasets = get_cifar10('data/')
    >>> loaders = get_dataloader(datasets, batch_size=128)
    >>> for images, labels in loaders['train']:
    ...     pass  # images: (128, 3, 32, 32) float32, labels: (128,) int64

Finding, downloading and safely reading CIFAR-10's files is `lab.cifar10_files`'
job; the generic loader is `lab.loaders`'. Everything here needs only NumPy;
PyTorch is imported only when a loader is asked for tensors.
"""
from pathlib import Path

import numpy as np

from lab.cifar10_files import (CIFAR10_ARCHIVE, CIFAR10_META, CIFAR10_TEST_BATCH,
                               CIFAR10_TRAIN_BATCHES, ensure_cifar10_batches, read_cifar10_batch,
                               read_cifar10_classes)
from lab.downloads import CorruptDataError
from lab.loaders import apply_per_channel_affine, make_loaders, make_splits

# Per-channel (red, green, blue) statistics of the training images scaled to [0, 1].
CIFAR10_MEAN = (0.491, 0.482, 0.447)
CIFAR10_STD = (0.247, 0.243, 0.262)

# The official assignment draws its validation split with torch's random_split
# and this file holds that split's permutation, so that NumPy alone can apply it.
CIFAR10_SPLIT_PERMUTATION = Path(__file__).with_name('cifar10_split_permutation.npy')
CIFAR10_POOL_SIZE = 50000


def normalise(raw_images):
    """uint8 images (N, 3, 32, 32) scaled to [0, 1] and standardised per channel, float32.

    The formula is applied by a fast route that needs no temporary arrays (see
    `lab.loaders.apply_per_channel_affine`); the result is the formula's, rounded once.
    """
    mean, std = np.reshape(CIFAR10_MEAN, (3, 1, 1)), np.reshape(CIFAR10_STD, (3, 1, 1))
    return apply_per_channel_affine(lambda raw: (raw / 255 - mean) / std, raw_images)


def get_cifar10(data_dir='data/', validation_size=5000):
    """Load CIFAR-10 into memory, normalised, with the official validation split.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding (or to receive) cifar-10-batches-py/ and
        cifar-10-python.tar.gz; torchvision's CIFAR10 root works as is.
    validation_size : int
        Number of training images moved to the validation split, at least 1.

    Returns
    -------
    dict of str to ArrayDataset
        'train' (50000 - validation_size images), 'validation' and 'test'
        (10000 images, in file order). The training and validation splits are
        the official assignment's, member for member and in its order
        (`official_split_order`). Images are float32 (N, 3, 32, 32), as
        torchvision's ToTensor lays them out, `normalise`d (within 1e-6 of
        torchvision's float32 result); labels int64.

    Raises
    ------
    DownloadError
        The data is absent and cannot be downloaded.
    CorruptDataError
        A file on disk is truncated, incomplete, not CIFAR-10, or asks to run
        code (the pickles are read by a restricted unpickler, which refuses that).
    """
    batches_dir = ensure_cifar10_batches(data_dir)
    classes = read_cifar10_classes(batches_dir / CIFAR10_META)
    pool_images, pool_labels = read_training_pool(batches_dir)
    test_images, test_labels = read_cifar10_batch(batches_dir / CIFAR10_TEST_BATCH)
    return make_splits(pool_images, pool_labels, test_images, test_labels, classes,
                       official_split_order(len(pool_labels)), validation_size,
                       transform=normalise)


def read_training_pool(batches_dir):
    """The 50 000 raw training images (uint8) and labels of the five training batches."""
    batches = [read_cifar10_batch(batches_dir / name) for name in CIFAR10_TRAIN_BATCHES]
    return (np.concatenate([raw_images for raw_images, _ in batches]),
            np.concatenate([labels for _, labels in batches]))


def get_dataloader(dataset, batch_size, return_numpy=False, seed=0, device=None):
    """Wrap the three splits of a data set in mini-batch loaders.

    Parameters
    ----------
    dataset : dict of str to ArrayDataset
        The output of `get_cifar10` (or `lab.datasets.get_dataset`).
    batch_size : int
        Examples per batch, between 1 and the size of the training split.
    return_numpy : bool
        Yield NumPy arrays instead of torch tensors; PyTorch is then never imported.
    seed : int
        Seed of each loader's shuffling; the same seed gives the same batches.
    device : str or torch.device, optional
        Torch tensors only: move the whole arrays to this device once.

    Returns
    -------
    dict of str to ArrayLoader
        'train' is shuffled afresh every epoch and drops its last incomplete
        batch; 'validation' and 'test' run in order over every example. Each
        yields ``(images, labels)``: images float32 (B, 3, 32, 32), labels int64 (B,).
    """
    return make_loaders(dataset, batch_size, return_numpy=return_numpy, seed=seed,
                        device=device)


def load_split_permutation(path=CIFAR10_SPLIT_PERMUTATION):
    """The permutation of CIFAR-10's 50 000 training indices that the official split uses.

    The official assignment splits with ``random_split(train, [50000 - v, v],
    generator=torch.Generator().manual_seed(42))``, which draws
    ``torch.randperm(50000, generator=torch.Generator().manual_seed(42))`` and
    gives training its first ``50000 - v`` indices and validation its last
    ``v``. The file holds that permutation as uint16, so that the NumPy path
    needs no torch. It was made, and is remade, with::

        import numpy as np, torch
        permutation = torch.randperm(50000, generator=torch.Generator().manual_seed(42))
        np.save('cifar10_split_permutation.npy', permutation.numpy().astype(np.uint16))

    Raises CorruptDataError if the file is missing, unreadable, or not a uint16
    permutation of 0..49999.
    """
    fix = (f'Restore it with `git checkout -- {Path(path).name}`, or remake it as the '
           'docstring of cifar10_utils.load_split_permutation shows.')
    try:
        permutation = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise CorruptDataError(f'{path} cannot be read ({error}). {fix}') from error
    if not (isinstance(permutation, np.ndarray) and permutation.shape == (CIFAR10_POOL_SIZE,)
            and permutation.dtype == np.uint16
            and np.array_equal(np.bincount(permutation), np.ones(CIFAR10_POOL_SIZE))):
        raise CorruptDataError(f'{path} is damaged: it is not a uint16 permutation of the '
                               f'{CIFAR10_POOL_SIZE} training indices. {fix}')
    return permutation.astype(np.intp)


def official_split_order(n_pool):
    """The order in which the official split takes CIFAR-10's `n_pool` training images.

    For the full 50 000 it is `load_split_permutation()`. A smaller pool (a
    trimmed copy, a test's tiny CIFAR-10) takes the same permutation without
    the indices it lacks.
    """
    if n_pool > CIFAR10_POOL_SIZE:
        raise CorruptDataError(f'the training batches hold {n_pool} images, more than the '
                               f'{CIFAR10_POOL_SIZE} of CIFAR-10. Replace them with the '
                               f'official {CIFAR10_ARCHIVE}.')
    permutation = load_split_permutation()
    return permutation[permutation < n_pool]
