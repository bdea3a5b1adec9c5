"""Shared fixtures: random triclinic cells and a few hand-made structures.

Without a physical GPU the CUDA kernels are tested in numba's CUDA simulator: the switch
must be set before numba is first imported, hence here, at the top.
"""

import os
from pathlib import Path

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not Path("/dev/nvidia0").exists():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from xrdcore import Crystal  # noqa: E402


def random_triclinic(rng, n_atoms, species=("O", "Si", "Fe", "Ba")):
    """A random right-handed triclinic cell (a, b, c in 3–7 Å, angles 70–110°) with random atoms."""
    a, b, c = rng.uniform(3, 7, 3)
    alpha, beta, gamma = np.radians(rng.uniform(70, 110, 3))
    cx = np.cos(beta)
    cy = (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    lattice = np.array([[a, 0, 0], [b * np.cos(gamma), b * np.sin(gamma), 0],
                        [c * cx, c * cy, c * np.sqrt(1 - cx**2 - cy**2)], ])
    return Crystal(lattice, rng.random((n_atoms, 3)), rng.choice(species, n_atoms),
                   b_iso=rng.uniform(0, 1.5, n_atoms))


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)


@pytest.fixture
def cscl():
    """CsCl (B2), a = 4.209 Å, the pymatgen example's lattice constant."""
    return Crystal(np.eye(3) * 4.209, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"])


# --------------------------------------------------------------------------- the book, built once

ROOT = Path(__file__).resolve().parents[1]


class BookBuild:
    """One clean build of the whole book (fresh execution cache) into a temporary folder."""

    def __init__(self, folder: Path, returncode: int, log: str):
        self.folder, self.returncode, self.log = folder, returncode, log
        self.html = folder / "_build" / "html"

    def require_success(self):
        if self.returncode != 0:
            pytest.fail(f"the book did not build (exit {self.returncode}):\n{self.log[-8000:]}")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """The book built with warnings as errors, once per test run, shared by the xdist workers.

    Under xdist every worker has its own session; the first to get the lock builds into the
    run's shared temporary folder and the others reuse the result (``make test`` also puts the
    tests using it in one xdist group, so nobody waits). Used by test_book.py and test_site.py.
    """
    import json
    import shutil
    import subprocess
    import sys

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, common to its workers
    folder = base / "book_build"
    record = folder / "result.json"
    with FileLock(str(folder) + ".lock"):
        if not record.is_file():
            folder.mkdir(exist_ok=True)
            jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
            if jupyter_book is None:
                returncode, log = -1, "jupyter-book is not installed in this environment"
            else:
                try:
                    result = subprocess.run([
                        jupyter_book, "build",
                        str(ROOT), "--path-output",
                        str(folder), "--warningiserror", "--keep-going"
                    ], capture_output=True, text=True, timeout=1800)
                    returncode, log = (result.returncode,
                                       result.stdout[-20000:] + result.stderr[-20000:])
                except subprocess.TimeoutExpired as exc:
                    returncode, log = -1, f"book build timed out after {exc.timeout} s"
            record.write_text(json.dumps({"returncode": returncode, "log": log}))
        data = json.loads(record.read_text())
    return BookBuild(folder, data["returncode"], data["log"])
