"""The lab tier's bookkeeping: early stopping, run settings and memory, run folders,
checkpoints, files."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

import mlp_numpy
import mlp_pytorch
from lab import settings
from lab.checkpoints import (CheckpointError, NumpyFiles, TorchFiles, read_checkpoint,
                             run_name)
from conftest import REPO, flip_a_bit_of_the_data
from lab.fileio import FolderLock, load_json, save_json, temporary_files
from lab.runs import EarlyStopping, claim_run_folder
from lab.settings import ConfigurationError, memory_estimate, run_settings

SETTINGS = dict(hidden_dims=[8], lr=0.1, batch_size=32, epochs=2, seed=0, dataset='spiral',
                validation_size=None, activation='elu', optimizer='sgd', momentum=0.0,
                weight_decay=0.0, scheduler='none', patience=None, use_batch_norm=False,
                dropout=0.0)


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    stopper = EarlyStopping(patience=3)
    # 0.6 repeated is no improvement: only a strictly higher value counts.
    values = [0.5, 0.6, 0.6, 0.55, 0.59]
    assert [stopper.step(v) for v in values] == [False, False, False, False, True]
    assert (stopper.best, stopper.best_epoch) == (0.6, 1)


def test_early_stopping_improvement_resets_the_count():
    stopper = EarlyStopping(patience=3)
    values = [0.5, 0.4, 0.4, 0.7, 0.6, 0.6, 0.6]
    assert [stopper.step(v) for v in values] == [False] * 6 + [True]
    assert (stopper.best, stopper.best_epoch) == (0.7, 3)


@pytest.mark.parametrize("patience", [None, 0])
def test_early_stopping_disabled_never_stops(patience):
    stopper = EarlyStopping(patience)
    assert not any(stopper.step(1.0 - i / 100) for i in range(50))
    assert (stopper.best, stopper.best_epoch) == (1.0, 0)


def test_early_stopping_state_dict_round_trip():
    stopper = EarlyStopping(patience=3)
    for v in [0.5, 0.7, 0.6]:
        stopper.step(v)
    resumed = EarlyStopping(patience=3)
    resumed.load_state_dict({k: np.asarray(v) for k, v in stopper.state_dict().items()})
    assert [resumed.step(v) for v in [0.6, 0.6]] == [False, True]
    assert (resumed.best, resumed.best_epoch) == (0.7, 1)


def test_early_stopping_refuses_a_negative_patience():
    with pytest.raises(ValueError, match="patience must be an integer >= 0 or None"):
        EarlyStopping(patience=-1)


def test_run_settings_keep_the_settings_given_with_the_widths_as_ints():
    settings = run_settings({**SETTINGS, 'hidden_dims': (np.int64(8), 4)})
    assert settings == {**SETTINGS, 'hidden_dims': [8, 4]}
    assert all(type(width) is int for width in settings['hidden_dims'])


@pytest.mark.parametrize('change, message', [
    (dict(optimizer='adam', momentum=0.9), '--momentum applies to SGD only'),
    (dict(use_batch_norm=True, batch_size=1), '--use_batch_norm needs --batch_size of at least 2'),
    (dict(validation_size=0), r'--validation_size must lie in \[1, 1199\]'),
    (dict(validation_size=1200), r'--validation_size must lie in \[1, 1199\]'),
    (dict(batch_size=901), '--batch_size 901 is larger than the 900 training samples'),
])
def test_run_settings_refuse_what_cannot_work(change, message):
    with pytest.raises(ConfigurationError, match=message):
        run_settings({**SETTINGS, **change})


def test_a_batch_norm_run_says_so_in_its_folder_name():
    plain = run_name('numpy', SETTINGS)
    with_batch_norm = run_name('numpy', {**SETTINGS, 'use_batch_norm': True})
    assert 'batchnorm' not in plain and '_8_batchnorm_sgd_' in with_batch_norm


def test_claim_run_folder_never_reuses_a_folder(tmp_path):
    first = claim_run_folder(tmp_path, 'run')
    second = claim_run_folder(tmp_path, 'run')
    assert (first.name, second.name) == ('run', 'run_2')


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


def test_json_is_strict_and_follows_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        save_json(tmp_path / 'a.json', {'loss': float('nan'), 'best': -float('inf'), 'x': [1.0]})
    finally:
        os.umask(previous)
    text = (tmp_path / 'a.json').read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(name)) == {
        'loss': None, 'best': None, 'x': [1.0]}
    assert load_json(tmp_path / 'a.json')['x'] == [1.0]
    assert stat.S_IMODE((tmp_path / 'a.json').stat().st_mode) == 0o644


@pytest.mark.parametrize('options', [
    dict(),
    dict(hidden_dims=[64, 32], use_batch_norm=True, momentum=0.9),
    dict(hidden_dims=[], optimizer='adam', dtype='float64'),
])
def test_memory_estimate_counts_the_parameters_the_models_have(options):
    """Against the arrays of real models: four copies of the parameters, plus the optimiser's."""
    settings = run_settings({**SETTINGS, **options})
    hidden_dims, use_batch_norm = settings['hidden_dims'], settings['use_batch_norm']
    dtype = options.get('dtype', 'float32')
    numpy_model = mlp_numpy.MLP(2, hidden_dims, 3, use_batch_norm, dtype=dtype)
    numpy_bytes = sum(array.nbytes for array in numpy_model.state_dict().values())
    torch_model = mlp_pytorch.MLP(2, hidden_dims, 3, use_batch_norm).to(getattr(torch, dtype))
    torch_bytes = sum(tensor.numel() * tensor.element_size()
                      for name, tensor in torch_model.state_dict().items()
                      if 'num_batches_tracked' not in name)
    assert numpy_bytes == torch_bytes
    optimiser_copies = {'adam': 2, 'sgd': 1 if settings['momentum'] else 0}[settings['optimizer']]
    estimate = memory_estimate(settings)
    assert estimate['parameters, gradients and optimiser state'] == (
        (4 + optimiser_copies) * numpy_bytes)
    assert estimate['the data set'] == 1500 * 2 * 4  # the spiral's points in float32


