"""Checkpoints and saved models (lab/checkpoints.py, the scripts' --resume and load_model):
written without pickle, resumed exactly, and every damaged, edited or hostile file refused
in one line before it costs memory, runs code or changes a result.

A damaged or edited checkpoint is a copy of a real one (``finished_runs``), changed as a
failing disk or a person editing it would. The scripts run in this process (``run_main``),
but where a broken check would cost the memory it guards.
"""
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import train_mlp_numpy
import train_mlp_pytorch
from conftest import (BOTH_SCRIPTS, SCRIPTS, SPIRAL, SPIRAL_RUN, Reduce, checkpoint_name,
                      copy_of_run, flip_a_bit_of_the_data, last_line, only_run_dir, run_main,
                      run_script)
from lab.checkpoints import CheckpointError, NumpyFiles, TorchFiles, read_checkpoint
from lab.datasets import get_dataloader, get_dataset
from test_data import write_mnist


# ------------------------------------------------- the files: written without pickle, damage named

def test_numpy_checkpoint_round_trip_without_pickle(tmp_path):
    contents = {'settings': {'lr': 0.1, 'hidden_dims': [3]}, 'run': {'elapsed': 1.5},
                'model': {'0.weight': np.arange(6.0).reshape(2, 3)},
                'best_model': {'0.weight': np.ones((2, 3), dtype=np.float32)},
                'optimizer': {'lr': 0.1, 'step': 3, 'momentum_buffer.0': np.zeros(2)},
                'random': {'model': {'state': {'state': 2 ** 100, 'inc': 7}}}}
    path = tmp_path / 'checkpoint.npz'
    NumpyFiles.write(contents, path)
    read = read_checkpoint(NumpyFiles, path)
    assert read['settings'] == contents['settings']
    assert read['random'] == contents['random']
    np.testing.assert_array_equal(read['model']['0.weight'], contents['model']['0.weight'])
    assert read['best_model']['0.weight'].dtype == np.float32
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[key].dtype != object for key in data.files)


@pytest.mark.parametrize('files', [NumpyFiles, TorchFiles], ids=['npz', 'pt'])
@pytest.mark.parametrize('damage', ['empty', 'truncated', 'not a zip', 'missing', 'bit flip'])
def test_damaged_checkpoints_are_named_not_read(tmp_path, damage, files):
    path = tmp_path / f'checkpoint{files.suffix}'
    array = np.zeros(1000) if files is NumpyFiles else torch.zeros(1000)
    files.write({'settings': {}, 'run': {}, 'model': {}, 'best_model': {},
                 'optimizer': {'x': array}}, path)
    if damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'truncated':
        path.write_bytes(path.read_bytes()[:300])
    elif damage == 'not a zip':
        path.write_text('hello')
    elif damage == 'missing':
        path.unlink()
    else:  # torch.load itself loads this one without a word
        flip_a_bit_of_the_data(path)
    with pytest.raises(CheckpointError,
                       match=rf"not a readable checkpoint: .*checkpoint\{files.suffix}"):
        read_checkpoint(files, path)


