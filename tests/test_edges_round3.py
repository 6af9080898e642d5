"""Hard edges, round 3 (issue 20): links out of the run folder, where notebooks import from,
data-size bombs, checkpoint contents, small data, signals, closed streams, escapes.

Each fixture (a link, a crafted pickle, IDX file, checkpoint or zip) is built by its test.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SCRIPTS, checkpoint_name, copy_of_run, only_run_dir, run_script

BOTH_SCRIPTS = ['train_mlp_numpy.py',
                pytest.param('train_mlp_pytorch.py', marks=pytest.mark.slow)]
"""The scripts share the code under test; the PyTorch one costs a PyTorch import a run."""
SPIRAL_RUN = ('--dataset', 'spiral', '--hidden_dims', '8', '--batch_size', '32',
              '--no_progress')


def suffix_of(script):
    return '.npz' if 'numpy' in script else '.pt'


@pytest.fixture(scope='module')
def finished_runs(tmp_path_factory):
    """One finished two-epoch spiral run of each script, with its plots, to copy and edit."""
    out_dir = tmp_path_factory.mktemp('finished')
    run_dirs = {}
    for script in SCRIPTS:
        result = run_script(script, *SPIRAL_RUN, '--epochs', '2',
                            '--out_dir', str(out_dir / script), cwd=out_dir)
        assert result.returncode == 0, result.stderr
        run_dirs[script] = only_run_dir(out_dir / script)
    return run_dirs


def last_line(result):
    return result.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------- links out of the run folder

def make_link(kind, target, link):
    """``link`` as a symbolic or hard link to ``target``."""
    if kind == 'symlink':
        link.symlink_to(target)
    else:
        os.link(target, link)


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
@pytest.mark.parametrize('kind', ['symlink', 'hard link', 'dangling symlink', 'FIFO',
                                  'folder'])
@pytest.mark.slow
def test_a_linked_lock_is_refused_and_its_target_untouched(script, kind, finished_runs,
                                                           tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    target = tmp_path / 'precious.txt'
    if kind != 'dangling symlink':
        target.write_text('keep me')
    if kind == 'FIFO':
        os.mkfifo(run_dir / '.lock')
    elif kind == 'folder':
        (run_dir / '.lock').mkdir()
    else:
        make_link('hard link' if kind == 'hard link' else 'symlink', target, run_dir / '.lock')
    result = run_script(script, '--resume', str(checkpoint), '--epochs', '3', '--no_plot',
                        '--no_progress', cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert '.lock is a' in last_line(result) and 'Traceback' not in result.stderr
    if kind == 'dangling symlink':
        assert not target.exists()
    else:
        assert target.read_text() == 'keep me'
    assert json.loads((run_dir / 'summary.json').read_text())['epochs_completed'] == 2


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
@pytest.mark.parametrize('kind', ['symlink', 'hard link'])
@pytest.mark.slow
def test_no_output_is_written_through_a_link(script, kind, finished_runs, tmp_path):
    """Every file a resumed run writes (summary, model, checkpoint, plots, a temporary file
    left by a killed run) is a link to a file outside the folder: each target stays as it
    was, and the run writes its own files in their place."""
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir()
    suffix = suffix_of(script)
    names = [f'model{suffix}', 'summary.json', 'loss.png', 'accuracy.png',
             f'.checkpoint{suffix}.abcd1234.tmp']
    if kind == 'hard link':
        names.append(f'checkpoint{suffix}')
    for name in names:
        target = outside / name.strip('.')
        if name.startswith('checkpoint'):
            shutil.copy(run_dir / name, target)
        else:
            target.write_text(f'precious {name}')
        (run_dir / name).unlink(missing_ok=True)
        make_link(kind, target, run_dir / name)
    before = {path.name: path.read_bytes() for path in outside.iterdir()}
    result = run_script(script, '--resume', str(checkpoint), '--epochs', '3', '--no_progress',
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {path.name: path.read_bytes() for path in outside.iterdir()} == before
    for name in names:
        path = run_dir / name
        if name.endswith('.tmp'):
            assert not path.exists() and not path.is_symlink()
        else:
            assert not path.is_symlink() and path.stat().st_nlink == 1
    assert json.loads((run_dir / 'summary.json').read_text())['epochs_completed'] == 3


# ---------------------------------------------------------------- notebooks

NOTEBOOK_FIRST_CODE_CELL = 2


def first_code_cell(name):
    cells = json.loads((REPO / 'notebooks' / name).read_text())['cells']
    assert cells[NOTEBOOK_FIRST_CODE_CELL]['cell_type'] == 'code'
    return ''.join(cells[NOTEBOOK_FIRST_CODE_CELL]['source'])


@pytest.mark.parametrize('name', ['1_mlp_numpy.ipynb', '2_mlp_pytorch.ipynb'])
@pytest.mark.parametrize('start', ['repository', 'notebooks'])
def test_notebooks_import_from_their_repository_only(name, start, tmp_path):
    """A module planted in the folder above the repository is never imported, whether the
    kernel starts in the repository or in its notebooks/ folder."""
    repository = tmp_path / 'outer' / 'repository'
    (repository / 'notebooks').mkdir(parents=True)
    shutil.copy(REPO / 'notebooks' / name, repository / 'notebooks' / name)
    (repository / 'mlp_numpy.py').write_text("WHERE = 'repository'\n")
    sentinel = tmp_path / 'planted_ran'
    (tmp_path / 'outer' / 'mlp_numpy.py').write_text(
        f"open({str(sentinel)!r}, 'w').close()\nWHERE = 'planted'\n")
    cwd = repository if start == 'repository' else repository / 'notebooks'
    program = first_code_cell(name) + "\nimport mlp_numpy\nprint(mlp_numpy.WHERE, REPOSITORY)"
    result = subprocess.run([sys.executable, '-c', program], cwd=cwd, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['repository', str(repository.resolve())]
    assert not sentinel.exists()


def test_a_notebook_started_elsewhere_says_where_to_start(tmp_path):
    result = subprocess.run([sys.executable, '-c', first_code_cell('1_mlp_numpy.ipynb')],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and 'start Jupyter in one of them' in result.stderr


# ---------------------------------------------------------------- data-size bombs, small data

class Reduce:
    """Pickles as ``function(*arguments)``."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return self.function, self.arguments


