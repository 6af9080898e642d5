"""Every data set the MLPs train on, behind one function: `get_dataset`.

    >>> datasets = get_dataset('fashion_mnist')      # or 'cifar10', 'mnist', 'spiral'
    >>> loaders = get_dataloader(datasets, batch_size=128)

`get_dataset` returns the same three-way dict of `ArrayDataset`s as
`cifar10_utils.get_cifar10`, so `get_dataloader` and the training scripts work
unchanged on each data set:

- 'cifar10': see `cifar10_utils.get_cifar10`; images (N, 3, 32, 32).
- 'mnist', 'fashion_mnist': images (N, 1, 28, 28), read from IDX files
  (`read_idx`) and standardised with the mean and standard deviation of the
  whole 60 000-image training pool (before the validation split is drawn, so
  the numbers do not depend on `validation_size`).
- 'spiral': the toy problem of CS231n, K interleaved spiral arms in the plane;
  inputs (N, 2), generated from a seed, nothing on disk.
"""
import gzip
import math
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lab.downloads import CorruptDataError, DownloadError, download_file
from cifar10_utils import CIFAR10_POOL_SIZE, get_cifar10
from lab.cifar10_files import CIFAR10_ARCHIVE, CIFAR10_FOLDER
from cifar10_utils import get_dataloader as cifar10_get_dataloader
from lab.loaders import (ArrayDataset, ArrayLoader, check_pool_holds, check_validation_size,
                         make_splits, standardise_uint8)

__all__ = ['DATASETS', 'ArrayDataset', 'ArrayLoader', 'CorruptDataError', 'DownloadError',
           'dataset_shape', 'default_validation_size', 'get_dataloader', 'get_dataset',
           'get_fashion_mnist', 'get_mnist', 'get_spiral', 'pool_size', 'read_idx']

DATASETS = ('cifar10', 'fashion_mnist', 'mnist', 'spiral')
IMAGE_VALIDATION_SIZE = 5000
# MNIST and Fashion-MNIST draw their validation split with this seed whatever
# the training seed, so every run validates on the same images.
IMAGE_SPLIT_SEED = 0

# Where Debian's package dataset-fashion-mnist installs the four gzipped IDX files.
DEBIAN_FASHION_MNIST_DIR = Path('/usr/share/datasets/fashion-mnist')

SPIRAL_CLASSES = 3
SPIRAL_POINTS_PER_CLASS = 500
SPIRAL_NOISE = 0.2


class IdxImageSet(NamedTuple):
    """A data set of IDX files: its name, its folder under data_dir (torchvision's
    names), a download URL prefix, the md5 of each gzipped file, its class names."""
    name: str
    folder: str
    url: str
    md5s: dict
    classes: tuple


IDX_TRAIN_IMAGES = 'train-images-idx3-ubyte'
IDX_TRAIN_LABELS = 'train-labels-idx1-ubyte'
IDX_TEST_IMAGES = 't10k-images-idx3-ubyte'
IDX_TEST_LABELS = 't10k-labels-idx1-ubyte'
IDX_FILES = (IDX_TRAIN_IMAGES, IDX_TRAIN_LABELS, IDX_TEST_IMAGES, IDX_TEST_LABELS)

MNIST = IdxImageSet(
    name='MNIST',
    folder='MNIST',
    url='https://ossci-datasets.s3.amazonaws.com/mnist/',
    # The md5 sums torchvision lists for these files; this offline machine
    # could not check them against a download. `_read_image_pair` also checks
    # the structure of every file, whatever its source.
    md5s={f'{IDX_TRAIN_IMAGES}.gz': 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
          f'{IDX_TRAIN_LABELS}.gz': 'd53e105ee54ea40749a09fcbcd1e9432',
          f'{IDX_TEST_IMAGES}.gz': '9fb629c4189551a2d022fa330f9573f3',
          f'{IDX_TEST_LABELS}.gz': 'ec29112dd5afa0611ce80d1b7f02629c'},
    classes=tuple(str(digit) for digit in range(10)),
)