def npz_member_with_header(checkpoint, shape):
    """Rewrite the checkpoint so that one array member's header declares ``shape``."""
    with zipfile.ZipFile(checkpoint) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(name for name in members if name.endswith('.npy') and 'meta' not in name)
    header = {'descr': '<f4', 'fortran_order': False, 'shape': shape}
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(stream, header)
    members[name] = stream.getvalue() + members[name][len(stream.getvalue()):]
    with zipfile.ZipFile(checkpoint, 'w', zipfile.ZIP_STORED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def zip_bomb(checkpoint, mib):
    """Add to the checkpoint a deflated member of ``mib`` MiB of zeros (a thousandth of that
    on disk)."""
    with zipfile.ZipFile(checkpoint, 'a', zipfile.ZIP_DEFLATED) as archive:
        with archive.open('zeros.npy', 'w', force_zip64=True) as member:
            block = bytes(64 << 20)
            for _ in range(mib // 64):
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
        zip_bomb(checkpoint, 64)
    elif damage == 'a FIFO':
        checkpoint.unlink()
        os.mkfifo(checkpoint)
    else:
        checkpoint = Path(damage)
    result = run_script(script, '--resume', str(checkpoint), '--epochs', '3', cwd=tmp_path,
                        timeout=60)
    assert result.returncode == 2, result.stderr
    assert expected in last_line(result) and 'Traceback' not in result.stderr


def test_a_checkpoint_nested_too_deep_is_refused_in_one_line(finished_runs, tmp_path):
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    with np.load(checkpoint, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    arrays['__meta__'] = np.array('[' * 100_000 + ']' * 100_000)
    with open(checkpoint, 'wb') as file:
        np.savez(file, **arrays)
    result = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '3',
                      cwd=tmp_path)
    assert result.returncode == 2 and 'RecursionError' in last_line(result)
    assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_a_pickled_object_in_a_pt_checkpoint_is_refused_in_one_safe_line(finished_runs,
                                                                         tmp_path):
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_pytorch.py', tmp_path)
    contents = torch.load(checkpoint, weights_only=True)
    contents['settings'] = Reduce(dict, contents['settings'])
    torch.save(contents, checkpoint)
    result = run_main('train_mlp_pytorch.py', '--resume', str(checkpoint), '--epochs', '3',
                      cwd=tmp_path)
    assert result.returncode == 2
    assert 'loading them could run code: refused' in last_line(result)
    assert 'weights_only' not in result.stderr and '\x1b' not in result.stderr
    assert last_line(result).startswith('train_mlp_pytorch.py: error: argument --resume')
    assert result.stderr.count('error:') == 1  # after argparse's usage, one line of reason


# --------------------------------------------------------- resuming: exactly the uninterrupted run

def test_numpy_resume_gives_exactly_the_uninterrupted_run(tmp_path):
    arguments = dict(hidden_dims=[16], lr=0.1, batch_size=32, seed=5, momentum=0.9,
                     dropout=0.1, **SPIRAL)
    _, whole_accuracies, whole_test, whole_logs = train_mlp_numpy.train(
        epochs=4, out_dir=str(tmp_path / 'whole'), **arguments)
    train_mlp_numpy.train(epochs=2, out_dir=str(tmp_path / 'part'), **arguments)
    checkpoint = only_run_dir(tmp_path / 'part') / 'checkpoint.npz'
    _, resumed_accuracies, resumed_test, resumed_logs = train_mlp_numpy.train(
        epochs=4, resume=str(checkpoint), **arguments)
    assert resumed_accuracies == whole_accuracies
    assert resumed_test == whole_test
    assert resumed_logs['train_loss'] == whole_logs['train_loss']


def test_resume_refuses_other_settings(tmp_path):
    train_mlp_numpy.train([8], 0.1, 32, 1, 0, out_dir=str(tmp_path), **SPIRAL)
    checkpoint = only_run_dir(tmp_path) / 'checkpoint.npz'
    with pytest.raises(ValueError, match=r"hidden_dims: saved \[8\], now \[9\]"):
        train_mlp_numpy.train([9], 0.1, 32, 2, 0, resume=str(checkpoint), **SPIRAL)
    with pytest.raises(ValueError, match=r"--resume continues a run in its own folder"):
        train_mlp_numpy.train([8], 0.1, 32, 2, 0, out_dir=str(tmp_path),
                              resume=str(checkpoint), **SPIRAL)


@pytest.mark.slow
def test_pytorch_resume_from_the_command_line_continues_exactly(tmp_path):
    common = ['--dataset', 'spiral', '--hidden_dims', '16', '--batch_size', '32',
              '--dropout', '0.1', '--no_progress', '--no_plot']
    whole = run_main('train_mlp_pytorch.py', *common, '--epochs', '4',
                     '--out_dir', str(tmp_path / 'whole'), cwd=tmp_path)
    part = run_main('train_mlp_pytorch.py', *common, '--epochs', '2',
                    '--out_dir', str(tmp_path / 'part'), cwd=tmp_path)
    assert whole.returncode == 0 and part.returncode == 0, whole.stderr + part.stderr
    run_dir = only_run_dir(tmp_path / 'part')
    resumed = run_main('train_mlp_pytorch.py', '--resume', str(run_dir / 'checkpoint.pt'),
                       '--epochs', '4', '--no_progress', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming' in resumed.stdout
    expected = json.loads((only_run_dir(tmp_path / 'whole') / 'summary.json').read_text())
    actual = json.loads((run_dir / 'summary.json').read_text())
    assert actual['metrics']['validation_accuracy'] == expected['metrics']['validation_accuracy']
    assert actual['metrics']['train_loss'] == expected['metrics']['train_loss']
    assert actual['test_accuracy'] == expected['test_accuracy']


def test_resume_of_a_missing_file_is_explained(tmp_path):
    result = run_main('train_mlp_numpy.py', '--resume', str(tmp_path / 'nope.npz'),
                      cwd=tmp_path)
    assert result.returncode == 2 and '--resume' in result.stderr


def test_resuming_needs_more_epochs_than_were_done_and_a_path(finished_runs, tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    fewer = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '1',
                     cwd=tmp_path)
    assert fewer.returncode == 2
    assert 'has 2 epochs done already; pass --epochs with more than 2' in fewer.stderr
    assert not (run_dir / '.lock').exists()
    empty = run_main('train_mlp_numpy.py', '--resume', '', cwd=tmp_path)
    assert empty.returncode == 2 and "expected the path of a checkpoint file" in empty.stderr


def test_resuming_into_another_folder_is_refused(finished_runs, tmp_path):
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    result = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '3',
                      '--out_dir', str(tmp_path / 'other'), cwd=tmp_path)
    assert result.returncode == 2
    assert '--resume continues a run in its own folder; drop --out_dir' in result.stderr
    assert not (tmp_path / 'other').exists()


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
def test_a_resumed_schedule_follows_the_new_epochs_in_both_scripts(script, tmp_path):
    """A cosine run of 3 epochs resumed with --epochs 6 goes on as a 6-epoch run would:
    the rate of its 4th epoch is the 6-epoch curve's, lr (1 + cos(pi 3 / 6)) / 2."""
    out_dir = tmp_path / 'out'
    first = run_main(script, *SPIRAL_RUN, '--epochs', '3', '--scheduler', 'cosine',
                     '--no_plot', '--out_dir', str(out_dir), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_dir = only_run_dir(out_dir)
    resumed = run_main(script, '--resume', str(run_dir / checkpoint_name(script)),
                       '--epochs', '6', '--no_plot', '--no_progress', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    rates = json.loads((run_dir / 'summary.json').read_text())['metrics']['learning_rate']
    expected = [0.1 * (1 + np.cos(np.pi * epoch / 3)) / 2 for epoch in range(3)]
    expected += [0.1 * (1 + np.cos(np.pi * epoch / 6)) / 2 for epoch in range(3, 6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


# --------------------------------------------------------- resuming a damaged or edited checkpoint

DAMAGED_CHECKPOINTS = [('train_mlp_numpy.py', damage) for damage in
                       ('empty', 'truncated', 'bit flip')] + [
                      ('train_mlp_pytorch.py', damage) for damage in ('truncated', 'bit flip')]


@pytest.mark.slow
@pytest.mark.parametrize('script, damage', DAMAGED_CHECKPOINTS)
def test_resuming_a_damaged_checkpoint_is_refused_in_one_line(script, damage, finished_runs,
                                                              tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    summary = (run_dir / 'summary.json').read_text()
    if damage == 'empty':
        checkpoint.write_bytes(b'')
    elif damage == 'truncated':
        checkpoint.write_bytes(checkpoint.read_bytes()[:len(checkpoint.read_bytes()) // 2])
    else:
        flip_a_bit_of_the_data(checkpoint)
    result = run_main(script, '--resume', str(checkpoint), '--epochs', '3', cwd=tmp_path)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"not a readable checkpoint: {checkpoint}" in last_line, last_line
    assert damage != 'bit flip' or 'CRC-32' in last_line
    assert 'Traceback' not in result.stderr
    assert (run_dir / 'summary.json').read_text() == summary


def edit_checkpoint(checkpoint, edit):
    """Apply ``edit`` to a checkpoint's contents (for ``.npz``, to its JSON part), as
    someone editing the file would, and write it back as the script writes it."""
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


def edit_saved_settings(checkpoint, **changes):
    """Change the settings saved in a checkpoint, as someone editing the file would."""
    edit_checkpoint(checkpoint, lambda contents, arrays: contents['settings'].update(changes))


@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS)
def test_paths_saved_in_a_checkpoint_are_ignored_and_bad_values_refused(script, finished_runs,
                                                                        tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    elsewhere = tmp_path / 'elsewhere'
    edit_saved_settings(checkpoint, data_dir=str(elsewhere / 'data'),
                        out_dir=str(elsewhere / 'results'))
    resumed = run_main(script, '--resume', str(checkpoint), '--epochs', '3', '--no_plot',
                       '--no_progress', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / 'summary.json').read_text())['epochs_completed'] == 3
    assert not elsewhere.exists()

    edit_saved_settings(checkpoint, lr=-1.0)
    refused = run_main(script, '--resume', str(checkpoint), '--epochs', '4', cwd=tmp_path)
    assert refused.returncode == 2
    last_line = refused.stderr.strip().splitlines()[-1]
    assert 'argument --resume' in last_line and '--lr: must be greater than 0' in last_line
    assert 'edited or damaged' in last_line


@pytest.mark.slow
def test_a_saved_width_cannot_smuggle_in_a_flag(finished_runs, tmp_path):
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    edit_saved_settings(checkpoint, hidden_dims=[8, '--data_dir', str(tmp_path / 'elsewhere')])
    result = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '3',
                      cwd=tmp_path)
    assert result.returncode == 2 and 'edited or damaged' in result.stderr
    assert not (tmp_path / 'elsewhere').exists()


def test_a_data_folder_saved_in_a_checkpoint_is_not_read(tmp_path):
    """The saved data_dir points at files that would fail to load: the resume never reads them."""
    data_dir = write_mnist(tmp_path / 'data', 100, 20)
    common = ['--dataset', 'mnist', '--validation_size', '10', '--hidden_dims', '8',
              '--batch_size', '30', '--no_plot', '--no_progress']
    first = run_main('train_mlp_numpy.py', *common, '--epochs', '1', '--data_dir',
                     str(data_dir), '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    planted = tmp_path / 'planted' / 'MNIST' / 'raw'
    planted.mkdir(parents=True)
    for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
        (planted / name).write_bytes(b'not an IDX file')
    checkpoint = only_run_dir(tmp_path / 'out') / 'checkpoint.npz'
    edit_saved_settings(checkpoint, data_dir=str(tmp_path / 'planted'))
    resumed = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '2',
                       '--data_dir', str(data_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr


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
    result = run_main(script, '--resume', str(checkpoint), '--epochs', '4', '--no_progress',
                      cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = last_line(result)
    assert expected in line and 'edited or damaged' in line, line
    assert 'epoch   3/4' not in result.stdout
    assert (run_dir / 'summary.json').read_bytes() == summary_before
    assert not (run_dir / '.lock').exists()


# ---------------------------------------------------------------- saved models

@pytest.mark.parametrize('script', ['numpy', 'pytorch'])
@pytest.mark.slow
def test_saved_model_loads_and_scores_as_reported(script, tmp_path):
    arguments = dict(hidden_dims=[16], lr=0.1, batch_size=32, epochs=2, seed=0,
                     out_dir=str(tmp_path), **SPIRAL)
    if script == 'numpy':
        _, _, test_accuracy, _ = train_mlp_numpy.train(**arguments)
        model = train_mlp_numpy.load_model(only_run_dir(tmp_path))
    else:
        _, _, test_accuracy, _ = train_mlp_pytorch.train(use_batch_norm=True, device='cpu',
                                                         **arguments)
        model = train_mlp_pytorch.load_model(only_run_dir(tmp_path))
    loaders = get_dataloader(get_dataset('spiral'), 32, return_numpy=script == 'numpy')
    module = train_mlp_numpy if script == 'numpy' else train_mlp_pytorch
    assert module.evaluate_model(model, loaders['test']) == test_accuracy


def test_numpy_model_of_another_architecture_is_refused(tmp_path):
    train_mlp_numpy.train([16], 0.1, 32, 1, 0, out_dir=str(tmp_path / 'a'), **SPIRAL)
    train_mlp_numpy.train([12], 0.1, 32, 1, 0, out_dir=str(tmp_path / 'b'), **SPIRAL)
    run_a, run_b = only_run_dir(tmp_path / 'a'), only_run_dir(tmp_path / 'b')
    os.replace(run_b / 'model.npz', run_a / 'model.npz')
    with pytest.raises(ValueError, match=r"shape \(12, 2\).*shape \(16, 2\)"):
        train_mlp_numpy.load_model(run_a)


def test_pytorch_model_of_another_architecture_is_refused(tmp_path):
    for width, folder in ((16, 'a'), (12, 'b')):
        train_mlp_pytorch.train([width], 0.1, False, 32, 1, 0, out_dir=str(tmp_path / folder),
                                device='cpu', **SPIRAL)
    run_a, run_b = only_run_dir(tmp_path / 'a'), only_run_dir(tmp_path / 'b')
    os.replace(run_b / 'model.pt', run_a / 'model.pt')
    with pytest.raises(RuntimeError, match=r"torch.Size\(\[12, 2\]\).*torch.Size\(\[16, 2\]\)"):
        train_mlp_pytorch.load_model(run_a)


def test_loading_never_unpickles_objects(tmp_path):
    train_mlp_numpy.train([8], 0.1, 32, 1, 0, out_dir=str(tmp_path / 'n'), **SPIRAL)
    numpy_run = only_run_dir(tmp_path / 'n')
    payload = Reduce(os.system, 'echo pwned')  # unpickled, it would run a command
    np.savez(numpy_run / 'model.npz', **{'0.weight': np.array([payload], dtype=object)})
    with pytest.raises(ValueError, match="refusing to unpickle"):
        train_mlp_numpy.load_model(numpy_run)

    train_mlp_pytorch.train([8], 0.1, False, 32, 1, 0, out_dir=str(tmp_path / 't'),
                            device='cpu', **SPIRAL)
    torch_run = only_run_dir(tmp_path / 't')
    torch.save({'layers.0.weight': payload}, torch_run / 'model.pt')
    with pytest.raises(ValueError, match="refusing to unpickle"):
        train_mlp_pytorch.load_model(torch_run)
