"""Tests of the data loading: cifar10_files.py, cifar10_utils.py and data_utils.py.

Every test makes its own small data in the real on-disk formats (this
machine has no network); the real Fashion-MNIST is used when Debian's package
has installed it. CIFAR-10's files are written as Python 2 wrote the real ones
(`Python2Pickler`) and as Python 3 writes them (protocols 2, 4 and 5).
"""
import contextlib
import gzip
import hashlib
import io
import os
import pickle
import pickletools
import re
import shlex
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest

from lab import cifar10_files
import cifar10_utils
from lab import datasets as data_utils
from lab.downloads import CorruptDataError, DownloadError
from cifar10_utils import CIFAR10_MEAN, CIFAR10_STD, get_cifar10, get_dataloader
from conftest import BOTH_SCRIPTS, REPO, Reduce, needs_fashion_mnist, run_main, run_script
from lab.cifar10_files import read_cifar10_batch
from lab.datasets import get_dataset, get_mnist, read_idx
from lab.loaders import ArrayDataset, apply_per_channel_affine
from lab.studies.harness import load_subset

IMAGES_PER_BATCH = 20
N_POOL = 5 * IMAGES_PER_BATCH
VALIDATION_SIZE = 10
REAL_URLOPEN = urllib.request.urlopen
CLASS_NAMES = (b'airplane', b'automobile', b'bird', b'cat', b'deer', b'dog', b'frog', b'horse',
               b'ship', b'truck')
PICKLE_FORMATS = ('python2', 'protocol2', 'protocol4', 'protocol5')
RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's array-unpickling function


# ---------------------------------------------------------------- fixtures

@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Only file:// URLs open; anything else fails as it would offline."""
    def offline_urlopen(url, *args, **kwargs):
        if str(url).startswith('file:'):
            return REAL_URLOPEN(url, *args, **kwargs)
        raise urllib.error.URLError('network unreachable (test)')
    monkeypatch.setattr(urllib.request, 'urlopen', offline_urlopen)