FASHION_MNIST = IdxImageSet(
    name='Fashion-MNIST',
    folder='FashionMNIST',
    url='http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    # The md5 sums published in Fashion-MNIST's README. Debian recompressed its
    # copies, so files found locally are checked by structure only.
    md5s={f'{IDX_TRAIN_IMAGES}.gz': '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
          f'{IDX_TRAIN_LABELS}.gz': '25c81989df183df01b3e8a0aad5dffbe',
          f'{IDX_TEST_IMAGES}.gz': 'bef4ecab320f06d8554ea6380940ec79',
          f'{IDX_TEST_LABELS}.gz': 'bb300cfdad3c16e7a12a480ee83cd310'},
    classes=('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
             'Sneaker', 'Bag', 'Ankle boot'),
)

IDX_IMAGE_SETS = {'mnist': (MNIST, ()),
                  'fashion_mnist': (FASHION_MNIST, (DEBIAN_FASHION_MNIST_DIR,))}
"""The IDX data sets by name: where they live, and the folders read when `data_dir` lacks them."""


# IDX type codes (third byte of the magic number) and their big-endian dtypes.
IDX_DTYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}
GZIP_MAGIC = b'\x1f\x8b'
# Limits of a header, so that a damaged or hostile one is refused before any
# memory is taken: MNIST's files have 1 or 3 dimensions and at most 47 MB of
# data; 32 dimensions is the most every NumPy version supports.
IDX_MAX_DIMS = 32
IDX_MAX_BYTES = 1 << 30
IDX_IMAGE_SHAPE = (28, 28)
IDX_MAX_IMAGES = {IDX_TRAIN_IMAGES: 60000, IDX_TEST_IMAGES: 10000}
"""The images of MNIST's and Fashion-MNIST's files: a smaller copy may hold fewer, never
more, so a header announcing more is refused before anything is read or converted."""


def read_idx(path, max_bytes=IDX_MAX_BYTES):
    """Read an IDX file (the format of MNIST), gzipped or not.

    An IDX file is a 4-byte magic number (two zero bytes, a type code, the
    number of dimensions), one big-endian uint32 per dimension, then the data
    in C order, big-endian. The header is read and checked first; then
    exactly the bytes it announces are read (decompressed as they come, so a
    small gzip that expands far beyond them is never expanded whole), and one
    byte more must not exist.

    Parameters
    ----------
    path : str or Path
        The file; gzip compression is recognised by its content, not its name.
    max_bytes : int
        The most data a header may announce; a larger announcement is refused
        before anything is read.

    Returns
    -------
    np.ndarray
        A new array of the stored shape, in the stored type with native byte
        order.

    Raises
    ------
    CorruptDataError
        Wrong magic number, an impossible header, or a file (or gzip stream)
        shorter or longer than its header announces.
    """
    path = Path(path)
    fix = 'Delete it and run again to download it anew, or replace it with a good copy.'
    with open(path, 'rb') as file:
        is_gzip = file.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        file.seek(0)
        try:
            with (gzip.GzipFile(fileobj=file) if is_gzip else file) as stream:
                shape, dtype = _read_idx_header(stream, path, max_bytes, fix)
                data = np.empty(math.prod(shape), dtype)
                n_read = _read_into(stream, data.view(np.uint8))
                has_more = bool(stream.read(1))
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise CorruptDataError(f'{path}: truncated or corrupt gzip data ({error}). '
                                   f'{fix}') from error
    if n_read < data.nbytes or has_more:
        amount = f'{n_read}' if n_read < data.nbytes else f'more than {data.nbytes}'
        raise CorruptDataError(f'{path} holds {amount} bytes of data, but its header announces '
                               f'{shape} {dtype.name} values, {data.nbytes} bytes: the file '
                               f'is truncated or corrupt. {fix}')
    return data.astype(dtype.newbyteorder('='), copy=False).reshape(shape)


