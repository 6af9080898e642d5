"""CIFAR-10 in memory, and the mini-batch loaders every training script uses.

`get_cifar10` reads the python version of CIFAR-10 (downloading it on first
use) into three `ArrayDataset`s, split exactly as the official assignment
splits them; `get_dataloader` wraps them in loaders that cut mini-batches out
of the whole arrays, with no per-image Python work. Fetching and reading the
files (a download written under a temporary name, pickles read so that a
doctored file never runs code) is `cifar10_files`' job.

    >>> datasets = get_cifar10('data/')
    >>> loaders = get_dataloader(datasets, batch_size=128)
    >>> for images, labels in loaders['train']:
    ...     pass  # images: (128, 3, 32, 32) float32, labels: (128,) int64

Everything here needs only NumPy; PyTorch is imported only when a loader is
asked for tensors.
"""
import numbers
import operator
from pathlib import Path

import numpy as np

from cifar10_files import (CIFAR10_ARCHIVE, CIFAR10_META, CIFAR10_TEST_BATCH,
                           CIFAR10_TRAIN_BATCHES, CorruptDataError, ensure_cifar10_batches,
                           read_cifar10_batch, read_cifar10_classes)

# Per-channel (red, green, blue) statistics of the training images scaled to [0, 1].
CIFAR10_MEAN = (0.491, 0.482, 0.447)
CIFAR10_STD = (0.247, 0.243, 0.262)

# The official assignment draws its validation split with torch's random_split
# and this file holds that split's permutation, so that NumPy alone can apply it.
CIFAR10_SPLIT_PERMUTATION = Path(__file__).with_name('cifar10_split_permutation.npy')
CIFAR10_POOL_SIZE = 50000

SPLITS = ('train', 'validation', 'test')


class ArrayDataset:
    """A labelled data set held in memory as two NumPy arrays.

    Parameters
    ----------
    images : np.ndarray
        Inputs, shape (N, ...); stored as a C-contiguous float32 array.
    labels : np.ndarray
        Integer class labels, shape (N,); stored as int64.
    classes : sequence of str
        Class names; ``classes[label]`` names a label.

    Attributes
    ----------
    images : np.ndarray
        float32, shape (N, ...), e.g. (N, 3, 32, 32) for CIFAR-10.
    labels : np.ndarray
        int64, shape (N,).
    classes : list of str
        Class names, indexed by label.
    """

    def __init__(self, images, labels, classes):
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f'labels must be a 1-D array of integers, got {labels.dtype} '
                             f'of shape {labels.shape}; pass the class index of each example')
        if len(images) != len(labels):
            raise ValueError(f'got {len(images)} images but {len(labels)} labels; '
                             'pass exactly one label per image')
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.classes = list(classes)

    def __len__(self):
        return len(self.labels)

    @property
    def n_features(self):
        """Number of values in one example, e.g. 3 * 32 * 32 = 3072 for CIFAR-10."""
        return int(np.prod(self.images.shape[1:]))

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def __repr__(self):
        return (f'ArrayDataset({len(self)} examples of shape {self.images.shape[1:]}, '
                f'{len(self.classes)} classes)')


class ArrayLoader:
    """Mini-batches of an `ArrayDataset`, each cut out of the whole arrays at once.

    Each batch is gathered by one fancy-indexing operation on the whole image
    array, with the batch's slice of the epoch's order (a fresh permutation
    when shuffling, else 0, 1, ..., N-1): one contiguous copy per batch and no
    per-example Python work. Every batch is a new array, so changing it never
    changes the data set.

    Parameters
    ----------
    dataset : ArrayDataset
        The examples to iterate over.
    batch_size : int
        Number of examples per batch.
    shuffle : bool
        Draw a fresh random order at the start of every epoch.
    drop_last : bool
        Skip the last batch when it would be smaller than `batch_size`.
    seed : int
        Seed of `rng`, the generator of the shuffling orders.
    return_numpy : bool
        Yield NumPy arrays (PyTorch is then never imported); otherwise yield
        torch tensors.
    device : str or torch.device, optional
        Torch path only: the whole data set is copied to this device once and
        the batches are gathered there.

    Attributes
    ----------
    dataset : ArrayDataset
    batch_size : int
    shuffle : bool
    drop_last : bool
    rng : np.random.Generator
        Draws each epoch's order as ``rng.permutation(len(dataset))``. Save and
        restore ``rng.bit_generator.state`` to resume a run exactly.
    """

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=0,
                 return_numpy=False, device=None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)
        self._images, self._labels = dataset.images, dataset.labels
        self._as_index = lambda order: order
        self._gather = lambda array, index: array.take(index, axis=0)
        if not return_numpy:
            import torch
            if device is None or torch.device(device).type == 'cpu':
                # On the CPU, gathering with NumPy and wrapping the result (no
                # copy) is several times faster than torch's index_select.
                self._gather = lambda array, index: torch.from_numpy(array.take(index, axis=0))
            else:
                self._images = torch.as_tensor(dataset.images, device=device)
                self._labels = torch.as_tensor(dataset.labels, device=device)
                # Each epoch's order moves to the device once; batches are gathered there.
                self._as_index = lambda order: torch.from_numpy(order).to(device)
                self._gather = lambda tensor, index: tensor.index_select(0, index)

    def __len__(self):
        """Number of batches in one epoch."""
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        n_examples = len(self.dataset)
        order = self.rng.permutation(n_examples) if self.shuffle else np.arange(n_examples)
        order = self._as_index(order)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start:start + self.batch_size]
            yield self._gather(self._images, batch), self._gather(self._labels, batch)


