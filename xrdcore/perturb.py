"""The perturbations of the retrieval study: lattice strain, atomic displacements, or both.

* ``strain`` ε (dimensionless): A' = A (I + E) with E a random symmetric Cartesian strain
  scaled so that its root-mean-square principal strain is ε (ε = 0.02 is "2 % strain").
* ``displacement`` δ (Å): random Cartesian displacements with root-mean-square length δ
  per atom, their mean removed (a common translation changes no pattern).

Seeded (numpy ``default_rng``) and, with ``symmetric=True`` (or ``"spacegroup"``),
restricted to what the reference's space group allows (the strain to its crystal family,
the displacements to its symmetry axes), then rescaled to the requested size. With
``symmetric="family"`` only the strain is restricted (to the crystal family) and the atoms
move freely: the perturbations a crystal-family-constrained search explores.
"""

from __future__ import annotations

import numpy as np

from .crystal import Crystal
from .symmetry import find_symmetry


def random_strain(rng, magnitude: float, symmetry=None) -> np.ndarray:
    """Symmetric (3, 3) Cartesian strain with RMS principal strain ``magnitude``."""
    if magnitude < 0:
        raise ValueError(f"strain magnitude must be ≥ 0, got {magnitude}")
    raw = rng.standard_normal((3, 3))
    strain = 0.5 * (raw + raw.T)
    if symmetry is not None:
        strain = symmetry.project_strain(strain)
    size = np.linalg.norm(strain) / np.sqrt(3)  # RMS of the eigenvalues: ‖E‖_F² = Σ λ_i²
    return strain * (magnitude / size) if size > 0 else strain


def random_displacement(rng, crystal: Crystal, rms: float, symmetry=None) -> np.ndarray:
    """Fractional displacements (N, 3) whose Cartesian RMS length per atom is ``rms`` Å."""
    if rms < 0:
        raise ValueError(f"displacement must be ≥ 0 Å, got {rms}")
    cartesian = rng.standard_normal((len(crystal), 3))
    cartesian -= cartesian.mean(axis=0)
    fractional = cartesian @ np.linalg.inv(crystal.lattice)
    if symmetry is not None:
        fractional = symmetry.project_displacement(fractional)
    size = np.sqrt(np.mean(np.sum((fractional @ crystal.lattice) ** 2, axis=1)))
    if size == 0:
        return fractional  # nothing may move (e.g. every atom on a fixed special position)
    return fractional * (rms / size)


SYMMETRIC_CHOICES = (False, True, "family", "spacegroup")


def perturb(crystal: Crystal, strain: float = 0.0, displacement: float = 0.0, seed: int = 0, symmetric: bool | str = False) -> Crystal:
    """A perturbed copy of ``crystal`` (see the module docstring for the definitions)."""
    if symmetric not in SYMMETRIC_CHOICES:
        raise ValueError(f"symmetric must be one of {SYMMETRIC_CHOICES}, got {symmetric!r}")
    rng = np.random.default_rng(seed)
    symmetry = find_symmetry(crystal) if symmetric else None
    frac_coords = crystal.frac_coords
    if displacement:
        frac_coords = frac_coords + random_displacement(rng, crystal, displacement, None if symmetric == "family" else symmetry)
    lattice = crystal.lattice
    if strain:
        lattice = lattice @ (np.eye(3) + random_strain(rng, strain, symmetry))
    return crystal.replace(lattice=lattice, frac_coords=frac_coords)
