"""What turns an ideal powder pattern into a measured one: the instrument and the sample.

A measured Bragg–Brentano pattern, in the conventions of Rietveld programs (GSAS-II, FullProf,
TOPAS), is

    y(2θ) = s Σ_lines w_l Σ_h P_h I_h,l Φ(2θ − 2θ_h,l − Δ(θ_h,l); w_h,l, η) + b(2θ)

* **lines** — Kα1 and Kα2 (:func:`kalpha_doublet`): the wavelengths of pymatgen's table, and
  the Kα2/Kα1 ratio its weighted mean λ(Kα) = (λ1 + r λ2)/(1 + r) implies (r ≈ 0.50);
  each line has its own 2θ and Lorentz-polarisation factor;
* **2θ corrections** — a zero shift Δ0 (deg) and a sample displacement s (mm) at goniometer
  radius R (mm): Δ(θ) = Δ0 − (2 s / R) cos θ (in degrees, ×180/π);
* **widths** — Caglioti w² = U tan²θ + V tanθ + W (deg²) and pseudo-Voigt mixing η;
* **preferred orientation** — March–Dollase P_h = (r² cos²α + sin²α / r)^(−3/2), α the angle
  between g_h and the preferred direction (a reciprocal-lattice vector); r = 1 is a random
  powder, r < 1 plates, r > 1 needles; normalised so that its average over orientations is 1;
* **background** — a Chebyshev series b(2θ) = Σ_n c_n T_n(x), x mapping the grid to [−1, 1];
* **scale** s;
* isotropic displacement B per species is a property of the crystal (``Crystal.b_iso``).

Synthetic "measurements" add Poisson counting noise (:func:`poisson_counts`). Everything here is
plain numpy on reflection lists; :mod:`xrdcore.measurement` assembles patterns and exact
gradients with the kernels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.physics.profiles import resolve_window
from xrdcore.physics.scattering import wavelengths
from xrdcore.validation import describe, real, real_array, whole

DEG_PER_RAD = 180.0 / math.pi
#: Goniometer radius (mm) of a common laboratory diffractometer.
DEFAULT_RADIUS = 240.0
#: Instrument settings that are numbers a refinement may vary (``background`` is a vector).
SCALARS = ("scale", "zero_shift", "displacement", "u", "v", "w", "eta", "march_dollase")
#: Every refinable name, plus ``"b_iso:<element>"`` for the crystal's B of one species.
PARAMETERS = SCALARS + ("background", )


def kalpha_doublet(wavelength: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """((λ1, 1), (λ2, r)): the Kα1 and Kα2 lines of the anode whose Kα mean or Kα1 line is
    ``wavelength`` (Å), from pymatgen's table, with r = (λ − λ1)/(λ2 − λ) for λ its Kα mean.

    ValueError for a wavelength that is no tabulated Kα or Kα1 line."""
    table = wavelengths()
    for name, mean in table.items():
        if not name.endswith("Ka") or f"{name}1" not in table or f"{name}2" not in table:
            continue
        first, second = table[f"{name}1"], table[f"{name}2"]
        if wavelength in (mean, first):
            return (first, 1.0), (second, (mean - first) / (second - mean))
    lines = sorted(name for name in table if name.endswith(("Ka", "Ka1")))
    raise ValueError(f"a Kα2 line needs a Kα wavelength from pymatgen's table ({', '.join(lines)}),"
                     f" got {wavelength} Å")


@dataclass(frozen=True)
class Instrument:
    """Instrument and sample settings of a measured pattern (see the module docstring).

    ``scale`` (pattern units per |F|²·LP unit), ``zero_shift`` (deg), ``displacement`` (mm),
    ``radius`` (mm, fixed), Caglioti ``u``, ``v``, ``w`` (deg²; the default is a 0.1° FWHM),
    ``eta`` (0 Gaussian … 1 Lorentzian), ``window`` (half-width of each peak's evaluation in
    FWHMs; None: the default for the current ``eta``, :attr:`peak_window`), ``background``
    (Chebyshev coefficients, pattern units), ``kalpha2`` (add the Kα2 line), ``march_dollase``
    (r) and ``orientation`` (the preferred reciprocal-lattice direction hkl). Checked when made.
    """

    scale: float = 1.0
    zero_shift: float = 0.0
    displacement: float = 0.0
    radius: float = DEFAULT_RADIUS
    u: float = 0.0
    v: float = 0.0
    w: float = 0.01
    eta: float = 0.0
    window: float | None = None
    background: tuple[float, ...] = ()
    kalpha2: bool = False
    march_dollase: float = 1.0
    orientation: tuple[int, int, int] = (0, 0, 1)

    def __post_init__(self) -> None:
        for name in ("scale", "zero_shift", "displacement", "u", "v", "w", "eta"):
            object.__setattr__(self, name, real(getattr(self, name), name))
        real(self.radius, "radius", low=0, low_open=True, unit="mm")
        real(self.scale, "scale", low=0, low_open=True)
        real(self.eta, "eta", low=0, high=1)
        real(self.march_dollase, "march_dollase", low=0, low_open=True)
        if not isinstance(self.kalpha2, (bool, np.bool_)):
            raise TypeError(f"kalpha2 must be True or False, got {describe(self.kalpha2)}")
        if self.window is not None:
            object.__setattr__(self, "window", resolve_window(self.window, self.eta))
        background = real_array(self.background, "background", ndim=1)
        object.__setattr__(self, "background", tuple(float(c) for c in background))
        orientation = tuple(whole(i, f"orientation[{n}]") for n, i in enumerate(self.orientation))
        if len(orientation) != 3 or orientation == (0, 0, 0):
            raise ValueError(
                f"orientation must be a reciprocal-lattice direction hkl ≠ 0, got {orientation}")
        object.__setattr__(self, "orientation", orientation)

    @classmethod
    def ideal(cls, fwhm: float = 0.1, **changes: Any) -> Instrument:
        """The ideal instrument of the rest of the book (one line, Gaussian peaks of ``fwhm`` deg,
        no corrections) with ``changes``."""
        return cls(w=real(fwhm, "fwhm", low=0, low_open=True)**2, **changes)

    @property
    def peak_window(self) -> float:
        """The evaluation window in FWHMs: ``window``, or the default for ``eta``."""
        return resolve_window(self.window, self.eta)

    def lines(self, wavelength: float) -> tuple[tuple[float, float], ...]:
        """((λ, weight), …): the diffractometer's wavelength alone, or the Kα doublet."""
        return kalpha_doublet(wavelength) if self.kalpha2 else ((wavelength, 1.0), )

    def values(self, names: Sequence[str]) -> np.ndarray:
        """The settings ``names`` (of :data:`PARAMETERS`) as one flat vector, the background's
        coefficients in order."""
        return np.concatenate([np.atleast_1d(np.asarray(getattr(self, n), float)) for n in names])

    def with_values(self, names: Sequence[str], vector: ArrayLike) -> Instrument:
        """A copy with the settings ``names`` set from ``vector`` (the layout of :meth:`values`)."""
        vector = np.asarray(vector, dtype=float)
        changes: dict[str, Any] = {}
        position = 0
        for name in names:
            size = len(self.background) if name == "background" else 1
            part = vector[position:position + size]
            changes[name] = tuple(part) if name == "background" else float(part[0])
            position += size
        return replace(self, **changes)