class Python2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote CIFAR-10's files (protocol 2).

    Bytes become Python 2 ``str`` opcodes (SHORT_BINSTRING, BINSTRING); a
    uint8 array becomes ``numpy.core.multiarray._reconstruct(numpy.ndarray,
    (0,), 'b')`` with its bytes in the state, its dtype ``numpy.dtype('u1', 0,
    1)``, as Python 2's numpy wrote them. Python 3 ``str`` is refused: those
    files hold none.
    """

    dispatch = pickle._Pickler.dispatch.copy()
    NUMPY_GLOBALS = {RECONSTRUCT: b'numpy.core.multiarray\n_reconstruct\n',
                     np.ndarray: b'numpy\nndarray\n', np.dtype: b'numpy\ndtype\n'}

    def __init__(self, file):
        super().__init__(file, protocol=2)

    def save_python2_str(self, data):
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(data)) + data)
        self.memoize(data)

    def refuse_unicode(self, text):
        raise TypeError(f'Python 2 CIFAR-10 files hold no unicode, got {text!r}')

    dispatch[bytes] = save_python2_str
    dispatch[str] = refuse_unicode

    def reducer_override(self, obj):
        if isinstance(obj, np.ndarray):
            assert obj.dtype == np.uint8, 'CIFAR-10 holds uint8 arrays only'
            return RECONSTRUCT, (np.ndarray, (0,), b'b'), (1, obj.shape, obj.dtype, False,
                                                            obj.tobytes())
        if isinstance(obj, np.dtype):
            return np.dtype, (b'u1', 0, 1), (3, b'|', None, None, None, -1, -1, 0)
        return NotImplemented

    def save_global(self, obj, name=None):
        if obj in self.NUMPY_GLOBALS.keys():
            self.write(pickle.GLOBAL + self.NUMPY_GLOBALS[obj])
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def dump(obj, pickle_format):
    """`obj` pickled in one of `PICKLE_FORMATS`."""
    if pickle_format == 'python2':
        file = io.BytesIO()
        Python2Pickler(file).dump(obj)
        return file.getvalue()
    return pickle.dumps(obj, protocol=int(pickle_format.removeprefix('protocol')))


def cifar10_contents(raw):
    """The object each of the seven files of the tiny CIFAR-10 `raw` holds."""
    contents = {}
    for number in range(5):
        rows = slice(number * IMAGES_PER_BATCH, (number + 1) * IMAGES_PER_BATCH)
        contents[f'data_batch_{number + 1}'] = cifar10_batch(
            f'data_batch_{number + 1}', raw['train_rows'][rows], raw['train_labels'][rows])
    contents['test_batch'] = cifar10_batch('test_batch', raw['test_rows'], raw['test_labels'])
    contents['batches.meta'] = {b'label_names': list(CLASS_NAMES),
                                b'num_cases_per_batch': IMAGES_PER_BATCH, b'num_vis': 3072}
    return contents


def cifar10_batch(name, raw_rows, labels):
    """A batch as the CIFAR-10 python version holds it: a dict with bytes keys."""
    return {b'batch_label': name.encode(), b'labels': [int(label) for label in labels],
            b'data': raw_rows, b'filenames': [b'%d.png' % i for i in range(len(labels))]}


def write_cifar10(data_dir, contents, pickle_format):
    """Write `contents` as data_dir/cifar-10-batches-py; return data_dir."""
    batches_dir = data_dir / 'cifar-10-batches-py'
    batches_dir.mkdir(parents=True, exist_ok=True)
    for name, obj in contents.items():
        (batches_dir / name).write_bytes(dump(obj, pickle_format))
    return data_dir


@pytest.fixture
def cifar_raw():
    """Raw rows and labels of a tiny CIFAR-10: 5 x 20 training rows, 20 test rows.

    The first test image has a red plane of 255, a green plane of 0 and a blue
    plane of 128, so its normalised values are known in advance; in the
    second, every plane holds each of the 256 values four times.
    """
    rng = np.random.default_rng(1234)
    train_rows = rng.integers(0, 256, (N_POOL, 3072), dtype=np.uint8)
    test_rows = rng.integers(0, 256, (IMAGES_PER_BATCH, 3072), dtype=np.uint8)
    test_rows[0, :1024], test_rows[0, 1024:2048], test_rows[0, 2048:] = 255, 0, 128
    test_rows[1] = np.tile(np.arange(256, dtype=np.uint8), 12)
    return {'train_rows': train_rows, 'train_labels': rng.integers(0, 10, N_POOL),
            'test_rows': test_rows, 'test_labels': rng.integers(0, 10, IMAGES_PER_BATCH)}


@pytest.fixture
def cifar_dir(tmp_path, cifar_raw):
    """A data_dir holding cifar-10-batches-py/ as Python 3 writes it (protocol 2)."""
    return write_cifar10(tmp_path / 'data', cifar10_contents(cifar_raw), 'protocol2')


@pytest.fixture
def cifar_archive(tmp_path, cifar_dir, monkeypatch):
    """The tiny CIFAR-10 packed as cifar-10-python.tar.gz; CIFAR10_URL and
    CIFAR10_MD5 are pointed at it."""
    archive = tmp_path / 'server' / 'cifar-10-python.tar.gz'
    archive.parent.mkdir()
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(cifar_dir / 'cifar-10-batches-py', arcname='cifar-10-batches-py')
    monkeypatch.setattr(cifar10_files, 'CIFAR10_URL', archive.as_uri())
    monkeypatch.setattr(cifar10_files, 'CIFAR10_MD5',
                        hashlib.md5(archive.read_bytes()).hexdigest())
    return archive


@pytest.fixture
def cifar(cifar_dir):
    return get_cifar10(cifar_dir, validation_size=VALIDATION_SIZE)


def raw_rows_of(dataset, columns=slice(None)):
    """Undo the normalisation: the uint8 rows of a CIFAR-10 ArrayDataset (or some columns)."""
    channel_of_column = np.arange(3072)[columns] // 1024
    mean, std = np.array(CIFAR10_MEAN)[channel_of_column], np.array(CIFAR10_STD)[channel_of_column]
    pixels = dataset.images.reshape(len(dataset), 3072)[:, columns]
    return np.rint((pixels * std + mean) * 255).astype(np.uint8)


# ---------------------------------------------------------------- CIFAR-10

def test_cifar10_shapes_dtypes_and_classes(cifar):
    assert set(cifar) == {'train', 'validation', 'test'}
    sizes = {split: len(dataset) for split, dataset in cifar.items()}
    assert sizes == {'train': N_POOL - VALIDATION_SIZE, 'validation': VALIDATION_SIZE,
                     'test': IMAGES_PER_BATCH}
    for dataset in cifar.values():
        assert isinstance(dataset, ArrayDataset)
        assert dataset.images.shape == (len(dataset), 3, 32, 32)
        assert dataset.images.dtype == np.float32 and dataset.labels.dtype == np.int64
        assert dataset.images.flags['C_CONTIGUOUS']
        assert dataset.classes[0] == 'airplane' and len(dataset.classes) == 10
    image, label = cifar['test'][3]
    assert image.shape == (3, 32, 32) and label == cifar['test'].labels[3]


def test_cifar10_normalisation_and_channel_order(cifar, cifar_raw):
    test = cifar['test']
    red, green, blue = test.images[0]
    np.testing.assert_allclose(red, (1.0 - 0.491) / 0.247, rtol=1e-6)
    np.testing.assert_allclose(green, (0.0 - 0.482) / 0.243, rtol=1e-6)
    np.testing.assert_allclose(blue, (128 / 255 - 0.447) / 0.262, rtol=1e-5)
    # Every test image, in file order: row r's bytes k*1024 .. k*1024+1023 are channel k.
    expected = cifar_raw['test_rows'].reshape(-1, 3, 32, 32) / 255.0
    expected = (expected - np.reshape(CIFAR10_MEAN, (3, 1, 1))) / np.reshape(CIFAR10_STD,
                                                                               (3, 1, 1))
    np.testing.assert_allclose(test.images, expected, atol=1e-5)
    np.testing.assert_array_equal(test.labels, cifar_raw['test_labels'])


def test_cifar10_split_is_deterministic_disjoint_and_complete(cifar, cifar_dir, cifar_raw):
    again = get_cifar10(cifar_dir, validation_size=VALIDATION_SIZE)
    for split in cifar:
        np.testing.assert_array_equal(cifar[split].images, again[split].images)
        np.testing.assert_array_equal(cifar[split].labels, again[split].labels)

    label_of_row = {row.tobytes(): label for row, label in
                    zip(cifar_raw['train_rows'], cifar_raw['train_labels'])}
    train_rows = [row.tobytes() for row in raw_rows_of(cifar['train'])]
    validation_rows = [row.tobytes() for row in raw_rows_of(cifar['validation'])]
    assert not set(train_rows) & set(validation_rows)
    assert sorted(train_rows + validation_rows) == sorted(label_of_row)
    for split, rows in (('train', train_rows), ('validation', validation_rows)):
        assert [label_of_row[row] for row in rows] == cifar[split].labels.tolist()


@pytest.mark.parametrize('validation_size', [N_POOL, -1, 0])
def test_cifar10_validation_size_out_of_range(cifar_dir, validation_size):
    """The bound of lab.loaders.check_validation_size, the one the training scripts use."""
    with pytest.raises(ValueError, match=rf'validation_size must lie in \[1, {N_POOL - 1}\]'):
        get_cifar10(cifar_dir, validation_size=validation_size)
    assert len(get_cifar10(cifar_dir, validation_size=1)['validation']) == 1


def test_cifar10_truncated_batch_names_file_and_fix(cifar_dir):
    batch = cifar_dir / 'cifar-10-batches-py' / 'data_batch_3'
    batch.write_bytes(batch.read_bytes()[:5000])
    with pytest.raises(CorruptDataError, match=r'data_batch_3 is truncated.*run again'):
        get_cifar10(cifar_dir, validation_size=VALIDATION_SIZE)


def test_cifar10_batch_with_wrong_content_names_file(cifar_dir):
    batch = cifar_dir / 'cifar-10-batches-py' / 'test_batch'
    batch.write_bytes(pickle.dumps({b'data': np.zeros((4, 100), np.uint8), b'labels': [0] * 4}))
    with pytest.raises(CorruptDataError, match='test_batch is not a CIFAR-10 batch'):
        get_cifar10(cifar_dir, validation_size=VALIDATION_SIZE)


def test_cifar10_incomplete_folder_names_missing_file(cifar_dir):
    (cifar_dir / 'cifar-10-batches-py' / 'data_batch_5').unlink()
    with pytest.raises(CorruptDataError, match='lacks data_batch_5'):
        get_cifar10(cifar_dir, validation_size=VALIDATION_SIZE)


# ---------------------------------------------------------------- CIFAR-10 pickle formats

def opcodes_and_globals(pickled):
    """The opcode names of a pickle, and the globals it names as 'module name'."""
    opcodes, global_names = set(), set()
    for opcode, argument, _ in pickletools.genops(pickled):
        opcodes.add(opcode.name)
        if opcode.name == 'GLOBAL':
            global_names.add(argument)
    return opcodes, global_names


def test_python2_fixture_has_the_real_files_format(cifar_raw):
    batch = cifar10_contents(cifar_raw)['data_batch_1']
    opcodes, global_names = opcodes_and_globals(dump(batch, 'python2'))
    assert {'SHORT_BINSTRING', 'BINSTRING', 'GLOBAL', 'REDUCE', 'BUILD'} <= opcodes
    assert not opcodes & {'SHORT_BINBYTES', 'BINBYTES', 'BINUNICODE', 'SHORT_BINUNICODE'}
    assert global_names == {'numpy.core.multiarray _reconstruct', 'numpy ndarray',
                            'numpy dtype'}


@pytest.mark.parametrize('pickle_format', PICKLE_FORMATS)
def test_cifar10_loads_from_every_pickle_format(tmp_path, cifar_raw, cifar, pickle_format):
    data_dir = write_cifar10(tmp_path / pickle_format, cifar10_contents(cifar_raw), pickle_format)
    loaded = get_cifar10(data_dir, validation_size=VALIDATION_SIZE)
    for split in ('train', 'validation', 'test'):
        np.testing.assert_array_equal(loaded[split].images, cifar[split].images)
        np.testing.assert_array_equal(loaded[split].labels, cifar[split].labels)
    assert loaded['test'].classes == [name.decode() for name in CLASS_NAMES]


# ---------------------------------------------------------------- CIFAR-10 hostile pickles

CIFAR10_FILES = ('data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4',
                 'data_batch_5', 'test_batch', 'batches.meta')
HOSTILE_POSITIONS = ('whole file', 'first entry', 'dict key', 'in a list', 'nested',
                     'last entry')


class Call:
    """Pickles as ``function(argument)``: what a hostile file asks its loader to run."""

    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return self.function, (self.argument,)


class ArrayWithCall:
    """Pickles as a uint8 array whose dtype, deep in numpy's state, is `call`."""

    def __init__(self, rows, call):
        self.rows, self.call = rows, call

    def __reduce__(self):
        state = (1, self.rows.shape, self.call, False, self.rows.tobytes())
        return RECONSTRUCT, (np.ndarray, (0,), b'b'), state


