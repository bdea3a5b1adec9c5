"""X-ray wavelengths and atomic form factors (the tables pymatgen's XRDCalculator uses).

Form factor of element j at s = sin θ / λ (Å⁻¹)::

    f_j(s) = Z_j − 41.78214 s² Σ_i a_i exp(−b_i s²)

with four (a_i, b_i) pairs per element from pymatgen's ``atomic_scattering_params.json``
(read from the installed pymatgen, so both codes use the very same numbers).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.validation import describe, did_you_mean, real

#: Prefactor of the s² term in pymatgen's form-factor fit (Å²).
FORM_FACTOR_PREFACTOR = 41.78214
#: Accepted X-ray wavelengths, Å (hard synchrotron … soft laboratory sources).
WAVELENGTH_RANGE = (0.01, 10.0)


@lru_cache(maxsize=1)
def wavelengths() -> dict[str, float]:
    """Named characteristic lines in Å, e.g. ``{"CuKa": 1.54184, ...}`` (pymatgen's table)."""
    from pymatgen.analysis.diffraction.xrd import WAVELENGTHS

    return dict(WAVELENGTHS)


def resolve_wavelength(wavelength: str | float) -> float:
    """Wavelength in Å from a line name ("CuKa") or a number of Å.

    TypeError for anything else (True, a complex number, None); ValueError for an unknown line
    (naming the line probably meant), NaN, or a number outside WAVELENGTH_RANGE.
    """
    if isinstance(wavelength, str):
        table = wavelengths()
        if wavelength not in table:
            try:
                hint = f"; give the number {float(wavelength):g} without quotes"
            except ValueError:
                hint = did_you_mean(wavelength, table)
            raise ValueError(f"unknown X-ray line {wavelength!r}{hint} "
                             f"(choose one of {sorted(table)} or give Å as a number)")
        return table[wavelength]
    try:
        value = real(wavelength, "wavelength", unit="Å")
    except TypeError:
        raise TypeError("wavelength must be a line name such as 'CuKa' or a number in Å, "
                        f"got {describe(wavelength)}") from None
    lo, hi = WAVELENGTH_RANGE
    if not lo <= value <= hi:
        raise ValueError(
            f"wavelength {value} Å is outside the supported X-ray range [{lo}, {hi}] Å")
    return value


@lru_cache(maxsize=1)
def _coefficient_table() -> dict[str, np.ndarray]:
    text = (resources.files("pymatgen.analysis.diffraction").joinpath(
        "atomic_scattering_params.json").read_text())
    return {symbol: np.array(pairs, dtype=float) for symbol, pairs in json.loads(text).items()}


def form_factor_coefficients(symbol: str) -> np.ndarray:
    """(4, 2) array of (a_i, b_i) for one element; ValueError if the table lacks it."""
    table = _coefficient_table()
    if symbol not in table:
        raise ValueError(f"no X-ray form-factor coefficients for element {symbol!r} "
                         f"(pymatgen's table has {len(table)} elements)")
    return table[symbol]


def form_factor(atomic_number: int, coefficients: np.ndarray, s: np.ndarray) -> np.ndarray:
    """f(s) for one element; s = sin θ / λ in Å⁻¹ (any shape). Plain numpy."""
    s2 = np.asarray(s, dtype=float)**2
    a, b = coefficients[:, 0], coefficients[:, 1]
    return atomic_number - FORM_FACTOR_PREFACTOR * s2 * np.sum(a * np.exp(-b * s2[..., None]),
                                                               axis=-1)


#: Reflections whose 2θ round to the same multiple of this (deg) are one peak (pymatgen's value).
TWO_THETA_TOL = 1e-5


def bragg_two_theta(d_spacing: ArrayLike, wavelength: str | float = "CuKa") -> np.ndarray:
    """2θ in degrees from Bragg's law λ = 2 d sin θ; NaN where λ > 2d (no reflection)."""
    ratio = resolve_wavelength(wavelength) / (2 * np.asarray(d_spacing, dtype=float))
    with np.errstate(invalid="ignore"):
        return np.degrees(2 * np.arcsin(np.where(ratio <= 1, ratio, np.nan)))


def lorentz_polarization(two_theta: ArrayLike) -> np.ndarray:
    """Lorentz-polarisation factor (1 + cos² 2θ)/(sin² θ cos θ) for an unpolarised beam; 2θ in
    degrees."""
    theta = np.radians(np.asarray(two_theta, dtype=float) / 2)
    return (1 + np.cos(2 * theta)**2) / (np.sin(theta)**2 * np.cos(theta))


def starts_peak(two_theta: ArrayLike, tolerance: float = TWO_THETA_TOL) -> np.ndarray:
    """For 2θ sorted ascending (deg): True where a reflection opens a new peak, i.e. its 2θ
    rounds to another multiple of ``tolerance`` than its predecessor's (pymatgen's rule)."""
    bins = np.round(np.asarray(two_theta) / tolerance).astype(np.int64)
    new_peak = np.ones(len(bins), dtype=bool)
    np.not_equal(bins[1:], bins[:-1], out=new_peak[1:])
    return new_peak
