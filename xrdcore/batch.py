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
"""

from __future__ import annotations

import numpy as np

from .crystal import Crystal
from .diffraction import Diffractometer, scatterer_types
from .gradients import DEFAULT_MARGIN, _target_pattern, reflection_set, required_margin
from .kernels import batched
from .similarity import loss as metric_loss
from .similarity import loss_batch

#: Metrics the GPU evaluates on the device; others make one host round trip per step.
DEVICE_METRICS = ("cosine",)
#: Structures per CPU kernel call: a larger batch is evaluated chunk by chunk, so that each
#: chunk's work arrays (patterns, saved forward quantities) stay in cache (the same results).
CPU_CHUNK = 64


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

    def __init__(
        self,
        template: Crystal,
        target,
        diffractometer: Diffractometer,
        metric: str = "cosine",
        fwhm: float = 0.1,
        shape: str = "gaussian",
        eta: float | None = None,
        window: float | None = None,
        margin: float = DEFAULT_MARGIN,
        dtype=np.float64,
    ):
        if np.ndim(fwhm) != 0:
            raise ValueError("batched gradients need a fixed FWHM in degrees")
        if np.dtype(dtype) not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be float64 or float32, got {np.dtype(dtype)}")
        self.setup = diffractometer.profile_setup(None, float(fwhm), shape, eta, window)
        self.template = template
        self.metric = metric
        self.backend = diffractometer.backend
        self.dtype = np.dtype(dtype)
        self.wavelength = diffractometer.wavelength
        self.reflections = reflection_set(diffractometer, template.lattice, self.setup.two_theta_range, margin)
        self.target = np.asarray(_target_pattern(target, diffractometer, self.setup), dtype=float)
        metric_loss(metric, self.target, self.target, self.setup.grid)  # validates the metric and the target
        scatterer_type, type_z, type_coeffs, type_b = scatterer_types(template)
        cast = self.dtype.type
        self._arrays = dict(
            scatterer_type=scatterer_type,
            type_z=type_z.astype(self.dtype),
            type_coeffs=type_coeffs.astype(self.dtype),
            type_b=type_b.astype(self.dtype),
            hkl=self.reflections.hkl.astype(self.dtype),
            grid=self.setup.grid.astype(self.dtype),
        )
        self._scalars = (cast(self.wavelength), cast(fwhm), cast(self.setup.eta), cast(self.setup.window))
        self._max_index = batched.max_miller_index(self.reflections.hkl) if len(self.reflections.hkl) else 0
        self._step = cast(self.setup.step)
        self._g_window = tuple(cast(g) for g in diffractometer.g_window(self.setup.two_theta_range))
        if self.backend == "cuda":
            from .kernels import cuda as cuda_kernels

            self._device = cuda_kernels.DeviceBatch(self._arrays, self.target.astype(self.dtype), self._scalars)

    # ------------------------------------------------------------------ inputs
    def _prepare(self, lattices, frac_coords, occupancies):
        lattices = np.asarray(lattices, dtype=float)
        frac_coords = np.asarray(frac_coords, dtype=float)
        n_atoms = len(self.template)
        if lattices.ndim != 3 or lattices.shape[1:] != (3, 3):
            raise ValueError(f"lattices must have shape (B, 3, 3), got {lattices.shape}")
        if frac_coords.shape != (len(lattices), n_atoms, 3):
            raise ValueError(f"frac_coords must have shape ({len(lattices)}, {n_atoms}, 3), got {frac_coords.shape}")
        if not (np.all(np.isfinite(lattices)) and np.all(np.isfinite(frac_coords))):
            raise ValueError("lattices or frac_coords contain NaN or inf")
        if occupancies is None:
            occupancies = np.broadcast_to(self.template.occupancies, (len(lattices), n_atoms))
        occupancies = np.asarray(occupancies, dtype=float)
        if occupancies.shape != (len(lattices), n_atoms) or np.any(occupancies < 0) or np.any(occupancies > 1):
            raise ValueError(f"occupancies must have shape ({len(lattices)}, {n_atoms}) with values in [0, 1]")
        if np.any(np.linalg.det(lattices) <= 0):
            raise ValueError("every lattice must be right-handed with a positive volume")
        if not np.all(self.covers(lattices)):
            raise ValueError(
                "a lattice of the batch has moved beyond the shared reflection list's margin; "
                "build a new BatchLoss (or a larger margin)"
            )
        return (np.ascontiguousarray(a, dtype=self.dtype) for a in (lattices, frac_coords, occupancies))

    def covers(self, lattices) -> np.ndarray:
        """(B,) True where the shared reflection list is complete for lattice b (see
        :meth:`xrdcore.gradients.ReflectionSet.covers`)."""
        return required_margin(self.reflections.lattice, lattices) <= self.reflections.margin

    # ------------------------------------------------------------------ evaluation
    def patterns(self, lattices, frac_coords, occupancies=None) -> np.ndarray:
        """Unnormalised patterns (B, K) on the grid."""
        lattices, frac_coords, occupancies = self._prepare(lattices, frac_coords, occupancies)
        if self.backend == "cuda":
            return self._device.patterns(lattices, frac_coords, occupancies)
        profile, _ = self._forward_cpu(lattices, frac_coords, occupancies)
        return profile

    def __call__(self, lattices, frac_coords, occupancies=None, undefined: str = "raise"):
        """Loss (B,), dL/dA (B, 3, 3) and dL/dx (B, N, 3) as numpy arrays. A structure whose
        metric is undefined (nothing diffracts in the range) raises ValueError, or with
        ``undefined="nan"`` gets loss NaN and zero gradient while the others are evaluated."""
        if undefined not in ("raise", "nan"):
            raise ValueError(f"undefined must be 'raise' or 'nan', got {undefined!r}")
        lattices, frac_coords, occupancies = self._prepare(lattices, frac_coords, occupancies)
        if self.backend == "cuda":
            return self._device.loss_and_grad(lattices, frac_coords, occupancies, self._metric_on_host(undefined))
        losses = np.empty(len(lattices))
        d_lattice, d_frac = np.empty(lattices.shape, self.dtype), np.empty(frac_coords.shape, self.dtype)
        a = self._arrays
        wavelength, *profile_scalars = self._scalars
        for chunk in range(0, len(lattices), CPU_CHUNK):  # the chunk's work arrays stay in cache
            part = slice(chunk, chunk + CPU_CHUNK)
            profile, saved = self._forward_cpu(lattices[part], frac_coords[part], occupancies[part])
            losses[part], d_profile = self._host_metric(profile, undefined)
            d_lattice[part], d_frac[part] = batched.backward_batch(
                d_profile.astype(self.dtype, copy=False), saved, lattices[part], frac_coords[part], occupancies[part],
                a["scatterer_type"], a["hkl"], self._max_index, wavelength, a["grid"], self._step, *profile_scalars,
            )
        return losses, d_lattice, d_frac

    def descend(self, lattices, frac_coords, steps: int, lattice_rate: float, frac_rate: float, occupancies=None):
        """Plain gradient descent for ``steps`` steps on every structure; returns final lattices,
        coordinates and the loss history (steps + 1, B). On the GPU nothing leaves the device
        between steps (cosine loss)."""
        if steps < 0:
            raise ValueError("steps must be ≥ 0")
        if self.backend == "cuda":
            lattices, frac_coords, occupancies = self._prepare(lattices, frac_coords, occupancies)
            rates = (self.dtype.type(lattice_rate), self.dtype.type(frac_rate))
            return self._device.descend(lattices, frac_coords, occupancies, steps, *rates, self._metric_on_host())
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
    def _forward_cpu(self, lattices, frac_coords, occupancies):
        a = self._arrays
        wavelength, *profile_scalars = self._scalars
        return batched.forward_batch(
            lattices, frac_coords, occupancies, a["scatterer_type"], a["type_z"], a["type_coeffs"], a["type_b"],
            a["hkl"], self._max_index, *self._g_window, wavelength, a["grid"], self._step, *profile_scalars,
        )

    def _metric_on_host(self, undefined="raise"):
        """None when the device evaluates the metric itself, else the host function."""
        if self.metric in DEVICE_METRICS:
            return None
        return lambda profiles: self._host_metric(profiles, undefined)

    def _host_metric(self, profiles, undefined="raise"):
        return loss_batch(self.metric, profiles, self.target, self.setup.grid, undefined)