def _read_idx_header(stream, path, max_bytes, fix):
    """Read and check an IDX header from `stream`; return the data's shape and dtype."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[:2] != b'\0\0' or magic[2] not in IDX_DTYPES:
        raise CorruptDataError(f'{path} is not an IDX file: its magic number is '
                               f'0x{magic.hex()}, expected 0x0000 then a type code '
                               f'({", ".join(f"{code:02x}" for code in IDX_DTYPES)}) and the '
                               f'number of dimensions. {fix}')
    n_dims = magic[3]
    if not 1 <= n_dims <= IDX_MAX_DIMS:
        raise CorruptDataError(f'{path} is not a readable IDX file: its header declares '
                               f'{n_dims} dimensions, where 1 to {IDX_MAX_DIMS} are possible. '
                               f'{fix}')
    sizes = stream.read(4 * n_dims)
    if len(sizes) < 4 * n_dims:
        raise CorruptDataError(f'{path} is truncated: it ends inside its header. {fix}')
    shape = tuple(int.from_bytes(sizes[start:start + 4], 'big')
                  for start in range(0, len(sizes), 4))
    dtype = np.dtype(IDX_DTYPES[magic[2]])
    announced_bytes = math.prod(shape) * dtype.itemsize
    if announced_bytes > max_bytes:
        raise CorruptDataError(f'{path} is not a readable IDX file: its header announces '
                               f'{shape} {dtype.name} values, {announced_bytes} bytes, more '
                               f'than the {max_bytes} bytes read_idx accepts. {fix}')
    return shape, dtype


def _read_into(stream, buffer):
    """Fill `buffer` from `stream` until it is full or the stream ends; return the bytes read."""
    n_read = 0
    while n_read < len(buffer):
        count = stream.readinto(buffer[n_read:])
        if not count:
            break
        n_read += count
    return n_read


def _read_image_pair(images_path, labels_path, max_images):
    """Read IDX images and labels and check they are MNIST-shaped: uint8
    (n, 28, 28) images, 1 <= n <= `max_images`, and n labels in 0..9."""
    images = read_idx(images_path, max_bytes=max_images * math.prod(IDX_IMAGE_SHAPE))
    labels = read_idx(labels_path, max_bytes=max_images * np.dtype(np.int32).itemsize)
    if images.dtype != np.uint8 or images.shape[1:] != IDX_IMAGE_SHAPE:
        raise CorruptDataError(f'{images_path} holds {images.dtype.name} {images.shape}, '
                               'expected uint8 (n, 28, 28) images. Replace it with the '
                               'right file.')
    if labels.shape != (len(images),) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise CorruptDataError(f'{labels_path} holds {labels.shape} labels in '
                               f'{labels.min(initial=0)}..{labels.max(initial=0)}, expected '
                               f'{len(images)} labels (one per image of {images_path.name}) '
                               'in 0..9. Replace it with the right file.')
    if len(images) == 0:
        raise CorruptDataError(f'{images_path} holds no images. Replace it with the right '
                               'file.')
    return images, labels.astype(np.int64)


def _find_idx_file(folder, name):
    """Return folder/name, or folder/name.gz, whichever exists first, else None."""
    for candidate in (folder / name, folder / f'{name}.gz'):
        if candidate.is_file():
            return candidate
    return None


def _locate_idx_files(image_set, data_dir, other_folders=()):
    """Return the paths of the four IDX files of `image_set`.

    Looks in `data_dir`/<folder>/raw (torchvision's layout, plain or gzipped),
    then in each of `other_folders`; the first folder holding all four wins.
    Otherwise the files missing from `data_dir`/<folder>/raw are downloaded
    there, with an md5 check.

    Raises
    ------
    DownloadError
        If a file cannot be downloaded, naming every file still missing and where
        to put them by hand.
    """
    raw_dir = Path(data_dir) / image_set.folder / 'raw'
    folder = _idx_folder(image_set, data_dir, other_folders)
    if folder is not None:
        return {name: _find_idx_file(folder, name) for name in IDX_FILES}
    missing = [f'{name}.gz' for name in IDX_FILES if _find_idx_file(raw_dir, name) is None]
    for file_name in missing:
        try:
            download_file(image_set.url + file_name, raw_dir / file_name,
                          md5=image_set.md5s[file_name])
        except DownloadError as error:
            still_missing = [name for name in missing if not (raw_dir / name).is_file()]
            raise DownloadError(
                f'{error} {image_set.name} needs {len(still_missing)} more file'
                f'{"s" * (len(still_missing) > 1)} in {raw_dir.resolve()}: '
                f'{", ".join(image_set.url + name for name in still_missing)}.') from error
    return {name: _find_idx_file(raw_dir, name) for name in IDX_FILES}


def _idx_folder(image_set, data_dir, other_folders=()):
    """The first folder that holds all four IDX files of `image_set`: `data_dir`/<folder>/raw,
    then `other_folders`; None if none does."""
    for folder in (Path(data_dir) / image_set.folder / 'raw', *other_folders):
        if _holds_idx_files(folder):
            return folder
    return None


def _holds_idx_files(folder):
    """True when `folder` holds the four files of an MNIST-format data set."""
    return all(_find_idx_file(Path(folder), name) is not None for name in IDX_FILES)


def _uint8_mean_std(raw_images, rows_per_chunk=10000):
    """Mean and standard deviation of uint8 pixels scaled to [0, 1], exactly,
    from a histogram of the 256 values (built a chunk of images at a time to
    bound the memory of np.bincount's integer copy)."""
    flat = raw_images.reshape(len(raw_images), -1)
    histogram = np.zeros(256, dtype=np.int64)
    for start in range(0, len(flat), rows_per_chunk):
        histogram += np.bincount(flat[start:start + rows_per_chunk].ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = histogram @ values / histogram.sum()
    variance = histogram @ (values - mean) ** 2 / histogram.sum()
    return mean, np.sqrt(variance)


def seeded_split_order(n_pool, validation_size, seed):
    """A permutation of ``range(n_pool)`` drawn from `seed`, validation last.

    The validation split is the first `validation_size` indices of
    ``np.random.default_rng(seed).permutation(n_pool)``, the training split
    the rest; the order returned puts the training indices first, as
    `make_splits` takes it.
    """
    check_pool_holds(validation_size, n_pool)
    validation_size = check_validation_size(validation_size, n_pool)
    return np.roll(np.random.default_rng(seed).permutation(n_pool), -validation_size)


def _get_idx_image_set(image_set, data_dir, validation_size, other_folders=()):
    """Load an MNIST-format data set as the three splits, standardised."""
    paths = _locate_idx_files(image_set, data_dir, other_folders)
    pool_images, pool_labels = _read_image_pair(paths[IDX_TRAIN_IMAGES], paths[IDX_TRAIN_LABELS],
                                                IDX_MAX_IMAGES[IDX_TRAIN_IMAGES])
    test_images, test_labels = _read_image_pair(paths[IDX_TEST_IMAGES], paths[IDX_TEST_LABELS],
                                                IDX_MAX_IMAGES[IDX_TEST_IMAGES])
    mean, std = _uint8_mean_std(pool_images)
    if std == 0:
        raise CorruptDataError(f'every pixel of {paths[IDX_TRAIN_IMAGES]} has the value '
                               f'{pool_images.flat[0]}: images without contrast cannot be '
                               'standardised, and hold nothing to learn. Replace it with '
                               'the right file.')
    order = seeded_split_order(len(pool_labels), validation_size, IMAGE_SPLIT_SEED)
    return make_splits(pool_images[:, np.newaxis], pool_labels,
                       test_images[:, np.newaxis], test_labels,
                       image_set.classes, order, validation_size,
                       transform=lambda raw_images: standardise_uint8(raw_images, [mean], [std]))


def get_mnist(data_dir='data/', validation_size=IMAGE_VALIDATION_SIZE):
    """Load MNIST: 60 000 training and 10 000 test digits, (N, 1, 28, 28) float32.

    Reads `data_dir`/MNIST/raw/ (torchvision's layout), downloading the files
    there if absent. Standardised with the training pool's pixel mean and std.
    """
    return _get_idx_image_set(MNIST, data_dir, validation_size)


def get_fashion_mnist(data_dir='data/', validation_size=IMAGE_VALIDATION_SIZE):
    """Load Fashion-MNIST: 60 000 training and 10 000 test images, (N, 1, 28, 28) float32.

    Reads `data_dir`/FashionMNIST/raw/ (torchvision's layout), else Debian's
    /usr/share/datasets/fashion-mnist, else downloads the files into the
    former. Standardised with the training pool's pixel mean and std.
    """
    image_set, other_folders = IDX_IMAGE_SETS['fashion_mnist']
    return _get_idx_image_set(image_set, data_dir, validation_size, other_folders)


def get_spiral(validation_size=None, n_classes=SPIRAL_CLASSES,
               points_per_class=SPIRAL_POINTS_PER_CLASS, noise=SPIRAL_NOISE, seed=0):
    """Generate the spiral toy problem: `n_classes` interleaved arms in the plane.

    Arm k holds `points_per_class` points whose radius grows evenly from 0 to 1
    while their angle sweeps [4k, 4k + 4] radians, plus Gaussian noise of
    standard deviation `noise` on the angle (the CS231n construction). A
    linear classifier fails on it; a small MLP separates it.

    Parameters
    ----------
    validation_size : int, optional
        Points in the validation split; default one fifth of all points.
    n_classes : int
        Number of arms (classes), at least 2.
    points_per_class : int
        Points on each arm.
    noise : float
        Standard deviation of the angular noise, in radians.
    seed : int
        Seed of the noise and of the split; the same seed gives the same data.

    Returns
    -------
    dict of str to ArrayDataset
        'test' is one fifth of the points, 'validation' `validation_size`
        points, 'train' the rest; inputs (N, 2) float32, not rescaled (they
        lie within about [-1, 1]).
    """
    if n_classes < 2 or points_per_class < 1 or noise < 0:
        raise ValueError(f'the spiral needs n_classes >= 2, points_per_class >= 1 and '
                         f'noise >= 0, got {n_classes}, {points_per_class} and {noise}')
    n_points = n_classes * points_per_class
    if validation_size is None:
        validation_size = n_points // 5
    rng = np.random.default_rng(seed)
    radius = np.tile(np.linspace(0.0, 1.0, points_per_class), n_classes)
    angle = (4.0 * np.arange(n_classes)[:, np.newaxis]
             + np.linspace(0.0, 4.0, points_per_class)[np.newaxis, :]).ravel()
    angle += noise * rng.standard_normal(n_points)
    points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    labels = np.repeat(np.arange(n_classes), points_per_class)

    test_order = rng.permutation(n_points)
    test, pool = test_order[:n_points // 5], test_order[n_points // 5:]
    return make_splits(points[pool].astype(np.float32), labels[pool],
                       points[test].astype(np.float32), labels[test],
                       [f'arm {k}' for k in range(n_classes)],
                       seeded_split_order(len(pool), validation_size, seed), validation_size)


def default_validation_size(name, **options):
    """The validation size `get_dataset` uses for `name` when given None.

    5000 for the image data sets; one fifth of the generated points for
    'spiral' (whose `options` n_classes and points_per_class set that number).
    """
    _check_name(name)
    if name == 'spiral':
        n_points = (options.get('n_classes', SPIRAL_CLASSES)
                    * options.get('points_per_class', SPIRAL_POINTS_PER_CLASS))
        return n_points // 5
    return IMAGE_VALIDATION_SIZE


def dataset_shape(name):
    """What `name` holds, without loading it: (values per example, classes, examples in
    all splits)."""
    _check_name(name)
    n_spiral = SPIRAL_CLASSES * SPIRAL_POINTS_PER_CLASS
    return {'cifar10': (3 * 32 * 32, 10, 60000), 'fashion_mnist': (28 * 28, 10, 70000),
            'mnist': (28 * 28, 10, 70000), 'spiral': (2, SPIRAL_CLASSES, n_spiral)}[name]


def pool_size(name):
    """Number of training examples of `name` from which the validation split is drawn."""
    _check_name(name)
    if name == 'spiral':
        n_points = SPIRAL_CLASSES * SPIRAL_POINTS_PER_CLASS
        return n_points - n_points // 5
    return {'cifar10': CIFAR10_POOL_SIZE, 'fashion_mnist': 60000, 'mnist': 60000}[name]


class DataDirError(ValueError):
    """``--data_dir`` holds another data set's files and none of the one asked for."""


def data_source(name, data_dir):
    """One line saying which files a run on `name` reads (or downloads), found without
    reading them; None for the generated spiral.

    Raises
    ------
    DataDirError
        If `data_dir` itself holds the four files of an MNIST-format data set (as
        Debian's Fashion-MNIST folder does) and none of `name`'s: saying what to type,
        so that nothing is downloaded into a folder of other data.
    """
    _check_name(name)
    data_dir = Path(data_dir)
    if name == 'spiral':
        return None
    in_debian_folder = data_dir.resolve() == DEBIAN_FASHION_MNIST_DIR.resolve()
    if name == 'cifar10':
        if (data_dir / CIFAR10_FOLDER).is_dir():
            return f"data: CIFAR-10 from {data_dir / CIFAR10_FOLDER}"
        if (data_dir / CIFAR10_ARCHIVE).is_file():
            return f"data: CIFAR-10, extracted from {data_dir / CIFAR10_ARCHIVE}"
        if _holds_idx_files(data_dir):
            _refuse_other_data(data_dir, 'CIFAR-10', 'fashion_mnist' if in_debian_folder
                               else 'fashion_mnist (or --dataset mnist)')
        return f"data: CIFAR-10 is not in {data_dir}: downloading it there"
    image_set, other_folders = IDX_IMAGE_SETS[name]
    raw_dir = data_dir / image_set.folder / 'raw'
    folder = _idx_folder(image_set, data_dir, other_folders)
    if folder == DEBIAN_FASHION_MNIST_DIR and not in_debian_folder:
        return f"data: {image_set.name} from {folder} (Debian's copy; {raw_dir} holds none)"
    if folder is not None:
        return f"data: {image_set.name} from {folder}"
    if in_debian_folder:
        _refuse_other_data(data_dir, image_set.name, 'fashion_mnist')
    return f"data: {image_set.name} is not in {raw_dir}: downloading it there"


def _refuse_other_data(data_dir, wanted, dataset_flag):
    raise DataDirError(f"--data_dir {data_dir} holds the files of another data set and none "
                       f"of {wanted}: add --dataset {dataset_flag}, or give the --data_dir "
                       f"that holds {wanted}")


def _check_name(name):
    if name not in DATASETS:
        raise ValueError(f'unknown data set {name!r}; choose one of {", ".join(DATASETS)}')


def get_dataloader(dataset, batch_size, return_numpy=False, seed=0, device=None):
    """`cifar10_utils.get_dataloader`, after checking that the data read from disk holds a
    batch: a copy of a data set smaller than documented (files of 100 images, say) gets
    past the checks of the settings, which know only the documented size.

    Raises
    ------
    CorruptDataError
        If the training split holds fewer examples than one batch, naming both.
    """
    n_train = len(dataset['train']) if 'train' in dataset else None
    if n_train is not None and isinstance(batch_size, int) and 1 <= n_train < batch_size:
        raise CorruptDataError(f'the data read holds {n_train} training examples after the '
                               f'validation split, fewer than one batch of {batch_size}: '
                               f'pass a smaller --batch_size or --validation_size, or '
                               f'replace the files with the whole data set')
    return cifar10_get_dataloader(dataset, batch_size, return_numpy, seed, device)


def get_dataset(name, data_dir='data/', validation_size=None, **options):
    """Load one of `DATASETS` as a dict of 'train', 'validation', 'test' splits.

    Parameters
    ----------
    name : str
        'cifar10', 'fashion_mnist', 'mnist' or 'spiral'.
    data_dir : str or Path
        Folder of the downloaded files (unused by 'spiral').
    validation_size : int, optional
        Examples drawn from the training pool for validation; None means
        `default_validation_size(name, **options)`. Must lie in [1, pool)
        (`lab.loaders.check_validation_size`).
    **options
        Generation options of 'spiral' (see `get_spiral`): n_classes,
        points_per_class, noise, seed. The image data sets take none.

    Returns
    -------
    dict of str to ArrayDataset
    """
    _check_name(name)
    if validation_size is None:
        validation_size = default_validation_size(name, **options)
    if name == 'spiral':
        return get_spiral(validation_size, **options)
    if options:
        raise TypeError(f'{name} takes no options, got {", ".join(sorted(options))}; '
                        'only spiral has generation options')
    loaders = {'cifar10': get_cifar10, 'fashion_mnist': get_fashion_mnist, 'mnist': get_mnist}
    return loaders[name](data_dir, validation_size)
