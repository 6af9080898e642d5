"""CIFAR-10's files on disk: found or fetched, then read without running code.

`ensure_cifar10_batches` makes sure `data_dir`/cifar-10-batches-py exists,
downloading the official archive and extracting it where needed (with
`lab.downloads`). `read_cifar10_batch` and `read_cifar10_classes` read its
pickles with `CifarUnpickler`, which builds arrays, bytes and containers and
refuses anything else, so a doctored file never runs code.
`cifar10_utils.get_cifar10` builds the data sets on top.
"""
import pickle
from pathlib import Path

import numpy as np

from lab.downloads import (CorruptDataError, DownloadError, download_file,
                           extract_archive, file_md5)
from lab.fileio import printable

CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz'
CIFAR10_MD5 = 'c58f30108f718f92721af3b95e74349a'
CIFAR10_ARCHIVE = 'cifar-10-python.tar.gz'
CIFAR10_FOLDER = 'cifar-10-batches-py'
CIFAR10_TRAIN_BATCHES = tuple(f'data_batch_{number}' for number in range(1, 6))
CIFAR10_TEST_BATCH = 'test_batch'
CIFAR10_META = 'batches.meta'
CIFAR10_IMAGE_SHAPE = (3, 32, 32)
CIFAR10_N_CLASSES = 10
CIFAR10_IMAGES_PER_BATCH = 10000
"""Every file of CIFAR-10 holds this many images; a smaller copy (a trimmed set, a
test's tiny one) may hold fewer, never more."""


def ensure_cifar10_batches(data_dir):
    """Return `data_dir`/cifar-10-batches-py, downloading and extracting it if needed.

    An existing folder (ours or torchvision's: the layout is the same) is used
    as it is; otherwise an existing `data_dir`/cifar-10-python.tar.gz is
    verified and extracted; otherwise the archive is downloaded first.
    """
    data_dir = Path(data_dir)
    batches_dir = data_dir / CIFAR10_FOLDER
    if not batches_dir.is_dir():
        archive = data_dir / CIFAR10_ARCHIVE
        if not archive.is_file():
            try:
                download_file(CIFAR10_URL, archive, md5=CIFAR10_MD5)
            except DownloadError as error:
                raise DownloadError(f'{error} Or train offline on Fashion-MNIST: '
                                    f'--dataset fashion_mnist (Debian\'s package '
                                    f'dataset-fashion-mnist, or its four files in '
                                    f'{Path(data_dir) / "FashionMNIST" / "raw"}).') from error
        elif file_md5(archive) != CIFAR10_MD5:
            raise CorruptDataError(f'{archive} does not have the md5 sum of CIFAR-10 '
                                   f'({CIFAR10_MD5}): it is incomplete or another file. '
                                   'Delete it and run again to download it anew.')
        extract_archive(archive, batches_dir)
    needed = (*CIFAR10_TRAIN_BATCHES, CIFAR10_TEST_BATCH, CIFAR10_META)
    missing = [name for name in needed if not (batches_dir / name).is_file()]
    if missing:
        raise CorruptDataError(f'{batches_dir} lacks {", ".join(missing)}. Delete that folder '
                               f'and run again to extract it anew from {CIFAR10_ARCHIVE}.')
    return batches_dir


class ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle named a global that a CIFAR-10 file never holds; its text is the name."""


def _empty_bytes(*args):
    """Python 3's protocol-2 pickle of an empty array calls ``bytes()`` for its empty data.
    Only that call is allowed: ``bytes(n)`` would make n zero bytes from one small number."""
    if args:
        raise ForbiddenGlobalError(f'bytes with arguments {printable(repr(args)[:60])}')
    return b''


def _array_from_buffer(buffer, dtype, shape, order):
    """Rebuild an array pickled with protocol 5 (what numpy's ``_frombuffer`` does)."""
    return np.frombuffer(buffer, dtype=dtype).reshape(shape, order=order)


def _latin1_bytes(text, encoding):
    """Rebuild bytes pickled by Python 3 with protocol 0 to 2: ``_codecs.encode(text, 'latin1')``.

    Latin-1 maps the code points 0-255 to the byte of the same value and
    calls nothing else. Every other codec is refused: looking one up can
    import a module, and some (zlib, bz2) expand their input.
    """
    if encoding != 'latin1' or not isinstance(text, str):
        raise ForbiddenGlobalError(f'_codecs.encode with {printable(repr(encoding))}')
    return text.encode('latin-1')


def _ndarray_called(*args, **kwargs):
    """What a pickle gets when it calls ``numpy.ndarray`` itself rather than naming it as
    the class of ``_reconstruct``: such a call can give an array any strides and size (a
    141-byte file declaring gigabytes), and no CIFAR-10 file makes it."""
    raise ForbiddenGlobalError('numpy.ndarray called directly')


def _reconstruct_array(subtype, shape, dtype):
    """numpy's ``_reconstruct`` for plain arrays only, and only the empty one numpy
    pickles: the pickle's state then fills it (``__setstate__`` checks that its data
    has the declared size, so no size is taken on trust)."""
    if subtype is not _ndarray_called or tuple(shape) != (0,):
        raise ForbiddenGlobalError(f'_reconstruct of {type(subtype).__name__} {shape!r}')
    return _rebuild_array(np.ndarray, shape, dtype)


_rebuild_array = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, in 1.x and 2.x alike


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that can build what CIFAR-10's files hold and nothing else.

    A pickle can name any importable callable and have it called. The files
    of CIFAR-10 (written by Python 2: bytes as ``str``, numpy named
    ``numpy.core.multiarray``), and copies re-pickled by Python 3 with
    protocols 2 to 5, name only numpy's array and dtype rebuilding and
    Python 3's bytes rebuilding, so those are the only globals allowed.
    Dicts, lists, tuples, numbers and strings are pickle opcodes, not globals.
    ``numpy.ndarray`` may only be named as the class ``_reconstruct`` builds.
    """

    ALLOWED_GLOBALS = {
        ('numpy.core.multiarray', '_reconstruct'): _reconstruct_array,
        ('numpy._core.multiarray', '_reconstruct'): _reconstruct_array,
        ('numpy.core.numeric', '_frombuffer'): _array_from_buffer,
        ('numpy._core.numeric', '_frombuffer'): _array_from_buffer,
        ('numpy', 'ndarray'): _ndarray_called,
        ('numpy', 'dtype'): np.dtype,
        ('_codecs', 'encode'): _latin1_bytes,
        ('__builtin__', 'bytes'): _empty_bytes,
        ('builtins', 'bytes'): _empty_bytes,
    }

    def find_class(self, module, name):
        allowed = self.ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise ForbiddenGlobalError(printable(f'{module}.{name}'))
        return allowed


def _unpickle(path):
    """Load one pickle of the CIFAR-10 python version (bytes keys), running no code from it."""
    fix = (f'Delete the folder {Path(path).parent} and run again to extract it anew from '
           f'the official {CIFAR10_ARCHIVE}.')
    try:
        with open(path, 'rb') as file:
            return CifarUnpickler(file, encoding='bytes').load()
    except OSError:
        raise
    except ForbiddenGlobalError as error:
        raise CorruptDataError(f'{path} is not a plain CIFAR-10 file: it asks to call {error}, '
                               f'which was refused (nothing in it was run). {fix}') from None
    except Exception as error:  # damaged pickles fail in many ways: EOFError, UnpicklingError, ...
        raise CorruptDataError(f'{path} is truncated or corrupt ({type(error).__name__}: '
                               f'{printable(error)}). {fix}') from error


def read_cifar10_batch(path):
    """Read one CIFAR-10 batch file.

    Returns
    -------
    raw_images : np.ndarray
        uint8, shape (n, 3, 32, 32): the 3072 bytes of a row are the red,
        then the green, then the blue 32x32 plane.
    labels : np.ndarray
        int64, shape (n,).
    """
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        batch = {}
    raw_images, labels = batch.get(b'data'), _integer_array(batch.get(b'labels'))
    row_bytes = int(np.prod(CIFAR10_IMAGE_SHAPE))
    images_ok = (isinstance(raw_images, np.ndarray) and raw_images.dtype == np.uint8
                 and raw_images.ndim == 2 and raw_images.shape[1] == row_bytes
                 and 1 <= len(raw_images) <= CIFAR10_IMAGES_PER_BATCH
                 and raw_images.flags.c_contiguous)
    labels_ok = (images_ok and labels is not None and labels.shape == (len(raw_images),)
                 and 0 <= labels.min(initial=0)
                 and labels.max(initial=0) < CIFAR10_N_CLASSES)
    if not (images_ok and labels_ok):
        raise CorruptDataError(
            f"{path} is not a CIFAR-10 batch (expected b'data' contiguous uint8 (n, "
            f"{row_bytes}) with n from 1 to {CIFAR10_IMAGES_PER_BATCH}, and n b'labels' in "
            f"0..{CIFAR10_N_CLASSES - 1}; got {_describe_array(raw_images)}). Delete the "
            f'folder {Path(path).parent} and run again to extract it anew.')
    return raw_images.reshape(-1, *CIFAR10_IMAGE_SHAPE), labels.astype(np.int64)


def _describe_array(value):
    """What an unpickled b'data' is, for an error message: 'uint8 (0, 3072)', 'NoneType'."""
    if not isinstance(value, np.ndarray):
        return type(value).__name__
    layout = '' if value.flags.c_contiguous else ' not contiguous'
    return f'{value.dtype.name} {value.shape}{layout}'


def _integer_array(labels):
    """`labels` (a list of ints, or an array) as a 1-D integer array; None if it is neither."""
    if isinstance(labels, list) and all(type(label) is int for label in labels):
        labels = np.array(labels)
    if (not isinstance(labels, np.ndarray) or labels.ndim != 1
            or not np.issubdtype(labels.dtype, np.integer)):
        return None
    return labels


def read_cifar10_classes(path):
    """Read the ten class names from CIFAR-10's batches.meta (b'label_names': ten bytes)."""
    meta = _unpickle(path)
    names = meta.get(b'label_names') if isinstance(meta, dict) else None
    if (not isinstance(names, (list, tuple)) or len(names) != CIFAR10_N_CLASSES
            or not all(isinstance(name, bytes) for name in names)):
        raise CorruptDataError(f"{path} is not CIFAR-10's batches.meta (expected b'label_names' "
                               f'holding {CIFAR10_N_CLASSES} byte strings, got '
                               f'{_describe(names)}). Delete the folder {Path(path).parent} '
                               'and run again to extract it anew.')
    return [name.decode('utf-8', errors='replace') for name in names]


def _describe(names):
    """What an unpickled `names` is, for an error message: '3 of type bytes', 'NoneType'."""
    if not isinstance(names, (list, tuple)):
        return type(names).__name__
    item_types = ', '.join(sorted({type(name).__name__ for name in names})) or 'nothing'
    return f'{len(names)} of type {item_types}'
