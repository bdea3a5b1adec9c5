"""Peak shapes for broadened powder patterns (all unit-area, in degrees 2θ).

* Gaussian   G(x; w) = exp(−4 ln2 x²/w²) · 2√(ln2/π)/w
* Lorentzian L(x; w) = (w/2) / (π (x² + (w/2)²))
* pseudo-Voigt η L + (1 − η) G with the same FWHM w (η = 0: Gaussian, η = 1: Lorentzian)

The width is one FWHM for all peaks, or per peak from Caglioti's rule
w² = U tan²θ + V tanθ + W (Caglioti, Paoletti & Ricci 1958).
Each peak is evaluated only within ``window`` FWHMs of its centre; the defaults keep the
neglected Gaussian tail below 1e-29 of the peak height and the Lorentzian tail below 1e-4.

The four settings travel together as one :class:`Profile`; every function that renders a
pattern takes it as its ``fwhm`` argument, where a plain number (or Caglioti triple) stands for
a Gaussian of that width (:func:`as_profile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.validation import choice, real

#: Mixing parameter η of each named shape ("pseudo-voigt" uses the given or default η).
SHAPES = {"gaussian": 0.0, "lorentzian": 1.0, "pseudo-voigt": 0.5}
#: Default half-width of the evaluation window, in FWHMs, by whether a Lorentzian part is present.
GAUSSIAN_WINDOW = 5.0
LORENTZIAN_WINDOW = 50.0


def pseudo_voigt(offset: ArrayLike, fwhm: float | np.ndarray,
                 eta: float | np.ndarray) -> np.ndarray:
    """Unit-area pseudo-Voigt at ``offset`` (deg) from the centre; plain numpy, any shapes that
    broadcast."""
    offset = np.asarray(offset, dtype=float)
    half = fwhm / 2
    lorentzian = half / (np.pi * (offset**2 + half**2))
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    gaussian = np.exp(-0.5 * (offset / sigma)**2) / (sigma * np.sqrt(2 * np.pi))
    return eta * lorentzian + (1 - eta) * gaussian


def resolve_shape(shape: str, eta: float | None) -> float:
    """Mixing parameter η for a shape name; ``eta`` overrides it for "pseudo-voigt" only."""
    choice(shape, "peak shape", SHAPES)
    if eta is None:
        return SHAPES[shape]
    if shape != "pseudo-voigt":
        raise ValueError(f"eta only applies to shape='pseudo-voigt', not {shape!r}")
    eta = real(eta, "eta")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1] (0 Gaussian, 1 Lorentzian), got {eta:g}")
    return eta


def resolve_fwhm(fwhm: float | Sequence[float] | np.ndarray) -> float | tuple[float, float, float]:
    """``fwhm`` checked: a positive number of degrees, or Caglioti (U, V, W) in deg² as three floats
    (whether these give a positive width is checked on the 2θ values, by :func:`peak_widths`)."""
    if isinstance(fwhm, np.ndarray) and fwhm.ndim == 0:
        fwhm = fwhm[()]
    if isinstance(fwhm, (list, tuple, np.ndarray)):
        if len(fwhm) != 3:
            raise ValueError(
                "fwhm must be a number (deg) or Caglioti parameters (U, V, W) in deg², "
                f"got {fwhm!r}")
        return cast(
            "tuple[float, float, float]",  # three values, checked above
            tuple(real(value, f"Caglioti {name}", unit="deg²") for name, value in zip("UVW", fwhm)))
    width = real(fwhm, "fwhm", unit="degrees")
    if width <= 0:
        raise ValueError(f"fwhm must be a positive number of degrees, got {width:g}")
    return width


def resolve_window(window: float | None, eta: float) -> float:
    """Half-width of the evaluation window in FWHMs: the default for ``eta`` when None, else a
    positive number."""
    if window is None:
        return default_window(eta)
    window = real(window, "window", unit="FWHMs")
    if window <= 0:
        raise ValueError("window must be a positive number of FWHMs "
                         "(the half-width of each peak's evaluation), "
                         f"got {window:g}")
    return window


@dataclass(frozen=True)
class Profile:
    """The peak profile: width, shape, mixing and evaluation window, checked when made.

    ``fwhm`` is the FWHM in degrees, or Caglioti (U, V, W) in deg²; ``shape`` one of
    :data:`SHAPES`; ``eta`` the pseudo-Voigt mixing (default 0.5, only for "pseudo-voigt");
    ``window`` the half-width in FWHMs within which each peak is evaluated (default
    :func:`default_window`). After checking, ``fwhm`` is a float or a tuple of three floats,
    ``window`` a float, and :attr:`mixing` the η the kernels use (0 for a Gaussian).
    """

    fwhm: float | tuple[float, float, float] = 0.1
    shape: str = "gaussian"
    eta: float | None = None
    window: float | None = None
    mixing: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mixing = resolve_shape(self.shape, self.eta)
        object.__setattr__(self, "fwhm", resolve_fwhm(self.fwhm))
        object.__setattr__(self, "mixing", mixing)
        object.__setattr__(self, "window", resolve_window(self.window, mixing))

    @property
    def caglioti(self) -> bool:
        """True when the width follows Caglioti's rule (then it has no gradient)."""
        return isinstance(self.fwhm, tuple)


def as_profile(fwhm: float | tuple[float, float, float] | Profile) -> Profile:
    """``fwhm`` as a :class:`Profile`: a Profile as it is, a width (deg) or Caglioti (U, V, W)
    as a Gaussian of that width."""
    return fwhm if isinstance(fwhm, Profile) else Profile(fwhm)


def default_window(eta: float) -> float:
    """Half-width of the evaluation window in FWHMs (wider when a Lorentzian tail is present)."""
    return GAUSSIAN_WINDOW if eta == 0.0 else LORENTZIAN_WINDOW


def peak_widths(fwhm: float | Sequence[float] | np.ndarray, two_theta: ArrayLike) -> np.ndarray:
    """FWHM (deg) of each peak: a number for all peaks, or Caglioti (U, V, W) in deg²."""
    two_theta = np.asarray(two_theta, dtype=float)
    fwhm = resolve_fwhm(fwhm)
    if not isinstance(fwhm, tuple):
        return np.full(two_theta.shape, fwhm)
    u, v, w = fwhm
    tan_theta = np.tan(np.radians(two_theta / 2))
    squared = u * tan_theta**2 + v * tan_theta + w
    if np.any(squared <= 0) or not np.all(np.isfinite(squared)):
        raise ValueError(f"Caglioti parameters U, V, W = {u}, {v}, {w} give a non-positive FWHM² "
                         "in this 2θ range")
    return np.sqrt(squared)


def uniform_step(grid: ArrayLike) -> float:
    """The spacing (deg) of a uniform ascending grid (to 1e-9 relative), else 0."""
    steps = np.diff(np.asarray(grid, dtype=float))
    if len(steps) == 0:
        return 0.0
    step = float(steps.mean())
    return step if np.ptp(steps) <= 1e-9 * step else 0.0
