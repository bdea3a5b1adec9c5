"""Loss landscapes: 1-D and 2-D scans along chosen directions, local minima, curvature and
basins of attraction.

A *direction* is a pair (dA (3, 3) in Å, dx (N, 3) fractional) and a scan visits
A + t·dA, x + t·dx for the given offsets t. Directions for the usual questions:

* :func:`lattice_direction` — stretch one lattice vector (t is then a relative strain);
* :func:`atom_direction` — move one atom along one Cartesian axis (t in Å);
* :func:`random_direction` — random displacements of every atom, each atom's displacement
  normalised to 1 Å (t in Å per atom), optionally with a random strain;
* :func:`symmetry_axis_direction` — along one symmetry axis of a space-group parametrisation;
* :func:`path_direction` — the straight line from one structure to another (t from 0 to 1).

All points of a scan are evaluated in one batched call (:class:`xrdcore.batch.BatchLoss`),
which also returns the exact derivative along the direction at every point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batch import BatchLoss
from .crystal import Crystal
from .parametrize import Parametrization
from .perturb import random_strain
from .validation import instance, real_array


@dataclass(frozen=True)
class Direction:
    d_lattice: np.ndarray  # (3, 3) Å per unit t
    d_frac: np.ndarray  # (N, 3) fractional per unit t
    name: str = ""

    def slope(self, d_lattice, d_frac):
        """dL/dt along this direction from the gradients dL/dA (..., 3, 3) and dL/dx (..., N, 3)
        (one structure or a batch)."""
        return np.einsum("...ij,ij->...", d_lattice, self.d_lattice) + np.einsum("...nx,nx->...", d_frac, self.d_frac)


def displaced(crystal: Crystal, directions, offsets) -> Crystal:
    """``crystal`` + Σ t_k · direction_k for directions and offsets t_k given in pairs."""
    return crystal.replace(
        lattice=crystal.lattice + sum(t * d.d_lattice for t, d in zip(offsets, directions)),
        frac_coords=crystal.frac_coords + sum(t * d.d_frac for t, d in zip(offsets, directions)),
    )


def lattice_direction(crystal: Crystal, vector: int) -> Direction:
    """Stretch lattice vector ``vector`` (0, 1, 2): t = relative change of its length."""
    d_lattice = np.zeros((3, 3))
    d_lattice[vector] = crystal.lattice[vector]
    return Direction(d_lattice, np.zeros_like(crystal.frac_coords), f"lattice vector {'abc'[vector]}")


def atom_direction(crystal: Crystal, atom: int, axis: int) -> Direction:
    """Move one atom along Cartesian axis ``axis`` (0, 1, 2): t in Å."""
    d_frac = np.zeros_like(crystal.frac_coords)
    d_frac[atom] = np.linalg.solve(crystal.lattice.T, np.eye(3)[axis])  # Cartesian unit step → fractional
    return Direction(np.zeros((3, 3)), d_frac, f"{crystal.species[atom]}{atom} along {'xyz'[axis]}")


def random_direction(crystal: Crystal, rng, strain: float = 0.0) -> Direction:
    """Random displacement of every atom, each of Cartesian length 1 Å (t in Å), plus an
    optional random symmetric strain of RMS principal value ``strain`` per unit t."""
    cartesian = rng.standard_normal(crystal.frac_coords.shape)
    cartesian /= np.linalg.norm(cartesian, axis=1, keepdims=True)
    d_frac = cartesian @ np.linalg.inv(crystal.lattice)
    return Direction(crystal.lattice @ random_strain(rng, strain), d_frac, "random")


def symmetry_axis_direction(parametrization: Parametrization, axis: int) -> Direction:
    """Along symmetry axis ``axis`` of a parametrisation with ``coordinates="spacegroup"``."""
    if parametrization.coordinate_mode != "spacegroup":
        raise ValueError("symmetry axes need a space-group parametrisation (coordinates='spacegroup')")
    return Direction(np.zeros((3, 3)), parametrization.axes[axis], parametrization.axis_names[axis])


def path_direction(crystal: Crystal, other: Crystal) -> Direction:
    """The straight line from ``crystal`` (t = 0) to ``other`` (t = 1): lattice vectors and
    fractional coordinates, each atom towards the nearest periodic image of its partner."""
    if len(other) != len(crystal) or np.any(other.atomic_numbers != crystal.atomic_numbers):
        raise ValueError("the two structures must have the same atoms in the same order")
    step = other.frac_coords - crystal.frac_coords
    return Direction(other.lattice - crystal.lattice, step - np.round(step), "straight path")


@dataclass(frozen=True)
class Scan:
    offsets: np.ndarray  # (T,) or (T1, T2)
    loss: np.ndarray
    slope: np.ndarray  # exact dL/dt along the (first) direction at every point


def scan_axes(crystal: Crystal, directions, offsets) -> tuple[list, tuple]:
    """The directions of a scan as a list (one or two :class:`Direction`, each checked against
    ``crystal``) and its offsets as a tuple of finite 1-D arrays, one per direction."""
    instance(crystal, "crystal", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    directions = [directions] if isinstance(directions, Direction) else list(directions)
    if len(directions) not in (1, 2):
        raise ValueError(f"give one direction (1-D scan) or two (2-D scan), got {len(directions)}")
    for direction in directions:
        instance(direction, "direction", Direction, "make one with xrdcore.landscape (lattice_direction, …)")
        if np.shape(direction.d_lattice) != (3, 3) or np.shape(direction.d_frac) != crystal.frac_coords.shape:
            raise ValueError(f"direction {direction.name!r} does not fit the crystal ({len(crystal)} atoms)")
        real_array(direction.d_lattice, f"direction {direction.name!r}")
        real_array(direction.d_frac, f"direction {direction.name!r}")
    if len(directions) == 1:
        axes = (real_array(offsets, "offsets of a 1-D scan", ndim=1),)
    else:
        if isinstance(offsets, np.ndarray) and offsets.ndim != 2 or len(offsets) != 2:
            raise ValueError("offsets of a 2-D scan must be a pair of 1-D arrays")
        axes = tuple(real_array(o, f"offsets[{i}] of a 2-D scan", ndim=1) for i, o in enumerate(offsets))
    if any(axis.size == 0 for axis in axes):
        raise ValueError("offsets are empty")
    return directions, axes


def scan(crystal: Crystal, directions, offsets, target, diffractometer, metric="cosine", fwhm=0.1, **options) -> Scan:
    """Loss at crystal + t·direction for every t (1-D, one direction) or every (t1, t2) pair
    (2-D, two directions, ``offsets`` a pair of 1-D arrays); evaluated as one batch."""
    directions, axes = scan_axes(crystal, directions, offsets)
    if len(directions) == 1:
        grid = axes[0][:, None]
        shape = grid.shape[:1]
    else:
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        shape = mesh.shape[:2]
        grid = mesh.reshape(-1, 2)
    lattices = crystal.lattice + np.einsum("pk,kij->pij", grid, np.stack([d.d_lattice for d in directions]))
    coords = crystal.frac_coords + np.einsum("pk,knx->pnx", grid, np.stack([d.d_frac for d in directions]))
    reach = max(np.abs(np.linalg.svd(np.linalg.solve(a, crystal.lattice), compute_uv=False) - 1).max() for a in lattices)
    margin = min(0.9, 1.5 * reach + 0.01)
    batch = BatchLoss(crystal, target, diffractometer, metric=metric, fwhm=fwhm, margin=margin, **options)
    losses, d_lattice, d_frac = batch(lattices, coords)
    slope = directions[0].slope(d_lattice, d_frac)
    return Scan(axes[0] if len(axes) == 1 else axes, losses.reshape(shape), slope.reshape(shape))


def local_minima(values, tolerance: float = 0.0) -> np.ndarray:
    """Indices of interior strict local minima of a 1-D profile (lower than both neighbours by
    more than ``tolerance``)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError("local_minima expects a 1-D profile")
    inner = values[1:-1]
    is_minimum = (inner < values[:-2] - tolerance) & (inner < values[2:] - tolerance)
    return np.flatnonzero(is_minimum) + 1