def hostile_calls(sentinel):
    """A shell command and a line of Python, each of which would create `sentinel`.

    The arguments are bytes, which both accept, so Python 2's format can hold them.
    """
    return (Call(os.system, f'touch {shlex.quote(str(sentinel))}'.encode()),
            Call(exec, f'open({str(sentinel)!r}, "w").close()'.encode()))


def plant(content, call, position):
    """The dict `content` of a CIFAR-10 file with `call` planted at `position`."""
    if position == 'whole file':
        return call
    if position == 'first entry':
        return {b'first': call, **content}
    if position == 'dict key':
        return {call: b'key', **content}
    if position == 'last entry':
        return {**content, b'last': call}
    list_key = b'labels' if b'labels' in content else b'label_names'
    if position == 'in a list':
        names = list(content[list_key])
        return {**content, list_key: names[:3] + [call] + names[3:]}
    if b'data' in content:  # 'nested': inside numpy's array state
        return {**content, b'data': ArrayWithCall(content[b'data'], call)}
    return {**content, b'nested': ((b'deep', [call]),)}


@pytest.mark.parametrize('position', HOSTILE_POSITIONS)
def test_hostile_fixtures_do_run_code_under_plain_pickle(tmp_path, cifar_raw, position):
    """The planted calls are live: plain `pickle.load` runs them, so the next test can fail."""
    contents, sentinel = cifar10_contents(cifar_raw), tmp_path / 'sentinel'
    for file_name in ('data_batch_1', 'batches.meta'):
        for pickle_format in ('python2', 'protocol4'):
            for call in hostile_calls(sentinel):
                pickled = dump(plant(contents[file_name], call, position), pickle_format)
                with contextlib.suppress(TypeError):  # an array whose dtype is None or 0
                    pickle.loads(pickled, encoding='bytes')
                assert sentinel.exists(), (file_name, pickle_format, call.function)
                sentinel.unlink()


@pytest.mark.parametrize('position', HOSTILE_POSITIONS)
@pytest.mark.parametrize('file_name', CIFAR10_FILES)
def test_hostile_pickle_never_runs_code(tmp_path, cifar_raw, file_name, position):
    contents, sentinel = cifar10_contents(cifar_raw), tmp_path / 'sentinel'
    for pickle_format in ('python2', 'protocol4'):
        for call in hostile_calls(sentinel):
            hostile = {**contents, file_name: plant(contents[file_name], call, position)}
            data_dir = write_cifar10(tmp_path / 'data', hostile, pickle_format)
            with pytest.raises(CorruptDataError) as raised:
                get_cifar10(data_dir, validation_size=VALIDATION_SIZE)
            assert not sentinel.exists()
            message = str(raised.value)
            assert f'cifar-10-batches-py/{file_name} is not a plain CIFAR-10 file' in message
            assert f'.{call.function.__name__}, which was refused' in message
            assert '\n' not in message


@pytest.mark.parametrize('script, file_name, payload', [
    ('train_mlp_numpy.py', 'data_batch_3', 0), ('train_mlp_numpy.py', 'batches.meta', 1),
    ('train_mlp_pytorch.py', 'test_batch', 1)])
