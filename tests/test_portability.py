"""Portability run (``make test-portable``, part of ``make test``): the chapters whose verdicts
rest on symmetry axes and on many runs execute, every assertion in them included, with numba
compiling for a generic x86-64 CPU and OpenBLAS on other kernels (set by the make target).

Skipped in the ordinary run, where the book build already executes these chapters natively.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Chapters with computed verdicts: symmetry-constrained retrieval and the evidence table.
VERDICT_CHAPTERS = ["07_symmetry", "10_evidence"]

pytestmark = pytest.mark.skipif(
    not os.environ.get("NUMBA_CPU_NAME") or not os.environ.get("OPENBLAS_CORETYPE"),
    reason="portability run only: make test-portable sets NUMBA_CPU_NAME and OPENBLAS_CORETYPE")


@pytest.mark.parametrize("chapter", VERDICT_CHAPTERS)
def test_verdict_chapter_executes_on_a_generic_cpu(chapter, tmp_path):
    import jupytext
    import nbclient

    notebook = jupytext.read(ROOT / "book" / f"{chapter}.md")
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {
                                         "path": str(tmp_path)
                                     }})
    os.environ["XRDCORE_STATIC_WIDGETS"] = "1"  # as in the book build: kernel-free explorers
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{chapter}.md fails with NUMBA_CPU_NAME={os.environ['NUMBA_CPU_NAME']}, "
                    f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']}:\n{str(error)[-3000:]}")