def curvature(offsets, values, at: float = 0.0) -> float:
    """Second derivative of a sampled 1-D profile at ``at`` by the three-point formula on the
    nearest samples (exact for a quadratic; uniform or not)."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    i = int(np.clip(np.argmin(np.abs(offsets - at)), 1, len(offsets) - 2))
    x0, x1, x2 = offsets[i - 1 : i + 2]
    y0, y1, y2 = values[i - 1 : i + 2]
    return float(2 * (y0 / ((x0 - x1) * (x0 - x2)) + y1 / ((x1 - x0) * (x1 - x2)) + y2 / ((x2 - x0) * (x2 - x1))))


def basin(offsets, values, at: float = 0.0) -> tuple[float, float]:
    """The interval around ``at`` from which descent along the scan reaches the minimum
    nearest to ``at``: bounded by the nearest local maxima (or the scan ends) on each side."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    i = int(np.argmin(np.abs(offsets - at)))
    while 0 < i < len(values) - 1 and min(values[i - 1], values[i + 1]) < values[i]:  # slide to the minimum
        i = i - 1 if values[i - 1] < values[i + 1] else i + 1
    left = i
    while left > 0 and values[left - 1] >= values[left]:
        left -= 1
    right = i
    while right < len(values) - 1 and values[right + 1] >= values[right]:
        right += 1
    return float(offsets[left]), float(offsets[right])


@dataclass(frozen=True)
class Barrier:
    wrong_minimum: float  # offset of the local minimum nearest to ``at`` other than its own
    barrier: float  # offset of the highest point between the two minima
    height: float  # loss at the barrier minus loss at ``at``'s minimum


def nearest_barrier(offsets, values, at: float = 0.0) -> Barrier | None:
    """The wrong minimum nearest to the minimum at ``at`` along a sampled 1-D profile and the
    barrier between them (its highest sample); None when the profile has no other minimum."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    minima = local_minima(values)
    home = min(minima, key=lambda i: abs(offsets[i] - at), default=None)
    others = [i for i in minima if i != home]
    if home is None or not others:
        return None
    other = min(others, key=lambda i: abs(offsets[i] - offsets[home]))
    low, high = sorted((home, other))
    top = low + int(np.argmax(values[low : high + 1]))
    return Barrier(float(offsets[other]), float(offsets[top]), float(values[top] - values[home]))