def test_training_script_refuses_hostile_pickle(tmp_path, cifar_raw, script, file_name,
                                                payload):
    contents, sentinel = cifar10_contents(cifar_raw), tmp_path / 'sentinel'
    call = hostile_calls(sentinel)[payload]
    hostile = {**contents, file_name: plant(contents[file_name], call, 'in a list')}
    data_dir = write_cifar10(tmp_path / 'data', hostile, 'python2')
    finished = run_main(script, '--data_dir', str(data_dir), '--validation_size', '10',
                        '--epochs', '1', '--no_plot', '--no_progress',
                        '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert finished.returncode == 1, finished.stderr
    assert not sentinel.exists()
    [line] = finished.stderr.strip().splitlines()
    assert line.startswith('error: ') and file_name in line and 'refused' in line
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_unpickler_refuses_other_codecs_of_codecs_encode():
    """Python 3's protocol 2 writes bytes as _codecs.encode(text, 'latin1'); no other codec
    passes."""
    assert cifar10_files.CifarUnpickler(io.BytesIO(pickle.dumps(b'\xff\x00', protocol=2)),
                                        encoding='bytes').load() == b'\xff\x00'
    zlib_call = b'\x80\x03c_codecs\nencode\nC\x01xX\x04\x00\x00\x00zlib\x86R.'
    assert pickle.loads(zlib_call) == zlib.compress(b'x')  # plain pickle runs the codec
    with pytest.raises(cifar10_files.ForbiddenGlobalError, match="encode with 'zlib'"):
        cifar10_files.CifarUnpickler(io.BytesIO(zlib_call), encoding='bytes').load()


# ------------------------------------------------------------ CIFAR-10 arrays of the wrong size

def stride_bomb(n_images):
    """A test_batch of a few hundred bytes whose b'data' is ``numpy.ndarray`` called with
    one byte of buffer and strides (0, 0): n_images rows of 3072 bytes that all share it."""
    data = Reduce(np.ndarray, (n_images, 3072), np.dtype('u1'), b'\0', 0, (0, 0))
    return pickle.dumps({b'data': data, b'labels': [0] * 10}, protocol=4)


def test_a_stride_trick_array_is_refused_before_it_costs_memory(tmp_path):
    path = tmp_path / 'test_batch'
    path.write_bytes(stride_bomb(300_000))
    assert path.stat().st_size < 300
    with pytest.raises(CorruptDataError, match='numpy.ndarray called directly'):
        read_cifar10_batch(path)


@pytest.mark.parametrize('case, expected', [
    ('11 000 rows', 'n from 1 to 10000'),
    ('not contiguous', 'not contiguous'),
    ('reconstruct of a large shape', "_reconstruct of"),
])
def test_cifar_arrays_must_have_the_documented_size_and_layout(case, expected, tmp_path):
    if case == '11 000 rows':
        content = pickle.dumps({b'data': np.zeros((11000, 3072), np.uint8),
                                b'labels': [0] * 11000}, protocol=4)
    elif case == 'not contiguous':
        content = pickle.dumps({b'data': np.asfortranarray(np.zeros((4, 3072), np.uint8)),
                                b'labels': [0] * 4}, protocol=4)
    else:
        content = pickle.dumps({b'data': Reduce(RECONSTRUCT, np.ndarray, (10**12,), b'b'),
                                b'labels': []}, protocol=2)
    path = tmp_path / 'data_batch_1'
    path.write_bytes(content)
    with pytest.raises(CorruptDataError, match=expected):
        read_cifar10_batch(path)


def test_an_empty_array_pickled_at_protocol_2_is_read(tmp_path):
    """Python 3's protocol 2 pickles an empty array's data as ``bytes()``: allowed, and then
    refused for what it is, an empty batch; ``bytes(n)`` with an argument is not."""
    path = tmp_path / 'test_batch'
    path.write_bytes(pickle.dumps({b'data': np.zeros((0, 3072), np.uint8), b'labels': []},
                                  protocol=2))
    with pytest.raises(CorruptDataError, match=r'got uint8 \(0, 3072\)'):
        read_cifar10_batch(path)
    path.write_bytes(pickle.dumps({b'data': Reduce(bytes, 1 << 40), b'labels': []}, protocol=2))
    with pytest.raises(CorruptDataError, match='bytes with arguments'):
        read_cifar10_batch(path)


def test_escape_codes_in_a_pickled_name_are_shown_escaped(tmp_path):
    path = tmp_path / 'data_batch_1'
    fake = '\x1b[2K\rAll good: 50000 images read'
    path.write_bytes(b'\x80\x02c' + f'os{fake}\nsystem\n'.encode() + b')R.')
    with pytest.raises(CorruptDataError) as raised:
        read_cifar10_batch(path)
    message = str(raised.value)
    assert '\x1b' not in message and '\r' not in message
    assert r'os\x1b[2K\rAll good' in message


# ---------------------------------------------------------------- CIFAR-10 malformed meta

@pytest.mark.parametrize('label_names, described', [
    (list(CLASS_NAMES[:3]), '3 of type bytes'),
    ([name.decode() for name in CLASS_NAMES], '10 of type str'),
    ([*CLASS_NAMES, b'unicorn'], '11 of type bytes'),
    ([*CLASS_NAMES[:9], 9], '10 of type bytes, int'),
    (b' '.join(CLASS_NAMES), 'bytes'),
    (None, 'NoneType')], ids=['3 names', 'str names', '11 names', 'an int', 'one bytes',
                              'no names'])
def test_malformed_meta_is_refused_at_load(tmp_path, cifar_raw, label_names, described):
    contents = cifar10_contents(cifar_raw)
    contents['batches.meta'] = {b'label_names': label_names, b'num_vis': 3072}
    data_dir = write_cifar10(tmp_path / 'data', contents, 'protocol2')
    with pytest.raises(CorruptDataError,
                       match=f"batches.meta is not CIFAR-10's batches.meta .* got {described}\\)"):
        get_cifar10(data_dir, validation_size=VALIDATION_SIZE)


def test_training_script_refuses_meta_with_three_names(tmp_path, cifar_raw):
    contents = cifar10_contents(cifar_raw)
    contents['batches.meta'] = {b'label_names': list(CLASS_NAMES[:3])}
    data_dir = write_cifar10(tmp_path / 'data', contents, 'python2')
    finished = run_main('train_mlp_numpy.py', '--data_dir', str(data_dir),
                        '--validation_size', '10', '--epochs', '1', '--no_plot',
                        '--no_progress', '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert finished.returncode == 1, finished.stderr
    [line] = finished.stderr.strip().splitlines()
    assert 'batches.meta' in line and 'got 3 of type bytes' in line


# ----------------------------------------------- CIFAR-10 as the official pipeline gives it

def torch_random_split(n_examples, validation_size):
    """The official split's training and validation indices, from torch itself."""
    torch = pytest.importorskip('torch')
    train, validation = torch.utils.data.random_split(
        torch.utils.data.TensorDataset(torch.arange(n_examples)),
        [n_examples - validation_size, validation_size],
        generator=torch.Generator().manual_seed(42))
    return list(train.indices), list(validation.indices)


def test_split_permutation_file_is_torch_randperm_seed_42():
    torch = pytest.importorskip('torch')
    regenerated = torch.randperm(50000, generator=torch.Generator().manual_seed(42)).numpy()
    stored = np.load(cifar10_utils.CIFAR10_SPLIT_PERMUTATION, allow_pickle=False)
    assert stored.dtype == np.uint16 and stored.shape == (50000,)
    np.testing.assert_array_equal(stored, regenerated)
    np.testing.assert_array_equal(cifar10_utils.load_split_permutation(), regenerated)


@pytest.mark.parametrize('validation_size', [0, 10, 5000])
def test_split_order_is_random_splits(validation_size):
    train, validation = torch_random_split(50000, validation_size)
    order = cifar10_utils.official_split_order(50000)
    assert order[:50000 - validation_size].tolist() == train
    assert order[50000 - validation_size:].tolist() == validation


@pytest.mark.slow
def test_full_size_cifar10_splits_are_the_official_ones(tmp_path):
    """50 000 training images in the real format, each carrying its index in two pixels."""
    index = np.arange(50000)
    rows = np.zeros((50000, 3072), dtype=np.uint8)
    rows[:, 0], rows[:, 1] = index // 256, index % 256
    contents = {f'data_batch_{number + 1}': cifar10_batch(
        'batch', rows[number * 10000:(number + 1) * 10000], index[number * 10000:][:10000] % 10)
        for number in range(5)}
    contents['test_batch'] = cifar10_batch('test', rows[:20], index[:20] % 10)
    contents['batches.meta'] = {b'label_names': list(CLASS_NAMES)}
    data_dir = write_cifar10(tmp_path, contents, 'python2')
    del rows, contents
    cifar = get_cifar10(data_dir, validation_size=5000)
    for split, expected in zip(('train', 'validation'), torch_random_split(50000, 5000)):
        first_pixels = raw_rows_of(cifar[split], columns=slice(0, 2)).astype(int)
        assert (first_pixels[:, 0] * 256 + first_pixels[:, 1]).tolist() == expected
        assert cifar[split].labels.tolist() == [i % 10 for i in expected]


def test_smaller_pool_takes_the_permutation_without_missing_indices(cifar, cifar_raw):
    permutation = np.load(cifar10_utils.CIFAR10_SPLIT_PERMUTATION)
    order = permutation[permutation < N_POOL]
    expected = {'train': order[:N_POOL - VALIDATION_SIZE],
                'validation': order[N_POOL - VALIDATION_SIZE:]}
    for split, pool_indices in expected.items():
        np.testing.assert_array_equal(raw_rows_of(cifar[split]),
                                      cifar_raw['train_rows'][pool_indices])
        np.testing.assert_array_equal(cifar[split].labels, cifar_raw['train_labels'][pool_indices])
    with pytest.raises(CorruptDataError, match='50001 images, more than the 50000 of CIFAR-10'):
        cifar10_utils.official_split_order(50001)


@pytest.mark.parametrize('damage', ['missing', 'truncated', 'int64', 'repeated index',
                                    'object array', 'wrong length'])
def test_damaged_split_permutation_is_named(tmp_path, damage):
    good = np.load(cifar10_utils.CIFAR10_SPLIT_PERMUTATION)
    path = tmp_path / 'cifar10_split_permutation.npy'
    if damage == 'truncated':
        path.write_bytes(cifar10_utils.CIFAR10_SPLIT_PERMUTATION.read_bytes()[:5000])
    elif damage == 'int64':
        np.save(path, good.astype(np.int64))
    elif damage == 'repeated index':
        np.save(path, np.concatenate([good[:-1], good[:1]]))
    elif damage == 'object array':
        np.save(path, good.astype(object), allow_pickle=True)
    elif damage == 'wrong length':
        np.save(path, good[:49999])
    with pytest.raises(CorruptDataError, match=r'cifar10_split_permutation.npy .*git checkout'):
        cifar10_utils.load_split_permutation(path)


def test_cifar10_normalisation_equals_torchvisions_float32(cifar, cifar_raw):
    """ToTensor then Normalize as torchvision computes them: x / 255, then (x - mean) / std,
    each step in float32, with mean and std as float32 tensors."""
    torch = pytest.importorskip('torch')
    raw = torch.from_numpy(cifar_raw['test_rows'].reshape(-1, 3, 32, 32))
    assert all(len(np.unique(raw[:, channel])) == 256 for channel in range(3))
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float32).view(3, 1, 1)
    torchvision_images = ((raw.to(torch.float32).div(255) - mean) / std).numpy()
    largest_difference = np.abs(cifar['test'].images - torchvision_images).max()
    assert largest_difference <= 1e-6  # measured: 4.8e-7, 4 float32 roundings of values near 2


def test_the_fast_route_of_a_normalisation_is_the_formula_and_refuses_others():
    """lab.loaders.apply_per_channel_affine: every uint8 value of 3 channels, against the
    formula in float64; a formula that is not affine is refused, not approximated."""
    raw = np.broadcast_to(np.arange(256, dtype=np.uint8), (2, 3, 256))
    mean, std = np.reshape([0.1, 0.5, 0.9], (3, 1)), np.reshape([0.2, 0.3, 0.4], (3, 1))
    images = apply_per_channel_affine(lambda values: (values / 255 - mean) / std, raw)
    assert images.dtype == np.float32 and images.shape == raw.shape
    np.testing.assert_allclose(images, (raw / 255 - mean) / std, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match='not affine'):
        apply_per_channel_affine(lambda values: (values / 255) ** 2, raw)


# ---------------------------------------------------------------- download

def test_download_then_extract_then_reuse(tmp_path, cifar_archive, cifar):
    data_dir = tmp_path / 'fresh'
    downloaded = get_cifar10(data_dir, validation_size=VALIDATION_SIZE)
    np.testing.assert_array_equal(downloaded['train'].images, cifar['train'].images)
    assert sorted(path.name for path in data_dir.iterdir()) == ['cifar-10-batches-py',
                                                               'cifar-10-python.tar.gz']
    cifar_archive.unlink()  # the second call must need neither server nor archive
    (data_dir / 'cifar-10-python.tar.gz').unlink()
    assert len(get_cifar10(data_dir, validation_size=VALIDATION_SIZE)['test']) == 20


def test_existing_archive_is_extracted_without_download(tmp_path, cifar_archive, monkeypatch):
    data_dir = tmp_path / 'fresh'
    data_dir.mkdir()
    (data_dir / 'cifar-10-python.tar.gz').write_bytes(cifar_archive.read_bytes())
    monkeypatch.setattr(cifar10_files, 'CIFAR10_URL', 'https://unreachable.invalid/x.tar.gz')
    assert len(get_cifar10(data_dir, validation_size=VALIDATION_SIZE)['train']) == 90


def test_existing_archive_with_wrong_md5_is_refused(tmp_path, cifar_archive):
    data_dir = tmp_path / 'fresh'
    data_dir.mkdir()
    (data_dir / 'cifar-10-python.tar.gz').write_bytes(cifar_archive.read_bytes()[:-100])
    with pytest.raises(CorruptDataError, match='cifar-10-python.tar.gz does not have the md5'):
        get_cifar10(data_dir)


class BrokenResponse:
    """Wraps a response; after `good_bytes` bytes it fails (or just ends early)."""

    def __init__(self, response, good_bytes, fail):
        self.response, self.headers = response, response.headers
        self.remaining, self.fail = good_bytes, fail

    def read(self, size):
        if self.remaining == 0:
            if self.fail:
                raise ConnectionResetError('connection reset by peer (test)')
            return b''
        chunk = self.response.read(min(size, self.remaining))
        self.remaining -= len(chunk)
        return chunk

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.response.close()


@pytest.mark.parametrize('fail', [True, False], ids=['connection-reset', 'early-end'])
def test_interrupted_download_leaves_nothing_and_rerun_succeeds(tmp_path, cifar_archive,
                                                                monkeypatch, fail):
    def interrupted_urlopen(url, *args, **kwargs):
        return BrokenResponse(REAL_URLOPEN(url, *args, **kwargs),
                              good_bytes=cifar_archive.stat().st_size // 2, fail=fail)

    data_dir = tmp_path / 'fresh'
    with monkeypatch.context() as patch:
        patch.setattr(urllib.request, 'urlopen', interrupted_urlopen)
        with pytest.raises(DownloadError, match='run again'):
            get_cifar10(data_dir, validation_size=VALIDATION_SIZE)
    assert not data_dir.exists()  # a failed download leaves no folder
    assert len(get_cifar10(data_dir, validation_size=VALIDATION_SIZE)['test']) == 20


def test_download_with_wrong_md5_is_discarded(tmp_path, cifar_archive, monkeypatch):
    monkeypatch.setattr(cifar10_files, 'CIFAR10_MD5', '0' * 32)
    data_dir = tmp_path / 'fresh'
    with pytest.raises(DownloadError, match='instead of 0{32}'):
        get_cifar10(data_dir)
    assert not data_dir.exists()  # a failed download leaves no folder


def test_no_network_says_where_to_put_the_archive(tmp_path):
    data_dir = tmp_path / 'offline'
    with pytest.raises(DownloadError) as raised:
        get_cifar10(data_dir)
    message = str(raised.value)
    assert 'network unreachable' in message
    assert str((data_dir / 'cifar-10-python.tar.gz').resolve()) in message
    assert isinstance(raised.value, OSError)
    assert not data_dir.exists()  # a failed download leaves no folder


# ---------------------------------------------------------------- loaders

def test_loader_lengths_drop_last_and_completeness(cifar):
    loaders = get_dataloader(cifar, batch_size=16, return_numpy=True)
    assert set(loaders) == {'train', 'validation', 'test'}
    assert len(loaders['train']) == 90 // 16 == 5
    train_batches = list(loaders['train'])
    assert len(train_batches) == 5 and all(len(labels) == 16 for _, labels in train_batches)
    for split in ('validation', 'test'):
        loader = loaders[split]
        batches = list(loader)
        assert len(loader) == len(batches) == -(-len(cifar[split]) // 16)
        np.testing.assert_array_equal(np.concatenate([images for images, _ in batches]),
                                      cifar[split].images)
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]),
                                      cifar[split].labels)


