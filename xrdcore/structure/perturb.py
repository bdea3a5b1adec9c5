"""The perturbations of the retrieval study: lattice strain, atomic displacements, or both.

* ``strain`` ε (dimensionless): A' = A (I + E) with E a random symmetric Cartesian strain
  scaled so that its root-mean-square principal strain is ε (ε = 0.02 is "2 % strain").
* ``displacement`` δ (Å): random Cartesian displacements with root-mean-square length δ
  per atom, their mean removed (a common translation changes no pattern).

``lattice_noise="matrix"`` replaces the strain by the paper's symmetry-breaking noise
A' = (I + σN) A (N a 3 × 3 matrix of independent standard normals, σ = ``strain``, rows of
A the lattice vectors), i.e. A' = A (I + D) with D = A⁻¹ σN A; the RMS principal strain of
its symmetric part is ≈ √2 σ.

Seeded (numpy ``default_rng``) and, with ``symmetric=True`` (or ``"spacegroup"``),
restricted to what the reference's space group allows (the strain to its crystal family,
the displacements to its symmetry axes), then rescaled to the requested size; a restricted
matrix noise is the projection of the same draw's symmetric part, rescaled to that part's
RMS principal strain, so that a constrained start is as far from the truth as the P1 start
of the same seed. With
``symmetric="family"`` only the strain is restricted (to the crystal family) and the atoms
move freely: the perturbations a crystal-family-constrained search explores.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.structure.crystal import Crystal
from xrdcore.structure.symmetry import Symmetry, find_symmetry
from xrdcore.validation import choice, instance, real, whole


def random_strain(rng: np.random.Generator, magnitude: float,
                  symmetry: Symmetry | None = None) -> np.ndarray:
    """Symmetric (3, 3) Cartesian strain with RMS principal strain ``magnitude``."""
    if magnitude < 0:
        raise ValueError(f"strain magnitude must be ≥ 0, got {magnitude}")
    raw = rng.standard_normal((3, 3))
    strain = 0.5 * (raw + raw.T)
    if symmetry is not None:
        strain = symmetry.project_strain(strain)
    size = np.linalg.norm(strain) / np.sqrt(3)  # RMS of the eigenvalues: ‖E‖_F² = Σ λ_i²
    return strain * (magnitude / size) if size > 0 else strain


def random_deformation(rng: np.random.Generator, sigma: float, lattice: ArrayLike,
                       symmetry: Symmetry | None = None) -> np.ndarray:
    """Deformation D (3, 3) of the matrix noise, A' = (I + σN) A = A (I + D); with ``symmetry``,
    the symmetric part of D projected onto the allowed strains and rescaled to its own RMS
    principal strain."""
    if not sigma >= 0:
        raise ValueError(f"lattice noise σ must be ≥ 0, got {sigma}")
    lattice = np.asarray(lattice, dtype=float)
    deformation = np.linalg.solve(lattice, sigma * rng.standard_normal((3, 3)) @ lattice)
    if symmetry is None:
        return deformation
    strain = 0.5 * (deformation + deformation.T)
    projected = symmetry.project_strain(strain)
    size, projected_size = np.linalg.norm(strain), np.linalg.norm(projected)
    return projected * (size / projected_size) if projected_size > 0 else projected


def random_displacement(rng: np.random.Generator, crystal: Crystal, rms: float,
                        symmetry: Symmetry | None = None) -> np.ndarray:
    """Fractional displacements (N, 3) whose Cartesian RMS length per atom is ``rms`` Å."""
    if rms < 0:
        raise ValueError(f"displacement must be ≥ 0 Å, got {rms}")
    cartesian = rng.standard_normal((len(crystal), 3))
    cartesian -= cartesian.mean(axis=0)
    fractional = cartesian @ np.linalg.inv(crystal.lattice)
    if symmetry is not None:
        fractional = symmetry.project_displacement(fractional)
    size = np.sqrt(np.mean(np.sum((fractional @ crystal.lattice)**2, axis=1)))
    if size == 0:
        return fractional  # nothing may move (e.g. every atom on a fixed special position)
    return fractional * (rms / size)


SYMMETRIC_CHOICES = (False, True, "family", "spacegroup")
LATTICE_NOISES = ("strain", "matrix")


def perturb(crystal: Crystal, strain: float = 0.0, displacement: float = 0.0, seed: int = 0,
            symmetric: bool | str = False, lattice_noise: str = "strain") -> Crystal:
    """A perturbed copy of ``crystal`` (see the module docstring for the definitions)."""
    instance(crystal, "crystal", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    if not (isinstance(symmetric, (bool, np.bool_)) or
            isinstance(symmetric, str) and symmetric in SYMMETRIC_CHOICES):
        raise ValueError(f"symmetric must be one of {SYMMETRIC_CHOICES}, got {symmetric!r}")
    lattice_noise = choice(lattice_noise, "lattice_noise", LATTICE_NOISES)
    strain = real(strain, "strain", low=0)
    displacement = real(displacement, "displacement", low=0, unit="Å")
    rng = np.random.default_rng(whole(seed, "seed", low=0))
    symmetry = find_symmetry(crystal) if symmetric else None
    frac_coords = crystal.frac_coords
    if displacement:
        frac_coords = frac_coords + random_displacement(rng, crystal, displacement,
                                                        None if symmetric == "family" else symmetry)
    lattice = crystal.lattice
    if strain and lattice_noise == "matrix":
        lattice = lattice @ (np.eye(3) + random_deformation(rng, strain, lattice, symmetry))
    elif strain:
        lattice = lattice @ (np.eye(3) + random_strain(rng, strain, symmetry))
    return crystal.replace(lattice=lattice, frac_coords=frac_coords)
