"""Labelled data held in memory, and the loaders that cut mini-batches out of it.

`ArrayDataset` holds a split as two arrays; `ArrayLoader` yields its
mini-batches, each gathered from the whole arrays in one operation, with no
per-example Python work; `make_splits` cuts a training pool into training and
validation splits in a given order. Every data set (`cifar10_utils`,
`lab.datasets`) is built from these. Only NumPy is needed; PyTorch is imported
only when a loader is asked for tensors.
"""
import numbers
import operator

import numpy as np

from lab.downloads import CorruptDataError


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


def check_pool_holds(validation_size, pool_size):
    """Refuse a `validation_size` that leaves nothing to train on, as a data problem.

    The training scripts check their settings against each data set's documented
    size before loading it; a size that passed there and fails here means the
    files read hold fewer examples than documented.

    Raises
    ------
    CorruptDataError
        If `validation_size` is a whole number >= `pool_size`.
    """
    if (isinstance(validation_size, numbers.Integral) and not isinstance(validation_size, bool)
            and validation_size >= pool_size > 0):
        raise CorruptDataError(f'the data read holds {pool_size} training examples, too few '
                               f'to hold out {validation_size} for validation and train on the '
                               f'rest (validation_size must be between 0 and {pool_size - 1}): '
                               f'pass a smaller --validation_size, or replace the files with '
                               f'the whole data set')


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
    check_pool_holds(validation_size, len(pool_labels))
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