def test_the_train_loader_draws_each_epoch_as_its_seeded_permutation(cifar):
    """The documented order: epoch k is ``rng.permutation(N)``, the k-th draw of a generator
    seeded with ``seed``, cut into batches of ``batch_size`` (the last partial one dropped)."""
    loader = get_dataloader(cifar, batch_size=16, return_numpy=True, seed=3)['train']
    rng, train = np.random.default_rng(3), cifar['train']
    for _ in range(2):
        order = rng.permutation(len(train))[:len(loader) * 16]
        batches = list(loader)
        assert [len(labels) for _, labels in batches] == [16] * len(loader)
        np.testing.assert_array_equal(np.concatenate([images for images, _ in batches]),
                                      train.images[order])
        np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]),
                                      train.labels[order])


def epoch_labels(loader):
    return np.concatenate([labels for _, labels in loader])


def test_train_shuffle_fresh_each_epoch_and_reproducible(cifar):
    loader = get_dataloader(cifar, batch_size=16, return_numpy=True, seed=7)['train']
    first, second = epoch_labels(loader), epoch_labels(loader)
    assert not np.array_equal(first, second)
    twin = get_dataloader(cifar, batch_size=16, return_numpy=True, seed=7)['train']
    np.testing.assert_array_equal(epoch_labels(twin), first)
    np.testing.assert_array_equal(epoch_labels(twin), second)
    other_seed = get_dataloader(cifar, batch_size=16, return_numpy=True, seed=8)['train']
    assert not np.array_equal(epoch_labels(other_seed), first)


