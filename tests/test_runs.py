"""Runs (lab/runs.py, lab/settings.py, lab/fileio.py): early stopping, run settings and
the memory they need, run folders and the folder lock, links out of the folder, divergence,
files written whole or not at all, full disks.

The scripts run in this process (``run_main``) but where a second process, the umask,
the environment or a file-size limit is under test.
"""
import errno
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import mlp_numpy
import mlp_pytorch
import train_mlp_numpy
from conftest import (BOTH_SCRIPTS, REPO, SCRIPTS, SPIRAL, SPIRAL_RUN, checkpoint_name, copy_of_run,
                      last_line, needs_fashion_mnist, only_run_dir, run_main, run_script,
                      start_script)
from lab import fileio, settings
from lab.checkpoints import run_name
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


# ------------------------------------------------------------- run folders, the folder lock, links

@pytest.mark.parametrize('script', SCRIPTS)
def test_unwritable_output_folder_is_explained(script, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    result = run_main(script, '--dataset', 'spiral', '--epochs', '1',
                      '--out_dir', str(blocker / 'results'), cwd=tmp_path)
    assert result.returncode == 1
    assert 'cannot create the output folder' in result.stderr
    assert 'Traceback' not in result.stderr


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_rerun_after_a_finished_run_gets_a_fresh_folder_even_when_interrupted(tmp_path):
    command = ['--dataset', 'spiral', '--hidden_dims', '64', '64', '--batch_size', '8',
               '--epochs', '60', '--no_plot', '--no_progress', '--out_dir', str(tmp_path / 'out')]
    finished = run_main('train_mlp_numpy.py', *command, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    first = only_run_dir(tmp_path / 'out')
    files_before = {path.name: path.read_bytes() for path in first.iterdir()}
    again = start_script('train_mlp_numpy.py', *command, cwd=tmp_path)
    second = first.with_name(f"{first.name}_2")
    wait_for(lambda: (second / 'checkpoint.npz').exists())
    again.send_signal(signal.SIGINT)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 130, stderr
    assert json.loads((second / 'summary.json').read_text())['status'] == 'interrupted'
    assert {path.name: path.read_bytes() for path in first.iterdir()} == files_before


@pytest.mark.slow
def test_two_identical_runs_at_once_get_a_folder_each(tmp_path):
    command = ['--dataset', 'spiral', '--hidden_dims', '8', '--epochs', '3', '--no_plot',
               '--no_progress', '--out_dir', str(tmp_path / 'out')]
    processes = [start_script('train_mlp_numpy.py', *command, cwd=tmp_path) for _ in range(2)]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr
    names = sorted(path.name for path in (tmp_path / 'out').iterdir())
    assert len(names) == 2 and names[1] == f"{names[0]}_2"
    for name in names:
        summary = json.loads((tmp_path / 'out' / name / 'summary.json').read_text())
        assert (summary['status'], summary['epochs_completed']) == ('completed', 3)


@pytest.mark.slow
def test_a_second_resume_of_a_running_run_is_refused(finished_runs, tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, 'train_mlp_numpy.py', tmp_path)
    first = start_script('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '100000',
                         '--no_progress', cwd=tmp_path)
    wait_for(lambda: (run_dir / '.lock').exists())
    second = run_main('train_mlp_numpy.py', '--resume', str(checkpoint), '--epochs', '100000',
                      cwd=tmp_path)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert second.returncode == 1
    assert (f"error: {run_dir} is in use by another run (process {first.pid}); wait until it "
            f"has finished") in second.stderr
    assert not (run_dir / '.lock').exists()


def make_link(kind, target, link):
    """``link`` as a symbolic or hard link to ``target``."""
    if kind == 'symlink':
        link.symlink_to(target)
    else:
        os.link(target, link)


@pytest.mark.parametrize('script', BOTH_SCRIPTS)
@pytest.mark.parametrize('kind', ['symlink', 'hard link', 'dangling symlink', 'FIFO',
                                  'folder'])
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
    result = run_main(script, '--resume', str(checkpoint), '--epochs', '3', '--no_plot',
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
def test_no_output_is_written_through_a_link(script, kind, finished_runs, tmp_path):
    """Every file a resumed run writes (summary, model, checkpoint, plots, a temporary file
    left by a killed run) is a link to a file outside the folder: each target stays as it
    was, and the run writes its own files in their place."""
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    outside = tmp_path / 'outside'
    outside.mkdir()
    suffix = Path(checkpoint_name(script)).suffix
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
    result = run_main(script, '--resume', str(checkpoint), '--epochs', '3', '--no_progress',
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


@pytest.mark.slow
@pytest.mark.parametrize('umask, file_mode, folder_mode', [(0o022, 0o644, 0o755),
                                                           (0o077, 0o600, 0o700)])
def test_outputs_follow_the_umask(umask, file_mode, folder_mode, tmp_path):
    result = run_script('train_mlp_numpy.py', '--dataset', 'spiral', '--epochs', '1',
                        '--hidden_dims', '8', '--no_progress', '--out_dir', str(tmp_path / 'out'),
                        cwd=tmp_path, preexec_fn=lambda: os.umask(umask))
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path / 'out')
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in run_dir.iterdir()}
    assert modes == dict.fromkeys(['checkpoint.npz', 'model.npz', 'summary.json', 'loss.png',
                                   'accuracy.png'], file_mode)
    assert stat.S_IMODE(run_dir.stat().st_mode) == folder_mode


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


# ---------------------------------------------------------------- memory

def memory_available():
    """Linux's MemAvailable, in bytes, read here independently of runs.py."""
    for line in Path('/proc/meminfo').read_text().splitlines():
        if line.startswith('MemAvailable:'):
            return int(line.split()[1]) * 1024


@pytest.mark.skipif(not Path('/proc/meminfo').exists(), reason="needs Linux's /proc/meminfo")
@pytest.mark.parametrize('dataset, width, n_inputs, n_classes', [
    ('fashion_mnist', 100_000_000, 784, 10),
    ('spiral', 1_000_000_000, 2, 3),
])
def test_a_model_too_large_for_memory_is_refused_up_front(dataset, width, n_inputs, n_classes,
                                                          tmp_path):
    """Widths far beyond any machine (the issue's 10 000 000 would fit in a large one and
    then really be allocated): refused at once with the estimate and what is available."""
    result = run_main('train_mlp_numpy.py', '--dataset', dataset, '--hidden_dims', str(width),
                      '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = last_line(result)
    match = re.search(r"need about ([\d.e+]+) (\w+) of memory \(.*\) but ([\d.e+]+) (\w+) is "
                      r"available; use narrower --hidden_dims", line)
    assert match, line
    units = {'KiB': 2 ** 10, 'MiB': 2 ** 20, 'GiB': 2 ** 30, 'TiB': 2 ** 40}
    needed = float(match[1]) * units[match[2]]
    available = float(match[3]) * units[match[4]]
    parameters = (n_inputs + 1) * width + (width + 1) * n_classes
    assert needed >= 4 * parameters * 4  # at least four float32 copies of the parameters
    assert available == pytest.approx(memory_available(), rel=0.2)
    assert not (tmp_path / 'out').exists()


# ---------------------------------------------------------------- divergence

@pytest.mark.filterwarnings('ignore:overflow encountered:RuntimeWarning')
@pytest.mark.parametrize('lr, reason', [('1e3', 'more than 10,000 times the first batch'),
                                        ('1e30', 'the training loss became nan')])
def test_a_runaway_loss_ends_the_run_as_diverged(lr, reason, tmp_path):
    result = run_main('train_mlp_numpy.py', '--dataset', 'spiral', '--lr', lr, '--epochs', '3',
                      '--no_progress', '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert reason in result.stderr and 'try a smaller --lr' in result.stderr
    assert 'no epoch finished, so there is no model to test' in result.stdout
    assert 'test accuracy' not in result.stdout
    summary = json.loads((only_run_dir(tmp_path / 'out') / 'summary.json').read_text())
    assert summary['status'] == 'diverged' and reason in summary['message']
    assert (summary['epochs_completed'], summary['test_accuracy']) == (0, None)


@pytest.mark.slow
@needs_fashion_mnist
def test_the_readmes_divergence_example_diverges(tmp_path):
    result = run_main('train_mlp_numpy.py', '--dataset', 'fashion_mnist', '--lr', '5',
                      '--epochs', '2', '--no_progress', '--no_plot',
                      '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((only_run_dir(tmp_path / 'out') / 'summary.json').read_text())
    assert summary['status'] == 'diverged', summary['metrics']['train_loss']
    assert 'training diverged at learning rate 5' in summary['message']


@pytest.mark.parametrize('arguments, expected', [
    (['--weight_decay', '1e308'], 'because --weight_decay 1e+308 at learning rate 0.1'),
    (['--lr', '1000'], 'diverged at learning rate 1000; try a smaller --lr, such as 0.1'),
    (['--lr', '50', '--momentum', '0.99'], 'with --momentum 0.99'),
])
def test_divergence_names_what_diverged_in_one_line(arguments, expected, tmp_path):
    result = run_main('train_mlp_numpy.py', '--dataset', 'spiral', '--epochs', '2',
                      '--no_progress', '--no_plot', *arguments,
                      '--out_dir', str(tmp_path / 'out'), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert expected in result.stderr, result.stderr
    assert 'Warning' not in result.stderr and 'encountered' not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------- full disks

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


def test_no_room_to_create_a_file_is_not_called_unwritable(tmp_path, monkeypatch):
    """A disk out of inodes refuses new files with ENOSPC (as does a full one): the advice is
    to make room, not to choose a writable folder."""

    def no_inodes(*args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(tempfile, 'mkstemp', no_inodes)
    with pytest.raises(OSError) as raised:
        fileio.save_json(tmp_path / 'summary.json', {})
    message = str(raised.value)
    assert 'free some disk space or write elsewhere' in message and 'df -i' in message
    assert 'choose a writable folder' not in message


def can_mount_tmpfs():
    probe = Path(tempfile.mkdtemp())
    try:
        mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(probe)],
                                 capture_output=True).returncode == 0
    except OSError:
        return False
    if mounted:
        subprocess.run(['umount', str(probe)], check=True)
    probe.rmdir()
    return mounted


@pytest.fixture
def small_disk(tmp_path):
    """A real 200 KiB file system (tmpfs): needs the right to mount, as root has."""
    if not can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs here (needs root)")
    disk = tmp_path / 'disk'
    disk.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', str(disk)], check=True)
    yield disk
    subprocess.run(['umount', str(disk)], check=True)


def limit_file_size():
    """In the child: files may not grow past 100 KiB (writes then fail with EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))


@pytest.mark.slow
@pytest.mark.parametrize('script, limit', [('train_mlp_numpy.py', 'full disk'),
                                           ('train_mlp_pytorch.py', 'full disk'),
                                           ('train_mlp_pytorch.py', 'file size limit')])
def test_no_room_for_a_checkpoint_is_one_clear_line(script, limit, request, tmp_path):
    """A checkpoint of 256 x 256 units (about 800 KB) does not fit."""
    arguments = ('--dataset', 'spiral', '--hidden_dims', '256', '256', '--epochs', '2',
                 '--no_progress')
    if limit == 'full disk':  # in this process: the disk is full for every process
        out_dir = request.getfixturevalue('small_disk') / 'out'
        result = run_main(script, *arguments, '--out_dir', str(out_dir), cwd=tmp_path)
    else:  # a limit of the script's own process
        out_dir = tmp_path / 'out'
        result = run_script(script, *arguments, '--out_dir', str(out_dir), cwd=tmp_path,
                            preexec_fn=limit_file_size)
    assert result.returncode == 1
    checkpoint = checkpoint_name(script)
    reason = 'No space left on device' if limit == 'full disk' else 'File too large'
    assert re.fullmatch(rf"error: \[Errno \d+\] could not write {out_dir}/\S+/{checkpoint} "
                        rf"\({reason}\); free some disk space or write elsewhere\. Earlier "
                        rf"results there are unchanged", last_line(result)), result.stderr
    assert 'Traceback' not in result.stderr
    assert not list(out_dir.glob('*/.*.tmp'))


# ---------------------------------------------------------------- the folder lock

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
