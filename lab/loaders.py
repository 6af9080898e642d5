"""Labelled data held in memory, and the loaders that cut mini-batches out of it.

`ArrayDataset` holds a split as two arrays; `ArrayLoader` yields its
mini-batches, each gathered from the whole arrays in one operation, with no
per-example Python work; `make_splits` cuts a training pool into training and
validation splits in a given order. Every data set (`cifar10_utils`,
`lab.datasets`) is built from these. Only NumPy is needed; PyTorch is imported
only when a loader is asked for tensors.
"""
import contextlib
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
        self._torch, self._device = None, None  # torch, for tensors; a device off the CPU
        if not return_numpy:
            import torch
            self._torch = torch
            if device is not None and torch.device(device).type != 'cpu':
                self._device = torch.device(device)
                self._images = torch.as_tensor(dataset.images, device=device)
                self._labels = torch.as_tensor(dataset.labels, device=device)

    def __len__(self):
        """Number of batches in one epoch."""
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return -(-len(self.dataset) // self.batch_size)

    def __iter__(self):
        n_examples = len(self.dataset)
        order = self.rng.permutation(n_examples) if self.shuffle else np.arange(n_examples)
        if self._device is not None:  # the epoch's order moves to the device once
            order = self._torch.from_numpy(order).to(self._device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start:start + self.batch_size]
            yield self._gather(self._images, batch), self._gather(self._labels, batch)

    def _gather(self, array, index):
        """The rows ``index`` of ``array``, as this loader yields them."""
        if self._device is not None:
            return array.index_select(0, index)
        rows = array.take(index, axis=0)
        # On the CPU, gathering with NumPy and wrapping the result (no copy) is
        # several times faster than torch's index_select.
        return rows if self._torch is None else self._torch.from_numpy(rows)


SPLITS = ('train', 'validation', 'test')


def make_loaders(datasets, batch_size, return_numpy=False, seed=0, device=None):
    """The three loaders of ``cifar10_utils.get_dataloader`` (see there), for any data set.

    Raises
    ------
    ValueError, TypeError
        For a dict without the three splits, a batch size that is not a whole
        number between 1 and the training split's size, or a device with NumPy arrays.
    """
    missing = [split for split in SPLITS if split not in datasets]
    if missing:
        raise ValueError(f'dataset lacks the split(s) {missing}; pass the dict returned by '
                         f"get_cifar10 or lab.datasets.get_dataset (keys {', '.join(SPLITS)})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f'batch_size must be a whole number of examples, got {batch_size!r}')
    n_train = len(datasets['train'])
    if not 1 <= batch_size <= n_train:
        raise ValueError(f'batch_size must be between 1 and {n_train} (the size of the '
                         f'training split), got {batch_size}')
    if return_numpy and device is not None:
        raise ValueError(f'device={device!r} needs torch tensors: drop return_numpy=True, '
                         'or drop device to get NumPy arrays in main memory')
    return {split: ArrayLoader(datasets[split], int(batch_size), shuffle=split == 'train',
                               drop_last=split == 'train', seed=seed,
                               return_numpy=return_numpy, device=device)
            for split in SPLITS}


def check_validation_size(validation_size, pool_size):
    """Return `validation_size` as an int after checking 1 <= it < `pool_size`.

    The one check of the validation size, for the data sets and the training
    scripts alike: the best epoch is chosen on the validation split, so it may
    not be empty, and training keeps at least one example.

    Raises
    ------
    TypeError
        If it is not a whole number.
    ValueError
        If it lies outside [1, pool_size - 1], naming that range.
    """
    if isinstance(validation_size, bool) or not isinstance(validation_size, numbers.Integral):
        raise TypeError(f'validation_size must be a whole number of examples, '
                        f'got {validation_size!r}')
    if not 1 <= validation_size < pool_size:
        raise ValueError(f'validation_size must lie in [1, {pool_size - 1}] for the '
                         f'{pool_size} training examples (the best epoch is chosen on the '
                         f'validation split, and training keeps the rest), '
                         f'got {validation_size}')
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
                               f'rest (validation_size must lie in [1, {pool_size - 1}]): '
                               f'pass a smaller --validation_size, or replace the files with '
                               f'the whole data set')


def standardise_uint8(raw_images, mean, std):
    """uint8 images (N, C, ...) scaled to [0, 1] and standardised per channel, as float32.

    ``mean`` and ``std`` hold one value per channel, for pixels scaled to [0, 1].
    """
    channel_shape = (len(mean),) + (1,) * (raw_images.ndim - 2)
    mean, std = np.reshape(mean, channel_shape), np.reshape(std, channel_shape)
    return apply_per_channel_affine(lambda raw: (raw / 255 - mean) / std, raw_images)


def apply_per_channel_affine(formula, raw_images):
    """``formula(raw_images)`` as float32, for a formula that is affine in the raw values
    of each channel, as a normalisation ``(raw / 255 - mean) / std`` is.

    A speed trick, so that a normalisation can stay written as its formula. The
    formula is evaluated, in float64, on a raw value of 0 and of 1 in every
    channel: that gives each channel's shift and scale. The images are then
    ``raw * scale + shift``: one multiply, which converts to float32 straight
    into the result, and one addition in place, each over runs of one channel's
    pixels. Evaluated on the images themselves, each step of the formula made a
    temporary array of the data set's size: on CIFAR-10 the load took about 1.5 times
    the CPU time and 0.6 GB more memory (``benchmark.py data``, 2026-11-30).

    Parameters
    ----------
    formula : callable
        Maps raw values of shape (1, C, 1, ...) to the normalised ones.
    raw_images : np.ndarray
        (N, C, ...), any real dtype (uint8 for images).

    Raises
    ------
    ValueError
        If the formula is not affine (checked at the raw value 255).
    """
    n_images, n_channels = raw_images.shape[:2]
    probe_shape = (1, n_channels) + (1,) * (raw_images.ndim - 2)
    shift = np.asarray(formula(np.zeros(probe_shape)), dtype=np.float64)
    scale = np.asarray(formula(np.ones(probe_shape)), dtype=np.float64) - shift
    if not np.allclose(formula(np.full(probe_shape, 255.0)), shift + 255 * scale,
                       rtol=1e-9, atol=1e-9):
        raise ValueError('the formula is not affine in the raw values (a scale and a shift '
                         'per channel); apply it to the images directly')
    pixels = raw_images.reshape(n_images, n_channels, -1)
    images = np.empty(pixels.shape, dtype=np.float32)
    np.multiply(pixels, scale.reshape(n_channels, 1).astype(np.float32), out=images)
    images += shift.reshape(n_channels, 1).astype(np.float32)
    return images.reshape(raw_images.shape)


@contextlib.contextmanager
def in_ordinary_pages():
    """Give the large arrays NumPy makes inside the block ordinary 4 kB memory pages.

    NumPy asks Linux for transparent huge pages (2 MB) for every array of 4 MB
    or more. Where memory is fragmented, as on a machine that has run other jobs,
    the kernel compacts memory to find each huge page the first time it is
    written: loading CIFAR-10 (1.2 GB written, 720 MB of them the float32 images)
    spent 1.2-2.4 s in the kernel, against 0.3-0.6 s in ordinary pages, and the
    epochs that read the images were no faster for the huge pages
    (docs/speed.md, "The main job"). With a NumPy that lacks the switch, this does nothing.
    """
    set_huge_page_advice = getattr(np._core.multiarray, '_set_madvise_hugepage', None)
    if set_huge_page_advice is None:
        yield
        return
    previous = set_huge_page_advice(False)
    try:
        yield
    finally:
        set_huge_page_advice(previous)


def make_splits(pool_images, pool_labels, test_images, test_labels, classes, order,
                validation_size, transform=None):
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
        Examples moved from the pool to the validation split (`check_validation_size`).
    transform : callable, optional
        The normalisation: raw images in, float32 images of the same shape
        out. Applied to the pool's images, once in order, and to the test images.

    Returns
    -------
    dict of str to ArrayDataset
        Keys 'train', 'validation', 'test'.
    """
    check_pool_holds(validation_size, len(pool_labels))
    validation_size = check_validation_size(validation_size, len(pool_labels))
    with in_ordinary_pages():
        pool_images, pool_labels = pool_images[order], pool_labels[order]
        if transform is not None:
            pool_images = transform(pool_images)  # frees the raw pool before the test split
            test_images = transform(test_images)
    n_train = len(pool_labels) - validation_size
    return {
        'train': ArrayDataset(pool_images[:n_train], pool_labels[:n_train], classes),
        'validation': ArrayDataset(pool_images[n_train:], pool_labels[n_train:], classes),
        'test': ArrayDataset(test_images, test_labels, classes),
    }
