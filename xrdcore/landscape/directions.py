"""Directions in structure space: a :class:`Direction` is a pair (dA (3, 3) in Å, dx (N, 3)
fractional), and :func:`displaced` moves a crystal to A + Σ t_k·dA_k, x + Σ t_k·dx_k.

* :func:`lattice_direction` — stretch one lattice vector (t is then a relative strain);
* :func:`atom_direction` — move one atom along one Cartesian axis (t in Å);
* :func:`random_direction` — random displacements of every atom, each atom's displacement
  normalised to 1 Å (t in Å per atom), optionally with a random strain;
* :func:`symmetry_axis_direction` — along one symmetry axis of a space-group parametrisation;
* :func:`path_direction` — the straight line from one structure to another (t from 0 to 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xrdcore.structure.crystal import Crystal
from xrdcore.structure.parametrize import Parametrization
from xrdcore.structure.perturb import random_strain


@dataclass(frozen=True)
class Direction:
    d_lattice: np.ndarray  # (3, 3) Å per unit t
    d_frac: np.ndarray  # (N, 3) fractional per unit t
    name: str = ""

    def slope(self, d_lattice: np.ndarray, d_frac: np.ndarray) -> np.ndarray:
        """dL/dt along this direction from the gradients dL/dA (..., 3, 3) and dL/dx (..., N, 3)
        (one structure or a batch)."""
        return np.einsum("...ij,ij->...", d_lattice, self.d_lattice) + np.einsum(
            "...nx,nx->...", d_frac, self.d_frac)


def displaced(crystal: Crystal, directions: Sequence[Direction],
              offsets: Sequence[float] | np.ndarray) -> Crystal:
    """``crystal`` + Σ t_k · direction_k for directions and offsets t_k given in pairs."""
    return crystal.replace(
        lattice=crystal.lattice + sum(t * d.d_lattice for t, d in zip(offsets, directions)),
        frac_coords=crystal.frac_coords + sum(t * d.d_frac for t, d in zip(offsets, directions)))


def lattice_direction(crystal: Crystal, vector: int) -> Direction:
    """Stretch lattice vector ``vector`` (0, 1, 2): t = relative change of its length."""
    d_lattice = np.zeros((3, 3))
    d_lattice[vector] = crystal.lattice[vector]
    return Direction(d_lattice, np.zeros_like(crystal.frac_coords),
                     f"lattice vector {'abc'[vector]}")


def atom_direction(crystal: Crystal, atom: int, axis: int) -> Direction:
    """Move one atom along Cartesian axis ``axis`` (0, 1, 2): t in Å."""
    d_frac = np.zeros_like(crystal.frac_coords)
    d_frac[atom] = np.linalg.solve(crystal.lattice.T,
                                   np.eye(3)[axis])  # Cartesian unit step → fractional
    return Direction(np.zeros((3, 3)), d_frac, f"{crystal.species[atom]}{atom} along {'xyz'[axis]}")


def random_direction(crystal: Crystal, rng: np.random.Generator, strain: float = 0.0) -> Direction:
    """Random displacement of every atom, each of Cartesian length 1 Å (t in Å), plus an
    optional random symmetric strain of RMS principal value ``strain`` per unit t."""
    cartesian = rng.standard_normal(crystal.frac_coords.shape)
    cartesian /= np.linalg.norm(cartesian, axis=1, keepdims=True)
    d_frac = cartesian @ np.linalg.inv(crystal.lattice)
    return Direction(crystal.lattice @ random_strain(rng, strain), d_frac, "random")


def symmetry_axis_direction(parametrization: Parametrization, axis: int) -> Direction:
    """Along symmetry axis ``axis`` of a parametrisation with ``coordinates="spacegroup"``."""
    if parametrization.coordinate_mode != "spacegroup":
        raise ValueError(
            "symmetry axes need a space-group parametrisation (coordinates='spacegroup')")
    return Direction(np.zeros((3, 3)), parametrization.axes[axis], parametrization.axis_names[axis])


def path_direction(crystal: Crystal, other: Crystal) -> Direction:
    """The straight line from ``crystal`` (t = 0) to ``other`` (t = 1): lattice vectors and
    fractional coordinates, each atom towards the nearest periodic image of its partner."""
    if len(other) != len(crystal) or np.any(other.atomic_numbers != crystal.atomic_numbers):
        raise ValueError("the two structures must have the same atoms in the same order")
    step = other.frac_coords - crystal.frac_coords
    return Direction(other.lattice - crystal.lattice, step - np.round(step), "straight path")
