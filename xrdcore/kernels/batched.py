"""Batched loss and gradient for B structures of one composition: shared element functions
and the numba CPU kernels (parallel over structures with ``prange``).

The element functions below are plain Python on scalars and small arrays, with no calls
to each other, so that the same source compiles for the CPU (``njit``) here and for the
GPU (``cuda.jit(device=True)``) in :mod:`xrdcore.kernels.cuda`: both backends compute
the very same formulas. Conventions (see :mod:`xrdcore.gradients` for the chain):

* all structures share one half-space reflection list ``hkl`` (M, 3) (a
  :class:`xrdcore.gradients.ReflectionSet` covering every lattice of the batch);
* the 2θ grid is uniform: ``grid_start`` + k·``grid_step``, k < K;
* atoms are padded to a common N with occupancy 0 where structures differ in size.

Unlike the single-structure kernels (phase tables), these evaluate sin/cos per
reflection and atom: simpler, and what a GPU does best.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..scattering import FORM_FACTOR_PREFACTOR

DEG_PER_RAD = 180.0 / math.pi


# ----------------------------------------------------------------- element functions
def reciprocal_metric(lattice, out):
    """out (6,) = G* = (A Aᵀ)⁻¹ as (g00, g11, g22, g01, g02, g12), by cofactors (Å⁻²)."""
    m00 = lattice[0, 0] * lattice[0, 0] + lattice[0, 1] * lattice[0, 1] + lattice[0, 2] * lattice[0, 2]
    m11 = lattice[1, 0] * lattice[1, 0] + lattice[1, 1] * lattice[1, 1] + lattice[1, 2] * lattice[1, 2]
    m22 = lattice[2, 0] * lattice[2, 0] + lattice[2, 1] * lattice[2, 1] + lattice[2, 2] * lattice[2, 2]
    m01 = lattice[0, 0] * lattice[1, 0] + lattice[0, 1] * lattice[1, 1] + lattice[0, 2] * lattice[1, 2]
    m02 = lattice[0, 0] * lattice[2, 0] + lattice[0, 1] * lattice[2, 1] + lattice[0, 2] * lattice[2, 2]
    m12 = lattice[1, 0] * lattice[2, 0] + lattice[1, 1] * lattice[2, 1] + lattice[1, 2] * lattice[2, 2]
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    det = m00 * c00 + m01 * c01 + m02 * c02
    out[0] = c00 / det
    out[1] = (m00 * m22 - m02 * m02) / det
    out[2] = (m00 * m11 - m01 * m01) / det
    out[3] = c01 / det
    out[4] = c02 / det
    out[5] = (m01 * m02 - m00 * m12) / det


def g_length(metric, h, k, l):
    """|g| = sqrt(hᵀ G* h) (Å⁻¹) from the packed reciprocal metric of :func:`reciprocal_metric`."""
    g2 = h * h * metric[0] + k * k * metric[1] + l * l * metric[2] + 2.0 * (h * k * metric[3] + h * l * metric[4] + k * l * metric[5])
    return math.sqrt(g2)


def reflection_factors(g, wavelength):
    """2θ (deg), LP, dLP/du (u = sin²θ) and d2θ/d|g| (deg·Å) at |g|."""
    sin_theta = 0.5 * wavelength * g
    u = sin_theta * sin_theta
    cos_2theta = 1.0 - 2.0 * u
    numerator = 1.0 + cos_2theta * cos_2theta
    cos_theta = math.sqrt(1.0 - u)
    denominator = u * cos_theta
    lp = numerator / denominator
    d_lp_d_u = (-4.0 * cos_2theta * denominator - numerator * (cos_theta - 0.5 * u / cos_theta)) / (denominator * denominator)
    two_theta = 2.0 * math.asin(sin_theta) * DEG_PER_RAD
    d_two_theta_d_g = DEG_PER_RAD * wavelength / cos_theta
    return two_theta, lp, d_lp_d_u, d_two_theta_d_g


def form_factor_and_slope(z, coeffs, b, s):
    """f(s)·exp(−B s²) and its derivative in s for one scatterer type (``coeffs`` (4, 2))."""
    s2 = s * s
    acc = 0.0
    acc_slope = 0.0
    for i in range(coeffs.shape[0]):
        term = coeffs[i, 0] * math.exp(-coeffs[i, 1] * s2)
        acc += term
        acc_slope += term * (1.0 - coeffs[i, 1] * s2)
    f = z - FORM_FACTOR_PREFACTOR * s2 * acc
    f_slope = -2.0 * FORM_FACTOR_PREFACTOR * s * acc_slope
    debye_waller = math.exp(-b * s2)
    return f * debye_waller, (f_slope - 2.0 * b * s * f) * debye_waller


def structure_factor(hkl_row, frac_coords, occupancies, scatterer_type, type_f, type_f_slope):
    """Re F, Im F, Re dF/ds, Im dF/ds of one reflection of one structure."""
    real = 0.0
    imag = 0.0
    slope_real = 0.0
    slope_imag = 0.0
    for j in range(frac_coords.shape[0]):
        phase = 2.0 * math.pi * (hkl_row[0] * frac_coords[j, 0] + hkl_row[1] * frac_coords[j, 1] + hkl_row[2] * frac_coords[j, 2])
        c = math.cos(phase) * occupancies[j]
        s = math.sin(phase) * occupancies[j]
        t = scatterer_type[j]
        real += type_f[t] * c
        imag += type_f[t] * s
        slope_real += type_f_slope[t] * c
        slope_imag += type_f_slope[t] * s
    return real, imag, slope_real, slope_imag


def window_bounds(centre, half_width, grid_start, grid_step, n_grid):
    """First and one-past-last grid index k with |grid_k − centre| ≤ half_width (maybe empty)."""
    first = int(math.ceil((centre - half_width - grid_start) / grid_step - 1e-9))
    last = int(math.floor((centre + half_width - grid_start) / grid_step + 1e-9)) + 1
    return max(first, 0), min(last, n_grid)


def peak_shape(offset, fwhm, eta):
    """Unit-area pseudo-Voigt (deg⁻¹) at ``offset`` (deg)."""
    half = 0.5 * fwhm
    lorentzian = half / (math.pi * (offset * offset + half * half))
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gaussian = math.exp(-0.5 * (offset / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))
    return eta * lorentzian + (1.0 - eta) * gaussian


def peak_slope(offset, fwhm, eta):
    """d/d(offset) of :func:`peak_shape`."""
    half = 0.5 * fwhm
    denominator = offset * offset + half * half
    lorentzian_slope = -2.0 * offset * half / (math.pi * denominator * denominator)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gaussian = math.exp(-0.5 * (offset / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))
    return eta * lorentzian_slope - (1.0 - eta) * gaussian * offset / (sigma * sigma)


def atom_gradient(hkl, frac_row, occupancy, atom_type, type_f, coefficient, real, imag, out_row):
    """out_row (3,) = Σ_m coefficient_m·occ·f_m(type)·(Im F_m cos φ_m − Re F_m sin φ_m)·h_m for one atom."""
    out_row[0] = 0.0
    out_row[1] = 0.0
    out_row[2] = 0.0
    for m in range(hkl.shape[0]):
        phase = 2.0 * math.pi * (hkl[m, 0] * frac_row[0] + hkl[m, 1] * frac_row[1] + hkl[m, 2] * frac_row[2])
        along_h = coefficient[m] * occupancy * type_f[m, atom_type] * (imag[m] * math.cos(phase) - real[m] * math.sin(phase))
        out_row[0] += along_h * hkl[m, 0]
        out_row[1] += along_h * hkl[m, 1]
        out_row[2] += along_h * hkl[m, 2]


def lattice_gradient(lattice, metric, hkl, g, d_g, out):
    """out (3, 3) = dL/dA = −2 G* S G* A with S = Σ_m d_g/(2g) h hᵀ (``metric``: packed G*)."""
    s00 = s11 = s22 = s01 = s02 = s12 = 0.0  # S is symmetric
    for m in range(hkl.shape[0]):
        weight = d_g[m] / (2.0 * g[m])
        h, k, l = hkl[m, 0], hkl[m, 1], hkl[m, 2]
        s00 += weight * h * h
        s11 += weight * k * k
        s22 += weight * l * l
        s01 += weight * h * k
        s02 += weight * h * l
        s12 += weight * k * l
    g00, g11, g22, g01, g02, g12 = metric[0], metric[1], metric[2], metric[3], metric[4], metric[5]
    # T = G* S G*, entry by entry (G* symmetric), then out = −2 T A
    gs00 = g00 * s00 + g01 * s01 + g02 * s02
    gs01 = g00 * s01 + g01 * s11 + g02 * s12
    gs02 = g00 * s02 + g01 * s12 + g02 * s22
    gs10 = g01 * s00 + g11 * s01 + g12 * s02
    gs11 = g01 * s01 + g11 * s11 + g12 * s12
    gs12 = g01 * s02 + g11 * s12 + g12 * s22
    gs20 = g02 * s00 + g12 * s01 + g22 * s02
    gs21 = g02 * s01 + g12 * s11 + g22 * s12
    gs22 = g02 * s02 + g12 * s12 + g22 * s22
    t00 = gs00 * g00 + gs01 * g01 + gs02 * g02
    t01 = gs00 * g01 + gs01 * g11 + gs02 * g12
    t02 = gs00 * g02 + gs01 * g12 + gs02 * g22
    t10 = gs10 * g00 + gs11 * g01 + gs12 * g02
    t11 = gs10 * g01 + gs11 * g11 + gs12 * g12
    t12 = gs10 * g02 + gs11 * g12 + gs12 * g22
    t20 = gs20 * g00 + gs21 * g01 + gs22 * g02
    t21 = gs20 * g01 + gs21 * g11 + gs22 * g12
    t22 = gs20 * g02 + gs21 * g12 + gs22 * g22
    for c in range(3):
        out[0, c] = -2.0 * (t00 * lattice[0, c] + t01 * lattice[1, c] + t02 * lattice[2, c])
        out[1, c] = -2.0 * (t10 * lattice[0, c] + t11 * lattice[1, c] + t12 * lattice[2, c])
        out[2, c] = -2.0 * (t20 * lattice[0, c] + t21 * lattice[1, c] + t22 * lattice[2, c])


# ----------------------------------------------------------------- CPU kernels
ELEMENT_FUNCTIONS = (
    reciprocal_metric, g_length, reflection_factors, form_factor_and_slope, structure_factor,
    window_bounds, peak_shape, peak_slope, atom_gradient, lattice_gradient,
)
_reciprocal_metric = njit(cache=True)(reciprocal_metric)
_g_length = njit(cache=True)(g_length)
_reflection_factors = njit(cache=True)(reflection_factors)
_form_factor_and_slope = njit(cache=True)(form_factor_and_slope)
_structure_factor = njit(cache=True)(structure_factor)
_window_bounds = njit(cache=True)(window_bounds)
_peak_shape = njit(cache=True)(peak_shape)
_peak_slope = njit(cache=True)(peak_slope)
_atom_gradient = njit(cache=True)(atom_gradient)
_lattice_gradient = njit(cache=True)(lattice_gradient)


@njit(parallel=True, cache=True)
def forward_batch(lattices, frac_coords, occupancies, scatterer_type, type_z, type_coeffs, type_b, hkl, wavelength, grid, fwhm, eta, window):
    """Patterns (B, K) of B structures, and what the backward pass needs (see ``backward_batch``).

    ``lattices`` (B, 3, 3), ``frac_coords`` (B, N, 3), ``occupancies`` (B, N) (0 for padding),
    ``scatterer_type`` (N,), per-type tables as in :mod:`xrdcore.kernels.cpu`, shared ``hkl``
    (M, 3) floats, uniform ``grid`` (K,) in degrees. Reflections with λ|g|/2 ≥ 1 (possible
    only beyond 180°) are skipped. Parallel over structures.
    """
    n_batch, n_reflections, n_types = lattices.shape[0], hkl.shape[0], type_z.shape[0]
    n_grid = grid.shape[0]
    grid_step = (grid[-1] - grid[0]) / (n_grid - 1)
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
            first, last = _window_bounds(two_theta[b, m], half_width, grid[0], grid_step, n_grid)
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
    n_grid = grid.shape[0]
    grid_step = (grid[-1] - grid[0]) / (n_grid - 1)
    d_lattice = np.zeros((n_batch, 3, 3))
    d_frac = np.zeros((n_batch, n_atoms, 3))
    for b in prange(n_batch):
        coefficient = np.zeros(n_reflections)
        d_g = np.zeros(n_reflections)
        for m in range(n_reflections):
            if lp[b, m] == 0.0:  # skipped in the forward pass
                continue
            half_width = window * fwhm
            first, last = _window_bounds(two_theta[b, m], half_width, grid[0], grid_step, n_grid)
            d_intensity = 0.0
            slope_sum = 0.0
            for k in range(first, last):
                offset = grid[k] - two_theta[b, m]
                if abs(offset) <= half_width:
                    d_intensity += d_profile[b, k] * _peak_shape(offset, fwhm, eta)
                    slope_sum += d_profile[b, k] * _peak_slope(offset, fwhm, eta)
            d_centre = -intensity[b, m] * slope_sum
            real, imag, slope_real, slope_imag = structure[b, m, 0], structure[b, m, 1], structure[b, m, 2], structure[b, m, 3]
            d_intensity_d_g = 2.0 * lp[b, m] * (real * slope_real + imag * slope_imag) + (
                2.0 * (real * real + imag * imag) * d_lp[b, m] * 0.5 * wavelength * wavelength * g[b, m]
            )
            d_g[m] = d_intensity * d_intensity_d_g + d_centre * d_two_theta[b, m]
            coefficient[m] = d_intensity * 8.0 * math.pi * lp[b, m]
        for j in range(n_atoms):
            _atom_gradient(
                hkl, frac_coords[b, j], occupancies[b, j], scatterer_type[j], type_f[b], coefficient,
                structure[b, :, 0], structure[b, :, 1], d_frac[b, j],
            )
        _lattice_gradient(lattices[b], metric[b], hkl, g[b], d_g, d_lattice[b])
    return d_lattice, d_frac
