"""Measured patterns: the ideal pattern through an instrument and sample model, with exact
gradients by the structure *and* by every instrument setting.

The model is that of :mod:`xrdcore.physics.instrument`: for each line l (Kα1, optionally Kα2)
and half-space reflection h, with Q_h = 2|F(h)|²,

    centre   c_hl = 2θ_hl + Δ(θ_hl)                 (zero shift, sample displacement)
    width    w_hl = sqrt(U tan²θ_hl + V tanθ_hl + W)
    area     A_hl = s · weight_l · P_h · Q_h · LP(θ_hl)   (March–Dollase P_h)
    y(2θ)    = Σ A_hl Φ(2θ − c_hl; w_hl, η) + Σ_n c_n T_n(x)

The gradient reverses this by hand, as :mod:`xrdcore.gradients` does for the ideal pattern:
dL/dy from the metric; dL/dA, dL/dc, dL/dw and dL/dη from the profile
(:func:`~xrdcore.kernels.cpu.broadened_profile_parameter_adjoint`); then the instrument settings,
dL/dQ_h and dL/d|g_h| (line geometry, widths, shifts), and the structure through the intensity
adjoint kernel; the preferred-orientation factor adds its own term in the reciprocal metric
G* (its angle α depends on the lattice). B per species comes from the structure-factor sums of
each scatterer type, dQ/dB_t = −4 s² Re(F* f_t e^{−B_t s²} S_t).

Reflections are enumerated afresh at every call for the 2θ range the grid, the peaks' windows
and the largest shift can reach, at every line. The targets are patterns in any units with
the book's metrics (``metric="cosine"``, …: :mod:`xrdcore.similarity`), or counts with
``metric="rwp_counts"`` (:func:`~xrdcore.physics.instrument.counting_rwp`, no scale fitted).
CPU only (the batched and CUDA engines compute the ideal pattern).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import (MAX_TWO_THETA, Diffractometer, check_diffractometer, check_grid,
                                 scatterer_types)
from xrdcore.kernels import cpu
from xrdcore.physics.instrument import (DEG_PER_RAD, SCALARS, Instrument, caglioti_widths,
                                        chebyshev_basis, counting_rwp, line_factors, march_dollase,
                                        orientation_cosines, shift)
from xrdcore.physics.profiles import uniform_step
from xrdcore.similarity import ALL_ZERO, check_options, get_metric, metric_options
from xrdcore.similarity import loss as metric_loss
from xrdcore.structure.crystal import Crystal, check_crystal, element_symbol
from xrdcore.validation import UndefinedMetricError, instance, real_array

#: The metric of counts: Rwp with Poisson weights and the model's own scale and background.
COUNTS_METRIC = "rwp_counts"


@dataclass(frozen=True)
class MeasuredGradient:
    """Loss and its exact gradients: ``d_lattice`` (3, 3) per Å, ``d_frac`` (N, 3), per
    instrument setting ``d_instrument`` (a float per name of
    :data:`~xrdcore.physics.instrument.SCALARS`, ``"background"`` an array), and ``d_b_iso``
    per element (per Å² of the B of all its atoms)."""

    loss: float
    d_lattice: np.ndarray
    d_frac: np.ndarray
    d_instrument: dict[str, Any]
    d_b_iso: dict[str, float]


def check_instrument(instrument: object) -> Instrument:
    return instance(instrument, "instrument", Instrument,
                    "make one with xrdcore.physics.instrument.Instrument(...)")


class _Line:
    """One line's peaks: geometry and the derivatives the backward pass needs, each (M,)."""

    def __init__(self, g: np.ndarray, wavelength: float, weight: float,
                 instrument: Instrument) -> None:
        self.weight = weight
        self.factors = factors = line_factors(g, wavelength)
        self.shift, self.d_shift, self.d_shift_d_displacement = shift(factors.theta, instrument)
        (self.width, self.d_width_d_theta, *self.d_width_d_uvw) = caglioti_widths(
            factors.theta, instrument)
        self.centre = factors.two_theta + self.shift