@dataclass(frozen=True)
class LineFactors:
    """One line's geometry at every reflection (M,): 2θ (deg), LP, and their derivatives by |g|
    (per Å⁻¹)."""

    two_theta: np.ndarray
    lorentz_polarization: np.ndarray
    d_two_theta: np.ndarray
    d_lorentz_polarization: np.ndarray
    theta: np.ndarray  # rad
    d_theta: np.ndarray  # rad·Å


def line_factors(g: np.ndarray, wavelength: float) -> LineFactors:
    """2θ and LP = (1 + cos² 2θ)/(sin² θ cos θ) of reflections |g| (Å⁻¹) at ``wavelength`` (Å),
    with sin θ = λ|g|/2, and their derivatives by |g|."""
    sin_theta = 0.5 * wavelength * g
    theta = np.arcsin(sin_theta)
    cos_theta = np.cos(theta)
    cos_2theta = 1 - 2 * sin_theta**2
    numerator = 1 + cos_2theta**2
    denominator = sin_theta**2 * cos_theta
    lp = numerator / denominator
    d_theta = 0.5 * wavelength / cos_theta
    # d/dθ of the numerator and denominator
    d_numerator = 2 * cos_2theta * (-2 * np.sin(2 * theta))
    d_denominator = 2 * sin_theta * cos_theta**2 - sin_theta**3
    d_lp = (d_numerator * denominator - numerator * d_denominator) / denominator**2
    return LineFactors(2 * theta * DEG_PER_RAD, lp, 2 * DEG_PER_RAD * d_theta, d_lp * d_theta,
                       theta, d_theta)


