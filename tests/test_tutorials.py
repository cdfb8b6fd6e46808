"""Every tutorial notebook runs end to end on small data (EVENTSEQ_TUTORIAL_SIZE=small).

The notebooks share one kernel: a new kernel pays about 5 s to import eventseq, torch and Lightning,
2 minutes of the suite over the 25 notebooks. Each notebook still starts as a reader's would, from an
empty namespace (`%reset -f`: every name it uses, it must import or define itself) in a directory of
its own; a kernel that dies is restarted for the next notebook.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))

# run before each notebook in the shared kernel, and removed from it before its outputs are read
FRESH_START = """%reset -f
import gc as _gc, os as _os, sys as _sys
_os.chdir({directory!r})
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_gc.collect()
del _gc, _os, _sys"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    # nbclient's own kind of manager (async): with a blocking one it would not notice a kernel dying
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    manager = AsyncKernelManager(kernel_name="python3")
    run_sync(manager.start_kernel)(env={**os.environ, "EVENTSEQ_TUTORIAL_SIZE": "small", "MPLBACKEND": "Agg"},
                                   cwd=str(tmp_path_factory.mktemp("kernel")))
    yield manager
    run_sync(manager.shutdown_kernel)(now=True)


def test_there_are_tutorials():
    assert TUTORIALS, "tutorials/ holds no notebooks"


def _execute(notebook, directory: Path, kernel) -> None:
    """Run `notebook` in the shared kernel from a fresh start in `directory` (raises on a cell's error)."""
    from jupyter_core.utils import run_sync

    notebook.cells.insert(0, nbformat.v4.new_code_cell(FRESH_START.format(directory=str(directory))))
    client = nbclient.NotebookClient(notebook, km=kernel, timeout=300)
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        if not run_sync(kernel.is_alive)():
            run_sync(kernel.restart_kernel)(now=True)  # for the next notebook
        prelude = notebook.cells.pop(0)
    assert not any(output.get("output_type") == "error" for output in prelude.outputs)


def test_each_notebook_starts_fresh_in_the_shared_kernel(tmp_path, kernel):
    """What one notebook defined, the next cannot use; one that kills the kernel fails alone."""
    def notebook(*sources):
        return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])

    _execute(notebook("left_behind = 1"), tmp_path, kernel)
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="NameError"):
        _execute(notebook("print(left_behind)"), tmp_path, kernel)
    with pytest.raises(nbclient.exceptions.DeadKernelError):
        _execute(notebook("import os; os._exit(1)"), tmp_path, kernel)
    (tmp_path / "next").mkdir()
    after = notebook("import os; print(os.getcwd(), os.environ['EVENTSEQ_TUTORIAL_SIZE'])")
    _execute(after, tmp_path / "next", kernel)  # in a restarted kernel, in its own directory, at test size
    assert after.cells[0].outputs[0]["text"].split() == [str(tmp_path / "next"), "small"]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_and_its_outputs_are_stripped(path, tmp_path, kernel):
    notebook = nbformat.read(path, as_version=4)
    # outputs are stripped in git: what a reader sees comes from their own run
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in notebook.cells if cell.cell_type == "code")
    _execute(notebook, tmp_path, kernel)
    errors = [output for cell in notebook.cells if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    assert not errors
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.get("outputs", []))
    assert printed.strip(), "the notebook printed nothing"