def get_dataloader(dataset, batch_size, return_numpy=False, seed=0, device=None):
    """Wrap the three splits of a data set in mini-batch loaders.

    Parameters
    ----------
    dataset : dict of str to ArrayDataset
        The output of `get_cifar10` (or `data_utils.get_dataset`), with keys
        'train', 'validation' and 'test'.
    batch_size : int
        Examples per batch, between 1 and the size of the training split.
    return_numpy : bool
        Yield NumPy arrays instead of torch tensors; PyTorch is then never
        imported.
    seed : int
        Seed of each loader's `rng`; the same seed gives the same batches.
    device : str or torch.device, optional
        Torch path only: move the whole arrays to this device once and gather
        the batches there.

    Returns
    -------
    dict of str to ArrayLoader
        'train' is shuffled afresh every epoch and drops its last incomplete
        batch; 'validation' and 'test' run in order over every example. Each
        yields ``(images, labels)``: images float32 (B, ...) such as
        (B, 3, 32, 32), labels int64 (B,).
    """
    missing = [split for split in SPLITS if split not in dataset]
    if missing:
        raise ValueError(f'dataset lacks the split(s) {missing}; pass the dict returned by '
                         f"get_cifar10 or data_utils.get_dataset (keys {', '.join(SPLITS)})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f'batch_size must be a whole number of examples, got {batch_size!r}')
    n_train = len(dataset['train'])
    if not 1 <= batch_size <= n_train:
        raise ValueError(f'batch_size must be between 1 and {n_train} (the size of the '
                         f'training split), got {batch_size}')
    if return_numpy and device is not None:
        raise ValueError(f'device={device!r} needs torch tensors: drop return_numpy=True, '
                         'or drop device to get NumPy arrays in main memory')
    return {split: ArrayLoader(dataset[split], int(batch_size), shuffle=split == 'train',
                               drop_last=split == 'train', seed=seed,
                               return_numpy=return_numpy, device=device)
            for split in SPLITS}


def check_validation_size(validation_size, pool_size):
    """Return `validation_size` as an int after checking 0 <= it < `pool_size`."""
    if isinstance(validation_size, bool) or not isinstance(validation_size, numbers.Integral):
        raise TypeError(f'validation_size must be a whole number of examples, '
                        f'got {validation_size!r}')
    if not 0 <= validation_size < pool_size:
        raise ValueError(f'validation_size must be between 0 and {pool_size - 1} (it is drawn '
                         f'from the {pool_size} training examples, which must keep at least '
                         f'one for training), got {validation_size}')
    return operator.index(validation_size)


def standardise_uint8(raw_images, mean, std):
    """Scale uint8 images to [0, 1] and standardise each channel, as float32.

    Parameters
    ----------
    raw_images : np.ndarray
        uint8, shape (N, C, ...).
    mean, std : sequence of float
        One value per channel, for pixels scaled to [0, 1].

    Returns
    -------
    np.ndarray
        float32 of the same shape, ``(raw / 255 - mean) / std`` per channel,
        computed in one multiply (which converts to float32) and one in-place
        subtraction, without float64 temporaries.
    """
    # Viewed as (N, C, pixels), each channel's pixels are one long inner loop;
    # broadcasting over (N, C, H, W) would run inner loops of only W values,
    # several times slower.
    n_images, n_channels = raw_images.shape[:2]
    pixels = raw_images.reshape(n_images, n_channels, -1)
    mean = np.asarray(mean, dtype=np.float64).reshape(n_channels, 1)
    std = np.asarray(std, dtype=np.float64).reshape(n_channels, 1)
    images = np.empty(pixels.shape, dtype=np.float32)
    np.multiply(pixels, (1.0 / (255.0 * std)).astype(np.float32), out=images)
    images -= (mean / std).astype(np.float32)
    return images.reshape(raw_images.shape)


def make_splits(pool_images, pool_labels, test_images, test_labels, classes, order,
                validation_size, mean=None, std=None):
    """Split the training pool in the given order and wrap the three splits.

    The training split is the first ``len(order) - validation_size`` examples
    of `order`, the validation split the last `validation_size`, each in that
    order (as `torch.utils.data.random_split` cuts its permutation). Both end
    up as contiguous halves of one array, so no copy of the float images is
    ever made.

    Parameters
    ----------
    pool_images, pool_labels : np.ndarray
        Every training example, (N, ...) and (N,).
    test_images, test_labels : np.ndarray
        The test split, kept in its order.
    classes : sequence of str
        Class names.
    order : np.ndarray
        A permutation of ``range(N)``.
    validation_size : int
        Examples moved from the pool to the validation split.
    mean, std : sequence of float, optional
        When given, the images are uint8 and are standardised per channel
        with `standardise_uint8`.

    Returns
    -------
    dict of str to ArrayDataset
        Keys 'train', 'validation', 'test'.
    """
    validation_size = check_validation_size(validation_size, len(pool_labels))
    pool_images, pool_labels = pool_images[order], pool_labels[order]
    if mean is not None:
        pool_images = standardise_uint8(pool_images, mean, std)
        test_images = standardise_uint8(test_images, mean, std)
    n_train = len(pool_labels) - validation_size
    return {
        'train': ArrayDataset(pool_images[:n_train], pool_labels[:n_train], classes),
        'validation': ArrayDataset(pool_images[n_train:], pool_labels[n_train:], classes),
        'test': ArrayDataset(test_images, test_labels, classes),
    }


def load_split_permutation(path=CIFAR10_SPLIT_PERMUTATION):
    """The permutation of CIFAR-10's 50 000 training indices that the official split uses.

    The official assignment splits with ``random_split(train, [50000 - v, v],
    generator=torch.Generator().manual_seed(42))``, which draws
    ``torch.randperm(50000, generator=torch.Generator().manual_seed(42))`` and
    gives training its first ``50000 - v`` indices and validation its last
    ``v``, whatever ``v`` is. The file holds that permutation as uint16, so that
    the NumPy path needs no torch. It was made, and is remade, with::

        import numpy as np, torch
        permutation = torch.randperm(50000, generator=torch.Generator().manual_seed(42))
        np.save('cifar10_split_permutation.npy', permutation.numpy().astype(np.uint16))

    Raises
    ------
    CorruptDataError
        The file is missing, unreadable, or not a uint16 permutation of 0..49999.
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

    For the full 50 000 it is `load_split_permutation()`: training takes its
    first ``50000 - v`` indices and validation its last ``v``. A smaller pool
    (a trimmed copy, a test's tiny CIFAR-10) takes the same permutation without
    the indices it lacks.
    """
    if n_pool > CIFAR10_POOL_SIZE:
        raise CorruptDataError(f'the training batches hold {n_pool} images, more than the '
                               f'{CIFAR10_POOL_SIZE} of CIFAR-10. Replace them with the '
                               f'official {CIFAR10_ARCHIVE}.')
    permutation = load_split_permutation()
    return permutation[permutation < n_pool]


def get_cifar10(data_dir='data/', validation_size=5000):
    """Load CIFAR-10 into memory, normalised, with the official validation split.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding (or to receive) cifar-10-batches-py/ and
        cifar-10-python.tar.gz; torchvision's CIFAR10 root works as is.
    validation_size : int
        Number of training images moved to the validation split.

    Returns
    -------
    dict of str to ArrayDataset
        'train' (50000 - validation_size images), 'validation' and 'test'
        (10000 images, in file order). The training and validation splits are
        the official assignment's, member for member and in its order
        (`official_split_order`). Images are float32 (N, 3, 32, 32), as
        torchvision's ToTensor lays them out, with ``(x / 255 - CIFAR10_MEAN)
        / CIFAR10_STD`` per channel (within 1e-6 of torchvision's float32
        result); labels int64.

    Raises
    ------
    DownloadError
        The data is absent and cannot be downloaded.
    CorruptDataError
        A file on disk is truncated, incomplete, not CIFAR-10, or asks to run
        code (the pickles are read by `CifarUnpickler`, which refuses that).
    """
    batches_dir = ensure_cifar10_batches(data_dir)
    classes = read_cifar10_classes(batches_dir / CIFAR10_META)
    train_batches = [read_cifar10_batch(batches_dir / name) for name in CIFAR10_TRAIN_BATCHES]
    pool_images = np.concatenate([raw_images for raw_images, _ in train_batches])
    pool_labels = np.concatenate([labels for _, labels in train_batches])
    del train_batches
    test_images, test_labels = read_cifar10_batch(batches_dir / CIFAR10_TEST_BATCH)
    return make_splits(pool_images, pool_labels, test_images, test_labels, classes,
                       official_split_order(len(pool_labels)), validation_size,
                       mean=CIFAR10_MEAN, std=CIFAR10_STD)