def test_restoring_rng_state_repeats_the_epoch(cifar):
    loader = get_dataloader(cifar, batch_size=16, return_numpy=True)['train']
    saved_state = loader.rng.bit_generator.state
    images_before = np.concatenate([images for images, _ in loader])
    loader.rng.bit_generator.state = saved_state
    np.testing.assert_array_equal(np.concatenate([images for images, _ in loader]),
                                  images_before)


def test_shuffled_batches_keep_images_with_their_labels(cifar):
    train = cifar['train']
    for images, labels in get_dataloader(cifar, batch_size=16, return_numpy=True)['train']:
        assert images.flags['C_CONTIGUOUS']
        for image, label in zip(images, labels):
            matches = np.flatnonzero((train.images == image).all(axis=(1, 2, 3)))
            assert train.labels[matches].tolist() == [label]


def test_numpy_path_gives_arrays_and_batches_are_copies(cifar):
    images, labels = next(iter(get_dataloader(cifar, 8, return_numpy=True)['test']))
    assert type(images) is np.ndarray and type(labels) is np.ndarray
    assert images.shape == (8, 3, 32, 32) and images.dtype == np.float32
    assert labels.dtype == np.int64
    images[:] = 0
    assert cifar['test'].images[:8].any()


def test_numpy_path_never_imports_torch(cifar_dir):
    program = (
        'import sys; from cifar10_utils import get_cifar10, get_dataloader\n'
        f'loaders = get_dataloader(get_cifar10({str(cifar_dir)!r}, 10), 8, return_numpy=True)\n'
        'for loader in loaders.values(): list(loader)\n'
        "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, '-c', program], cwd=REPO, check=True)


def test_torch_path_gives_tensors(cifar):
    torch = pytest.importorskip('torch')
    loaders = get_dataloader(cifar, batch_size=16, device='cpu')
    images, labels = next(iter(loaders['train']))
    assert isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and images.device.type == 'cpu'
    same_seed = get_dataloader(cifar, batch_size=16, return_numpy=True)['train']
    np.testing.assert_array_equal(labels.numpy(), next(iter(same_seed))[1])
    test_images = torch.cat([images for images, _ in loaders['test']])
    np.testing.assert_array_equal(test_images.numpy(), cifar['test'].images)


def test_torch_path_gathers_on_the_given_device(cifar):
    torch = pytest.importorskip('torch')
    # 'meta' tensors have shapes but no data: they exercise the path a GPU takes.
    loaders = get_dataloader(cifar, batch_size=16, device='meta')
    batches = list(loaders['train'])
    assert len(batches) == 5
    images, labels = batches[0]
    assert images.device.type == 'meta' and images.shape == (16, 3, 32, 32)
    assert labels.dtype == torch.int64 and labels.shape == (16,)
    assert [len(labels) for _, labels in loaders['test']] == [16, 4]


@pytest.mark.parametrize('batch_size', [0, -1, N_POOL - VALIDATION_SIZE + 1])
def test_bad_batch_size_is_refused(cifar, batch_size):
    with pytest.raises(ValueError, match='batch_size must be between 1 and 90'):
        get_dataloader(cifar, batch_size)


def test_device_with_numpy_is_refused(cifar):
    with pytest.raises(ValueError, match='device'):
        get_dataloader(cifar, 16, return_numpy=True, device='cpu')


# ---------------------------------------------------------------- IDX, MNIST

def idx_bytes(array, type_code=0x08):
    dims = b''.join(int(size).to_bytes(4, 'big') for size in array.shape)
    return bytes([0, 0, type_code, array.ndim]) + dims + array.tobytes()


@pytest.mark.parametrize('compress', [False, True], ids=['plain', 'gzip'])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    counts = np.array([-3, 0, 70000], dtype='>i4')
    for array, type_code, name in ((images, 0x08, 'images'), (counts, 0x0C, 'counts')):
        content = idx_bytes(array, type_code)
        path = tmp_path / name
        path.write_bytes(gzip.compress(content) if compress else content)
        read = read_idx(path)
        np.testing.assert_array_equal(read, array)
        assert read.dtype.isnative and read.flags.writeable


def test_read_idx_rejects_wrong_magic_and_truncation(tmp_path):
    path = tmp_path / 'broken-idx3-ubyte'
    path.write_bytes(b'\x12\x34\x08\x03' + bytes(100))
    with pytest.raises(CorruptDataError, match='broken-idx3-ubyte is not an IDX file'):
        read_idx(path)
    content = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path.write_bytes(content[:-10])
    with pytest.raises(CorruptDataError, match='truncated'):
        read_idx(path)
    path.write_bytes(gzip.compress(content)[:-20])
    with pytest.raises(CorruptDataError, match='truncated or corrupt gzip'):
        read_idx(path)


def idx_header(type_code, shape):
    return bytes([0, 0, type_code, len(shape)]) + b''.join(size.to_bytes(4, 'big')
                                                            for size in shape)


def gzip_bomb(content, expanded_gib):
    """`content` gzipped, then gzip members of zeros that expand to `expanded_gib` GiB
    more: a few MB on disk, read as one stream (gzip joins its members)."""
    zeros_member = gzip.compress(bytes(16 << 20), compresslevel=9)
    return gzip.compress(content) + zeros_member * (64 * expanded_gib)


BROKEN_IDX_IMAGES = {
    '255 dimensions': (idx_header(0x08, (1,) * 255) + b'\x07',
                       'its header declares 255 dimensions'),
    '0 dimensions': (idx_header(0x08, ()) + b'\x07', 'its header declares 0 dimensions'),
    'dimensions of 2**32 - 1': (idx_header(0x08, (2**32 - 1, 2**32 - 1, 28)) + bytes(100),
                                f'{(2**32 - 1) ** 2 * 28} bytes, more than the {1 << 30}'),
}


@pytest.mark.parametrize('case', BROKEN_IDX_IMAGES)
def test_read_idx_refuses_impossible_headers(tmp_path, case):
    content, expected = BROKEN_IDX_IMAGES[case]
    path = tmp_path / 'train-images-idx3-ubyte'
    path.write_bytes(content)
    with pytest.raises(CorruptDataError) as raised:
        read_idx(path)
    message = str(raised.value)
    assert message.startswith(f'{path} is not a readable IDX file') and expected in message
    assert not re.search(r'[\s(,]-\d', message), 'a negative size'


@pytest.mark.parametrize('compress', [False, True], ids=['plain', 'gzip'])
def test_read_idx_refuses_data_beyond_the_announced_size(tmp_path, compress):
    content = idx_bytes(np.zeros((5, 28, 28), np.uint8)) + b'\0'
    path = tmp_path / 'train-images-idx3-ubyte'
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(CorruptDataError, match=r'holds more than 3920 bytes of data, but its '
                                               r'header announces \(5, 28, 28\) uint8'):
        read_idx(path)


def test_read_idx_never_expands_a_gzip_bomb(tmp_path):
    path = tmp_path / 'train-images-idx3-ubyte.gz'
    path.write_bytes(gzip_bomb(idx_bytes(np.zeros((40, 28, 28), np.uint8)), expanded_gib=4))
    assert path.stat().st_size < 8 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CorruptDataError, match='holds more than 31360 bytes of data'):
            read_idx(path)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 64 << 20, f'{peak_bytes} bytes taken to read a 4 GiB gzip bomb'


