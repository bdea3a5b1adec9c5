"""Remedies for a rough loss landscape, each within the same evaluation budget (see
:mod:`xrdcore.optimize.core`, which applies them): continuation in peak width
(:class:`Continuation`, :func:`width_schedule`, a measured target broadened by
:func:`broaden_pattern`), an energy term (:func:`combined_loss_and_grad`: XRD loss + w ·
energy per atom with its exact gradient) and basin hopping (:class:`BasinHopping`, the budget
shared by :func:`split_budget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import loss_and_grad
from xrdcore.physics.profiles import pseudo_voigt
from xrdcore.structure.crystal import Crystal

#: Half-width of the broadening kernel of :func:`broaden_pattern`, in its FWHMs.
BROADENING_WINDOW = 5.0


@dataclass(frozen=True)
class Continuation:
    """Continuation in peak width: ``stages`` widths from ``start_fwhm`` (deg) down to the
    target width, geometrically spaced, sharing the evaluation budget (see
    :func:`width_schedule`)."""

    start_fwhm: float = 1.0
    stages: int = 4


@dataclass(frozen=True)
class BasinHopping:
    """Perturb-and-descend: ``hops`` local descents share the budget; each starts from the last
    accepted end point plus Gaussian noise of ``scale`` default steps per parameter (default:
    ``restart_scale``) and is accepted when its loss is lower, or with probability
    exp(−ΔL / ``temperature``) (Metropolis)."""

    hops: int = 4
    temperature: float = 0.02
    scale: float | None = None


def split_budget(steps: int, parts: int) -> list[int]:
    """``steps`` evaluations in ``parts`` near-equal shares (the first ones get the remainder),
    summing to ``steps``."""
    if parts < 1 or steps < parts:
        raise ValueError(f"cannot split {steps} evaluations into {parts} parts of at least one")
    share, extra = divmod(steps, parts)
    return [share + (1 if index < extra else 0) for index in range(parts)]


def width_schedule(start_fwhm: float, fwhm: float, stages: int,
                   steps: int) -> list[tuple[float, int]]:
    """(width in deg, evaluations) per stage: ``stages`` widths geometrically from ``start_fwhm``
    to ``fwhm`` (the last exactly ``fwhm``), the budget ``steps`` split evenly over them."""
    if not (np.isfinite(start_fwhm) and np.isfinite(fwhm) and 0 < fwhm <= start_fwhm):
        raise ValueError(
            f"continuation needs 0 < target FWHM ≤ start FWHM, got {fwhm} and {start_fwhm}")
    if stages < 1:
        raise ValueError(f"stages must be ≥ 1, got {stages}")
    widths = np.geomspace(start_fwhm, fwhm, stages) if stages > 1 else np.array([fwhm])
    widths[-1] = fwhm
    return list(zip((float(w) for w in widths), split_budget(steps, stages)))


def broadening_kernel_fwhm(from_fwhm: float, to_fwhm: float) -> float:
    """FWHM (deg) of the Gaussian that turns Gaussian peaks of FWHM ``from_fwhm`` into peaks of
    FWHM ``to_fwhm`` by convolution: widths of convolved Gaussians add in quadrature."""
    if not 0 < from_fwhm <= to_fwhm:
        raise ValueError(f"can only broaden: need 0 < {from_fwhm} ≤ {to_fwhm}")
    return math.sqrt(to_fwhm**2 - from_fwhm**2)


def broaden_pattern(pattern: ArrayLike, two_theta: ArrayLike, from_fwhm: float,
                    to_fwhm: float) -> np.ndarray:
    """A pattern measured with Gaussian peaks of FWHM ``from_fwhm`` as if measured with FWHM
    ``to_fwhm`` ≥ ``from_fwhm`` (deg): convolution with a unit-sum Gaussian of FWHM
    √(to² − from²) on the (uniform) grid, zero beyond its ends. Peak areas are kept."""
    pattern = np.asarray(pattern, dtype=float)
    two_theta = np.asarray(two_theta, dtype=float)
    if pattern.shape != two_theta.shape or pattern.ndim != 1:
        raise ValueError(
            f"pattern {pattern.shape} and grid {two_theta.shape} must be 1-D of one length")
    kernel_fwhm = broadening_kernel_fwhm(from_fwhm, to_fwhm)
    steps = np.diff(two_theta)
    if len(steps) == 0 or kernel_fwhm == 0:
        return pattern.copy()
    step = steps.mean()
    if np.ptp(steps) > 1e-6 * step:
        raise ValueError("broadening by convolution needs a uniform 2θ grid")
    half = int(math.ceil(BROADENING_WINDOW * kernel_fwhm / step))
    kernel = pseudo_voigt(step * np.arange(-half, half + 1), kernel_fwhm, 0.0)
    kernel /= kernel.sum()
    return np.convolve(pattern, kernel, mode="same")


class CombinedGradient(NamedTuple):
    """Like :class:`~xrdcore.gradients.LossGradient` (``loss``, ``d_lattice``, ``d_frac``) for
    XRD loss + w · energy, with the two parts (``energy`` NaN when not evaluated)."""

    loss: float
    d_lattice: np.ndarray
    d_frac: np.ndarray
    xrd_loss: float
    energy: float = math.nan


def combined_loss_and_grad(crystal: Crystal, target: ArrayLike | Crystal,
                           diffractometer: Diffractometer, energy_weight: float = 0.0,
                           calculator: Any = None, **options: Any) -> CombinedGradient:
    """XRD loss (:func:`~xrdcore.gradients.loss_and_grad` with ``options``) + ``energy_weight``
    · energy per atom (eV/atom, :func:`xrdcore.energy.energy_gradient`) and its exact gradient
    with respect to the lattice and the fractional coordinates. The energy is evaluated when
    ``energy_weight`` ≠ 0 or a ``calculator`` is given (then with weight 0 it is recorded but
    adds nothing)."""
    xrd = loss_and_grad(crystal, target, diffractometer, **options)
    if energy_weight == 0 and calculator is None:
        return CombinedGradient(xrd.loss, xrd.d_lattice, xrd.d_frac, xrd.loss)
    from xrdcore.energy import energy_gradient

    value, d_lattice, d_frac = energy_gradient(crystal, calculator)
    return CombinedGradient(xrd.loss + energy_weight * value,
                            xrd.d_lattice + energy_weight * d_lattice,
                            xrd.d_frac + energy_weight * d_frac, xrd.loss, value)