def cifar_batch(n_images, seed=0):
    rng = np.random.default_rng(seed)
    labels = [int(label) for label in rng.integers(0, 10, n_images)]
    return {b'batch_label': b'batch', b'labels': labels,
            b'data': rng.integers(0, 256, (n_images, 3072), dtype=np.uint8)}


def write_cifar(data_dir, images_per_batch=20, **replaced):
    """data_dir/cifar-10-batches-py in CIFAR-10's own format (Python 2 pickles), each
    batch of ``images_per_batch`` images, with any file's content ``replaced``."""
    from test_data import CLASS_NAMES, dump
    folder = data_dir / 'cifar-10-batches-py'
    folder.mkdir(parents=True)
    contents = {f'data_batch_{number}': cifar_batch(images_per_batch, number)
                for number in range(1, 6)}
    contents['test_batch'] = cifar_batch(images_per_batch, 6)
    contents['batches.meta'] = {b'label_names': list(CLASS_NAMES)}
    contents.update(replaced)
    for name, content in contents.items():
        pickle_format = 'protocol4' if isinstance(content, (bytes, Reduce)) else 'python2'
        data = content if isinstance(content, bytes) else dump(content, pickle_format)
        (folder / name).write_bytes(data)
    return data_dir


def stride_bomb(n_images):
    """A test_batch of a few hundred bytes whose b'data' is ``numpy.ndarray`` called with
    one byte of buffer and strides (0, 0): n_images rows of 3072 bytes that all share it."""
    import pickle
    data = Reduce(np.ndarray, (n_images, 3072), np.dtype('u1'), b'\0', 0, (0, 0))
    return pickle.dumps({b'data': data, b'labels': [0] * 10}, protocol=4)


def test_a_stride_trick_array_is_refused_before_it_costs_memory(tmp_path):
    from lab.cifar10_files import read_cifar10_batch
    from lab.downloads import CorruptDataError
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
    import pickle
    from lab.cifar10_files import read_cifar10_batch
    from lab.downloads import CorruptDataError
    from test_data import RECONSTRUCT
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
    import pickle
    from lab.cifar10_files import read_cifar10_batch
    from lab.downloads import CorruptDataError
    path = tmp_path / 'test_batch'
    path.write_bytes(pickle.dumps({b'data': np.zeros((0, 3072), np.uint8), b'labels': []},
                                  protocol=2))
    with pytest.raises(CorruptDataError, match=r'got uint8 \(0, 3072\)'):
        read_cifar10_batch(path)
    path.write_bytes(pickle.dumps({b'data': Reduce(bytes, 1 << 40), b'labels': []}, protocol=2))
    with pytest.raises(CorruptDataError, match='bytes with arguments'):
        read_cifar10_batch(path)