class _Forward:
    """The forward pass of one measured pattern, keeping what the backward pass reuses."""

    def __init__(self, crystal: Crystal, diffractometer: Diffractometer, instrument: Instrument,
                 grid: np.ndarray) -> None:
        self.crystal, self.diffractometer, self.instrument, self.grid = (crystal, diffractometer,
                                                                         instrument, grid)
        lines = instrument.lines(diffractometer.wavelength)
        self.hkl, self.g = diffractometer.enumerate_for(crystal, *_g_window(
            grid, instrument, diffractometer.wavelength, [line for line, _ in lines]))
        _, intensity, self.saved = diffractometer.intensities_and_form_factors(
            crystal, self.hkl, self.g)
        self.reference = line_factors(self.g, diffractometer.wavelength)
        self.q = intensity / self.reference.lorentz_polarization  # 2|F|²
        self.metric = np.linalg.inv(crystal.lattice @ crystal.lattice.T)
        self.cos2_alpha, self.d_cos2_d_metric = orientation_cosines(self.hkl, self.metric,
                                                                    instrument.orientation)
        self.orientation, self.d_orientation_d_cos2, self.d_orientation_d_ratio = march_dollase(
            self.cos2_alpha, instrument.march_dollase)
        self.lines = [_Line(self.g, wavelength, weight, instrument) for wavelength, weight in lines]
        # area per unit Q of every peak, and the areas
        self.per_q = [
            instrument.scale * line.weight * self.orientation * line.factors.lorentz_polarization
            for line in self.lines
        ]
        self.area = [per_q * self.q for per_q in self.per_q]
        centres = np.concatenate([line.centre for line in self.lines])
        self.order = np.argsort(centres, kind="stable")
        self.centres = centres[self.order]
        self.areas = np.concatenate(self.area)[self.order]
        self.widths = np.concatenate([line.width for line in self.lines])[self.order]
        work = len(self.centres) * len(grid)
        with cpu.threads_for(work):
            peaks = diffractometer.kernels.broadened_profile(
                grid, self.centres, self.areas, self.widths, instrument.eta,
                instrument.peak_window, uniform_step(grid))
        self.basis = chebyshev_basis(grid, len(instrument.background))
        self.pattern = peaks + self.basis @ np.asarray(instrument.background, dtype=float)

    def backward(self, d_pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict, dict]:
        """dL/dA, dL/dx, the instrument's and the B's gradients from dL/dy on the grid."""
        instrument, kernels = self.instrument, self.diffractometer.kernels
        with cpu.threads_for(len(self.centres) * len(self.grid)):
            d_area_s, d_centre_s, d_width_s, d_eta = kernels.broadened_profile_parameter_adjoint(
                self.grid, self.centres, self.areas, self.widths, instrument.eta,
                instrument.peak_window, d_pattern)
        n_lines, count = len(self.lines), len(self.g)
        d_area, d_centre, d_width = (np.empty(n_lines * count) for _ in range(3))
        for unsorted, sorted_ in ((d_area, d_area_s), (d_centre, d_centre_s), (d_width,
                                                                             d_width_s)):
            unsorted[self.order] = sorted_
        d_q, d_orientation, d_g = (np.zeros(count) for _ in range(3))
        d_instrument: dict[str, Any] = dict.fromkeys(SCALARS, 0.0)
        d_instrument["eta"] = float(d_eta)
        for index, (line, per_q, area) in enumerate(zip(self.lines, self.per_q, self.area)):
            part = slice(index * count, (index + 1) * count)
            da, dc, dw = d_area[part], d_centre[part], d_width[part]
            factors = line.factors
            d_q += da * per_q
            d_orientation += da * area / self.orientation
            d_instrument["scale"] += float(da @ area) / instrument.scale
            d_g += da * area / factors.lorentz_polarization * factors.d_lorentz_polarization
            d_g += dc * (factors.d_two_theta + line.d_shift * factors.d_theta)
            d_g += dw * line.d_width_d_theta * factors.d_theta
            d_instrument["zero_shift"] += float(dc.sum())
            d_instrument["displacement"] += float(dc @ line.d_shift_d_displacement)
            for name, slope in zip("uvw", line.d_width_d_uvw):
                d_instrument[name] += float(dw @ slope)
        d_instrument["march_dollase"] = float(d_orientation @ self.d_orientation_d_ratio)
        d_instrument["background"] = self.basis.T @ d_pattern
        d_b_iso = self._b_iso_gradient(d_q)
        crystal = self.crystal
        scatterer_type, *_ = scatterer_types(crystal)
        reference = self.reference
        with cpu.threads_for(count * len(crystal)):
            d_frac, d_g_kernel = kernels.reflection_intensities_adjoint(
                self.hkl, self.g, self.diffractometer.wavelength, crystal.frac_coords,
                crystal.occupancies, scatterer_type, *self.saved,
                d_q / reference.lorentz_polarization, np.zeros(count))
        # the kernel differentiates 2|F|²·LP at the diffractometer's wavelength: take LP's part out
        d_g += d_g_kernel - d_q * self.q * reference.d_lorentz_polarization / (
            reference.lorentz_polarization)
        d_lattice = kernels.lattice_gradient(crystal.lattice, self.hkl, self.g, d_g)
        # preferred orientation: cos²α depends on G* = (A Aᵀ)⁻¹
        weights = d_orientation * self.d_orientation_d_cos2
        d_metric = np.einsum("m,mij->ij", weights, self.d_cos2_d_metric)
        d_metric = 0.5 * (d_metric + d_metric.T)
        d_lattice = d_lattice - 2 * self.metric @ d_metric @ self.metric @ crystal.lattice
        return d_lattice, d_frac, d_instrument, d_b_iso

    def _b_iso_gradient(self, d_q: np.ndarray) -> dict[str, float]:
        """dL/dB per element: Σ_h dL/dQ_h dQ_h/dB_t over its scatterer types t."""
        form_factor, _, sums_real, sums_imag = self.saved
        f_real = np.einsum("mt,mt->m", form_factor, sums_real)
        f_imag = np.einsum("mt,mt->m", form_factor, sums_imag)
        s2 = (0.5 * self.g)**2
        d_q_d_b = -4 * s2[:, None] * form_factor * (f_real[:, None] * sums_real +
                                                    f_imag[:, None] * sums_imag)
        per_type = d_q @ d_q_d_b
        _, type_z, _, _ = scatterer_types(self.crystal)
        gradient: dict[str, float] = {}
        for z, value in zip(type_z, per_type):
            symbol = element_symbol(int(z))
            gradient[symbol] = gradient.get(symbol, 0.0) + float(value)
        return gradient


