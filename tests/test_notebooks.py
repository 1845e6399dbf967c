"""The notebooks in notebooks/ run, and are committed clean.

Each notebook is executed in its fast mode (SIMSUB_NOTEBOOK_FAST=1: short
horizon, one replication, coarse grids) by a real Jupyter kernel, from an
in-memory copy, with the kernel started in notebooks/ as Jupyter does; a cell
that raises fails the test, and nothing is written back to the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
FAST_LINE = 'FAST = os.environ.get("SIMSUB_NOTEBOOK_FAST", "0") == "1"'
CELL_TIMEOUT_S = 120


def _ids(path: Path) -> str:
    return path.stem


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, f"expected the four notebooks in {NOTEBOOKS_DIR}, found {NOTEBOOKS}"


@pytest.fixture
def fast_mode():
    """SIMSUB_NOTEBOOK_FAST=1 for the kernel (it inherits the environment), restored afterwards."""
    before = os.environ.get("SIMSUB_NOTEBOOK_FAST")
    os.environ["SIMSUB_NOTEBOOK_FAST"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SIMSUB_NOTEBOOK_FAST", None)
        else:
            os.environ["SIMSUB_NOTEBOOK_FAST"] = before


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_runs_in_fast_mode(path: Path, fast_mode):
    notebook = nbformat.read(path, as_version=4)  # a copy in memory: outputs never reach the file
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    client.execute()  # raises CellExecutionError naming the cell if any cell raises
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in executed)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_is_committed_clean(path: Path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [], f"code cell {i} has outputs: strip them before committing"
        assert cell.get("execution_count") is None, f"code cell {i} has an execution count"
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), \
        "the first cell must be a markdown title"
    fast = code[0].source
    assert "import os" in fast and FAST_LINE in fast, "the first code cell must set FAST from SIMSUB_NOTEBOOK_FAST"
    assert notebook.metadata.get("kernelspec", {}).get("name") == "python3"
