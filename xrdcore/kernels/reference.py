"""Plain-numpy twins of the numba kernels in :mod:`xrdcore.kernels.cpu`.

Written the obvious, vectorised way (meshgrid of indices, complex exponentials, dense
profile without any window) so that tests can check the fast kernels against them.
Same signatures and return values as the numba versions.
"""

from __future__ import annotations

import numpy as np

from ..diffraction import lorentz_polarization
from ..scattering import form_factor


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


def form_factor_table(g, type_z, type_coeffs, type_b):
    s = g / 2
    return np.stack([form_factor(z, c, s) * np.exp(-b * s**2) for z, c, b in zip(type_z, type_coeffs, type_b)], axis=1)


def reflection_intensities(hkl, g, wavelength, frac_coords, occupancies, scatterer_type, type_form_factor):
    s = g / 2
    atom_f = type_form_factor[:, scatterer_type] * occupancies  # (M, N)
    structure_factor = np.sum(atom_f * np.exp(2j * np.pi * hkl @ frac_coords.T), axis=1)
    two_theta = np.degrees(2 * np.arcsin(wavelength * s))
    return two_theta, 2 * np.abs(structure_factor) ** 2 * lorentz_polarization(two_theta)


def broadened_profile(two_theta_grid, centres, intensities, fwhm, eta, window):
    """Dense sum over every peak at every grid point; ``window`` is ignored (no truncation)."""
    from ..profiles import pseudo_voigt

    offsets = two_theta_grid[:, None] - centres[None, :]
    return pseudo_voigt(offsets, fwhm[None, :], eta) @ intensities
