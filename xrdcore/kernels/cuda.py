"""numba.cuda kernels for :class:`xrdcore.batch.BatchLoss`: the batched CPU kernels of
:mod:`xrdcore.kernels.batched`, one GPU thread per (structure, reflection), (structure,
atom) or structure, compiled from the *same* element functions
(:mod:`xrdcore.kernels.elements`).

Patterns are accumulated with atomic adds (each reflection adds its peak to the grid
points in its window); every other output has a single writer. :class:`DeviceBatch`
keeps the shared inputs on the device and runs whole optimisations there. Without a GPU
these kernels run in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which is how the
test suite checks them against the CPU kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import cuda

from xrdcore.kernels.elements import compile_elements

_gpu = compile_elements(cuda.jit(device=True))
_reciprocal_metric = _gpu["reciprocal_metric"]
_g_length = _gpu["g_length"]
_reflection_factors = _gpu["reflection_factors"]
_form_factor_and_slope = _gpu["form_factor_and_slope"]
_structure_factor = _gpu["structure_factor"]
_window_bounds = _gpu["window_bounds"]
_peak_shape = _gpu["peak_shape"]
_peak_window_adjoint = _gpu["peak_window_adjoint"]
_reflection_adjoint = _gpu["reflection_adjoint"]
_atom_gradient = _gpu["atom_gradient"]
_lattice_gradient = _gpu["lattice_gradient"]

THREADS_1D = 128
THREADS_2D = (8, 32)


@cuda.jit
def _metric_kernel(lattices, metric):
    b = cuda.grid(1)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b < lattices.shape[0]:
        _reciprocal_metric(lattices[b], metric[b])


@cuda.jit
def _forward_kernel(metric, frac_coords, occupancies, scatterer_type, type_z, type_coeffs, type_b,
                    hkl, wavelength, grid, fwhm, eta, window, g, two_theta, lp, d_lp, d_two_theta,
                    type_f, type_f_slope, structure, intensity, profile):
    b, m = cuda.grid(2)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b >= frac_coords.shape[0] or m >= hkl.shape[0]:
        return
    g_m = _g_length(metric[b], hkl[m, 0], hkl[m, 1], hkl[m, 2])
    g[b, m] = g_m
    if 0.5 * wavelength * g_m >= 1.0:
        lp[b, m] = 0.0
        return
    tt, lp_m, d_lp_m, d_tt = _reflection_factors(g_m, wavelength)
    two_theta[b, m] = tt
    lp[b, m] = lp_m
    d_lp[b, m] = d_lp_m
    d_two_theta[b, m] = d_tt
    for t in range(type_z.shape[0]):
        type_f[b, m, t], type_f_slope[b, m, t] = _form_factor_and_slope(
            type_z[t], type_coeffs[t], type_b[t], 0.5 * g_m)
    real, imag, slope_real, slope_imag = _structure_factor(
        hkl[m], frac_coords[b], occupancies[b], scatterer_type, type_f[b, m], type_f_slope[b, m])
    structure[b, m, 0] = real
    structure[b, m, 1] = imag
    structure[b, m, 2] = slope_real
    structure[b, m, 3] = slope_imag
    value = 2.0 * (real * real + imag * imag) * lp_m
    intensity[b, m] = value
    half_width = window * fwhm
    first, last = _window_bounds(tt, half_width, grid)
    for k in range(first, last):
        offset = grid[k] - tt
        if abs(offset) <= half_width:
            cuda.atomic.add(profile, (b, k), value * _peak_shape(offset, fwhm, eta))


@cuda.jit
def _cosine_kernel(profile, target, losses, d_profile):
    """Per structure: loss 1 − cos(y, t) and its gradient −(t/(|y||t|) − S y/|y|²)."""
    b = cuda.grid(1)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b >= profile.shape[0]:
        return
    cross = 0.0
    norm_y = 0.0
    norm_t = 0.0
    for k in range(profile.shape[1]):
        cross += profile[b, k] * target[k]
        norm_y += profile[b, k] * profile[b, k]
        norm_t += target[k] * target[k]
    norm_y = math.sqrt(norm_y)
    norm_t = math.sqrt(norm_t)
    similarity = cross / (norm_y * norm_t)
    losses[b] = 1.0 - similarity
    for k in range(profile.shape[1]):
        d_profile[b, k] = -(target[k] / (norm_y * norm_t) - similarity * profile[b, k] /
                            (norm_y * norm_y))


@cuda.jit
def _reflection_adjoint_kernel(d_profile, grid, fwhm, eta, window, wavelength, g, two_theta, lp,
                               d_lp, d_two_theta, structure, intensity, d_g, coefficient):
    b, m = cuda.grid(2)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b >= g.shape[0] or m >= g.shape[1]:
        return
    d_g[b, m] = 0.0
    coefficient[b, m] = 0.0
    if lp[b, m] == 0.0:
        return
    d_intensity, d_centre = _peak_window_adjoint(d_profile[b], grid, two_theta[b, m],
                                                 intensity[b, m], fwhm, eta, window)
    d_g[b, m], coefficient[b, m] = _reflection_adjoint(
        d_intensity, d_centre, g[b, m], wavelength, lp[b, m], d_lp[b, m], d_two_theta[b, m],
        structure[b, m, 0], structure[b, m, 1], structure[b, m, 2], structure[b, m, 3])


@cuda.jit
def _atom_adjoint_kernel(hkl, frac_coords, occupancies, scatterer_type, type_f, coefficient,
                         structure, d_frac):
    b, j = cuda.grid(2)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b >= frac_coords.shape[0] or j >= frac_coords.shape[1]:
        return
    _atom_gradient(hkl, frac_coords[b, j], occupancies[b, j], scatterer_type[j], type_f[b],
                   coefficient[b], structure[b, :, 0], structure[b, :, 1], d_frac[b, j])


@cuda.jit
def _lattice_adjoint_kernel(lattices, metric, hkl, g, d_g, d_lattice):
    b = cuda.grid(1)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if b < lattices.shape[0]:
        _lattice_gradient(lattices[b], metric[b], hkl, g[b], d_g[b], d_lattice[b])


@cuda.jit
def _descent_kernel(values, gradients, rate):
    """values −= rate · gradients, elementwise on flattened arrays."""
    i = cuda.grid(1)  # type: ignore[call-arg, var-annotated]  # numba intrinsic stub
    if i < values.shape[0]:
        values[i] -= rate * gradients[i]


def _blocks(n, threads):
    return (n + threads - 1) // threads


class DeviceBatch:
    """Shared inputs resident on the GPU, and the forward / backward / descent drivers."""

    def __init__(self, arrays: dict[str, np.ndarray], target: np.ndarray,
                 scalars: tuple[float, float, float, float]) -> None:
        self.arrays = {
            name: cuda.to_device(np.ascontiguousarray(value))
            for name, value in arrays.items()
        }
        self.target = cuda.to_device(np.ascontiguousarray(target))
        self.wavelength, self.fwhm, self.eta, self.window = scalars
        self.dtype = target.dtype

    def _forward(self, lattices, frac_coords, occupancies):
        a = self.arrays
        n_batch, n_reflections, n_types = lattices.shape[0], a["hkl"].shape[0], a["type_z"].shape[0]
        work = {
            name: cuda.device_array((n_batch, n_reflections), dtype=self.dtype)
            for name in ("g", "two_theta", "lp", "d_lp", "d_two_theta", "intensity")
        }
        work["metric"] = cuda.device_array((n_batch, 6), dtype=self.dtype)
        work["type_f"] = cuda.device_array((n_batch, n_reflections, n_types), dtype=self.dtype)
        work["type_f_slope"] = cuda.device_array((n_batch, n_reflections, n_types),
                                                 dtype=self.dtype)
        work["structure"] = cuda.device_array((n_batch, n_reflections, 4), dtype=self.dtype)
        profile = cuda.to_device(np.zeros((n_batch, a["grid"].shape[0]), dtype=self.dtype))
        _metric_kernel[_blocks(n_batch, THREADS_1D), THREADS_1D](lattices, work["metric"])
        blocks = (_blocks(n_batch, THREADS_2D[0]), _blocks(n_reflections, THREADS_2D[1]))
        _forward_kernel[blocks, THREADS_2D](
            work["metric"], frac_coords, occupancies, a["scatterer_type"], a["type_z"],
            a["type_coeffs"], a["type_b"], a["hkl"], self.wavelength, a["grid"], self.fwhm,
            self.eta, self.window, work["g"], work["two_theta"], work["lp"], work["d_lp"],
            work["d_two_theta"], work["type_f"], work["type_f_slope"], work["structure"],
            work["intensity"], profile)
        return profile, work

    def _backward(self, d_profile, work, lattices, frac_coords, occupancies):
        a = self.arrays
        n_batch, n_reflections = work["g"].shape
        n_atoms = frac_coords.shape[1]
        d_g = cuda.device_array((n_batch, n_reflections), dtype=self.dtype)
        coefficient = cuda.device_array((n_batch, n_reflections), dtype=self.dtype)
        d_frac = cuda.device_array((n_batch, n_atoms, 3), dtype=self.dtype)
        d_lattice = cuda.device_array((n_batch, 3, 3), dtype=self.dtype)
        blocks = (_blocks(n_batch, THREADS_2D[0]), _blocks(n_reflections, THREADS_2D[1]))
        _reflection_adjoint_kernel[blocks, THREADS_2D](
            d_profile, a["grid"], self.fwhm, self.eta, self.window, self.wavelength, work["g"],
            work["two_theta"], work["lp"], work["d_lp"], work["d_two_theta"], work["structure"],
            work["intensity"], d_g, coefficient)
        atom_blocks = (_blocks(n_batch, THREADS_2D[0]), _blocks(n_atoms, THREADS_2D[1]))
        _atom_adjoint_kernel[atom_blocks, THREADS_2D](
            a["hkl"], frac_coords, occupancies, a["scatterer_type"], work["type_f"], coefficient,
            work["structure"], d_frac)
        _lattice_adjoint_kernel[_blocks(n_batch, THREADS_1D), THREADS_1D](
            lattices, work["metric"], a["hkl"], work["g"], d_g, d_lattice)
        return d_lattice, d_frac

    def _loss(self, profile, host_metric):
        """Loss (device) and dL/dy (device): cosine on the device, other metrics through the
        host."""
        if host_metric is None:
            losses = cuda.device_array(profile.shape[0], dtype=self.dtype)
            d_profile = cuda.device_array(profile.shape, dtype=self.dtype)
            _cosine_kernel[_blocks(profile.shape[0], THREADS_1D), THREADS_1D](profile, self.target,
                                                                              losses, d_profile)
            return losses, d_profile
        losses, d_profile = host_metric(profile.copy_to_host())
        return cuda.to_device(losses.astype(self.dtype)), cuda.to_device(
            d_profile.astype(self.dtype))

    def patterns(self, lattices: np.ndarray, frac_coords: np.ndarray,
                 occupancies: np.ndarray) -> np.ndarray:
        profile, _ = self._forward(*(cuda.to_device(x)
                                     for x in (lattices, frac_coords, occupancies)))
        return profile.copy_to_host()

    def loss_and_grad(
        self, lattices: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
        host_metric: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inputs = [cuda.to_device(x) for x in (lattices, frac_coords, occupancies)]
        profile, work = self._forward(*inputs)
        losses, d_profile = self._loss(profile, host_metric)
        d_lattice, d_frac = self._backward(d_profile, work, *inputs)
        return losses.copy_to_host(), d_lattice.copy_to_host(), d_frac.copy_to_host()

    def descend(
        self, lattices: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray, steps: int,
        lattice_rate: float, frac_rate: float,
        host_metric: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient descent with every array on the device; ``host_metric`` is used only when
        the metric has no device kernel (then dL/dy crosses to the host each step)."""
        lattices_d, frac_d, occupancies_d = (cuda.to_device(x)
                                             for x in (lattices, frac_coords, occupancies))
        history = []
        for step in range(steps + 1):
            profile, work = self._forward(lattices_d, frac_d, occupancies_d)
            losses, d_profile = self._loss(profile, host_metric)
            history.append(losses)
            if step == steps:
                break
            d_lattice, d_frac = self._backward(d_profile, work, lattices_d, frac_d, occupancies_d)
            steps_taken = ((lattices_d, d_lattice, lattice_rate), (frac_d, d_frac, frac_rate))
            for values, gradients, rate in steps_taken:
                flat_values = values.reshape(values.size)
                flat_gradients = gradients.reshape(gradients.size)
                blocks = _blocks(values.size, THREADS_1D)
                _descent_kernel[blocks, THREADS_1D](flat_values, flat_gradients, rate)
        return (lattices_d.copy_to_host(), frac_d.copy_to_host(),
                np.array([h.copy_to_host() for h in history]))
