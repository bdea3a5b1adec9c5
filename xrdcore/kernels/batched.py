"""Batched loss and gradient for B structures of one composition: numba CPU kernels,
parallel over structures with ``prange``.

They are built from the element functions of :mod:`xrdcore.kernels.elements`, which
:mod:`xrdcore.kernels.cuda` compiles for the GPU, so both backends compute the very same
formulas. Conventions (see :mod:`xrdcore.gradients` for the chain):

* all structures share one half-space reflection list ``hkl`` (M, 3) (a
  :class:`xrdcore.gradients.ReflectionSet` covering every lattice of the batch);
* the 2θ grid (K,) is any ascending grid, shared by the batch;
* atoms are padded to a common N with occupancy 0 where structures differ in size.

Unlike the single-structure kernels (phase tables), these evaluate sin/cos per
reflection and atom: simpler, and what a GPU does best.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .elements import CPU

_reciprocal_metric = CPU["reciprocal_metric"]
_g_length = CPU["g_length"]
_reflection_factors = CPU["reflection_factors"]
_form_factor_and_slope = CPU["form_factor_and_slope"]
_structure_factor = CPU["structure_factor"]
_window_bounds = CPU["window_bounds"]
_peak_shape = CPU["peak_shape"]
_peak_window_adjoint = CPU["peak_window_adjoint"]
_reflection_adjoint = CPU["reflection_adjoint"]
_atom_gradient = CPU["atom_gradient"]
_lattice_gradient = CPU["lattice_gradient"]


@njit(parallel=True, cache=True)
def forward_batch(lattices, frac_coords, occupancies, scatterer_type, type_z, type_coeffs, type_b, hkl, wavelength, grid, fwhm, eta, window):
    """Patterns (B, K) of B structures, and what the backward pass needs (see ``backward_batch``).

    ``lattices`` (B, 3, 3), ``frac_coords`` (B, N, 3), ``occupancies`` (B, N) (0 for padding),
    ``scatterer_type`` (N,), per-type tables as in :mod:`xrdcore.kernels.cpu`, shared ``hkl``
    (M, 3) floats, ascending ``grid`` (K,) in degrees. Reflections with λ|g|/2 ≥ 1 (possible
    only beyond 180°) are skipped. Parallel over structures.
    """
    n_batch, n_reflections, n_types = lattices.shape[0], hkl.shape[0], type_z.shape[0]
    n_grid = grid.shape[0]
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
    for b in prange(n_batch):
        _reciprocal_metric(lattices[b], metric[b])
        for m in range(n_reflections):
            g_m = _g_length(metric[b], hkl[m, 0], hkl[m, 1], hkl[m, 2])
            g[b, m] = g_m
            if 0.5 * wavelength * g_m >= 1.0:
                continue
            two_theta[b, m], lp[b, m], d_lp[b, m], d_two_theta[b, m] = _reflection_factors(g_m, wavelength)
            for t in range(n_types):
                type_f[b, m, t], type_f_slope[b, m, t] = _form_factor_and_slope(type_z[t], type_coeffs[t], type_b[t], 0.5 * g_m)
            real, imag, slope_real, slope_imag = _structure_factor(
                hkl[m], frac_coords[b], occupancies[b], scatterer_type, type_f[b, m], type_f_slope[b, m]
            )
            structure[b, m, 0], structure[b, m, 1], structure[b, m, 2], structure[b, m, 3] = real, imag, slope_real, slope_imag
            intensity[b, m] = 2.0 * (real * real + imag * imag) * lp[b, m]
            half_width = window * fwhm
            first, last = _window_bounds(two_theta[b, m], half_width, grid)
            for k in range(first, last):
                offset = grid[k] - two_theta[b, m]
                if abs(offset) <= half_width:
                    profile[b, k] += intensity[b, m] * _peak_shape(offset, fwhm, eta)
    return profile, (metric, g, two_theta, lp, d_lp, d_two_theta, type_f, type_f_slope, structure, intensity)


@njit(parallel=True, cache=True)
def backward_batch(d_profile, saved, lattices, frac_coords, occupancies, scatterer_type, hkl, wavelength, grid, fwhm, eta, window):
    """dL/dA (B, 3, 3) and dL/dx (B, N, 3) from dL/dy (B, K) and the saved forward arrays."""
    metric, g, two_theta, lp, d_lp, d_two_theta, type_f, type_f_slope, structure, intensity = saved
    n_batch, n_reflections = g.shape
    n_atoms = frac_coords.shape[1]
    d_lattice = np.zeros((n_batch, 3, 3))
    d_frac = np.zeros((n_batch, n_atoms, 3))
    for b in prange(n_batch):
        coefficient = np.zeros(n_reflections)
        d_g = np.zeros(n_reflections)
        for m in range(n_reflections):
            if lp[b, m] == 0.0:  # skipped in the forward pass
                continue
            d_intensity, d_centre = _peak_window_adjoint(
                d_profile[b], grid, two_theta[b, m], intensity[b, m], fwhm, eta, window
            )
            d_g[m], coefficient[m] = _reflection_adjoint(
                d_intensity, d_centre, g[b, m], wavelength, lp[b, m], d_lp[b, m], d_two_theta[b, m],
                structure[b, m, 0], structure[b, m, 1], structure[b, m, 2], structure[b, m, 3],
            )
        for j in range(n_atoms):
            _atom_gradient(
                hkl, frac_coords[b, j], occupancies[b, j], scatterer_type[j], type_f[b], coefficient,
                structure[b, :, 0], structure[b, :, 1], d_frac[b, j],
            )
        _lattice_gradient(lattices[b], metric[b], hkl, g[b], d_g, d_lattice[b])
    return d_lattice, d_frac
