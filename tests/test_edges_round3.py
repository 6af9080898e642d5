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

from conftest import REPO, SCRIPTS, only_run_dir, run_script

BOTH_SCRIPTS = ['train_mlp_numpy.py',
                pytest.param('train_mlp_pytorch.py', marks=pytest.mark.slow)]
"""The scripts share the code under test; the PyTorch one costs a PyTorch import a run."""
SPIRAL_RUN = ('--dataset', 'spiral', '--hidden_dims', '8', '--batch_size', '32',
              '--no_progress')


def checkpoint_name(script):
    return 'checkpoint.npz' if 'numpy' in script else 'checkpoint.pt'


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


def copy_of_run(finished_runs, script, tmp_path):
    """A copy of the finished run of ``script`` and the path of its checkpoint."""
    run_dir = shutil.copytree(finished_runs[script], tmp_path / 'run')
    return run_dir, run_dir / checkpoint_name(script)


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
@pytest.mark.parametrize('kind', ['symlink', 'hard link', 'dangling symlink'])
def test_a_linked_lock_is_refused_and_its_target_untouched(script, kind, finished_runs,
                                                           tmp_path):
    run_dir, checkpoint = copy_of_run(finished_runs, script, tmp_path)
    target = tmp_path / 'precious.txt'
    if kind != 'dangling symlink':
        target.write_text('keep me')
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