def shift(theta: np.ndarray,
          instrument: Instrument) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Δ(θ) (deg) of the peak positions, dΔ/dθ (deg/rad) and dΔ/ds (deg/mm): zero shift plus
    sample displacement, Δ = Δ0 − (2 s/R) cos θ · 180/π."""
    ratio = 2 * instrument.displacement / instrument.radius * DEG_PER_RAD
    return (instrument.zero_shift - ratio * np.cos(theta), ratio * np.sin(theta),
            -2 / instrument.radius * DEG_PER_RAD * np.cos(theta))


def caglioti_widths(theta: np.ndarray, instrument: Instrument) -> tuple[np.ndarray, ...]:
    """FWHM w (deg) at Bragg angles θ (rad), and dw/dθ, dw/dU, dw/dV, dw/dW.

    ValueError when w² = U tan²θ + V tanθ + W is not positive at some peak."""
    tan_theta = np.tan(theta)
    squared = instrument.u * tan_theta**2 + instrument.v * tan_theta + instrument.w
    if np.any(~(squared > 0)):
        raise ValueError(f"Caglioti U, V, W = {instrument.u:g}, {instrument.v:g}, "
                         f"{instrument.w:g} deg² give a non-positive FWHM² at some peak")
    width = np.sqrt(squared)
    half = 0.5 / width
    d_theta = (2 * instrument.u * tan_theta + instrument.v) / np.cos(theta)**2 * half
    return width, d_theta, tan_theta**2 * half, tan_theta * half, half


def march_dollase(cos2_alpha: np.ndarray, ratio: float) -> tuple[np.ndarray, ...]:
    """P = (r² cos²α + sin²α / r)^(−3/2) and dP/d(cos²α), dP/dr."""
    base = ratio**2 * cos2_alpha + (1 - cos2_alpha) / ratio
    factor = base**-1.5
    d_base = -1.5 * factor / base
    return (factor, d_base * (ratio**2 - 1 / ratio),
            d_base * (2 * ratio * cos2_alpha - (1 - cos2_alpha) / ratio**2))


def orientation_cosines(hkl: np.ndarray, metric: np.ndarray,
                        direction: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """cos²α between each g_h (hkl (M, 3)) and the direction p, from the reciprocal metric
    G* (3, 3), and d(cos²α)/dG* (M, 3, 3) (entries independent; symmetrise before use)."""
    p = np.asarray(direction, dtype=float)
    q = hkl @ metric @ p
    a = np.einsum("mi,ij,mj->m", hkl, metric, hkl)
    b = p @ metric @ p
    cos2 = q**2 / (a * b)
    d_metric = (2 * (q / (a * b))[:, None, None] * hkl[:, :, None] * p[None, None, :] -
                (cos2 / a)[:, None, None] * hkl[:, :, None] * hkl[:, None, :] -
                (cos2 / b)[:, None, None] * np.outer(p, p)[None])
    return cos2, d_metric


def chebyshev_basis(grid: np.ndarray, order: int) -> np.ndarray:
    """(K, order) Chebyshev polynomials T_0 … T_{order−1} on the grid mapped to [−1, 1]."""
    order = whole(order, "background order", low=0)
    span = grid[-1] - grid[0]
    x = (2 * grid - (grid[0] + grid[-1])) / span if span > 0 else np.zeros_like(grid)
    return np.polynomial.chebyshev.chebvander(x, order - 1) if order else np.zeros((len(grid), 0))


#: Clipping passes of :func:`background_envelope`.
ENVELOPE_PASSES = 30


def background_envelope(grid: np.ndarray, pattern: ArrayLike, terms: int) -> np.ndarray:
    """Chebyshev coefficients (``terms``,) of the lower envelope of ``pattern`` on ``grid``:
    fit the series, clip the pattern to the fit, and fit again (:data:`ENVELOPE_PASSES` times,
    each clipping the pattern itself), so that peaks stop pulling the fit up — the peak
    stripping that gives a background's start without knowing the structure; the constant
    term is raised where needed so that the background is nowhere negative."""
    data = real_array(pattern, "pattern", shape=(len(grid), ))
    basis = chebyshev_basis(grid, terms)
    if terms == 0:
        return np.zeros(0)
    clipped = data
    for _ in range(ENVELOPE_PASSES):
        coefficients, *_ = np.linalg.lstsq(basis, clipped, rcond=None)
        clipped = np.minimum(data, basis @ coefficients)
    coefficients[0] += max(0.0, -float((basis @ coefficients).min()))
    return coefficients


def poisson_counts(pattern: ArrayLike, peak_counts: float, seed: int = 0) -> np.ndarray:
    """A synthetic measurement: Poisson counts of ``pattern`` scaled so that its maximum expects
    ``peak_counts`` counts (a float array; ``numpy.random.default_rng(seed)``)."""
    pattern = real_array(pattern, "pattern", ndim=1)
    if np.any(pattern < 0) or not np.any(pattern):
        raise ValueError("pattern must be non-negative and not all zero to draw counts from")
    peak_counts = real(peak_counts, "peak_counts", low=0, low_open=True, unit="counts")
    rng = np.random.default_rng(whole(seed, "seed", low=0))
    return rng.poisson(pattern * (peak_counts / pattern.max())).astype(float)


def counting_rwp(pattern: ArrayLike, counts: ArrayLike) -> tuple[float, np.ndarray]:
    """Weighted-profile R factor against counts, Rwp = sqrt(Σ w (n − y)² / Σ w n²) with
    w = 1/max(n, 1) (Poisson variances), and dRwp/dy. No scale is fitted: the model's ``scale``
    and background are parameters."""
    y = np.asarray(pattern, dtype=float)
    n = np.asarray(counts, dtype=float)
    weight = 1.0 / np.maximum(n, 1.0)
    residual = n - y
    denominator = (weight * n) @ n
    value = float(np.sqrt((weight * residual) @ residual / denominator))
    if value == 0:
        return value, np.zeros_like(y)
    return value, -weight * residual / (value * denominator)