@pytest.mark.parametrize('case', ['255 dimensions', 'dimensions of 2**32 - 1', 'gzip bomb'])
def test_training_script_refuses_broken_idx_file(mnist_dir, case):
    path = mnist_dir / 'MNIST' / 'raw' / 'train-images-idx3-ubyte.gz'
    if case == 'gzip bomb':
        images = np.zeros((40, 28, 28), np.uint8)
        path.write_bytes(gzip_bomb(idx_bytes(images), expanded_gib=4))
        expected = 'holds more than 31360 bytes of data'
    else:
        content, expected = BROKEN_IDX_IMAGES[case]
        expected = expected.split(', more than')[0]  # the scripts cap at MNIST's own size
        path.write_bytes(gzip.compress(content))
    finished = run_script('train_mlp_numpy.py', '--dataset', 'mnist', '--data_dir',
                          str(mnist_dir), '--validation_size', '8', '--batch_size', '8',
                          '--epochs', '1', '--no_plot', '--no_progress',
                          '--out_dir', str(mnist_dir / 'out'), cwd=mnist_dir)
    assert finished.returncode == 1, finished.stderr
    [line] = finished.stderr.strip().splitlines()
    assert line.startswith(f'error: {path}') and expected in line


@pytest.fixture
def mnist_dir(tmp_path):
    """A data_dir holding a tiny MNIST (40 + 10 images) in torchvision's layout, gzipped."""
    rng = np.random.default_rng(5)
    raw_dir = tmp_path / 'MNIST' / 'raw'
    raw_dir.mkdir(parents=True)
    for prefix, n_images in (('train', 40), ('t10k', 10)):
        images = rng.integers(0, 256, (n_images, 28, 28), dtype=np.uint8)
        labels = np.arange(n_images, dtype=np.uint8) % 10
        (raw_dir / f'{prefix}-images-idx3-ubyte.gz').write_bytes(gzip.compress(idx_bytes(images)))
        (raw_dir / f'{prefix}-labels-idx1-ubyte.gz').write_bytes(gzip.compress(idx_bytes(labels)))
    return tmp_path


def test_mnist_from_torchvision_layout(mnist_dir):
    mnist = get_dataset('mnist', data_dir=mnist_dir, validation_size=8)
    assert [len(mnist[split]) for split in ('train', 'validation', 'test')] == [32, 8, 10]
    assert mnist['train'].images.shape == (32, 1, 28, 28)
    assert mnist['test'].images.dtype == np.float32 and mnist['test'].labels.dtype == np.int64
    # standardised with the statistics of the whole training pool
    pool = np.concatenate([mnist['train'].images, mnist['validation'].images])
    assert abs(pool.mean()) < 1e-5 and abs(pool.std() - 1) < 1e-5
    assert mnist['test'].classes == [str(digit) for digit in range(10)]


def test_mnist_absent_offline_gives_download_error(tmp_path):
    with pytest.raises(DownloadError, match='put it at'):
        get_dataset('mnist', data_dir=tmp_path)
    assert not (tmp_path / 'MNIST').exists()  # a failed download leaves no folder


def write_mnist(data_dir, n_train, n_test, pixels=None):
    """data_dir/MNIST/raw with IDX files of these sizes; random pixels unless given one value."""
    raw = data_dir / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n_images in (('train', n_train), ('t10k', n_test)):
        images = (rng.integers(0, 256, (n_images, 28, 28)) if pixels is None
                  else np.full((n_images, 28, 28), pixels))
        (raw / f'{prefix}-images-idx3-ubyte').write_bytes(idx_bytes(images.astype(np.uint8)))
        labels = rng.integers(0, 10, n_images).astype(np.uint8)
        (raw / f'{prefix}-labels-idx1-ubyte').write_bytes(idx_bytes(labels))
    return data_dir


@pytest.mark.parametrize('split, n_images', [('train', 60001), ('t10k', 10001)])
def test_idx_headers_beyond_the_documented_size_are_refused_before_reading(split, n_images,
                                                                          tmp_path):
    data_dir = write_mnist(tmp_path / 'data', 20, 20)
    header = bytes([0, 0, 0x08, 3]) + b''.join(size.to_bytes(4, 'big')
                                               for size in (n_images, 28, 28))
    (data_dir / 'MNIST' / 'raw' / f'{split}-images-idx3-ubyte').write_bytes(header + bytes(10))
    with pytest.raises(CorruptDataError, match=f'more than the {(n_images - 1) * 784} bytes'):
        get_mnist(data_dir, validation_size=5)


# ---------------------------------------------------------------- small or degenerate data

def write_cifar(data_dir, images_per_batch=20, **replaced):
    """data_dir/cifar-10-batches-py in CIFAR-10's own format (Python 2 pickles), each batch
    of ``images_per_batch`` random images, with any file's content ``replaced`` by bytes."""
    rng = np.random.default_rng(0)
    contents = {name: cifar10_batch(name, rng.integers(0, 256, (images_per_batch, 3072),
                                                       dtype=np.uint8),
                                    rng.integers(0, 10, images_per_batch))
                for name in [f'data_batch_{number}' for number in range(1, 6)] + ['test_batch']}
    contents['batches.meta'] = {b'label_names': list(CLASS_NAMES)}
    write_cifar10(data_dir, contents, 'python2')
    for name, content in replaced.items():
        (data_dir / 'cifar-10-batches-py' / name).write_bytes(content)
    return data_dir


EMPTY_TEST_BATCH = pickle.dumps(
    {b'data': np.zeros((0, 3072), np.uint8), b'labels': np.zeros(0, np.int64)}, protocol=4)
"""A test_batch of no images, as Python 3 pickles one."""


