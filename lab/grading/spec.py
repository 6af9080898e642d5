"""What the grader and the student's process agree on: files, years, sizes, limits, the wire.

This module is imported by the judge and copied beside the student-side server
(:mod:`lab.grading.student_server`), so it imports the standard library and NumPy only.
"""
import json
import struct

import numpy as np

YEARS = (2023, 2024, 2025)
DEFAULT_YEAR = 2025
"""The year assumed when the files do not tell (no ELUModule to read)."""

ELU_ALPHA = {2023: 1.0, 2024: 0.5, 2025: 0.5}
"""The alpha each year's tests build ELUModule with (2023's ELUModule() has alpha 1)."""

STUDENT_FILES = {'modules': 'modules.py', 'mlp_numpy': 'mlp_numpy.py',
                 'mlp_pytorch': 'mlp_pytorch.py'}
"""The assignment's files: module name -> file name."""

NUMPY_FILES = ('modules', 'mlp_numpy')
"""The NumPy part: asked in a process where PyTorch cannot be imported."""
TORCH_FILES = ('mlp_pytorch',)

RTOL, ATOL = 1e-5, 1e-8
"""Agreement of a returned array with the reference (the official tests allow 1e-5)."""

OFFICIAL_TOLERANCE = {'crossentropy': 1e-5, 'linear': 1e-5, 'elu': 1e-6, 'softmax': 1e-5}
"""The official unittests.py's relative-error bounds, test by test."""

CALL_SECONDS = 4.0
"""Wall-clock budget of one call to the student's code; a training call gets TRAINING_SECONDS."""
TRAINING_SECONDS = 12.0
IMPORT_SECONDS = 30.0
"""Budget of importing the files: torch alone takes seconds on a busy machine."""
GRACE_SECONDS = 2.0
"""How long past a call's budget the grader waits before it stops the process itself."""
RECURSION_LIMIT = 600
"""The student's process's recursion limit: an endless recursion ends as one call's error."""

MLP_SHAPE = {'n_inputs': 5, 'k': 4, 'n_classes': 3, 'n_samples': 3}
"""Sizes of the small networks the MLP items build."""

TRAINING = {'n_classes': 3, 'n_per_class': 100, 'hidden': [32], 'epochs': 120,
            'batch_size': 30, 'lr': 0.2, 'accuracy': 0.75}
"""The training task (a spiral with a seed drawn at grading time) and the bar to reach."""

# -- the wire: frames of a JSON header and raw array bytes ---------------------------------

MAX_HEADER_BYTES = 1 << 20
MAX_ARRAY_BYTES = 256 << 20
MAX_ARRAYS = 4096
MAX_DEPTH = 8
MAX_ITEMS = 10000
MAX_TEXT = 4000
ARRAY_DTYPES = ('<f8', '<f4', '<f2', '<i8', '<i4', '<i2', '|i1', '|u1', '|b1')
"""The dtypes an array on the wire may have: numbers and booleans only."""


def encode_array(value):
    """(dtype, shape, bytes) of an array or tensor of numbers; None for anything else."""
    if hasattr(value, 'detach') and hasattr(value, 'cpu') and hasattr(value, 'numpy'):
        value = value.detach().cpu().numpy()
    if isinstance(value, (np.generic,)):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        return None
    if value.dtype.kind == 'f' and value.dtype.itemsize > 8:
        value = value.astype('<f8')
    dtype = value.dtype.newbyteorder('<') if value.dtype.byteorder == '>' else value.dtype
    if dtype.str not in ARRAY_DTYPES:
        return None
    return dtype.str, value.shape, np.ascontiguousarray(value, dtype=dtype).tobytes()


def decode_array(dtype, shape, data):
    """The array a frame describes, writable and owned."""
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


class WireError(ValueError):
    """A frame that breaks the protocol; the message names what is wrong."""


