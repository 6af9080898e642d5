"""The notebooks run top to bottom, print what their committed outputs show, and are
committed with their outputs.

Each notebook is read into memory and executed there by ``nbclient`` in a
fresh ``python3`` kernel (ipykernel's), from ``notebooks/`` as Jupyter runs
it; the file on disk is never written. Any cell that raises fails the test,
with the cell and its error in the message. The executed copy's printed text
is then compared with the committed copy's, number by number: seconds may
differ, rounding noise (numbers below 1e-6) may differ, anything else only
within a small tolerance.
"""
import copy
import json
import math
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, needs_fashion_mnist

NOTEBOOK_DIR = REPO / 'notebooks'
NOTEBOOKS = ('1_mlp_numpy.ipynb', '2_mlp_pytorch.ipynb')
CELL_TIMEOUT_SECONDS = 300
"""Generous against a busy machine: each notebook takes about 10 s on two idle cores."""
MAX_NOTEBOOK_BYTES = 300_000
"""Committed outputs stay small: a few PNG figures at 72 dpi and short printouts."""
NUMBER = re.compile(r'-?\d+(?:\.\d+)?(?:e[-+]?\d+)?')
SECONDS = re.compile(r'\(\d+\.\d+ s\)')
RELATIVE_TOLERANCE = 0.02
"""Other BLAS builds and thread counts round differently; a training run's accuracy
moves in its third decimal, not more."""
ROUNDING_NOISE = 1e-6


def test_the_notebook_folder_holds_exactly_these_notebooks():
    assert sorted(path.name for path in NOTEBOOK_DIR.glob('*.ipynb')) == sorted(NOTEBOOKS)


def printed_text(cell):
    """What a code cell printed (its stream outputs), seconds in brackets blanked out."""
    text = ''.join(output.text for output in cell.outputs if output.output_type == 'stream')
    return SECONDS.sub('(_ s)', text)


def numbers_agree(executed, committed):
    """Two printed numbers agree: equal within the tolerance, or both rounding noise."""
    executed, committed = float(executed), float(committed)
    if abs(executed) < ROUNDING_NOISE and abs(committed) < ROUNDING_NOISE:
        return True
    return math.isclose(executed, committed, rel_tol=RELATIVE_TOLERANCE)


def assert_prints_as_committed(executed_cell, committed_cell, where):
    executed, committed = printed_text(executed_cell), printed_text(committed_cell)
    assert NUMBER.sub('#', executed) == NUMBER.sub('#', committed), where
    for got, expected in zip(NUMBER.findall(executed), NUMBER.findall(committed)):
        assert numbers_agree(got, expected), f"{where}: printed {got}, committed {expected}"


@pytest.mark.slow
@needs_fashion_mnist  # the committed outputs are of Fashion-MNIST (the spiral otherwise)
@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_top_to_bottom_and_prints_its_committed_outputs(name):
    committed = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    notebook = copy.deepcopy(committed)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name='python3',
                            resources={'metadata': {'path': str(NOTEBOOK_DIR)}})
    client.execute()   # raises CellExecutionError, naming the cell, if any cell fails
    pairs = [(executed, before) for executed, before in zip(notebook.cells, committed.cells)
             if executed.cell_type == 'code']
    assert all(executed.execution_count for executed, _ in pairs)
    for index, (executed, before) in enumerate(pairs):
        where = f"{name}, code cell {index + 1}"
        assert_prints_as_committed(executed, before, where)
        figures = [[output.output_type for output in cell.outputs if 'image/png' in
                    output.get('data', {})] for cell in (executed, before)]
        assert len(figures[0]) == len(figures[1]), f"{where}: figures differ"


def test_the_comparison_of_printed_outputs_can_fail():
    """The check above, on a cell whose accuracy or text changed."""
    def cell(text):
        return nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
            'stream', name='stdout', text=text)])
    committed = cell('epoch 1: accuracy 0.8374 (0.38 s)\nrelative error 1.8e-11\n')
    assert_prints_as_committed(cell('epoch 1: accuracy 0.8380 (2.50 s)\n'
                                    'relative error 3.1e-12\n'), committed, 'same')
    for changed in ('epoch 1: accuracy 0.7012 (0.38 s)\nrelative error 1.8e-11\n',
                    'epoch 1: accuracy 0.8374 (0.38 s)\nrelative error 0.333\n',
                    'epoch 1: loss 0.8374 (0.38 s)\nrelative error 1.8e-11\n'):
        with pytest.raises(AssertionError):
            assert_prints_as_committed(cell(changed), committed, 'changed')


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_is_committed_with_its_outputs(name):
    path = NOTEBOOK_DIR / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == 'code']
    # Run in order, top to bottom, once: execution counts 1, 2, 3, ...
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    outputs = [output for cell in code_cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == 'error']
    assert any('image/png' in output.get('data', {}) for output in outputs), 'no figure'
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    assert json.loads(path.read_text())['metadata']['kernelspec']['name'] == 'python3'


# ---------------------------------------------------------------- where they import from

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