SMALL_DATA = {
    'CIFAR-10 of 100 images a batch': (
        'cifar10', lambda data_dir: write_cifar(data_dir, 100), [],
        'holds 500 training examples, too few to hold out 5000'),
    'a batch larger than the training split': (
        'cifar10', lambda data_dir: write_cifar(data_dir, 100), ['--validation_size', '100',
                                                                 '--batch_size', '1000'],
        'holds 400 training examples after the validation split, fewer than one batch'),
    'an empty test_batch': (
        'cifar10', lambda data_dir: write_cifar(data_dir, 20, test_batch=EMPTY_TEST_BATCH),
        ['--validation_size', '10'], r"test_batch is not a CIFAR-10 batch"),
    'IDX files of 100 images': (
        'mnist', lambda data_dir: write_mnist(data_dir, 100, 100), [],
        'holds 100 training examples, too few to hold out 5000'),
    'IDX files of no images': (
        'mnist', lambda data_dir: write_mnist(data_dir, 0, 0), [], 'holds no images'),
    'IDX images of one grey': (
        'mnist', lambda data_dir: write_mnist(data_dir, 100, 100, pixels=7),
        ['--validation_size', '10'], 'every pixel of'),
}


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
@pytest.mark.parametrize('case', SMALL_DATA)
def test_small_or_degenerate_data_is_one_line(script, case, tmp_path):
    dataset, write, arguments, expected = SMALL_DATA[case]
    data_dir = write(tmp_path / 'data')
    result = run_main(script, '--dataset', dataset, '--data_dir', str(data_dir),
                      '--epochs', '1', '--no_plot', '--no_progress', *arguments,
                      '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith('error: ') and expected in line, line
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


@pytest.mark.parametrize('n_images, pixels, expected', [(0, None, 'holds no images'),
                                                        (100, 7, 'every pixel of')])
def test_the_studies_name_empty_or_flat_data(n_images, pixels, expected, tmp_path):
    """experiments.py turns a CorruptDataError into its one line; the studies' loader raises
    it for these files (it trains on the spiral first, minutes before it reads them)."""
    data_dir = write_mnist(tmp_path / 'data', n_images, n_images, pixels)
    (data_dir / 'MNIST').rename(data_dir / 'FashionMNIST')
    with pytest.raises(CorruptDataError, match=expected):
        load_subset('fashion_mnist', n_train=50, data_dir=str(data_dir))


# ---------------------------------------------------------------- spiral, get_dataset

def test_spiral_shapes_balance_and_determinism():
    spiral = get_dataset('spiral')
    assert [len(spiral[split]) for split in ('train', 'validation', 'test')] == [900, 300, 300]
    for dataset in spiral.values():
        assert dataset.images.shape == (len(dataset), 2) and dataset.images.dtype == np.float32
        assert dataset.labels.dtype == np.int64 and len(dataset.classes) == 3
    all_labels = np.concatenate([dataset.labels for dataset in spiral.values()])
    assert np.bincount(all_labels).tolist() == [500, 500, 500]
    assert np.abs(spiral['train'].images).max() < 1.01
    again, other = get_dataset('spiral', seed=0), get_dataset('spiral', seed=1)
    np.testing.assert_array_equal(again['train'].images, spiral['train'].images)
    assert not np.array_equal(other['train'].images, spiral['train'].images)


def test_spiral_options_and_validation_range():
    spiral = get_dataset('spiral', validation_size=10, n_classes=4, points_per_class=50)
    assert [len(spiral[split]) for split in ('train', 'validation', 'test')] == [150, 10, 40]
    assert data_utils.default_validation_size('spiral', n_classes=4, points_per_class=50) == 40
    with pytest.raises(ValueError, match=r'must lie in \[1, 159\]'):
        get_dataset('spiral', validation_size=160, n_classes=4, points_per_class=50)


def test_get_dataset_names_and_defaults(cifar_dir):
    assert data_utils.DATASETS == ('cifar10', 'fashion_mnist', 'mnist', 'spiral')
    assert [data_utils.default_validation_size(name) for name in data_utils.DATASETS] == [
        5000, 5000, 5000, 300]
    with pytest.raises(ValueError, match='choose one of cifar10, fashion_mnist'):
        get_dataset('imagenet')
    with pytest.raises(TypeError, match='takes no options'):
        get_dataset('cifar10', data_dir=cifar_dir, validation_size=10, noise=0.1)
    cifar = get_dataset('cifar10', data_dir=cifar_dir, validation_size=10)
    assert cifar['train'].images.shape == (90, 3, 32, 32)


def test_loader_works_on_spiral_and_mnist(mnist_dir):
    for datasets in (get_dataset('spiral'), get_dataset('mnist', mnist_dir, validation_size=8)):
        loaders = get_dataloader(datasets, batch_size=8, return_numpy=True)
        images, labels = next(iter(loaders['train']))
        assert images.shape == (8, *datasets['train'].images.shape[1:])
        assert labels.shape == (8,)


@pytest.mark.slow
@pytest.mark.skipif(not data_utils.DEBIAN_FASHION_MNIST_DIR.is_dir(),
                    reason='Debian package dataset-fashion-mnist is not installed '
                           '(apt-get install dataset-fashion-mnist)')
def test_real_fashion_mnist_from_debian(tmp_path):
    fashion = get_dataset('fashion_mnist', data_dir=tmp_path)
    assert len(fashion['train']) + len(fashion['validation']) == 60000
    assert len(fashion['validation']) == 5000 and len(fashion['test']) == 10000
    assert fashion['test'].images.shape == (10000, 1, 28, 28)
    assert np.bincount(fashion['test'].labels).tolist() == [1000] * 10
    assert fashion['test'].classes[0] == 'T-shirt/top' and len(fashion['test'].classes) == 10
    assert abs(float(fashion['train'].images.mean())) < 0.01


def fail_to_download(url, destination, md5):
    raise DownloadError(f'Could not download {url}: no network.')


def test_the_cifar10_offline_message_offers_fashion_mnist(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10_files, 'download_file', fail_to_download)
    with pytest.raises(DownloadError, match='--dataset fashion_mnist'):
        get_cifar10(tmp_path)


def test_the_mnist_offline_message_names_its_four_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data_utils, 'download_file', fail_to_download)
    with pytest.raises(DownloadError) as failed:
        get_dataset('mnist', tmp_path)
    for name in data_utils.IDX_FILES:
        assert f'{data_utils.MNIST.url}{name}.gz' in str(failed.value)


def test_a_failed_download_leaves_no_folder_behind(tmp_path):
    missing = tmp_path / 'not there.gz'
    with pytest.raises(DownloadError):
        from lab.downloads import download_file
        download_file(missing.as_uri(), tmp_path / 'mistyped' / 'data' / 'file.gz', md5='0')
    assert list(tmp_path.iterdir()) == []


def test_cifar10_asked_of_a_folder_of_mnist_files_says_what_to_type(tmp_path):
    for name in data_utils.IDX_FILES:
        (tmp_path / f'{name}.gz').write_bytes(b'')
    with pytest.raises(data_utils.DataDirError, match=r'add --dataset fashion_mnist \(or '):
        data_utils.data_source('cifar10', tmp_path)
    assert data_utils.data_source('cifar10', tmp_path / 'data') == (
        f"data: CIFAR-10 is not in {tmp_path / 'data'}: downloading it there")


@needs_fashion_mnist
def test_fashion_mnist_says_when_it_reads_debians_copy(tmp_path):
    line = data_utils.data_source('fashion_mnist', tmp_path)
    assert line == (f"data: Fashion-MNIST from {data_utils.DEBIAN_FASHION_MNIST_DIR} "
                    f"(Debian's copy; {tmp_path / 'FashionMNIST' / 'raw'} holds none)")


@needs_fashion_mnist
@pytest.mark.parametrize('dataset', ['cifar10', 'mnist'])
def test_the_debian_folder_without_its_data_set_is_refused_before_any_download(dataset,
                                                                              tmp_path):
    result = run_script('train_mlp_numpy.py', '--data_dir',
                        str(data_utils.DEBIAN_FASHION_MNIST_DIR), '--dataset', dataset,
                        '--out_dir', str(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"holds the files of another data set and none of "
        f"{'CIFAR-10' if dataset == 'cifar10' else 'MNIST'}: add --dataset fashion_mnist, "
        f"or give the --data_dir that holds {'CIFAR-10' if dataset == 'cifar10' else 'MNIST'}")
    assert sorted(os.listdir(data_utils.DEBIAN_FASHION_MNIST_DIR)) == sorted(
        f'{name}.gz' for name in data_utils.IDX_FILES)


@pytest.mark.skipif(not hasattr(np._core.multiarray, '_set_madvise_hugepage'),
                    reason="this NumPy has no switch for its huge-page advice")
def test_the_splits_are_made_in_ordinary_pages_and_the_advice_is_restored():
    from lab.loaders import make_splits
    switch = np._core.multiarray._set_madvise_hugepage
    advice_while_transforming = []

    def transform(raw_images):
        advice = switch(False)  # returns the advice in force, which is then put back
        switch(advice)
        advice_while_transforming.append(advice)
        return raw_images.astype(np.float32)
    previous = switch(True)
    try:
        splits = make_splits(np.arange(10, dtype=np.uint8), np.arange(10), np.arange(4),
                             np.arange(4), ['a'], np.arange(10)[::-1], 3, transform=transform)
        assert switch(True) is True
    finally:
        switch(previous)
    assert advice_while_transforming == [False, False]
    assert splits['validation'].images.tolist() == [2, 1, 0]