def _g_window(grid: np.ndarray, instrument: Instrument, wavelength: float,
              lines: list[float]) -> tuple[float, float]:
    """|g| limits (Å⁻¹) of every reflection whose peak, at any line, can touch the grid: the grid
    widened by the peaks' windows and the largest shift, every line's θ below 90°."""
    largest_shift = abs(instrument.zero_shift) + abs(
        2 * instrument.displacement / instrument.radius * DEG_PER_RAD)
    top = min(grid[-1] + largest_shift, MAX_TWO_THETA)
    for _ in range(2):  # the widest peak that can reach the grid, at the highest angle it can have
        widest = caglioti_widths(np.radians(np.array([grid[0], top]) / 2), instrument)[0].max()
        reach = instrument.peak_window * widest + largest_shift
        top = min(grid[-1] + reach, MAX_TWO_THETA)
    low = max(grid[0] - reach, 0.0)
    g_min = 2 * math.sin(math.radians(low / 2)) / max(lines)
    g_max = min(2 * math.sin(math.radians(top / 2)) / min(lines),
                2 * math.sin(math.radians(MAX_TWO_THETA / 2)) / max(lines + [wavelength]))
    return g_min, g_max


def measurement_grid(diffractometer: Diffractometer, instrument: Instrument,
                     two_theta: ArrayLike | None = None) -> np.ndarray:
    """The checked 2θ grid (deg) of a measured pattern: the diffractometer's, or ``two_theta``;
    ValueError where its spacing is wider than the narrowest peak (peaks would fall between
    grid points)."""
    check_diffractometer(diffractometer)
    check_instrument(instrument)
    grid = diffractometer.two_theta if two_theta is None else check_grid(two_theta)
    widths = caglioti_widths(np.radians(grid / 2), instrument)[0]
    spacing = np.diff(grid)
    coarse = np.flatnonzero(spacing > np.minimum(widths[:-1], widths[1:]) * (1 + 1e-6))
    if len(coarse):
        k = coarse[0]
        raise ValueError(f"the 2θ grid spacing {spacing[k]:.4g}° at {grid[k]:.4g}° is wider than "
                         f"the peak FWHM {widths[k]:.4g}°: use a finer grid or wider peaks")
    return grid


def measured_pattern(crystal: Crystal, diffractometer: Diffractometer, instrument: Instrument,
                     two_theta: ArrayLike | None = None) -> np.ndarray:
    """The pattern (K,) of ``crystal`` measured with ``instrument`` on the grid (default: the
    diffractometer's), in absolute units (|F|²·LP per degree × scale, plus the background)."""
    check_crystal(crystal)
    grid = measurement_grid(diffractometer, instrument, two_theta)
    return _Forward(crystal, diffractometer, instrument, grid).pattern