def test_settings_that_do_not_fit_in_memory_are_refused(monkeypatch):
    monkeypatch.setattr(settings, 'available_memory', lambda: 2 ** 30)
    run_settings({**SETTINGS, 'hidden_dims': [1000]})
    # 2 inputs, 20 000 000 units, 3 classes, batches of 32, float32:
    # 4 copies of 3 * 2e7 + 2e7 * 3 + 3 parameters: 1 920 000 048 bytes (1.79 GiB);
    # 32 * (2 + 6 * 2e7 + 2 * 3) activations: 15 360 001 024 bytes;
    # 1500 * 2 inputs: 12 000 bytes (11.7 KiB); in all 17 280 013 072 bytes (16.1 GiB).
    with pytest.raises(ConfigurationError, match=(
            r"these settings need about 16\.1 GiB of memory \(parameters, gradients and "
            r"optimiser state 1\.79 GiB, activations of a batch 14\.3 GiB, the data set "
            r"11\.7 KiB\) but 1 GiB is available; use narrower --hidden_dims")):
        run_settings({**SETTINGS, 'hidden_dims': [20_000_000]})


def test_temporary_files_are_those_of_the_names_given_only(tmp_path):
    ours = tmp_path / '.checkpoint.npz.k2j4_x9a.tmp'
    others = [tmp_path / name for name in ('.notes.tmp', 'checkpoint.npz.tmp', '.model.npz',
                                           '.summary.json.abc.tmp')]
    for path in [ours, *others]:
        path.write_text('x')
    assert temporary_files(tmp_path, ['checkpoint.npz', 'model.npz']) == [ours]


LOCK_FROM_ANOTHER_PROCESS = """
import sys
from lab.fileio import FolderBusyError, FolderLock
try:
    FolderLock(sys.argv[1]).acquire()
except FolderBusyError as error:
    sys.exit(f"busy: {error}")
print('acquired')
"""


def try_lock_from_another_process(folder):
    return subprocess.run([sys.executable, '-c', LOCK_FROM_ANOTHER_PROCESS, str(folder)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_folder_lock_keeps_other_processes_out_until_released(tmp_path):
    lock = FolderLock(tmp_path)
    lock.acquire()
    assert (tmp_path / '.lock').read_text() == f"{os.getpid()}\n"
    refused = try_lock_from_another_process(tmp_path)
    assert refused.returncode == 1
    assert f"busy: {tmp_path} is in use by another run (process {os.getpid()})" in refused.stderr
    lock.release()
    assert not (tmp_path / '.lock').exists()
    assert try_lock_from_another_process(tmp_path).stdout == 'acquired\n'


def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / '.lock').write_text(f"{dead}\n")
    lock = FolderLock(tmp_path)
    lock.acquire()
    assert (tmp_path / '.lock').read_text() == f"{os.getpid()}\n"
    lock.release()


def test_ctrl_c_prints_the_command_that_continues_the_run(tmp_path, monkeypatch, capsys):
    import shlex
    import signal

    import train_mlp_numpy
    from lab.runs import TrainingRun

    end_epoch = TrainingRun.end_epoch

    def end_epoch_then_ctrl_c(run, *args, **kwargs):
        end_epoch(run, *args, **kwargs)
        if run.epochs_done == 1:
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(TrainingRun, 'end_epoch', end_epoch_then_ctrl_c)
    monkeypatch.chdir(tmp_path)
    flags = ['--dataset', 'spiral', '--epochs', '3', '--hidden_dims', '8', '--no_plot',
             '--no_progress', '--out_dir', 'out', '--threads', '1']
    with pytest.raises(SystemExit) as stopped:
        train_mlp_numpy.main(flags)
    assert stopped.value.code == 130
    advice = capsys.readouterr().err.strip().splitlines()[-1]
    command = shlex.split(advice.split(': ', 1)[1])
    assert command[:3] == ['python', 'train_mlp_numpy.py', '--resume']
    monkeypatch.setattr(TrainingRun, 'end_epoch', end_epoch)
    train_mlp_numpy.main(command[2:] + ['--threads', '1'])
    summary = load_json(os.path.join(os.path.dirname(command[3]), 'summary.json'))
    assert (summary['status'], summary['epochs_completed']) == ('completed', 3)
