"""Mistakes and accidents: bad flags, unwritable outputs, Ctrl-C, resuming, loading models.

The command-line tests run the scripts in a subprocess, as a user would.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import fileio
import train_mlp_numpy
import train_mlp_pytorch
from conftest import REPO, SCRIPTS, SPIRAL, only_run_dir, run_script


BAD_ARGUMENTS = {
    'hidden size 0': (['--hidden_dims', '128', '0'], '--hidden_dims'),
    'negative hidden size': (['--hidden_dims', '-3'], '--hidden_dims'),
    'lr 0': (['--lr', '0'], '--lr'),
    'negative lr': (['--lr', '-0.1'], '--lr'),
    'lr not a number': (['--lr', 'fast'], '--lr'),
    'batch size 0': (['--batch_size', '0'], '--batch_size'),
    'batch larger than the data': (['--batch_size', '100000'], 'larger than the'),
    'epochs 0': (['--epochs', '0'], '--epochs'),
    'negative validation size': (['--validation_size', '-5'], 'validation_size'),
    'validation size too large': (['--validation_size', '100000'], 'validation_size'),
    'unknown data set': (['--dataset', 'imagenet'], '--dataset'),
    'momentum with adam': (['--optimizer', 'adam', '--momentum', '0.9'], '--momentum'),
    'dropout of 1': (['--dropout', '1'], '--dropout'),
}


# Both scripts share their argument parsing (cli.add_common_arguments),
# so the PyTorch script is run on a few of the cases only: each run costs a
# PyTorch import.
SCRIPT_CASES = [('train_mlp_numpy.py', case) for case in BAD_ARGUMENTS] + [
    ('train_mlp_pytorch.py', case) for case in
    ('lr 0', 'batch larger than the data', 'validation size too large', 'unknown data set')]


@pytest.mark.parametrize('script, case', SCRIPT_CASES,
                         ids=[f"{script[10:-3]}-{case}" for script, case in SCRIPT_CASES])
def test_bad_values_are_refused_before_any_work(script, case, tmp_path):
    arguments, reason = BAD_ARGUMENTS[case]
    out_dir = tmp_path / 'out'
    result = run_script(script, '--dataset', 'spiral', '--out_dir', str(out_dir),
                        *arguments, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f'{script}: error:') and reason in last_line, last_line
    assert 'Traceback' not in result.stderr
    assert not out_dir.exists()


def test_unknown_device_is_refused(tmp_path):
    result = run_script('train_mlp_pytorch.py', '--device', 'tpu', cwd=tmp_path)
    assert result.returncode == 2 and '--device' in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_missing_gpu_is_explained(tmp_path):
    result = run_script('train_mlp_pytorch.py', '--dataset', 'spiral', '--device', 'cuda',
                        '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 2 and 'no CUDA GPU' in result.stderr
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('script', SCRIPTS)
def test_unwritable_output_folder_is_explained(script, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    result = run_script(script, '--dataset', 'spiral', '--epochs', '1',
                        '--out_dir', str(blocker / 'results'), cwd=tmp_path)
    assert result.returncode == 1
    assert 'cannot create the output folder' in result.stderr
    assert 'Traceback' not in result.stderr


def test_full_disk_leaves_earlier_results_intact(tmp_path, monkeypatch):
    """Resuming into a run folder on a full disk: the summary of the earlier epochs survives."""
    arguments = dict(hidden_dims=[8], lr=0.1, batch_size=32, seed=0, **SPIRAL)
    train_mlp_numpy.train(epochs=1, out_dir=str(tmp_path), **arguments)
    run_dir = only_run_dir(tmp_path)
    before = (run_dir / 'summary.json').read_text()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(fileio.json, 'dump', disk_full)
    with pytest.raises(OSError, match=r"could not write .*summary.json.*free some disk space"):
        train_mlp_numpy.train(epochs=2, resume=str(run_dir / 'checkpoint.npz'), **arguments)
    assert (run_dir / 'summary.json').read_text() == before
    assert not list(run_dir.glob('.*.tmp'))


@pytest.mark.parametrize('script', SCRIPTS)
def test_ctrl_c_saves_what_is_finished_and_exits_130(script, tmp_path):
    out_dir = tmp_path / 'out'
    process = subprocess.Popen(
        [sys.executable, str(REPO / script), '--dataset', 'spiral', '--epochs', '100000',
         '--batch_size', '8', '--hidden_dims', '64', '64', '--out_dir', str(out_dir),
         '--no_progress'],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = 'checkpoint.npz' if 'numpy' in script else 'checkpoint.pt'
    deadline = time.monotonic() + 60
    while not list(out_dir.glob(f'*/{checkpoint}')) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    run_dir = only_run_dir(out_dir)
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert summary['status'] == 'interrupted'
    assert summary['epochs_completed'] >= 1
    for name in (checkpoint, 'loss.png', 'accuracy.png'):
        assert (run_dir / name).exists(), name


def test_pytorch_resume_from_the_command_line_continues_exactly(tmp_path):
    common = ['--dataset', 'spiral', '--hidden_dims', '16', '--batch_size', '32',
              '--dropout', '0.1', '--no_progress', '--no_plot']
    whole = run_script('train_mlp_pytorch.py', *common, '--epochs', '4',
                       '--out_dir', str(tmp_path / 'whole'), cwd=tmp_path)
    part = run_script('train_mlp_pytorch.py', *common, '--epochs', '2',
                      '--out_dir', str(tmp_path / 'part'), cwd=tmp_path)
    assert whole.returncode == 0 and part.returncode == 0, whole.stderr + part.stderr
    run_dir = only_run_dir(tmp_path / 'part')
    resumed = run_script('train_mlp_pytorch.py', '--resume', str(run_dir / 'checkpoint.pt'),
                         '--epochs', '4', '--no_progress', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming' in resumed.stdout
    expected = json.loads((only_run_dir(tmp_path / 'whole') / 'summary.json').read_text())
    actual = json.loads((run_dir / 'summary.json').read_text())
    assert actual['metrics']['validation_accuracy'] == expected['metrics']['validation_accuracy']
    assert actual['metrics']['train_loss'] == expected['metrics']['train_loss']
    assert actual['test_accuracy'] == expected['test_accuracy']


def test_resume_of_a_missing_file_is_explained(tmp_path):
    result = run_script('train_mlp_numpy.py', '--resume', str(tmp_path / 'nope.npz'),
                        cwd=tmp_path)
    assert result.returncode == 2 and '--resume' in result.stderr


@pytest.mark.parametrize('script', ['numpy', 'pytorch'])
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
    from data_utils import get_dataloader, get_dataset
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


class Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_loading_never_unpickles_objects(tmp_path):
    train_mlp_numpy.train([8], 0.1, 32, 1, 0, out_dir=str(tmp_path / 'n'), **SPIRAL)
    numpy_run = only_run_dir(tmp_path / 'n')
    np.savez(numpy_run / 'model.npz', **{'0.weight': np.array([Payload()], dtype=object)})
    with pytest.raises(ValueError, match="refusing to unpickle"):
        train_mlp_numpy.load_model(numpy_run)

    train_mlp_pytorch.train([8], 0.1, False, 32, 1, 0, out_dir=str(tmp_path / 't'),
                            device='cpu', **SPIRAL)
    torch_run = only_run_dir(tmp_path / 't')
    torch.save({'layers.0.weight': Payload()}, torch_run / 'model.pt')
    with pytest.raises(ValueError, match="refusing to unpickle"):
        train_mlp_pytorch.load_model(torch_run)
