"""Every notebook in notebooks/ runs top to bottom without an error (on its small budgets).

Each notebook runs in a throw-away mirror of the repository: the notebooks are copied, every other
top-level entry is linked, so relative paths such as ``../problems/poisson2d.py`` work and the
runs a notebook writes land in the temporary directory. The kernel is this interpreter's
(``python3`` is mapped to ``sys.executable`` by jupyter_client) with one thread per library.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SKIP = {".git", ".venv", "notebooks", "runs", ".pytest_cache", ".ruff_cache"}
# Notebooks whose point is their figures: each must display at least one image.
FIGURES = {"01_quickstart_poisson", "02_grid_extension", "04_time_dependent",
           "06_inverse_problem"}  # fmt: skip
CELL_TIMEOUT = 600


def _mirror(tmp: Path) -> Path:
    for entry in ROOT.iterdir():
        if entry.name not in SKIP:
            (tmp / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks")
    return tmp / "notebooks"


def _images(book) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
    workdir = _mirror(tmp_path)
    book = nbformat.read(workdir / path.name, as_version=4)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("MPLBACKEND", None)  # the kernel's inline backend, as in Jupyter
    client = nbclient.NotebookClient(
        book,
        kernel_name="python3",
        timeout=CELL_TIMEOUT,
        resources={"metadata": {"path": str(workdir)}},
    )
    t0 = time.perf_counter()
    client.execute(env=env)  # raises CellExecutionError with the failing cell and traceback
    elapsed = time.perf_counter() - t0
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    if path.stem in FIGURES:
        assert _images(book) >= 3, f"{path.name}: expected its figures among the outputs"
    print(f"{path.name}: {elapsed:.1f} s", file=sys.stderr)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    book = json.loads(path.read_text())
    dirty = [
        i
        for i, cell in enumerate(book["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} carry outputs; strip them before committing "
        "(jupyter nbconvert --clear-output --inplace NOTEBOOK)"
    )
