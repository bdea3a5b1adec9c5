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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.batch import BatchLoss
from xrdcore.diffraction import Diffractometer
from xrdcore.energy import calculator, energy, energy_gradient
from xrdcore.landscape.directions import Direction, displaced
from xrdcore.physics.profiles import Profile
from xrdcore.structure.crystal import Crystal
from xrdcore.validation import instance, real_array


@dataclass(frozen=True)
class Scan:
    offsets: np.ndarray | tuple[np.ndarray, ...]  # (T,), or the pair of axes (T1,), (T2,)
    loss: np.ndarray
    slope: np.ndarray  # exact dL/dt along the (first) direction at every point


def scan_axes(crystal: Crystal, directions: Direction | Sequence[Direction],
              offsets: ArrayLike) -> tuple[list[Direction], tuple[np.ndarray, ...]]:
    """The directions of a scan as a list (one or two :class:`Direction`, each checked against
    ``crystal``) and its offsets as a tuple of finite 1-D arrays, one per direction."""
    instance(crystal, "crystal", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    directions = [directions] if isinstance(directions, Direction) else list(directions)
    if len(directions) not in (1, 2):
        raise ValueError(f"give one direction (1-D scan) or two (2-D scan), got {len(directions)}")
    for direction in directions:
        instance(direction, "direction", Direction,
                 "make one with xrdcore.landscape (lattice_direction, …)")
        if (np.shape(direction.d_lattice) != (3, 3) or
                np.shape(direction.d_frac) != crystal.frac_coords.shape):
            raise ValueError(
                f"direction {direction.name!r} does not fit the crystal ({len(crystal)} atoms)")
        real_array(direction.d_lattice, f"direction {direction.name!r}")
        real_array(direction.d_frac, f"direction {direction.name!r}")
    axes: tuple[np.ndarray, ...]
    if len(directions) == 1:
        axes = (real_array(offsets, "offsets of a 1-D scan", ndim=1), )
    else:
        pair = cast("Sequence[ArrayLike]", offsets)  # a pair of 1-D arrays, else len() refuses it
        if isinstance(offsets, np.ndarray) and offsets.ndim != 2 or len(pair) != 2:
            raise ValueError("offsets of a 2-D scan must be a pair of 1-D arrays")
        axes = tuple(
            real_array(o, f"offsets[{i}] of a 2-D scan", ndim=1) for i, o in enumerate(pair))
    if any(axis.size == 0 for axis in axes):
        raise ValueError("offsets are empty")
    return directions, axes


def scan(crystal: Crystal, directions: Direction | Sequence[Direction], offsets: ArrayLike,
         target: Crystal | ArrayLike, diffractometer: Diffractometer, metric: str = "cosine",
         fwhm: float | Profile = 0.1) -> Scan:
    """Loss at crystal + t·direction for every t (1-D, one direction) or every (t1, t2) pair
    (2-D, two directions, ``offsets`` a pair of 1-D arrays); evaluated as one batch. ``fwhm``: a
    width (deg) or a :class:`~xrdcore.physics.profiles.Profile`."""
    directions, axes = scan_axes(crystal, directions, offsets)
    if len(directions) == 1:
        grid = axes[0][:, None]
        shape = grid.shape[:1]
    else:
        mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
        shape = mesh.shape[:2]
        grid = mesh.reshape(-1, 2)
    lattices = crystal.lattice + np.einsum("pk,kij->pij", grid,
                                           np.stack([d.d_lattice for d in directions]))
    coords = crystal.frac_coords + np.einsum("pk,knx->pnx", grid,
                                             np.stack([d.d_frac for d in directions]))
    reach = max(
        np.abs(np.linalg.svd(np.linalg.solve(a, crystal.lattice), compute_uv=False) - 1).max()
        for a in lattices)
    margin = min(0.9, 1.5 * reach + 0.01)
    batch = BatchLoss(crystal, target, diffractometer, metric=metric, fwhm=fwhm, margin=margin)
    losses, d_lattice, d_frac = batch(lattices, coords)
    slope = directions[0].slope(d_lattice, d_frac)
    return Scan(axes[0] if len(axes) == 1 else axes, losses.reshape(shape), slope.reshape(shape))


def local_minima(values: ArrayLike, tolerance: float = 0.0) -> np.ndarray:
    """Indices of interior strict local minima of a 1-D profile (lower than both neighbours by
    more than ``tolerance``)."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1:
        raise ValueError("local_minima expects a 1-D profile")
    inner = values[1:-1]
    is_minimum = (inner < values[:-2] - tolerance) & (inner < values[2:] - tolerance)
    return np.flatnonzero(is_minimum) + 1


def curvature(offsets: ArrayLike, values: ArrayLike, at: float = 0.0) -> float:
    """Second derivative of a sampled 1-D profile at ``at`` by the three-point formula on the
    nearest samples (exact for a quadratic; uniform or not)."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    i = int(np.clip(np.argmin(np.abs(offsets - at)), 1, len(offsets) - 2))
    x0, x1, x2 = offsets[i - 1:i + 2]
    y0, y1, y2 = values[i - 1:i + 2]
    return float(2 * (y0 / ((x0 - x1) * (x0 - x2)) + y1 / ((x1 - x0) * (x1 - x2)) + y2 /
                      ((x2 - x0) * (x2 - x1))))


def basin(offsets: ArrayLike, values: ArrayLike, at: float = 0.0) -> tuple[float, float]:
    """The interval around ``at`` from which descent along the scan reaches the minimum
    nearest to ``at``: bounded by the nearest local maxima (or the scan ends) on each side."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    i = int(np.argmin(np.abs(offsets - at)))
    while (0 < i < len(values) - 1 and
           min(values[i - 1], values[i + 1]) < values[i]):  # slide to the minimum
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


def nearest_barrier(offsets: ArrayLike, values: ArrayLike, at: float = 0.0) -> Barrier | None:
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
    top = low + int(np.argmax(values[low:high + 1]))
    return Barrier(float(offsets[other]), float(offsets[top]), float(values[top] - values[home]))


def energy_scan(crystal: Crystal, directions: Direction | Sequence[Direction], offsets: ArrayLike,
                calc: Any = None, slopes: bool = True) -> Scan:
    """Energy (eV per atom) at crystal + t·direction for every t (1-D, one direction) or every
    (t1, t2) (2-D, two directions, ``offsets`` a pair of 1-D arrays), with the exact slope
    dE/dt along the (first) direction from forces and stress: the same
    :class:`~xrdcore.landscape.scans.Scan` as :func:`xrdcore.landscape.scans.scan` returns for an
    XRD loss, on the same directions and offsets, so the two compare point for point.
    ``slopes=False`` skips forces and stress (about 2× faster with CHGNet); the slopes are then
    NaN."""
    directions, axes = scan_axes(crystal, directions, offsets)
    calc = calculator(calc)
    lattice = bool(np.any(directions[0].d_lattice))
    shape = tuple(len(axis) for axis in axes)
    values, slope = np.empty(shape), np.full(shape, np.nan)
    for index in np.ndindex(*shape):
        point = displaced(crystal, directions, [axis[i] for axis, i in zip(axes, index)])
        if not slopes:
            values[index] = energy(point, calc)
            continue
        values[index], d_lattice, d_frac = energy_gradient(point, calc, lattice=lattice)
        slope[index] = directions[0].slope(d_lattice if lattice else np.zeros((3, 3)), d_frac)
    return Scan(axes[0] if len(axes) == 1 else axes, values, slope)
