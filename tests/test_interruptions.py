"""A run interrupted: Ctrl-C and SIGTERM (at any moment, twice, while a file is written or
a checkpoint read), SIGKILL in the middle of a write, output streams closed or no longer read.
Each keeps what was finished, leaves no temporary file behind, and ends with its exit code
and at most one line.

These tests start the scripts in a fresh interpreter: the signals and the streams under
test are the process's own.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import train_mlp_numpy
from conftest import (BOTH_SCRIPTS, REPO, SCRIPTS, checkpoint_name, copy_of_run,
                      only_run_dir, run_main, start_script)
from lab.checkpoints import NumpyFiles, TorchFiles


# ---------------------------------------------------------------- Ctrl-C and SIGTERM

@pytest.mark.slow
@pytest.mark.parametrize('script', SCRIPTS)
def test_ctrl_c_saves_what_is_finished_and_exits_130(script, tmp_path):
    out_dir = tmp_path / 'out'
    process = start_script(script, '--dataset', 'spiral', '--epochs', '100000', '--batch_size',
                           '8', '--hidden_dims', '64', '64', '--out_dir', str(out_dir),
                           '--no_progress', cwd=tmp_path)
    checkpoint = checkpoint_name(script)
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


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
def test_sigterm_during_a_resumed_run_is_handled_as_ctrl_c(script, finished_runs, tmp_path):
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
    reader = NumpyFiles if 'numpy' in script else TorchFiles
    saved_epochs = len(reader.read(checkpoint)['run']['logging_dict']['validation_accuracy'])
    assert summary['epochs_completed'] == saved_epochs > 2


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
    _, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    result = subprocess.run([sys.executable, '-c', INTERRUPT_WHILE_READING,
                             str(int(getattr(signal, signal_name))),
                             str(REPO / 'train_mlp_numpy.py'), '--resume', str(checkpoint),
                             '--epochs', '3'], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == code, result.stderr
    assert 'Traceback' not in result.stderr


# ---------------------------------------------------------------- signals while a file is written

SEND_SIGNALS_WHILE_WRITING = """
import os, runpy, signal, sys
import numpy
prefix, (nth_write, signal_number, times) = sys.argv[1], map(int, sys.argv[2:5])
write_npz, writes = numpy.savez, []

def savez(file, *arrays, **named):
    if os.path.basename(file.name).startswith(prefix):
        writes.append(file.name)
        if len(writes) == nth_write:
            if signal_number == signal.SIGKILL:
                file.write(b'the first bytes of a file')
                file.flush()
            for _ in range(times):
                os.kill(os.getpid(), signal_number)
    return write_npz(file, *arrays, **named)

numpy.savez = savez
script = sys.argv[5]
sys.argv = sys.argv[5:]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name='__main__')
"""
"""Runs the NumPy script with ``numpy.savez`` wrapped to send signals to its own process
while it writes the n-th file whose (temporary) name starts with a prefix: the moment a
user's Ctrl-C, or a SIGKILL, would have to hit by luck."""


def run_sending_signals(prefix, nth_write, signal_number, times, *arguments, cwd):
    return subprocess.run([sys.executable, '-c', SEND_SIGNALS_WHILE_WRITING, prefix,
                           str(nth_write), str(int(signal_number)), str(times),
                           str(REPO / 'train_mlp_numpy.py'), *arguments],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_ctrl_c_twice_while_the_final_weights_are_written_still_leaves_everything(tmp_path):
    result = run_sending_signals('.model.npz.', 1, signal.SIGINT, 2, '--dataset', 'spiral',
                                 '--epochs', '2', '--hidden_dims', '8', '--no_progress',
                                 '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 130, result.stderr
    assert 'writing the results first' in result.stderr
    run_dir = only_run_dir(tmp_path / 'out')
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('completed', 2)
    assert summary['test_accuracy'] is not None
    assert set(train_mlp_numpy.load_model(run_dir).state_dict()) == {'0.weight', '0.bias',
                                                                     '2.weight', '2.bias'}
    assert {path.name for path in run_dir.iterdir()} == {
        'checkpoint.npz', 'model.npz', 'summary.json', 'loss.png', 'accuracy.png'}


def test_a_resume_after_sigkill_mid_checkpoint_removes_its_temporary_file(tmp_path):
    """SIGKILL while the second checkpoint is written leaves its temporary file and the lock
    file; resuming there removes that temporary file, and only that one."""
    command = ['--dataset', 'spiral', '--hidden_dims', '8', '--no_plot', '--no_progress']
    killed = run_sending_signals('.checkpoint.npz.', 2, signal.SIGKILL, 1, *command,
                                 '--epochs', '3', '--out_dir', str(tmp_path / 'out'),
                                 cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    run_dir = only_run_dir(tmp_path / 'out')
    assert len(list(run_dir.glob('.checkpoint.npz.*.tmp'))) == 1
    assert (run_dir / '.lock').exists()
    (run_dir / '.notes.tmp').write_text('not ours')
    resumed = run_main('train_mlp_numpy.py', '--resume', str(run_dir / 'checkpoint.npz'),
                       '--epochs', '3', '--no_progress', '--no_plot', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert 'after epoch 1' in resumed.stdout
    assert {path.name for path in run_dir.iterdir()} == {
        'checkpoint.npz', 'model.npz', 'summary.json', '.notes.tmp'}


def test_sigterm_during_the_first_write_finishes_it(tmp_path):
    result = run_sending_signals('.checkpoint.npz.', 1, signal.SIGTERM, 1, '--dataset', 'spiral',
                                 '--epochs', '5', '--hidden_dims', '8', '--no_progress',
                                 '--no_plot', '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 143, result.stderr
    run_dir = only_run_dir(tmp_path / 'out')
    assert {path.name for path in run_dir.iterdir()} == {'checkpoint.npz', 'model.npz',
                                                         'summary.json'}
    summary = json.loads((run_dir / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('interrupted', 1)


# ---------------------------------------------------------------- closed output streams

def test_training_goes_on_when_nobody_reads_its_output(tmp_path):
    """As ``... | head -1`` once head has quit: every write to stdout fails with EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = subprocess.Popen(
        [sys.executable, str(REPO / 'train_mlp_numpy.py'), '--dataset', 'spiral', '--epochs', '3',
         '--hidden_dims', '8', '--no_plot', '--out_dir', str(tmp_path / 'out')],
        cwd=tmp_path, stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert 'Traceback' not in stderr and 'Exception ignored' not in stderr
    summary = json.loads((only_run_dir(tmp_path / 'out') / 'summary.json').read_text())
    assert (summary['status'], summary['epochs_completed']) == ('completed', 3)


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
