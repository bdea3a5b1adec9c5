"""Peak shapes for broadened powder patterns (all unit-area, in degrees 2θ).

* Gaussian   G(x; w) = exp(−4 ln2 x²/w²) · 2√(ln2/π)/w
* Lorentzian L(x; w) = (w/2) / (π (x² + (w/2)²))
* pseudo-Voigt η L + (1 − η) G with the same FWHM w (η = 0: Gaussian, η = 1: Lorentzian)

The width is one FWHM for all peaks, or per peak from Caglioti's rule
w² = U tan²θ + V tanθ + W (Caglioti, Paoletti & Ricci 1958).
Each peak is evaluated only within ``window`` FWHMs of its centre; the defaults keep the
neglected Gaussian tail below 1e-29 of the peak height and the Lorentzian tail below 1e-4.
"""

from __future__ import annotations

import numpy as np

#: Mixing parameter η of each named shape ("pseudo-voigt" uses the given or default η).
SHAPES = {"gaussian": 0.0, "lorentzian": 1.0, "pseudo-voigt": 0.5}
#: Default half-width of the evaluation window, in FWHMs, by whether a Lorentzian part is present.
GAUSSIAN_WINDOW = 5.0
LORENTZIAN_WINDOW = 50.0


def pseudo_voigt(offset, fwhm, eta):
    """Unit-area pseudo-Voigt at ``offset`` (deg) from the centre; plain numpy, any shapes that broadcast."""
    offset = np.asarray(offset, dtype=float)
    half = fwhm / 2
    lorentzian = half / (np.pi * (offset**2 + half**2))
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gaussian = np.exp(-0.5 * (offset / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return eta * lorentzian + (1 - eta) * gaussian


def resolve_shape(shape: str, eta: float | None) -> float:
    """Mixing parameter η for a shape name; ``eta`` overrides it for "pseudo-voigt" only."""
    if shape not in SHAPES:
        raise ValueError(f"unknown peak shape {shape!r}; choose one of {sorted(SHAPES)}")
    if eta is None:
        return SHAPES[shape]
    if shape != "pseudo-voigt":
        raise ValueError(f"eta only applies to shape='pseudo-voigt', not {shape!r}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return float(eta)


def default_window(eta: float) -> float:
    """Half-width of the evaluation window in FWHMs (wider when a Lorentzian tail is present)."""
    return GAUSSIAN_WINDOW if eta == 0.0 else LORENTZIAN_WINDOW


def peak_widths(fwhm, two_theta) -> np.ndarray:
    """FWHM (deg) of each peak: a number for all peaks, or Caglioti (U, V, W) in deg²."""
    two_theta = np.asarray(two_theta, dtype=float)
    if np.ndim(fwhm) == 0:
        width = float(fwhm)
        if not np.isfinite(width) or width <= 0:
            raise ValueError(f"fwhm must be a positive number of degrees, got {fwhm}")
        return np.full(two_theta.shape, width)
    if np.shape(fwhm) != (3,):
        raise ValueError("fwhm must be a number (deg) or Caglioti parameters (U, V, W) in deg²")
    u, v, w = (float(p) for p in fwhm)
    tan_theta = np.tan(np.radians(two_theta / 2))
    squared = u * tan_theta**2 + v * tan_theta + w
    if np.any(squared <= 0) or not np.all(np.isfinite(squared)):
        raise ValueError(f"Caglioti parameters U, V, W = {u}, {v}, {w} give a non-positive FWHM² in this 2θ range")
    return np.sqrt(squared)


def uniform_step(grid) -> float:
    """The spacing (deg) of a uniform ascending grid (to 1e-9 relative), else 0."""
    steps = np.diff(np.asarray(grid, dtype=float))
    if len(steps) == 0:
        return 0.0
    step = float(steps.mean())
    return step if np.ptp(steps) <= 1e-9 * step else 0.0