def test_escape_codes_in_a_pickled_name_are_shown_escaped(tmp_path):
    from lab.cifar10_files import read_cifar10_batch
    from lab.downloads import CorruptDataError
    path = tmp_path / 'data_batch_1'
    fake = '\x1b[2K\rAll good: 50000 images read'
    path.write_bytes(b'\x80\x02c' + f'os{fake}\nsystem\n'.encode() + b')R.')
    with pytest.raises(CorruptDataError) as raised:
        read_cifar10_batch(path)
    message = str(raised.value)
    assert '\x1b' not in message and '\r' not in message
    assert r'os\x1b[2K\rAll good' in message


def idx_file(path, array):
    """``array`` written to ``path`` as an IDX file of unsigned bytes."""
    dims = b''.join(int(size).to_bytes(4, 'big') for size in array.shape)
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + dims + array.astype(np.uint8).tobytes())


def write_mnist(data_dir, n_train, n_test, pixels=None):
    """data_dir/MNIST/raw with IDX files of these sizes; random pixels unless given one value."""
    raw = data_dir / 'MNIST' / 'raw'
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n_images in (('train', n_train), ('t10k', n_test)):
        images = (rng.integers(0, 256, (n_images, 28, 28)) if pixels is None
                  else np.full((n_images, 28, 28), pixels))
        idx_file(raw / f'{prefix}-images-idx3-ubyte', images)
        idx_file(raw / f'{prefix}-labels-idx1-ubyte', rng.integers(0, 10, n_images))
    return data_dir


@pytest.mark.parametrize('split, n_images', [('train', 60001), ('t10k', 10001)])
def test_idx_headers_beyond_the_documented_size_are_refused_before_reading(split, n_images,
                                                                          tmp_path):
    from lab.datasets import get_mnist
    from lab.downloads import CorruptDataError
    data_dir = write_mnist(tmp_path / 'data', 20, 20)
    header = bytes([0, 0, 0x08, 3]) + b''.join(size.to_bytes(4, 'big')
                                               for size in (n_images, 28, 28))
    (data_dir / 'MNIST' / 'raw' / f'{split}-images-idx3-ubyte').write_bytes(header + bytes(10))
    with pytest.raises(CorruptDataError, match=f'more than the {(n_images - 1) * 784} bytes'):
        get_mnist(data_dir, validation_size=5)


