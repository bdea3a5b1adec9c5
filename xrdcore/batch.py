"""Loss and exact gradient for a batch of B structures of one composition, on CPU or GPU.

:class:`BatchLoss` fixes what the batch shares (species, reflection list, 2θ grid, target,
profile settings, metric) and then evaluates ``(lattices, frac_coords)`` for all B at once:
numba ``prange`` over structures on the CPU, one GPU thread per (structure, reflection),
(structure, atom) or structure with numba.cuda. The backend is the diffractometer's
(:func:`xrdcore.kernels.select_backend`).

On the GPU, arrays stay on the device: :meth:`BatchLoss.descend` runs gradient descent for
many steps with no copy to the host until the end; the cosine loss and its gradient are
computed on the device, other metrics go through the host (one copy per step).

Structures of different sizes can share a batch by padding: give padded atoms occupancy 0
(they scatter nothing and get zero gradient).

Inputs are checked before a kernel runs: shapes (B, 3, 3) and (B, N, 3), finite values, a
non-empty batch, and the estimated working memory of the batch (B × reflections × scatterer
types, B × grid points) against :data:`xrdcore.validation.LIMITS` ``max_memory_gb``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from xrdcore.diffraction import Diffractometer, check_diffractometer, scatterer_types
from xrdcore.gradients import (DEFAULT_MARGIN, check_fixed_width, check_target, reflection_set,
                               required_margin, target_pattern)
from xrdcore.kernels import batched
from xrdcore.physics.profiles import Profile
from xrdcore.similarity import UNDEFINED, get_metric, loss_batch
from xrdcore.similarity import loss as metric_loss
from xrdcore.structure.crystal import Crystal, check_crystal
from xrdcore.validation import (StructureError, choice, describe, guard_memory, real, real_array,
                                whole)

#: Metrics the GPU evaluates on the device; others make one host round trip per step.
DEVICE_METRICS = ("cosine", )
#: Structures per CPU kernel call: a larger batch is evaluated chunk by chunk, so that each
#: chunk's work arrays (patterns, saved forward quantities) stay in cache (the same results).
CPU_CHUNK = 64
#: Floating-point types the kernels work in.
DTYPES = ("float64", "float32")
#: Work values kept per structure and reflection (g, 2θ, LP and slopes, intensity, structure
#: factors), per structure, reflection and scatterer type (form factors and slopes), and per
#: structure and grid point (profile, its gradient, the metric's arrays on the host).
PER_REFLECTION, PER_TYPE, PER_GRID_POINT = 10, 2, 4


class BatchLoss:
    """Batched ``loss_and_grad`` for structures with ``template``'s species.

    Parameters
    ----------
    template : Crystal giving species (and, by default, occupancies) and the reference
        lattice of the shared reflection list.
    target : pattern on the diffractometer's grid, or a Crystal.
    margin : relative margin of the shared reflection list; every lattice evaluated must
        stay inside it (see :class:`xrdcore.gradients.ReflectionSet`).
    dtype : np.float64 (default) or np.float32 for the arrays the kernels work on. In float32
        the loss and gradients agree with float64 to 1e-4 relative to their largest component
        (measured ~1e-5 on small cells; tested).
    """

    def __init__(self, template: Crystal, target: Crystal | ArrayLike,
                 diffractometer: Diffractometer, metric: str = "cosine",
                 fwhm: float | Profile = 0.1, margin: float = DEFAULT_MARGIN,
                 dtype: DTypeLike = np.float64) -> None:
        check_crystal(template, "template")
        check_diffractometer(diffractometer)
        get_metric(metric)
        profile = check_fixed_width(fwhm)
        self.dtype = _check_dtype(dtype)
        self.setup = diffractometer.profile_setup(None, profile)
        self.template = template
        self.metric = metric
        self.backend = diffractometer.backend
        self.wavelength = diffractometer.wavelength
        check_target(target, self.setup.grid)
        self._n_types = len(scatterer_types(template)[1])
        self.reflections = reflection_set(diffractometer,
                                          template.lattice, self.setup.two_theta_range, margin,
                                          len(template), self._n_types)
        self.target = np.asarray(target_pattern(target, diffractometer, self.setup), dtype=float)
        metric_loss(metric, self.target, self.target,
                    self.setup.grid)  # the metric accepts the target (signs, grid)
        scatterer_type, type_z, type_coeffs, type_b = scatterer_types(template)
        cast = self.dtype.type
        self._arrays = dict(scatterer_type=scatterer_type, type_z=type_z.astype(self.dtype),
                            type_coeffs=type_coeffs.astype(self.dtype), type_b=type_b.astype(
                                self.dtype), hkl=self.reflections.hkl.astype(self.dtype),
                            grid=self.setup.grid.astype(self.dtype))
        self._scalars = (cast(self.wavelength), cast(self.setup.fwhm), cast(
            self.setup.eta), cast(self.setup.window))
        self.engine: batched.BatchBackend  # the backend's batch interface (HostBatch, DeviceBatch)
        if self.backend == "cuda":
            from xrdcore.kernels.cuda import DeviceBatch

            self.engine = DeviceBatch(self._arrays, self.target.astype(self.dtype), self._scalars)
        else:
            max_index = (batched.max_miller_index(self.reflections.hkl)
                         if len(self.reflections.hkl) else 0)
            g_window = diffractometer.g_window(self.setup.two_theta_range)
            self.engine = batched.HostBatch(self._arrays, self._scalars, max_index,
                                            (cast(g_window[0]), cast(g_window[1])),
                                            cast(self.setup.step), CPU_CHUNK)

    # ------------------------------------------------------------------ inputs
    def _prepare(self, lattices: ArrayLike, frac_coords: ArrayLike,
                 occupancies: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_atoms = len(self.template)
        lattices = real_array(lattices, "lattices")
        if lattices.ndim != 3 or lattices.shape[1:] != (3, 3):
            raise ValueError(
                f"lattices must have shape (B, 3, 3), one lattice (rows, Å) per structure, "
                f"got {lattices.shape}")
        n_batch = len(lattices)
        if n_batch == 0:
            raise ValueError(
                "the batch is empty: lattices has shape (0, 3, 3); give at least one structure")
        frac_coords = real_array(frac_coords, "frac_coords", shape=(n_batch, n_atoms, 3))
        if occupancies is None:
            occupancies = np.broadcast_to(self.template.occupancies, (n_batch, n_atoms))
        occupancies = real_array(occupancies, "occupancies", shape=(n_batch, n_atoms))
        if np.any(occupancies < 0) or np.any(occupancies > 1):
            raise ValueError(
                f"occupancies must have shape ({n_batch}, {n_atoms}) with values in [0, 1]")
        self.check_memory(n_batch)
        if np.any(np.linalg.det(lattices) <= 0):
            raise StructureError("every lattice must be right-handed with a positive volume")
        if not np.all(self.covers(lattices)):
            raise ValueError(
                "a lattice of the batch has moved beyond the shared reflection list's margin; "
                "build a new BatchLoss (or a larger margin)")
        return (np.ascontiguousarray(
            lattices, dtype=self.dtype), np.ascontiguousarray(
                frac_coords, dtype=self.dtype), np.ascontiguousarray(occupancies, dtype=self.dtype))

    def check_memory(self, n_batch: int) -> None:
        """ResourceLimitError when a batch of ``n_batch`` structures would need more working
        memory than ``LIMITS.max_memory_gb`` (estimate: the work arrays of the structures
        evaluated at once, per reflection and scatterer type, and the batch's patterns and
        gradients on the grid)."""
        at_once = n_batch if self.backend == "cuda" else min(n_batch, CPU_CHUNK)
        n_reflections, n_grid = len(self.reflections.hkl), len(self.setup.grid)
        values = (at_once * n_reflections * (PER_REFLECTION + PER_TYPE * self._n_types) +
                  n_batch * n_grid * PER_GRID_POINT)
        guard_memory(
            values * self.dtype.itemsize + n_batch * n_grid * 8,
            f"a batch of {n_batch:,} structures ({n_reflections:,} reflections, "
            f"{n_grid:,} grid points)", "evaluate the batch in smaller parts")

    def covers(self, lattices: ArrayLike) -> np.ndarray:
        """(B,) True where the shared reflection list is complete for lattice b (see
        :meth:`xrdcore.gradients.ReflectionSet.covers`)."""
        return required_margin(self.reflections.lattice, lattices) <= self.reflections.margin

    # ------------------------------------------------------------------ evaluation
    def patterns(self, lattices: ArrayLike, frac_coords: ArrayLike,
                 occupancies: ArrayLike | None = None) -> np.ndarray:
        """Unnormalised patterns (B, K) on the grid."""
        lattices, frac_coords, occupancies = self._prepare(lattices, frac_coords, occupancies)
        return self.engine.patterns(lattices, frac_coords, occupancies)

    def __call__(self, lattices: ArrayLike, frac_coords: ArrayLike,
                 occupancies: ArrayLike | None = None,
                 undefined: str = "raise") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss (B,), dL/dA (B, 3, 3) and dL/dx (B, N, 3) as numpy arrays. A structure whose
        metric is undefined (nothing diffracts in the range) raises ValueError, or with
        ``undefined="nan"`` gets loss NaN and zero gradient while the others are evaluated."""
        choice(undefined, "undefined", UNDEFINED)
        lattices, frac_coords, occupancies = self._prepare(lattices, frac_coords, occupancies)
        return self.engine.loss_and_grad(lattices, frac_coords, occupancies,
                                         self._metric_on_host(undefined))

    def descend(self, lattices: ArrayLike, frac_coords: ArrayLike, steps: int, lattice_rate: float,
                frac_rate: float,
                occupancies: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Plain gradient descent for ``steps`` steps on every structure; returns final lattices,
        coordinates and the loss history (steps + 1, B). On the GPU nothing leaves the device
        between steps (cosine loss)."""
        steps = whole(steps, "steps", low=0)
        lattice_rate = real(lattice_rate, "lattice_rate", low=0)
        frac_rate = real(frac_rate, "frac_rate", low=0)
        prepared = self._prepare(lattices, frac_coords, occupancies)
        if self.backend == "cuda":
            from xrdcore.kernels.cuda import DeviceBatch

            assert isinstance(self.engine, DeviceBatch)  # made so in __init__ for backend "cuda"
            rates = (self.dtype.type(lattice_rate), self.dtype.type(frac_rate))
            return self.engine.descend(*prepared, steps, *rates, self._metric_on_host())
        lattices = np.array(lattices, dtype=float)
        frac_coords = np.array(frac_coords, dtype=float)
        history = []
        for _ in range(steps):
            losses, d_lattice, d_frac = self(lattices, frac_coords, occupancies)
            history.append(losses)
            lattices = lattices - lattice_rate * d_lattice
            frac_coords = frac_coords - frac_rate * d_frac
        history.append(self(lattices, frac_coords, occupancies)[0])
        return lattices, frac_coords, np.array(history)

    # ------------------------------------------------------------------ helpers
    def _metric_on_host(self, undefined: str = "raise") -> Callable | None:
        """The metric as a host function of the patterns, or None where the GPU evaluates it
        itself (the cosine loss)."""
        if self.backend == "cuda" and self.metric in DEVICE_METRICS:
            return None
        return functools.partial(self._host_metric, undefined=undefined)

    def _host_metric(self, profiles: np.ndarray,
                     undefined: str = "raise") -> tuple[np.ndarray, np.ndarray]:
        return loss_batch(self.metric, profiles, self.target, self.setup.grid, undefined)


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    """float64 or float32 as a numpy dtype; TypeError for what is no dtype, ValueError for
    another one."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        if isinstance(dtype, str):
            choice(dtype, "dtype", DTYPES)  # a misspelt name: suggest the nearest
        raise TypeError(f"dtype must be np.float64 or np.float32, got {describe(dtype)}") from None
    return np.dtype(choice(dtype.name, "dtype", DTYPES))
