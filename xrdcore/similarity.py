"""Similarity between two powder patterns on a common 2θ grid, each with its exact gradient.

Every metric is a function ``metric(pattern, target, two_theta) -> (value, gradient)`` where
``gradient`` is d(value)/d(pattern), the derivative with respect to the *simulated* pattern
(the first argument); ``target`` is held fixed. Two kinds:

* **similarities** (1 for identical patterns, larger is better): ``cosine``, ``pearson``,
  ``spectral_entropy``, ``weighted_cross_correlation``;
* **distances** (0 for identical patterns, smaller is better): ``mse`` (on max-normalised
  patterns), ``rwp`` (with the optimal scale factor), ``wasserstein`` (1-D, W1, in degrees).

For optimisation use :func:`loss`, which turns every metric into a loss to *minimise*:
``1 − similarity`` or the distance itself, with its gradient. All metrics are invariant to
the scale of the simulated pattern, so raw intensities can be compared with a measurement
in any units.

Bad input gives a ``TypeError`` for what is not an array of real numbers (strings, booleans,
complex numbers, None) or an unknown metric option, and a ``ValueError`` for different shapes,
NaN or inf, an all-zero target (there is nothing to compare with), negative intensities where a
metric reads the pattern as a distribution (spectral entropy, Wasserstein), or an unknown metric
name (with the nearest one suggested). An all-zero (or, for Pearson, constant) *simulated*
pattern is an :class:`~xrdcore.validation.UndefinedMetricError` (a ValueError): nothing
diffracts in the 2θ range, a property of the structure, which an optimiser counts as a failed run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.kernels.cpu import cosine_loss_rows
from xrdcore.validation import UndefinedMetricError, choice, did_you_mean, real, real_array

#: Floor added to normalised distributions in the spectral-entropy similarity, so that its
#: gradient stays finite where the simulated pattern is exactly zero (value changes < 1e-10).
ENTROPY_FLOOR = 1e-12
#: Default half-width (deg) of the triangle weight of the weighted cross-correlation.
WCC_WIDTH = 1.0

#: Why an all-zero pattern makes every metric undefined, per argument.
ALL_ZERO = {
    "simulated pattern": "the simulated pattern is all zero: nothing diffracts in the 2θ range "
    "(check the structure and the 2θ range); the metric is undefined",
    "target pattern": "the target pattern is all zero: there is nothing to compare with "
    "(check the measured or rendered target); the metric is undefined"
}


def _check(pattern: ArrayLike, target: ArrayLike, two_theta: ArrayLike | None = None,
           nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    pattern = _checked_pattern(pattern, "simulated pattern", nonnegative)
    target = _checked_pattern(target, "target pattern", nonnegative, pattern.shape)
    _check_grid_shape(two_theta, pattern.shape)
    return pattern, target


def _checked_pattern(values: ArrayLike, name: str, nonnegative: bool = False,
                     shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``values`` as a finite, not all-zero 1-D float array (of ``shape`` when given)."""
    values = real_array(values, name)
    if shape is not None and values.shape != shape or values.ndim != 1:
        other = "simulated pattern" if name == "target pattern" else "target pattern"
        raise ValueError(f"patterns must be 1-D on the same grid, got {name} shape {values.shape}" +
                         (f" and {other} shape {shape}" if shape is not None else ""))
    if not values.any():
        raise (UndefinedMetricError if name == "simulated pattern" else ValueError)(ALL_ZERO[name])
    if nonnegative and np.any(values < 0):
        raise ValueError(
            f"{name} has negative intensities; this metric treats patterns as distributions")
    return values


def _check_grid_shape(two_theta: ArrayLike | None, shape: tuple[int, ...]) -> None:
    if two_theta is not None and real_array(two_theta, "two_theta").shape != shape:
        raise ValueError(
            f"two_theta has shape {np.shape(two_theta)}, patterns {shape}: not the same grid")


