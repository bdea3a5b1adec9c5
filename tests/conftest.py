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
    lattice = np.array(
        [[a, 0, 0], [b * np.cos(gamma), b * np.sin(gamma), 0], [c * cx, c * cy, c * np.sqrt(1 - cx**2 - cy**2)]]
    )
    return Crystal(
        lattice,
        rng.random((n_atoms, 3)),
        rng.choice(species, n_atoms),
        b_iso=rng.uniform(0, 1.5, n_atoms),
    )


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)


@pytest.fixture
def cscl():
    """CsCl (B2), a = 4.209 Å, the pymatgen example's lattice constant."""
    return Crystal(np.eye(3) * 4.209, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Cs", "Cl"])
