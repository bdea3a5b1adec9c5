"""Plain-numpy twins of the numba kernels in :mod:`xrdcore.kernels.cpu`.

Written the obvious, vectorised way (meshgrid of indices, complex exponentials, dense
profile without any window, adjoints as explicit matrix products) so that tests can check
the fast kernels against them. Same signatures and return values as the numba versions.
"""

from __future__ import annotations

import numpy as np

from xrdcore.physics.profiles import pseudo_voigt
from xrdcore.physics.scattering import (FORM_FACTOR_PREFACTOR, form_factor, lorentz_polarization,
                                        starts_peak)


def half_space_reflections(reciprocal: np.ndarray, index_bounds: np.ndarray, g_min: float,
                           g_max: float) -> tuple[np.ndarray, np.ndarray]:
    hmax, kmax, lmax = (int(b) for b in index_bounds)
    h, k, l = np.meshgrid(np.arange(0, hmax + 1), np.arange(-kmax, kmax + 1),
                          np.arange(-lmax, lmax + 1), indexing="ij")
    hkl = np.stack([h.ravel(), k.ravel(), l.ravel()], axis=1)
    upper_half = ((hkl[:, 0] > 0)
                  | ((hkl[:, 0] == 0) & (hkl[:, 1] > 0))
                  | ((hkl[:, 0] == 0) & (hkl[:, 1] == 0) & (hkl[:, 2] > 0)))
    hkl = hkl[upper_half]
    g = np.linalg.norm(hkl @ reciprocal, axis=1)
    keep = (g >= g_min) & (g <= g_max)
    hkl, g = hkl[keep], g[keep]
    order = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], g))
    return hkl[order].astype(float), g[order]