def cosine(pattern: ArrayLike, target: ArrayLike,
           two_theta: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """S = <y, t> / (|y| |t|); dS/dy = t/(|y||t|) − S y/|y|²."""
    y, t = _check(pattern, target, two_theta)
    norm_y, norm_t = np.linalg.norm(y), np.linalg.norm(t)
    value = float(y @ t / (norm_y * norm_t))
    return value, t / (norm_y * norm_t) - value * y / norm_y**2


def pearson(pattern: ArrayLike, target: ArrayLike,
            two_theta: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """Pearson correlation r of the two patterns (cosine of the mean-centred patterns)."""
    y, t = _check(pattern, target, two_theta)
    y_c, t_c = y - y.mean(), t - t.mean()
    norm_y, norm_t = np.linalg.norm(y_c), np.linalg.norm(t_c)
    if norm_t == 0:
        raise ValueError("the target pattern is constant: the Pearson correlation is undefined")
    if norm_y == 0:
        raise UndefinedMetricError(
            "the simulated pattern is constant: the Pearson correlation is undefined")
    value = float(y_c @ t_c / (norm_y * norm_t))
    # both terms are already mean-free, so the centring needs no extra projection
    return value, t_c / (norm_y * norm_t) - value * y_c / norm_y**2


def mse(pattern: ArrayLike, target: ArrayLike,
        two_theta: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """D = mean((y/max y − t/max t)²), on max-normalised patterns (differentiable where the max is
    unique)."""
    y, t = _check(pattern, target, two_theta)
    top = int(np.argmax(y))
    y_max = y[top]
    if y_max <= 0:
        raise ValueError("simulated pattern has no positive value to normalise by")
    residual = y / y_max - t / t.max()
    value = float(np.mean(residual**2))
    d_normalised = 2 * residual / len(y)
    gradient = d_normalised / y_max
    gradient[top] -= d_normalised @ y / y_max**2
    return value, gradient


def rwp(pattern: ArrayLike, target: ArrayLike,
        two_theta: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """Weighted-profile R factor with the optimal scale c: sqrt(Σ w (t − c y)² / Σ w t²).

    Weights w = 1/(t + 1e-3·max t) (counting statistics with a floor); c = Σ w t y / Σ w y².
    The gradient uses ∂/∂c = 0 at the optimal scale.
    """
    y, t = _check(pattern, target, two_theta)
    weight = 1.0 / (np.abs(t) + 1e-3 * np.abs(t).max())
    scale = (weight * t) @ y / ((weight * y) @ y)
    residual = t - scale * y
    denominator = (weight * t) @ t
    value = float(np.sqrt((weight * residual) @ residual / denominator))
    if value == 0:
        return value, np.zeros_like(y)
    return value, -scale * weight * residual / (value * denominator)


def _distribution_gradient(d_value_d_p, p, total):
    """Chain rule through p = y / Σ y: d/dy_j = (G_j − Σ_k G_k p_k) / Σ y."""
    return (d_value_d_p - d_value_d_p @ p) / total


def spectral_entropy(pattern: ArrayLike, target: ArrayLike,
                     two_theta: ArrayLike | None = None) -> tuple[float, np.ndarray]:
    """Spectral-entropy similarity S = 1 − (2H((p+q)/2) − H(p) − H(q)) / ln 4 (Li et al. 2021).

    p, q are the patterns normalised to unit sum, floored by ``ENTROPY_FLOOR`` (then
    renormalised) so the gradient log(m/p)/ln 4 stays finite; H(p) = −Σ p ln p.
    """
    y, t = _check(pattern, target, two_theta, nonnegative=True)
    n = len(y)

    def floored(values):
        return (values / values.sum() + ENTROPY_FLOOR) / (1 + n * ENTROPY_FLOOR)

    p, q = floored(y), floored(t)
    m = 0.5 * (p + q)

    # 2H(m) − H(p) − H(q) = Σ p ln(p/m) + q ln(q/m): a sum of small non-negative terms,
    # free of the cancellation between entropies of order ln(n)
    divergence = np.sum(p * np.log(p / m) + q * np.log(q / m))
    value = float(1 - divergence / np.log(4))
    d_value_d_floored = np.log(m / p) / np.log(4)
    # floored p depends on the plain p = y/Σy through a constant factor
    d_value_d_p = d_value_d_floored / (1 + n * ENTROPY_FLOOR)
    return value, _distribution_gradient(d_value_d_p, y / y.sum(), y.sum())


def _triangle_weights(two_theta, width):
    step = np.diff(two_theta)
    if len(step) == 0 or not np.allclose(step, step[0], rtol=1e-6, atol=0):
        raise ValueError("the weighted cross-correlation needs a uniform 2θ grid")
    half = int(np.floor(width / step[0]))
    if half < 1:
        raise ValueError(f"triangle width {width}° is below one grid step ({step[0]}°)")
    shifts = np.arange(-half, half + 1)
    return 1 - np.abs(shifts) * step[0] / width


def weighted_cross_correlation(pattern: ArrayLike, target: ArrayLike, two_theta: ArrayLike | None,
                               width: float = WCC_WIDTH) -> tuple[float, np.ndarray]:
    """de Gelder et al. (2001) weighted cross-correlation with a triangle weight.

    S = yᵀW t / sqrt(yᵀW y · tᵀW t), W_kl = w((k − l)Δ), w(r) = 1 − |r|/ℓ for |r| ≤ ℓ
    (ℓ = ``width`` in degrees, Δ the grid step): peaks within ℓ of each other still count
    as partly matching. dS/dy = W t/sqrt(…) − S W y/(yᵀW y). Needs a uniform grid.
    """
    if two_theta is None:
        raise ValueError("weighted_cross_correlation needs the 2θ grid (two_theta=...)")
    width = real(width, "width", low=0, low_open=True, unit="degrees")
    y, t = _check(pattern, target, two_theta)
    weights = _triangle_weights(np.asarray(two_theta, dtype=float), width)
    w_y = np.convolve(y, weights, mode="same")
    w_t = np.convolve(t, weights, mode="same")
    cross, auto_y, auto_t = y @ w_t, y @ w_y, t @ w_t
    value = float(cross / np.sqrt(auto_y * auto_t))
    return value, w_t / np.sqrt(auto_y * auto_t) - value * w_y / auto_y


def wasserstein(pattern: ArrayLike, target: ArrayLike,
                two_theta: ArrayLike | None) -> tuple[float, np.ndarray]:
    """1-D Wasserstein-1 distance (degrees) between the patterns as distributions over 2θ.

    W1 = Σ_k |P_k − Q_k| (2θ_{k+1} − 2θ_k), with P, Q the cumulative sums of the unit-sum
    patterns. dW1/dp_j = Σ_{k ≥ j} sign(P_k − Q_k) Δ_k (sign 0 where the CDFs touch).
    """
    if two_theta is None:
        raise ValueError("wasserstein needs the 2θ grid (two_theta=...)")
    y, t = _check(pattern, target, two_theta, nonnegative=True)
    grid = np.asarray(two_theta, dtype=float)
    if np.any(np.diff(grid) <= 0):
        raise ValueError("two_theta grid must be strictly ascending")
    p, q = y / y.sum(), t / t.sum()
    gap = np.cumsum(p)[:-1] - np.cumsum(q)[:-1]
    steps = np.diff(grid)
    value = float(np.abs(gap) @ steps)
    tail_sums = np.cumsum((np.sign(gap) * steps)[::-1])[::-1]
    d_value_d_p = np.append(tail_sums, 0.0)
    return value, _distribution_gradient(d_value_d_p, p, y.sum())


@dataclass(frozen=True)
class Metric:
    name: str
    function: Callable[..., tuple[float, np.ndarray]]
    kind: str  # "similarity" (1 = identical) or "distance" (0 = identical)


METRICS = {
    metric.name: metric
    for metric in (Metric("cosine", cosine, "similarity"), Metric("pearson", pearson, "similarity"),
                   Metric("spectral_entropy", spectral_entropy, "similarity"),
                   Metric("wcc", weighted_cross_correlation, "similarity"),
                   Metric("mse", mse, "distance"), Metric("rwp", rwp, "distance"),
                   Metric("wasserstein", wasserstein, "distance"))
}


def get_metric(name: str) -> Metric:
    """The :class:`Metric` of a name in :data:`METRICS` (an unknown name suggests the nearest)."""
    return METRICS[choice(name, "metric", METRICS)]


@lru_cache(maxsize=None)
def metric_options(metric: Metric) -> tuple[str, ...]:
    """Keyword options a metric's function accepts beyond (pattern, target, two_theta), e.g.
    wcc's width."""
    return tuple(inspect.signature(metric.function).parameters)[3:]


def check_options(given: Iterable[str], accepted: Collection[str], caller: str) -> None:
    """TypeError naming the unknown keywords in ``given`` (with the nearest accepted one) and
    listing ``accepted``."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        hint = did_you_mean(unknown[0], accepted)
        takes = f"it accepts {', '.join(sorted(accepted))}" if accepted else "it takes none"
        raise TypeError(f"unknown option(s) {unknown} for {caller}{hint} ({takes})")


def loss(name: str, pattern: ArrayLike, target: ArrayLike, two_theta: ArrayLike | None = None,
         **options: Any) -> tuple[float, np.ndarray]:
    """Loss to minimise for metric ``name``: 1 − similarity, or the distance; with
    d(loss)/d(pattern)."""
    metric = get_metric(name)
    check_options(options, metric_options(metric), f"metric {name!r}")
    value, gradient = metric.function(pattern, target, two_theta, **options)
    if metric.kind == "similarity":
        return 1.0 - value, -gradient
    return value, gradient


#: What :func:`loss_batch` does with a row whose metric is undefined.
UNDEFINED = ("raise", "nan")


def loss_batch(name: str, patterns: ArrayLike, target: ArrayLike,
               two_theta: ArrayLike | None = None,
               undefined: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """:func:`loss` of every row of ``patterns`` (B, K) against one ``target``: losses (B,) and
    gradients (B, K). Cosine is evaluated for the whole batch at once; other metrics row by row.
    A row whose metric is undefined (all zero, NaN) raises ValueError, or with
    ``undefined="nan"`` gets loss NaN and zero gradient."""
    get_metric(name)
    choice(undefined, "undefined", UNDEFINED)
    if not (isinstance(patterns, np.ndarray) and
            patterns.dtype.kind == "f"):  # a float array may hold NaN rows
        patterns = real_array(patterns, "patterns")
    target = _checked_pattern(target, "target pattern")
    if patterns.ndim != 2 or patterns.shape[1] != len(target):
        raise ValueError(f"patterns must have shape (B, {len(target)}), "
                         "one pattern per row on the target's grid, "
                         f"got shape {patterns.shape}")
    _check_grid_shape(two_theta, target.shape)
    patterns = np.ascontiguousarray(patterns, dtype=float)
    rows: np.ndarray | range
    if name == "cosine" and len(patterns):
        losses, gradients, not_defined = cosine_loss_rows(patterns, target)
        rows = np.flatnonzero(not_defined)  # the metric is undefined there: as loss() says
    else:
        losses, gradients = np.full(len(patterns), np.nan), np.zeros(patterns.shape)
        rows = range(len(patterns))
    for b in rows:
        try:
            losses[b], gradients[b] = loss(name, patterns[b], target, two_theta)
        except ValueError:
            if undefined == "raise":
                raise
            losses[b], gradients[b] = np.nan, 0.0
    return losses, gradients
