"""The lab tier's bookkeeping: early stopping, run settings, run folders, checkpoints, files."""
import json
import os
import stat

import numpy as np
import pytest

from checkpoints import CheckpointError, NumpyFiles, read_checkpoint
from fileio import load_json, save_json
from runs import ConfigurationError, EarlyStopping, claim_run_folder, run_settings

SETTINGS = dict(hidden_dims=[8], lr=0.1, batch_size=32, epochs=2, seed=0, data_dir='x',
                dataset='spiral', validation_size=None, activation='elu', optimizer='sgd',
                momentum=0.0, weight_decay=0.0, scheduler='none', patience=None,
                use_batch_norm=False, dropout=0.0, out_dir=None, resume=None, plot=False,
                progress=False)


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


def test_run_settings_keep_what_defines_the_run_and_drop_paths():
    settings = run_settings(SETTINGS)
    assert 'data_dir' not in settings and 'out_dir' not in settings and 'resume' not in settings
    assert settings['hidden_dims'] == [8] and settings['lr'] == 0.1


@pytest.mark.parametrize('change, message', [
    (dict(optimizer='adam', momentum=0.9), '--momentum applies to --optimizer sgd only'),
    (dict(use_batch_norm=True, batch_size=1), '--use_batch_norm needs --batch_size of at least 2'),
    (dict(validation_size=0), r'--validation_size must lie in \[1, 1199\]'),
    (dict(validation_size=1200), r'--validation_size must lie in \[1, 1199\]'),
    (dict(batch_size=901), '--batch_size 901 is larger than the 900 training samples'),
])
def test_run_settings_refuse_what_cannot_work(change, message):
    with pytest.raises(ConfigurationError, match=message):
        run_settings({**SETTINGS, **change})


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


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'not a zip', 'missing'])
def test_damaged_checkpoints_are_named_not_read(tmp_path, damage):
    path = tmp_path / 'checkpoint.npz'
    NumpyFiles.write({'settings': {}, 'run': {}, 'model': {}, 'best_model': {},
                      'optimizer': {'x': np.zeros(1000)}}, path)
    if damage == 'empty':
        path.write_bytes(b'')
    elif damage == 'truncated':
        path.write_bytes(path.read_bytes()[:300])
    elif damage == 'not a zip':
        path.write_text('hello')
    else:
        path.unlink()
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint: .*checkpoint.npz"):
        read_checkpoint(NumpyFiles, path)


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