EMPTY_TEST_BATCH = __import__('pickle').dumps(
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
    result = run_script(script, '--dataset', dataset, '--data_dir', str(data_dir),
                        '--epochs', '1', '--no_plot', '--no_progress', *arguments,
                        '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith('error: ') and expected in line, line
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


# ---------------------------------------------------------------- checkpoint files

def npz_member_with_header(checkpoint, shape):
    """Rewrite the checkpoint so that one array member's header declares ``shape``."""
    import zipfile
    with zipfile.ZipFile(checkpoint) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(name for name in members if name.endswith('.npy') and 'meta' not in name)
    header = {'descr': '<f4', 'fortran_order': False, 'shape': shape}
    stream = __import__('io').BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    members[name] = stream.getvalue() + members[name][len(stream.getvalue()):]
    with zipfile.ZipFile(checkpoint, 'w', zipfile.ZIP_STORED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def zip_bomb(checkpoint, gib):
    """Add to the checkpoint a deflated member of ``gib`` GiB of zeros (a few MB on disk)."""
    import zipfile
    with zipfile.ZipFile(checkpoint, 'a', zipfile.ZIP_DEFLATED) as archive:
        with archive.open('zeros.npy', 'w', force_zip64=True) as member:
            block = bytes(64 << 20)
            for _ in range(gib * 16):
                member.write(block)


@pytest.mark.parametrize('script, damage, expected', [
    ('train_mlp_numpy.py', 'shape of 10**11', 'which its'),
    pytest.param('train_mlp_numpy.py', 'zip bomb', 'is compressed', marks=pytest.mark.slow),
    pytest.param('train_mlp_pytorch.py', 'zip bomb', 'is compressed', marks=pytest.mark.slow),
    ('train_mlp_numpy.py', 'a FIFO', 'not a regular file'),
    ('train_mlp_numpy.py', '/dev/zero', 'not a regular file'),
])
def test_checkpoint_files_are_checked_before_they_cost_memory(script, damage, expected,
                                                              finished_runs, tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    if damage == 'shape of 10**11':
        npz_member_with_header(checkpoint, (10**11,))
    elif damage == 'zip bomb':
        zip_bomb(checkpoint, 1)
    elif damage == 'a FIFO':
        checkpoint.unlink()
        os.mkfifo(checkpoint)
    else:
        checkpoint = Path(damage)
    result = run_script(script, '--resume', str(checkpoint), '--epochs', '3', cwd=tmp_path,
                        timeout=60)
    assert result.returncode == 2, result.stderr
    assert expected in last_line(result) and 'Traceback' not in result.stderr


@pytest.mark.slow
def test_a_pickled_object_in_a_pt_checkpoint_is_refused_in_one_safe_line(finished_runs,
                                                                         tmp_path):
    import torch
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_pytorch.py', tmp_path)
    contents = torch.load(checkpoint, weights_only=True)
    contents['settings'] = Reduce(dict, contents['settings'])
    torch.save(contents, checkpoint)
    result = run_script('train_mlp_pytorch.py', '--resume', str(checkpoint), '--epochs', '3',
                        cwd=tmp_path)
    assert result.returncode == 2
    assert 'loading them could run code: refused' in last_line(result)
    assert 'weights_only' not in result.stderr and '\x1b' not in result.stderr
    assert last_line(result).startswith('train_mlp_pytorch.py: error: argument --resume')
    assert result.stderr.count('error:') == 1  # after argparse's usage, one line of reason


# ---------------------------------------------------------------- streams, backend, flags

@pytest.mark.parametrize('closed', ['stdout', 'stderr'])
def test_training_does_not_need_its_output_streams(closed, tmp_path):
    descriptor = 1 if closed == 'stdout' else 2
    command = [sys.executable, str(REPO / 'train_mlp_numpy.py'), '--dataset', 'spiral',
               '--hidden_dims', '8', '--epochs', '2', '--no_plot',  # with the progress bar
               '--out_dir', str(tmp_path / 'out')]
    result = subprocess.run(command, cwd=tmp_path, timeout=120, pass_fds=(),
                            preexec_fn=lambda: os.close(descriptor),
                            stdout=subprocess.DEVNULL if closed == 'stderr' else None,
                            stderr=subprocess.DEVNULL if closed == 'stdout' else None)
    assert result.returncode == 0
    summary = json.loads((only_run_dir(tmp_path / 'out') / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('completed', 2)


@pytest.mark.slow
def test_a_bogus_matplotlib_backend_costs_no_result(tmp_path):
    result = run_script('train_mlp_numpy.py', *SPIRAL_RUN, '--epochs', '1',
                        '--out_dir', str(tmp_path / 'out'), cwd=tmp_path,
                        env={**os.environ, 'MPLBACKEND': 'bogus'})
    assert result.returncode == 0, result.stderr
    assert 'test accuracy' in result.stdout
    run_dir = only_run_dir(tmp_path / 'out')
    assert json.loads((run_dir / 'summary.json').read_text())['status'] == 'completed'
    assert (run_dir / 'loss.png').exists()


@pytest.mark.slow
def test_experiments_run_under_a_bogus_matplotlib_backend(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / 'experiments.py'), 'saddle', '--quick',
                             '--out_dir', str(tmp_path / 'out')], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, 'MPLBACKEND': 'bogus'})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'out' / 'saddle.json').exists()


@pytest.mark.parametrize('arguments, expected', [
    (['--lr', '1_0'], "argument --lr: expected a number such as 0.1 or 1e-3, got '1_0'"),
    (['--weight_decay', '0x10'], 'argument --weight_decay: expected a number'),
    (['--momentum', '０.５'], 'argument --momentum: expected a number'),
    (['--out_dir='], "argument --out_dir: expected the path of a folder, got ''"),
])
def test_flags_take_plain_values_only(arguments, expected, tmp_path):
    result = run_script('train_mlp_numpy.py', '--dataset', 'spiral', *arguments, cwd=tmp_path)
    assert result.returncode == 2 and expected in last_line(result)
    assert not any(tmp_path.iterdir())


def test_a_path_the_terminal_cannot_encode_is_printed_escaped(tmp_path):
    result = run_script('train_mlp_numpy.py', *SPIRAL_RUN, '--epochs', '1', '--no_plot',
                        '--out_dir', str(tmp_path / 'résultats'), cwd=tmp_path,
                        env={**os.environ, 'PYTHONIOENCODING': 'ascii'})
    assert result.returncode == 0, result.stderr
    assert 'results in ' in result.stdout and r'r\xe9sultats' in result.stdout


# ---------------------------------------------------------------- benchmark.py

def run_benchmark(*arguments, cwd, timeout=120):
    return subprocess.run([sys.executable, str(REPO / 'benchmark.py'), *arguments], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('command', [['data', '--repeats', '1'],
                                     ['train', '--quick', '--epochs', '1']])
def test_benchmark_names_a_bad_data_file_at_once(command, tmp_path):
    data_dir = write_cifar(tmp_path / 'data', 20, test_batch=b'\x80\x04not a pickle')
    result = run_benchmark(*command, '--data_dir', str(data_dir),
                           '--json', str(tmp_path / 'out.json'), cwd=tmp_path, timeout=60)
    assert result.returncode == 1, result.stderr
    line = last_line(result)  # after, perhaps, a warning that the machine is busy
    assert line.startswith(f'benchmark.py {command[0]}: error: ') and 'test_batch' in line
    assert 'Traceback' not in result.stderr
    assert not (tmp_path / 'out.json').exists()


@pytest.mark.parametrize('command', [['data'], ['train', '--quick'], ['levers']])
def test_benchmark_checks_its_output_path_before_measuring(command, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    result = run_benchmark(*command, '--json', str(blocker / 'out.json'), cwd=tmp_path,
                           timeout=30)
    assert result.returncode == 2
    assert 'argument --json: cannot write' in last_line(result)


def test_benchmark_data_refuses_a_batch_larger_than_cifar10(tmp_path):
    result = run_benchmark('data', '--batch_size', '100000', cwd=tmp_path, timeout=30)
    assert result.returncode == 2 and 'argument --batch_size' in last_line(result)


@pytest.mark.parametrize('content', ['{"runs": ', '{"status": "completed", "config": {}}',
                                     '[1, 2]', '{"runs": {}}'])
def test_benchmark_table_refuses_what_train_did_not_write(content, tmp_path):
    path = tmp_path / 'summary.json'
    path.write_text(content)
    result = run_benchmark('table', '--json', str(path), cwd=tmp_path, timeout=30)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith('benchmark.py table: error:') and 'summary.json' in line
    assert result.stdout == ''


# ---------------------------------------------------------------- checkpoint contents

def edit_checkpoint(checkpoint, edit):
    """Apply ``edit`` to a checkpoint's contents (for ``.npz``, to its JSON part), as
    someone editing the file would, and write it back as the script writes it."""
    import torch
    if checkpoint.suffix == '.npz':
        with np.load(checkpoint, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        meta = json.loads(str(arrays['__meta__']))
        edit(meta, arrays)
        arrays['__meta__'] = np.array(json.dumps(meta))
        with open(checkpoint, 'wb') as file:
            np.savez(file, **arrays)
    else:
        contents = torch.load(checkpoint, weights_only=True)
        edit(contents, None)
        torch.save(contents, checkpoint)


def set_in(path, value):
    def edit(contents, arrays):
        *parents, last = path
        for key in parents:
            contents = contents[key]
        contents[last] = value
    return edit


def nan_in_first_weight(contents, arrays):
    if arrays is None:
        weight = next(iter(contents['model']))
        contents['model'][weight] = contents['model'][weight] * float('nan')
    else:
        name = contents['model']['0.weight']['__array__']
        arrays[name] = arrays[name] * np.nan


def torch_group(key, value):
    def edit(contents, arrays):
        contents['optimizer']['param_groups'][0][key] = value
    return edit


EDITED_CHECKPOINTS = {
    'optimiser lr of -0.5': ('train_mlp_numpy.py', set_in(('optimizer', 'lr'), -0.5),
                             'learning rate is -0.5, where the settings'),
    'param_groups lr of -0.5': ('train_mlp_pytorch.py', torch_group('lr', -0.5),
                                'learning rate is -0.5, where the settings'),
    'param_groups momentum 0.99': ('train_mlp_pytorch.py', torch_group('momentum', 0.99),
                                   "optimiser has [{'momentum': 0.99"),
    'initial loss -1': ('train_mlp_numpy.py', set_in(('run', 'initial_loss'), -1),
                        'first loss -1 is not a positive number'),
    'best validation accuracy inf': ('train_mlp_numpy.py',
                                     set_in(('run', 'stopper', 'best'), float('inf')),
                                     'early stopping state'),
    'logs of different lengths': ('train_mlp_numpy.py',
                                  set_in(('run', 'logging_dict', 'train_loss'), [1.0]),
                                  'lists of lengths [1, 2]'),
    'a validation accuracy of 7': ('train_mlp_pytorch.py',
                                   set_in(('run', 'logging_dict', 'validation_accuracy'),
                                          [0.5, 7.0]),
                                   'validation_accuracy outside [0, 1]'),
    'NaN weights': ('train_mlp_numpy.py', nan_in_first_weight, 'holds NaN or infinite'),
    'NaN weights (PyTorch)': ('train_mlp_pytorch.py', nan_in_first_weight,
                              'holds NaN or infinite'),
    'optimiser step -5': ('train_mlp_numpy.py', set_in(('optimizer', 'step'), -5),
                          'step count -5 is not a whole number'),
    'elapsed time NaN': ('train_mlp_pytorch.py', set_in(('run', 'elapsed_seconds'),
                                                         float('nan')),
                         'elapsed time is not a number'),
}


@pytest.mark.parametrize('case', EDITED_CHECKPOINTS)
@pytest.mark.slow
def test_an_edited_checkpoint_is_refused_before_training(case, finished_runs, tmp_path):
    script, edit, expected = EDITED_CHECKPOINTS[case]
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    summary_before = (run_dir / 'summary.json').read_bytes()
    edit_checkpoint(checkpoint, edit)
    result = run_script(script, '--resume', str(checkpoint), '--epochs', '4', '--no_progress',
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = last_line(result)
    assert expected in line and 'edited or damaged' in line, line
    assert 'epoch   3/4' not in result.stdout
    assert (run_dir / 'summary.json').read_bytes() == summary_before
    assert not (run_dir / '.lock').exists()


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
def test_a_resumed_schedule_follows_the_new_epochs_in_both_scripts(script, tmp_path):
    """A cosine run of 3 epochs resumed with --epochs 6 goes on as a 6-epoch run would:
    the rate of its 4th epoch is the 6-epoch curve's, lr (1 + cos(pi 3 / 6)) / 2."""
    out_dir = tmp_path / 'out'
    first = run_script(script, *SPIRAL_RUN, '--epochs', '3', '--scheduler', 'cosine',
                       '--no_plot', '--out_dir', str(out_dir), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(out_dir)
    resumed = run_script(script, '--resume', str(run_dir / checkpoint_name(script)),
                         '--epochs', '6', '--no_plot', '--no_progress', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rates = json.loads((run_dir / 'summary.json').read_text())['metrics']['learning_rate']
    expected = [0.1 * (1 + np.cos(np.pi * epoch / 3)) / 2 for epoch in range(3)]
    expected += [0.1 * (1 + np.cos(np.pi * epoch / 6)) / 2 for epoch in range(3, 6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


# ---------------------------------------------------------------- divergence, signals

@pytest.mark.parametrize('arguments, expected', [
    (['--weight_decay', '1e308'], 'because --weight_decay 1e+308 at learning rate 0.1'),
    (['--lr', '1000'], 'diverged at learning rate 1000; try a smaller --lr, such as 0.1'),
    (['--lr', '50', '--momentum', '0.99'], 'with --momentum 0.99'),
])
def test_divergence_names_what_diverged_in_one_line(arguments, expected, tmp_path):
    result = run_script('train_mlp_numpy.py', '--dataset', 'spiral', '--epochs', '2',
                        '--no_progress', '--no_plot', *arguments,
                        '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stderr, result.stderr
    assert 'Warning' not in result.stderr and 'encountered' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def start_script(script, *arguments, cwd):
    return subprocess.Popen([sys.executable, str(REPO / script), *arguments], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
def test_sigterm_during_a_resumed_run_is_handled_as_ctrl_c(script, finished_runs, tmp_path):
    import signal
    import time
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    process = start_script(script, '--resume', str(checkpoint), '--epochs', '100000',
                           '--no_progress', '--no_plot', cwd=tmp_path)
    saved = checkpoint.stat().st_mtime_ns
    deadline = time.monotonic() + 60
    while checkpoint.stat().st_mtime_ns == saved:  # at least one epoch more was saved
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert 'SIGTERM: stopping after this batch' in stderr and 'Traceback' not in stderr
    assert not (run_dir / '.lock').exists()
    assert not list(run_dir.glob('.*.tmp'))
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert summary['status'] == 'interrupted' and 'SIGTERM' in summary['message']
    files = __import__('lab.checkpoints', fromlist=['NumpyFiles'])
    reader = files.NumpyFiles if 'numpy' in script else files.TorchFiles
    saved_epochs = len(reader.read(checkpoint)['run']['logging_dict']['validation_accuracy'])
    assert summary['epochs_completed'] == saved_epochs > 2


def test_sigterm_during_the_first_write_finishes_it(tmp_path):
    import signal
    from test_hard_edges import run_sending_signals
    result = run_sending_signals('.checkpoint.npz.', 1, signal.SIGTERM, 1, '--dataset', 'spiral',
                                 '--epochs', '5', '--hidden_dims', '8', '--no_progress',
                                 '--no_plot', '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 143, result.stderr
    run_dir = only_run_dir(tmp_path / 'out')
    assert {path.name for path in run_dir.iterdir()} == {'checkpoint.npz', 'model.npz',
                                                         'summary.json'}
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('interrupted', 1)


INTERRUPT_WHILE_READING = """
import os, runpy, signal, sys
from lab import checkpoints
read, signal_number = checkpoints.NumpyFiles.read, int(sys.argv[1])

def interrupted_read(path):
    os.kill(os.getpid(), signal_number)
    return read(path)

checkpoints.NumpyFiles.read = staticmethod(interrupted_read)
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""
"""Runs the NumPy script with a signal sent to itself as it starts reading a checkpoint."""


@pytest.mark.parametrize('signal_name, code', [('SIGINT', 130), ('SIGTERM', 143)])
def test_a_signal_while_resume_reads_the_checkpoint_exits_without_a_traceback(
        signal_name, code, finished_runs, tmp_path):
    import signal
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    result = subprocess.run([sys.executable, '-c', INTERRUPT_WHILE_READING,
                             str(int(getattr(signal, signal_name))),
                             str(REPO / 'train_mlp_numpy.py'), '--resume', str(checkpoint),
                             '--epochs', '3'], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == code, result.stderr
    assert 'Traceback' not in result.stderr


def test_no_room_to_create_a_file_is_not_called_unwritable(tmp_path, monkeypatch):
    """A disk out of inodes refuses new files with ENOSPC (as does a full one): the advice is
    to make room, not to choose a writable folder."""
    import errno
    import tempfile
    from lab import fileio

    def no_inodes(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(tempfile, 'mkstemp', no_inodes)
    with pytest.raises(OSError) as raised:
        fileio.save_json(tmp_path / 'summary.json', {})
    message = str(raised.value)
    assert 'free some disk space or write elsewhere' in message and 'df -i' in message
    assert 'choose a writable folder' not in message


def test_a_checkpoint_nested_too_deep_is_refused_in_one_line(finished_runs, tmp_path):
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    with np.load(checkpoint, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays['__meta__'] = np.array('[' * 100_000 + ']' * 100_000)
    with open(checkpoint, 'wb') as file:
        np.savez(file, **arrays)
    result = run_script('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '3',
                        cwd=tmp_path)
    assert result.returncode == 2 and 'RecursionError' in last_line(result)
    assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('n_images, pixels, expected', [(0, None, 'holds no images'),
                                                        (100, 7, 'every pixel of')])
def test_the_studies_name_empty_or_flat_data(n_images, pixels, expected, tmp_path):
    """experiments.py turns a CorruptDataError into its one line; the studies' loader raises
    it for these files (it trains on the spiral first, minutes before it reads them)."""
    from lab.downloads import CorruptDataError
    from lab.studies.harness import load_subset
    data_dir = write_mnist(tmp_path / 'data', n_images, n_images, pixels)
    (data_dir / 'MNIST').rename(data_dir / 'FashionMNIST')
    with pytest.raises(CorruptDataError, match=expected):
        load_subset('fashion_mnist', n_train=50, data_dir=str(data_dir))
