"""Plain-numpy twins of the numba kernels in :mod:`xrdcore.kernels.cpu`.

Written the obvious, vectorised way (meshgrid of indices, complex exponentials, dense
profile without any window, adjoints as explicit matrix products) so that tests can check
the fast kernels against them. Same signatures and return values as the numba versions.
"""

from __future__ import annotations

import numpy as np

from ..diffraction import lorentz_polarization
from ..profiles import pseudo_voigt
from ..scattering import FORM_FACTOR_PREFACTOR, form_factor


def half_space_reflections(reciprocal, index_bounds, g_min, g_max):
    hmax, kmax, lmax = (int(b) for b in index_bounds)
    h, k, l = np.meshgrid(
        np.arange(0, hmax + 1), np.arange(-kmax, kmax + 1), np.arange(-lmax, lmax + 1), indexing="ij"
    )
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    upper_half = (hkl[:, 0] > 0) | ((hkl[:, 0] == 0) & (hkl[:, 1] > 0)) | ((hkl[:, 0] == 0) & (hkl[:, 1] == 0) & (hkl[:, 2] > 0))
    hkl = hkl[upper_half]
    g = np.linalg.norm(hkl @ reciprocal, axis=1)
    keep = (g >= g_min) & (g <= g_max)
    hkl, g = hkl[keep], g[keep]
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], g))
    return hkl[order].astype(float), g[order]


def form_factor_tables(g, type_z, type_coeffs, type_b):
    s = g / 2
    values, slopes = [], []
    for z, coeffs, b in zip(type_z, type_coeffs, type_b):
        a, c = coeffs[:, 0], coeffs[:, 1]
        debye_waller = np.exp(-b * s**2)
        f = form_factor(z, coeffs, s)
        f_slope = -2 * FORM_FACTOR_PREFACTOR * s * np.sum(a * np.exp(-c * s[:, None] ** 2) * (1 - c * s[:, None] ** 2), axis=1)
        values.append(f * debye_waller)
        slopes.append((f_slope - 2 * b * s * f) * debye_waller)
    return np.stack(values, axis=1), np.stack(slopes, axis=1)


def _structure_factors(hkl, frac_coords, occupancies, scatterer_type, type_table):
    """F(h) = Σ_j occ_j table[h, type_j] exp(2πi h·x_j), plus the (M, N) phase factors."""
    phases = np.exp(2j * np.pi * hkl @ frac_coords.T)
    weights = type_table[:, scatterer_type] * occupancies
    return np.sum(weights * phases, axis=1), weights, phases


def reflection_intensities(hkl, g, wavelength, frac_coords, occupancies, scatterer_type, type_form_factor):
    structure_factor, _, _ = _structure_factors(hkl, frac_coords, occupancies, scatterer_type, type_form_factor)
    two_theta = np.degrees(2 * np.arcsin(wavelength * g / 2))
    return two_theta, 2 * np.abs(structure_factor) ** 2 * lorentz_polarization(two_theta)


def reflection_intensities_adjoint(
    hkl, g, wavelength, frac_coords, occupancies, scatterer_type, type_form_factor, type_form_factor_slope,
    d_intensity, d_two_theta,
):
    F, weights, phases = _structure_factors(hkl, frac_coords, occupancies, scatterer_type, type_form_factor)
    dF_ds, _, _ = _structure_factors(hkl, frac_coords, occupancies, scatterer_type, type_form_factor_slope)
    two_theta = np.degrees(2 * np.arcsin(wavelength * g / 2))
    lp = lorentz_polarization(two_theta)
    # d|F|²/dx_j = 2 Re(F* i 2π h w_j e^{iφ_j})
    d_squared_d_phase = 2 * np.real(np.conj(F)[:, None] * 1j * weights * phases)  # (M, N)
    d_frac = 2 * np.pi * np.einsum("m,mn,ma->na", d_intensity * 2 * lp, d_squared_d_phase, hkl)
    # LP and its derivative in closed form, as functions of u = sin²θ = (λ|g|/2)²
    u = (wavelength * g / 2) ** 2
    numerator, denominator = 1 + (1 - 2 * u) ** 2, u * np.sqrt(1 - u)
    d_lp_d_u = (-4 * (1 - 2 * u) * denominator - numerator * (np.sqrt(1 - u) - u / (2 * np.sqrt(1 - u)))) / denominator**2
    d_intensity_d_g = 2 * lp * np.real(np.conj(F) * dF_ds) + 2 * np.abs(F) ** 2 * d_lp_d_u * wavelength**2 * g / 2
    d_two_theta_d_g = np.degrees(wavelength / np.sqrt(1 - u))
    return d_frac, d_intensity * d_intensity_d_g + d_two_theta * d_two_theta_d_g


def _peak_shape_slope(offset, fwhm, eta):
    half = fwhm / 2
    lorentzian_slope = -2 * offset * half / (np.pi * (offset**2 + half**2) ** 2)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gaussian = np.exp(-0.5 * (offset / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return eta * lorentzian_slope - (1 - eta) * gaussian * offset / sigma**2


def broadened_profile(two_theta_grid, centres, intensities, fwhm, eta, window):
    """Dense sum over every peak at every grid point; ``window`` is ignored (no truncation)."""
    offsets = two_theta_grid[:, None] - centres[None, :]
    return pseudo_voigt(offsets, fwhm[None, :], eta) @ intensities


def broadened_profile_adjoint(two_theta_grid, centres, intensities, fwhm, eta, window, d_profile):
    """Dense adjoint (no truncation): Pᵀ dL/dy and −I ⊙ (P′ᵀ dL/dy)."""
    offsets = two_theta_grid[:, None] - centres[None, :]
    d_intensity = pseudo_voigt(offsets, fwhm[None, :], eta).T @ d_profile
    d_centre = -intensities * (_peak_shape_slope(offsets, fwhm[None, :], eta).T @ d_profile)
    return d_intensity, d_centre