def form_factor_tables(g: np.ndarray, type_z: np.ndarray, type_coeffs: np.ndarray,
                       type_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = g / 2
    values, slopes = [], []
    for z, coeffs, b in zip(type_z, type_coeffs, type_b):
        a, c = coeffs[:, 0], coeffs[:, 1]
        debye_waller = np.exp(-b * s**2)
        f = form_factor(z, coeffs, s)
        f_slope = (-2 * FORM_FACTOR_PREFACTOR * s *
                   np.sum(a * np.exp(-c * s[:, None]**2) * (1 - c * s[:, None]**2), axis=1))
        values.append(f * debye_waller)
        slopes.append((f_slope - 2 * b * s * f) * debye_waller)
    return np.stack(values, axis=1), np.stack(slopes, axis=1)


def structure_factor_sums(hkl: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
                          scatterer_type: np.ndarray,
                          n_types: int) -> tuple[np.ndarray, np.ndarray]:
    """S_t(h) = Σ_{j of type t} occ_j exp(2πi h·x_j), as (real, imag) (M, T), by a dense matrix
    product."""
    phases = np.exp(2j * np.pi * hkl @ frac_coords.T) * occupancies  # (M, N)
    sums = phases @ np.eye(n_types)[scatterer_type]
    return sums.real, sums.imag


def reflection_intensities(g: np.ndarray, wavelength: float, type_form_factor: np.ndarray,
                           sums_real: np.ndarray,
                           sums_imag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    structure_factor = np.sum(type_form_factor * (sums_real + 1j * sums_imag), axis=1)
    two_theta = np.degrees(2 * np.arcsin(wavelength * g / 2))
    return two_theta, 2 * np.abs(structure_factor)**2 * lorentz_polarization(two_theta)


def reflection_intensities_adjoint(hkl: np.ndarray, g: np.ndarray, wavelength: float,
                                   frac_coords: np.ndarray, occupancies: np.ndarray,
                                   scatterer_type: np.ndarray, type_form_factor: np.ndarray,
                                   type_form_factor_slope: np.ndarray, sums_real: np.ndarray,
                                   sums_imag: np.ndarray, d_intensity: np.ndarray,
                                   d_two_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The adjoint from the atoms up (the forward pass's type sums are not used)."""
    phases = np.exp(2j * np.pi * hkl @ frac_coords.T)  # (M, N)
    weights = type_form_factor[:, scatterer_type] * occupancies
    F = np.sum(weights * phases, axis=1)
    dF_ds = np.sum(type_form_factor_slope[:, scatterer_type] * occupancies * phases, axis=1)
    two_theta = np.degrees(2 * np.arcsin(wavelength * g / 2))
    lp = lorentz_polarization(two_theta)
    # d|F|²/dx_j = 2 Re(F* i 2π h w_j e^{iφ_j})
    d_squared_d_phase = 2 * np.real(np.conj(F)[:, None] * 1j * weights * phases)  # (M, N)
    d_frac = 2 * np.pi * np.einsum("m,mn,ma->na", d_intensity * 2 * lp, d_squared_d_phase, hkl)
    # LP and its derivative in closed form, as functions of u = sin²θ = (λ|g|/2)²
    u = (wavelength * g / 2)**2
    numerator, denominator = 1 + (1 - 2 * u)**2, u * np.sqrt(1 - u)
    d_lp_d_u = (-4 * (1 - 2 * u) * denominator - numerator *
                (np.sqrt(1 - u) - u / (2 * np.sqrt(1 - u)))) / denominator**2
    d_intensity_d_g = (2 * lp * np.real(np.conj(F) * dF_ds) +
                       2 * np.abs(F)**2 * d_lp_d_u * wavelength**2 * g / 2)
    d_two_theta_d_g = np.degrees(wavelength / np.sqrt(1 - u))
    return d_frac, d_intensity * d_intensity_d_g + d_two_theta * d_two_theta_d_g


def _peak_shape_slope(offset, fwhm, eta):
    half = fwhm / 2
    lorentzian_slope = -2 * offset * half / (np.pi * (offset**2 + half**2)**2)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gaussian = np.exp(-0.5 * (offset / sigma)**2) / (sigma * np.sqrt(2 * np.pi))
    return eta * lorentzian_slope - (1 - eta) * gaussian * offset / sigma**2


def broadened_profile(two_theta_grid: np.ndarray, centres: np.ndarray, intensities: np.ndarray,
                      fwhm: np.ndarray, eta: float, window: float, step: float = 0.0) -> np.ndarray:
    """Dense sum over every peak at every grid point; ``window`` and ``step`` are ignored (no
    truncation)."""
    offsets = two_theta_grid[:, None] - centres[None, :]
    return pseudo_voigt(offsets, fwhm[None, :], eta) @ intensities


def broadened_profile_adjoint(two_theta_grid: np.ndarray, centres: np.ndarray,
                              intensities: np.ndarray, fwhm: np.ndarray, eta: float, window: float,
                              d_profile: np.ndarray,
                              step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Dense adjoint (no truncation): Pᵀ dL/dy and −I ⊙ (P′ᵀ dL/dy)."""
    offsets = two_theta_grid[:, None] - centres[None, :]
    d_intensity = pseudo_voigt(offsets, fwhm[None, :], eta).T @ d_profile
    d_centre = -intensities * (_peak_shape_slope(offsets, fwhm[None, :], eta).T @ d_profile)
    return d_intensity, d_centre


def _peak_width_slope(offset, fwhm, eta):
    """∂P/∂w of the pseudo-Voigt: η (o² − h²)/(2π (o² + h²)²) + (1 − η) G (o²/σ² − 1)/w."""
    half = fwhm / 2
    lorentzian_slope = (offset**2 - half**2) / (2 * np.pi * (offset**2 + half**2)**2)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gaussian = np.exp(-0.5 * (offset / sigma)**2) / (sigma * np.sqrt(2 * np.pi))
    return eta * lorentzian_slope + (1 - eta) * gaussian * ((offset / sigma)**2 - 1) / fwhm


def broadened_profile_parameter_adjoint(
        two_theta_grid: np.ndarray, centres: np.ndarray, intensities: np.ndarray, fwhm: np.ndarray,
        eta: float, window: float,
        d_profile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Dense adjoint (no truncation): :func:`broadened_profile_adjoint`, I ⊙ ((∂P/∂w)ᵀ dL/dy)
    and Iᵀ (L − G)ᵀ dL/dy, with L − G = P(η = 1) − P(η = 0)."""
    offsets = two_theta_grid[:, None] - centres[None, :]
    d_intensity, d_centre = broadened_profile_adjoint(two_theta_grid, centres, intensities, fwhm,
                                                      eta, window, d_profile)
    d_fwhm = intensities * (_peak_width_slope(offsets, fwhm[None, :], eta).T @ d_profile)
    mixing = pseudo_voigt(offsets, fwhm[None, :], 1.0) - pseudo_voigt(offsets, fwhm[None, :], 0.0)
    return d_intensity, d_centre, d_fwhm, float(intensities @ (mixing.T @ d_profile))


def reflection_list(lattice: np.ndarray, g_min: float,
                    g_max: float) -> tuple[np.ndarray, np.ndarray]:
    index_bounds = np.floor(g_max * np.linalg.norm(lattice, axis=1)).astype(np.int64)
    return half_space_reflections(np.linalg.inv(lattice).T, index_bounds, g_min, g_max)


def structure_intensities(
    hkl: np.ndarray, g: np.ndarray, wavelength: float, frac_coords: np.ndarray,
    occupancies: np.ndarray, scatterer_type: np.ndarray, type_z: np.ndarray,
    type_coeffs: np.ndarray, type_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    form_factor, form_factor_slope = form_factor_tables(g, type_z, type_coeffs, type_b)
    sums = structure_factor_sums(hkl, frac_coords, occupancies, scatterer_type, len(type_z))
    return (*reflection_intensities(g, wavelength, form_factor, *sums), form_factor,
            form_factor_slope, *sums)


def merge_peaks(two_theta: np.ndarray, intensity: np.ndarray, two_theta_tol: float,
                scaled_tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    start = np.flatnonzero(starts_peak(two_theta, two_theta_tol))
    merged = np.add.reduceat(intensity, start) if len(start) else np.zeros(0)
    if len(merged) == 0 or merged.max() <= 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(1, np.int64), np.zeros(0, np.int64)
    scaled = merged * (100.0 / merged.max())
    keep = scaled > scaled_tol
    members_per_peak = np.diff(np.append(start, len(two_theta)))
    member_start = np.concatenate([[0], np.cumsum(members_per_peak[keep])])
    members = np.flatnonzero(np.repeat(keep, members_per_peak))
    return start[keep], scaled[keep], member_start, members


def reflection_lengths(lattice: np.ndarray, hkl: np.ndarray,
                       g_limit: float) -> tuple[np.ndarray, np.ndarray]:
    g = np.linalg.norm(hkl @ np.linalg.inv(lattice).T, axis=1)
    reachable = g <= g_limit
    order = np.argsort(g[reachable], kind="stable")
    return hkl[reachable][order], g[reachable][order]


def required_margins(reference: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    transforms = np.linalg.solve(lattices, np.broadcast_to(reference, lattices.shape))
    singular_values = np.linalg.svd(transforms, compute_uv=False)
    return np.maximum(1 / singular_values.min(axis=1) - 1, 1 - 1 / singular_values.max(axis=1))


def lattice_gradient(lattice: np.ndarray, hkl: np.ndarray, g: np.ndarray,
                     d_g: np.ndarray) -> np.ndarray:
    """dL/dA = −2 G* S G* A with S = Σ (dL/d|g|)/(2|g|) h hᵀ, as matrix products."""
    s_matrix = (hkl * (d_g / (2 * g))[:, None]).T @ hkl
    metric_inverse = np.linalg.inv(lattice @ lattice.T)  # G*
    return -2 * metric_inverse @ s_matrix @ metric_inverse @ lattice


def cosine_loss_rows(patterns: np.ndarray,
                     target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    norm_y, norm_t = np.linalg.norm(patterns, axis=1), np.linalg.norm(target)
    undefined = ~(np.all(np.isfinite(patterns), axis=1) & (norm_y > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        value = (patterns @ target) / (norm_y * norm_t)
        gradients = value[:, None] * patterns / norm_y[:, None]**2 - target / (norm_y[:, None] *
                                                                               norm_t)
    gradients[undefined] = 0.0
    return np.where(undefined, np.nan, 1.0 - value), gradients, undefined
