"""The notebooks run top to bottom, and they are committed with their outputs.

Each notebook is read into memory and executed there by ``nbclient`` in a
fresh ``python3`` kernel (ipykernel's), from ``notebooks/`` as Jupyter runs
it; the file on disk is never written. Any cell that raises fails the test,
with the cell and its error in the message.
"""
import json

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOK_DIR = REPO / 'notebooks'
NOTEBOOKS = ('1_mlp_numpy.ipynb', '2_mlp_pytorch.ipynb')
CELL_TIMEOUT_SECONDS = 300
"""Generous against a busy machine: each notebook takes about 10 s on two idle cores."""
MAX_NOTEBOOK_BYTES = 300_000
"""Committed outputs stay small: a few PNG figures at 72 dpi and short printouts."""


def test_the_notebook_folder_holds_exactly_these_notebooks():
    assert sorted(path.name for path in NOTEBOOK_DIR.glob('*.ipynb')) == sorted(NOTEBOOKS)


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name):
    path = NOTEBOOK_DIR / name
    notebook = nbformat.read(path, as_version=4)
    before = path.read_bytes()
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name='python3',
                            resources={'metadata': {'path': str(NOTEBOOK_DIR)}})
    client.execute()   # raises CellExecutionError, naming the cell, if any cell fails
    code_cells = [cell for cell in notebook.cells if cell.cell_type == 'code']
    assert all(cell.execution_count for cell in code_cells)
    assert path.read_bytes() == before


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
