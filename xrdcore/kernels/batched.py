"""Batched loss and gradient for B structures of one composition: numba CPU kernels,
parallel over structures with ``prange``.

They are built from the element functions of :mod:`xrdcore.kernels.elements`, which
:mod:`xrdcore.kernels.cuda` compiles for the GPU, so both backends compute the very same
formulas. Conventions (see :mod:`xrdcore.gradients` for the chain):

* all structures share one half-space reflection list ``hkl`` (M, 3) (a
  :class:`xrdcore.gradients.ReflectionSet` covering every lattice of the batch);
* the 2θ grid (K,) is any ascending grid, shared by the batch; ``step`` > 0 declares it
  uniform with that spacing (deg), which lets Gaussian peaks (η = 0) use the recurrence of
  :func:`~xrdcore.kernels.elements.gaussian_window` (one exp per peak side instead of one
  per grid point); ``step`` = 0 evaluates every point directly;
* atoms are padded to a common N with occupancy 0 where structures differ in size.

Like the single-structure kernels, the structure factors use phase tables: cos and sin of
2π n x_j for |n| ≤ max |h|, per axis and atom (3(2n+1)N sin/cos per structure), and per
structure a table of occ_j exp(2πi(h x_j + k y_j)) for every (h, k) pair of the shared list
(:func:`~xrdcore.kernels.cpu.pair_tables`), so the O(M·N) loops make one complex product
per term instead of calling sin and cos.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numba import njit, prange

from xrdcore.kernels.cpu import pair_tables, reflection_pairs
from xrdcore.kernels.elements import CPU

_reciprocal_metric = CPU["reciprocal_metric"]
_g_length = CPU["g_length"]
_reflection_factors = CPU["reflection_factors"]
_form_factor_and_slope = CPU["form_factor_and_slope"]
_window_bounds = CPU["window_bounds"]
_peak_shape = CPU["peak_shape"]
_peak_window_adjoint = CPU["peak_window_adjoint"]
_gaussian_window = CPU["gaussian_window"]
_gaussian_window_adjoint = CPU["gaussian_window_adjoint"]
_reflection_adjoint = CPU["reflection_adjoint"]
_lattice_gradient = CPU["lattice_gradient"]


@njit(cache=True)
def max_miller_index(hkl: np.ndarray) -> int:
    """Largest |h|, |k| or |l| of the list (the phase tables' reach)."""
    largest = 0.0
    for m in range(hkl.shape[0]):
        for axis in range(3):
            largest = max(largest, abs(hkl[m, axis]))
    return int(largest)


@njit(cache=True, inline="always")
def _phase_tables(frac_coords, max_index, cos_table, sin_table):
    """cos_table[axis, n + max_index, j] = cos 2π n x_j (and sin) for |n| ≤ max_index."""
    for axis in range(3):
        for j in range(frac_coords.shape[0]):
            for n in range(-max_index, max_index + 1):
                phase = 2.0 * math.pi * n * frac_coords[j, axis]
                cos_table[axis, n + max_index, j] = math.cos(phase)
                sin_table[axis, n + max_index, j] = math.sin(phase)


@njit(cache=True, inline="always")
def _phase(xy_real, xy_imag, cos_table, sin_table, pair, l, j):
    """occ_j times cos and sin of 2π(h x_j + k y_j + l z_j): the (h, k) pair's table entry
    times the l table's (one complex product; table offsets already added)."""
    return (xy_real[pair, j] * cos_table[2, l, j] - xy_imag[pair, j] * sin_table[2, l, j],
            xy_real[pair, j] * sin_table[2, l, j] + xy_imag[pair, j] * cos_table[2, l, j])


@njit(parallel=True, cache=True)
def forward_batch(lattices: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
                  scatterer_type: np.ndarray, type_z: np.ndarray, type_coeffs: np.ndarray,
                  type_b: np.ndarray, hkl: np.ndarray, max_index: int, g_min: float, g_max: float,
                  wavelength: float, grid: np.ndarray, step: float, fwhm: float, eta: float,
                  window: float) -> tuple[np.ndarray, tuple]:
    """Patterns (B, K) of B structures, and what the backward pass needs (see ``backward_batch``).

    ``lattices`` (B, 3, 3), ``frac_coords`` (B, N, 3), ``occupancies`` (B, N) (0 for padding),
    ``scatterer_type`` (N,), per-type tables as in :mod:`xrdcore.kernels.cpu`, shared ``hkl``
    (M, 3) integer floats with ``max_index`` = :func:`max_miller_index`, ascending ``grid``
    (K,) in degrees, ``step`` its uniform spacing or 0. Only reflections with g_min ≤ |g| ≤
    g_max (Å⁻¹; those that can touch the grid, the single path's list) are computed, so a
    wide margin of the shared list costs one |g| per extra reflection. Parallel over structures.
    """
    n_batch, n_reflections, n_types = lattices.shape[0], hkl.shape[0], type_z.shape[0]
    n_atoms, n_grid, width = frac_coords.shape[1], grid.shape[0], 2 * max_index + 1
    metric = np.empty((n_batch, 6))
    g = np.zeros((n_batch, n_reflections))
    two_theta = np.zeros((n_batch, n_reflections))
    lp = np.zeros((n_batch, n_reflections))
    d_lp = np.zeros((n_batch, n_reflections))
    d_two_theta = np.zeros((n_batch, n_reflections))
    type_f = np.zeros((n_batch, n_reflections, n_types))
    type_f_slope = np.zeros((n_batch, n_reflections, n_types))
    structure = np.zeros((n_batch, n_reflections, 4))  # Re F, Im F, Re dF/ds, Im dF/ds
    intensity = np.zeros((n_batch, n_reflections))
    profile = np.zeros((n_batch, n_grid))
    gaussian = eta == 0.0 and step > 0.0
    pair_of, pair_h, pair_k = reflection_pairs(hkl, max_index)
    for b in prange(n_batch):
        _reciprocal_metric(lattices[b], metric[b])
        cos_table = np.empty((3, width, n_atoms))
        sin_table = np.empty((3, width, n_atoms))
        _phase_tables(frac_coords[b], max_index, cos_table, sin_table)
        xy_real = np.empty((pair_h.shape[0], n_atoms), dtype=cos_table.dtype)
        xy_imag = np.empty((pair_h.shape[0], n_atoms), dtype=cos_table.dtype)
        pair_tables(cos_table, sin_table, occupancies[b], pair_h, pair_k, xy_real, xy_imag)
        for m in range(n_reflections):
            g_m = _g_length(metric[b], hkl[m, 0], hkl[m, 1], hkl[m, 2])
            g[b, m] = g_m
            if g_m < g_min or g_m > g_max or 0.5 * wavelength * g_m >= 1.0:
                continue  # cannot reach the grid (λ|g|/2 ≥ 1: not at any angle); lp stays 0
            two_theta[b, m], lp[b, m], d_lp[b, m], d_two_theta[b, m] = _reflection_factors(
                g_m, wavelength)
            for t in range(n_types):
                type_f[b, m, t], type_f_slope[b, m, t] = _form_factor_and_slope(
                    type_z[t], type_coeffs[t], type_b[t], 0.5 * g_m)
            pair, l = pair_of[m], int(hkl[m, 2]) + max_index
            real = imag = slope_real = slope_imag = 0.0
            for j in range(n_atoms):
                c, s = _phase(xy_real, xy_imag, cos_table, sin_table, pair, l,
                              j)  # occupancy included
                t = scatterer_type[j]
                weight = type_f[b, m, t]
                slope = type_f_slope[b, m, t]
                real += weight * c
                imag += weight * s
                slope_real += slope * c
                slope_imag += slope * s
            structure[b, m, 0], structure[b, m, 1] = real, imag
            structure[b, m, 2], structure[b, m, 3] = slope_real, slope_imag
            intensity[b, m] = 2.0 * (real * real + imag * imag) * lp[b, m]
            if gaussian:
                _gaussian_window(profile[b], grid, step, two_theta[b, m], intensity[b, m], fwhm,
                                 window)
                continue
            half_width = window * fwhm
            first, last = _window_bounds(two_theta[b, m], half_width, grid)
            for k in range(first, last):
                offset = grid[k] - two_theta[b, m]
                if abs(offset) <= half_width:
                    profile[b, k] += intensity[b, m] * _peak_shape(offset, fwhm, eta)
    return profile, (metric, g, two_theta, lp, d_lp, d_two_theta, type_f, type_f_slope, structure,
                     intensity)


@njit(parallel=True, cache=True)
def backward_batch(d_profile: np.ndarray, saved: tuple, lattices: np.ndarray,
                   frac_coords: np.ndarray, occupancies: np.ndarray, scatterer_type: np.ndarray,
                   hkl: np.ndarray, max_index: int, wavelength: float, grid: np.ndarray,
                   step: float, fwhm: float, eta: float,
                   window: float) -> tuple[np.ndarray, np.ndarray]:
    """dL/dA (B, 3, 3) and dL/dx (B, N, 3) from dL/dy (B, K) and the saved forward arrays."""
    metric, g, two_theta, lp, d_lp, d_two_theta, type_f, type_f_slope, structure, intensity = saved
    n_batch, n_reflections = g.shape
    n_atoms, width = frac_coords.shape[1], 2 * max_index + 1
    d_lattice = np.zeros((n_batch, 3, 3))
    d_frac = np.zeros((n_batch, n_atoms, 3))
    gaussian = eta == 0.0 and step > 0.0
    pair_of, pair_h, pair_k = reflection_pairs(hkl, max_index)
    for b in prange(n_batch):
        cos_table = np.empty((3, width, n_atoms))
        sin_table = np.empty((3, width, n_atoms))
        _phase_tables(frac_coords[b], max_index, cos_table, sin_table)
        xy_real = np.empty((pair_h.shape[0], n_atoms), dtype=cos_table.dtype)
        xy_imag = np.empty((pair_h.shape[0], n_atoms), dtype=cos_table.dtype)
        pair_tables(cos_table, sin_table, occupancies[b], pair_h, pair_k, xy_real, xy_imag)
        d_g = np.zeros(n_reflections)
        for m in range(n_reflections):
            if lp[b, m] == 0.0:  # skipped in the forward pass
                continue
            if gaussian:
                d_intensity, d_centre = _gaussian_window_adjoint(
                    d_profile[b], grid, step, two_theta[b, m], intensity[b, m], fwhm, window)
            else:
                d_intensity, d_centre = _peak_window_adjoint(d_profile[b], grid, two_theta[b, m],
                                                             intensity[b, m], fwhm, eta, window)
            real, imag = structure[b, m, 0], structure[b, m, 1]
            d_g[m], coefficient = _reflection_adjoint(d_intensity, d_centre, g[b, m], wavelength,
                                                      lp[b, m], d_lp[b, m], d_two_theta[b, m], real,
                                                      imag, structure[b, m, 2], structure[b, m, 3])
            pair, l = pair_of[m], int(hkl[m, 2]) + max_index
            for j in range(n_atoms):
                c, s = _phase(xy_real, xy_imag, cos_table, sin_table, pair, l,
                              j)  # occupancy included
                along_h = coefficient * type_f[b, m, scatterer_type[j]] * (imag * c - real * s)
                d_frac[b, j, 0] += along_h * hkl[m, 0]
                d_frac[b, j, 1] += along_h * hkl[m, 1]
                d_frac[b, j, 2] += along_h * hkl[m, 2]
        _lattice_gradient(lattices[b], metric[b], hkl, g[b], d_g, d_lattice[b])
    return d_lattice, d_frac


class BatchBackend(Protocol):
    """What :class:`xrdcore.batch.BatchLoss` asks of a backend: :class:`HostBatch` (numba CPU)
    and :class:`xrdcore.kernels.cuda.DeviceBatch` (GPU) implement it. ``host_metric`` maps
    patterns (b, K) to losses (b,) and dL/dy (b, K); None means the device evaluates the
    cosine loss itself (GPU only)."""

    def patterns(self, lattices: np.ndarray, frac_coords: np.ndarray,
                 occupancies: np.ndarray) -> np.ndarray:
        ...

    def loss_and_grad(
        self, lattices: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
        host_metric: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ...


class HostBatch:
    """The CPU backend's batch interface, the same as :class:`xrdcore.kernels.cuda.DeviceBatch`'s:
    the shared inputs are fixed once, then :meth:`patterns` and :meth:`loss_and_grad` evaluate
    (B, 3, 3) lattices, (B, N, 3) coordinates and (B, N) occupancies. Structures are evaluated
    ``chunk`` at a time, so that each chunk's work arrays stay in cache (the same results).

    ``arrays``: scatterer_type (N,), type_z (T,), type_coeffs (T, 4, 2), type_b (T,), hkl (M, 3)
    and grid (K,); ``scalars``: wavelength (Å), FWHM (deg), mixing η and window (FWHMs);
    ``max_index``: largest |h|, |k|, |l| of the list; ``g_window``: the |g| range (Å⁻¹) that
    reaches the grid; ``step``: the grid's uniform spacing (deg), 0 if it is not uniform.
    """

    def __init__(self, arrays: dict[str, np.ndarray], scalars: tuple[float, float, float, float],
                 max_index: int, g_window: tuple[float, float], step: float,
                 chunk: int = 64) -> None:
        self.arrays, self.scalars, self.max_index = arrays, scalars, max_index
        self.g_window, self.step, self.chunk = g_window, step, chunk
        self.dtype = arrays["grid"].dtype

    def _forward(self, lattices: np.ndarray, frac_coords: np.ndarray,
                 occupancies: np.ndarray) -> tuple[np.ndarray, tuple]:
        a = self.arrays
        wavelength, *profile_scalars = self.scalars
        return forward_batch(lattices, frac_coords, occupancies, a["scatterer_type"], a["type_z"],
                             a["type_coeffs"], a["type_b"], a["hkl"], self.max_index,
                             *self.g_window, wavelength, a["grid"], self.step, *profile_scalars)

    def patterns(self, lattices: np.ndarray, frac_coords: np.ndarray,
                 occupancies: np.ndarray) -> np.ndarray:
        """Unnormalised patterns (B, K) on the grid."""
        return self._forward(lattices, frac_coords, occupancies)[0]

    def loss_and_grad(
        self, lattices: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
        host_metric: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Loss (B,), dL/dA (B, 3, 3) and dL/dx (B, N, 3); ``host_metric`` maps patterns (b, K)
        to their losses (b,) and dL/dy (b, K) (required on the CPU)."""
        if host_metric is None:
            raise ValueError("the CPU backend evaluates the metric on the host: give host_metric")
        a = self.arrays
        wavelength, *profile_scalars = self.scalars
        losses = np.empty(len(lattices))
        d_lattice = np.empty(lattices.shape, self.dtype)
        d_frac = np.empty(frac_coords.shape, self.dtype)
        for start in range(0, len(lattices), self.chunk):
            part = slice(start, start + self.chunk)
            profile, saved = self._forward(lattices[part], frac_coords[part], occupancies[part])
            losses[part], d_profile = host_metric(profile)
            d_lattice[part], d_frac[part] = backward_batch(
                d_profile.astype(self.dtype, copy=False), saved, lattices[part], frac_coords[part],
                occupancies[part], a["scatterer_type"], a["hkl"], self.max_index, wavelength,
                a["grid"], self.step, *profile_scalars)
        return losses, d_lattice, d_frac