def measured_loss_and_grad(crystal: Crystal, target: Crystal | ArrayLike,
                           diffractometer: Diffractometer, instrument: Instrument,
                           metric: str = "cosine", two_theta: ArrayLike | None = None,
                           **options: Any) -> MeasuredGradient:
    """Loss of ``crystal``'s measured pattern against ``target`` and its exact gradients.

    Parameters
    ----------
    target : a pattern or counts on the grid, or a Crystal measured with the same instrument.
    metric : a name of :data:`xrdcore.similarity.METRICS` or ``"rwp_counts"`` (counts).
    two_theta : the grid (default: the diffractometer's).
    options : the metric's own options; any other keyword is a TypeError.
    """
    forward, loss, d_pattern = _loss(crystal, target, diffractometer, instrument, metric,
                                     two_theta, options)
    d_lattice, d_frac, d_instrument, d_b_iso = forward.backward(d_pattern)
    return MeasuredGradient(loss, d_lattice, d_frac, d_instrument, d_b_iso)


def measured_loss(crystal: Crystal, target: Crystal | ArrayLike, diffractometer: Diffractometer,
                  instrument: Instrument, metric: str = "cosine",
                  two_theta: ArrayLike | None = None, **options: Any) -> float:
    """The loss of :func:`measured_loss_and_grad` alone (same arguments), without the backward
    pass."""
    return _loss(crystal, target, diffractometer, instrument, metric, two_theta, options)[1]


def _loss(crystal: Crystal, target: Crystal | ArrayLike, diffractometer: Diffractometer,
          instrument: Instrument, metric: str, two_theta: ArrayLike | None,
          options: dict[str, Any]) -> tuple[_Forward, float, np.ndarray]:
    """The checked forward pass, the loss and dL/dy."""
    check_crystal(crystal)
    grid = measurement_grid(diffractometer, instrument, two_theta)
    if metric == COUNTS_METRIC:
        check_options(options, (), "measured_loss_and_grad")
    else:
        check_options(options, metric_options(get_metric(metric)), "measured_loss_and_grad")
    if isinstance(target, Crystal):
        target_pattern = _Forward(target, diffractometer, instrument, grid).pattern
    else:
        target_pattern = real_array(target, "target pattern", shape=(len(grid), ))
        if not np.any(target_pattern):
            raise ValueError(ALL_ZERO["target pattern"])
    forward = _Forward(crystal, diffractometer, instrument, grid)
    if metric == COUNTS_METRIC:
        loss, d_pattern = counting_rwp(forward.pattern, target_pattern)
    else:
        if not np.any(forward.pattern):
            raise UndefinedMetricError(ALL_ZERO["simulated pattern"])
        loss, d_pattern = metric_loss(metric, forward.pattern, target_pattern, grid, **options)
    return forward, float(loss), d_pattern


def fit_linear(crystal: Crystal, counts: ArrayLike, diffractometer: Diffractometer,
               instrument: Instrument, two_theta: ArrayLike | None = None,
               background: bool = True) -> Instrument:
    """``instrument`` with the scale and (with ``background``) the background coefficients, as
    many as it has, that fit ``counts`` best for ``crystal`` by weighted least squares (Poisson
    weights 1/max(n, 1)): the pattern is linear in them, so Rietveld programs solve them before
    a refinement. A kept background is part of the fit's model."""
    grid = measurement_grid(diffractometer, instrument, two_theta)
    counts = real_array(counts, "counts", shape=(len(grid), ))
    kept = () if background else instrument.background
    peaks = _Forward(crystal, diffractometer, replace(instrument, scale=1.0, background=()),
                     grid).pattern
    basis = chebyshev_basis(grid, len(instrument.background))
    design = np.column_stack([peaks, basis]) if background else peaks[:, None]
    data = counts - (basis @ np.asarray(kept, dtype=float) if kept else 0.0)
    root_weight = 1 / np.sqrt(np.maximum(counts, 1.0))
    solution, *_ = np.linalg.lstsq(design * root_weight[:, None], data * root_weight, rcond=None)
    if solution[0] <= 0:  # no positive scale fits: the background alone, then the peaks' share
        solution[1:], *_ = np.linalg.lstsq(design[:, 1:] * root_weight[:, None],
                                           data * root_weight, rcond=None)
        rest = data - design[:, 1:] @ solution[1:]
        solution[0] = max(float(rest.clip(0) @ peaks) / max(float(peaks @ peaks), 1e-300),
                          1e-300)
    return replace(instrument, scale=float(solution[0]),
                   background=tuple(solution[1:]) if background else instrument.background)