def pack(value):
    """A frame for ``value``: a JSON header (arrays replaced by ``{"$array": i}``) and bytes.

    """
    blobs = []

    def plain(item, depth):
        if depth > MAX_DEPTH:
            return {'$object': 'too deeply nested'}
        if item is None or isinstance(item, (bool, int, str)):
            return item
        if isinstance(item, float):
            return item if item == item and abs(item) != float('inf') else {'$float': repr(item)}
        if isinstance(item, dict):
            return {str(key): plain(entry, depth + 1) for key, entry in list(item.items())}
        if isinstance(item, (list, tuple)):
            return [plain(entry, depth + 1) for entry in item]
        array = encode_array(item)
        if array is None:
            return {'$object': type(item).__name__}
        blobs.append(array)
        return {'$array': len(blobs) - 1}

    header = json.dumps({'value': plain(value, 0),
                         'arrays': [[dtype, list(shape)] for dtype, shape, _ in blobs]})
    data = header.encode()
    return struct.pack('>I', len(data)) + data, [blob for _, _, blob in blobs]


def read_exactly(read, count):
    """``count`` bytes from ``read(n)``; WireError at an early end."""
    parts, left = [], count
    while left:
        chunk = read(min(left, 1 << 20))
        if not chunk:
            raise WireError('the process closed its answers')
        parts.append(chunk)
        left -= len(chunk)
    return b''.join(parts)


def unpack(read):
    """Read one frame with ``read(n)``; return its value, checked against every limit.

    Raises WireError naming the
    first limit broken: the header's size, its JSON, its depth, a list's length, an
    array's dtype, shape or bytes.
    """
    (length,) = struct.unpack('>I', read_exactly(read, 4))
    if length > MAX_HEADER_BYTES:
        raise WireError(f'an answer header of {length} bytes, more than {MAX_HEADER_BYTES}')
    try:
        header = json.loads(read_exactly(read, length))
    except RecursionError:
        raise WireError('an answer nested deeper than Python can read') from None
    except ValueError as error:
        raise WireError(f'an answer that is not JSON ({error})') from None
    if not isinstance(header, dict) or set(header) != {'value', 'arrays'}:
        raise WireError('an answer without exactly the keys value and arrays')
    specs = header['arrays']
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise WireError(f'an answer with more than {MAX_ARRAYS} arrays, or no list of them')
    arrays, total = [], 0
    for spec in specs:
        if (not isinstance(spec, list) or len(spec) != 2 or spec[0] not in ARRAY_DTYPES
                or not isinstance(spec[1], list) or len(spec[1]) > 6
                or not all(type(size) is int and 0 <= size < 1 << 31 for size in spec[1])):
            raise WireError(f'an array described as {str(spec)[:80]}: not a number dtype '
                            f'and shape')
        size = int(spec[0][2:])
        for extent in spec[1]:
            size *= extent
        total += size
        if total > MAX_ARRAY_BYTES:
            raise WireError(f'arrays of more than {MAX_ARRAY_BYTES >> 20} MiB in one answer')
        arrays.append(decode_array(spec[0], tuple(spec[1]), read_exactly(read, size)))

    def build(item, depth):
        if depth > MAX_DEPTH:
            raise WireError(f'an answer nested deeper than {MAX_DEPTH} levels')
        if item is None or isinstance(item, (bool, int, float)):
            return item
        if isinstance(item, str):
            if len(item) > MAX_TEXT:
                raise WireError(f'a text of more than {MAX_TEXT} characters')
            return item
        if isinstance(item, list):
            if len(item) > MAX_ITEMS:
                raise WireError(f'a list of more than {MAX_ITEMS} items')
            return [build(entry, depth + 1) for entry in item]
        if isinstance(item, dict):
            if len(item) > MAX_ITEMS:
                raise WireError(f'a mapping of more than {MAX_ITEMS} items')
            if set(item) == {'$array'}:
                index = item['$array']
                if type(index) is not int or not 0 <= index < len(arrays):
                    raise WireError('a reference to an array that is not there')
                return arrays[index]
            if set(item) == {'$float'} and item['$float'] in ('nan', 'inf', '-inf'):
                return float(item['$float'])
            return {str(key)[:MAX_TEXT]: build(entry, depth + 1) for key, entry in item.items()}
        raise WireError(f'a value of type {type(item).__name__}')

    return build(header['value'], 0)
