"""Adam and plain gradient descent for a batch of starts at once, through
:class:`~xrdcore.batch.BatchLoss`.

:func:`descend_batch` runs exactly the algorithm of :func:`xrdcore.optimize.core.optimize` with
``method="adam"`` or ``"gd"`` and no remedy — the same default step sizes, the same budget of
``steps`` evaluations, the same best-point bookkeeping and stopping rules ("converged" once
the loss is below ``tolerance``, "invalid structure" when a step leaves the valid cells or
nothing diffracts, else "step budget") — for B starts in one parametrisation, but evaluates
the loss of all B structures per step in one batched call. The parametrisation's map is
applied to the whole batch (:meth:`~xrdcore.structure.parametrize.Parametrization.structures`); no
Crystal is built inside the loop and no trajectory is recorded.

The batch shares one reflection list, enumerated at the parametrisation's reference (the
truth, in a study) with a margin that covers every start; when a structure moves beyond it
the list is enumerated again with a larger margin, and a structure beyond
``MAX_MARGIN`` is evaluated alone by :func:`xrdcore.gradients.loss_and_grad`, so no
reflection is ever missing. Results agree with the single-structure path to rounding
(~1e-12 relative per evaluation; tested against :func:`~xrdcore.optimize.core.optimize`).
Two differences, both about cells no study reaches: a cell of volume below
:data:`xrdcore.structure.crystal.MIN_CELL_VOLUME` is invalid here as there, but two atoms at one
position (which a Crystal refuses) are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.batch import BatchLoss
from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import DEFAULT_MARGIN, check_profile_keywords, loss_and_grad, required_margin
from xrdcore.optimize.core import ADAM_BETAS, ADAM_EPSILON, METHODS, default_steps
from xrdcore.similarity import check_options
from xrdcore.structure.crystal import MIN_CELL_VOLUME, Crystal
from xrdcore.structure.parametrize import Parametrization
from xrdcore.validation import (ResourceLimitError, StructureError, UndefinedMetricError, choice,
                                instance, real, real_array, whole)

#: Extra relative margin of a reflection list beyond what the current lattices need.
MARGIN_HEADROOM = 0.05
#: Largest margin of a shared list; a lattice needing more is evaluated alone.
MAX_MARGIN = 0.5
BATCH_METHODS = ("adam", "gd")
#: Keyword options of :func:`descend_batch`, passed to BatchLoss and loss_and_grad alike.
BATCH_OPTIONS = ("metric", "fwhm")


@dataclass
class BatchDescent:
    """Per start (B,): best parameters (B, size), best loss (inf when not even the start was a
    valid structure), the loss at the start (NaN when invalid), status and evaluations spent."""

    params: np.ndarray
    loss: np.ndarray
    start_loss: np.ndarray
    status: list
    evaluations: np.ndarray

    def crystal(self, parametrization: Parametrization, index: int) -> Crystal | None:
        """The best structure of start ``index`` (None when no evaluation was valid)."""
        if not np.isfinite(self.loss[index]):
            return None
        return parametrization.crystal(self.params[index])


class _BatchObjective:
    """Loss and parameter gradient of a set of parameter vectors, with the reflection list kept
    complete."""

    def __init__(self, parametrization: Parametrization, target: ArrayLike | Crystal,
                 diffractometer: Diffractometer, options: dict[str, Any],
                 starts: np.ndarray) -> None:
        self.parametrization, self.target = parametrization, target
        self.diffractometer, self.options = diffractometer, options
        self.reference = parametrization.reference.lattice
        lattices, _, valid = self._structures(starts)
        self._rebuild(required_margin(self.reference, lattices[valid]))

    def _structures(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lattices, coordinates and which parameter vectors give a valid cell (finite, volume ≥
        MIN_CELL_VOLUME)."""
        lattices, frac_coords = self.parametrization.structures(params)
        valid = np.all(np.isfinite(params), axis=1)
        valid[valid] = np.linalg.det(lattices[valid]) >= MIN_CELL_VOLUME
        return lattices, frac_coords, valid

    def _rebuild(self, needed: np.ndarray) -> None:
        within = needed[needed <= MAX_MARGIN]
        margin = min(MAX_MARGIN,
                     max(DEFAULT_MARGIN, (within.max() if len(within) else 0.0) + MARGIN_HEADROOM))
        self.batch_loss = BatchLoss(self.parametrization.reference, self.target,
                                    self.diffractometer, margin=margin, **self.options)

    def __call__(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Losses (B,) (NaN for an invalid structure) and gradients (B, size)."""
        lattices, frac_coords, valid = self._structures(params)
        losses = np.full(len(params), np.nan)
        d_lattice = np.zeros((len(params), 3, 3))
        d_frac = np.zeros(frac_coords.shape)
        if np.any(valid):
            needed = np.full(len(params), np.inf)
            needed[valid] = required_margin(self.reference, lattices[valid])
            if np.any(needed[valid] > self.batch_loss.reflections.margin):
                self._rebuild(needed[valid])
            shared = valid & (needed <= self.batch_loss.reflections.margin)
            if np.any(shared):
                losses[shared], d_lattice[shared], d_frac[shared] = self.batch_loss(
                    lattices[shared], frac_coords[shared], undefined="nan")
            for b in np.flatnonzero(valid & ~shared):  # moved too far for a shared list
                try:
                    crystal = self.parametrization.template.replace(lattice=lattices[b],
                                                                    frac_coords=frac_coords[b])
                    losses[b], d_lattice[b], d_frac[b] = loss_and_grad(
                        crystal, self.target, self.diffractometer, **self.options)
                except (StructureError, UndefinedMetricError,
                        ResourceLimitError):  # what a run reaches, not a wrong call
                    losses[b] = np.nan
        return losses, self.parametrization.gradients(d_lattice, d_frac)


def descend_batch(parametrization: Parametrization, starts: ArrayLike, target: ArrayLike | Crystal,
                  diffractometer: Diffractometer, method: str = "adam", steps: int = 200,
                  learning_rate: float = 1.0, tolerance: float = 1e-10,
                  **options: Any) -> BatchDescent:
    """Descend from every start (B, size) (parameter vectors of ``parametrization``) for at most
    ``steps`` evaluations each; ``options`` are BatchLoss's (metric, and fwhm: a width or a
    :class:`~xrdcore.physics.profiles.Profile`).
    Same algorithm as :func:`xrdcore.optimize.core.optimize` (see the module docstring)."""
    instance(parametrization, "parametrization", Parametrization,
             "make one with xrdcore.structure.parametrize.p1(crystal)")
    if method in METHODS and method not in BATCH_METHODS:
        raise ValueError(f"batched descent supports {BATCH_METHODS}, got {method!r} "
                         f"(use xrdcore.optimize for others)")
    choice(method, "method", BATCH_METHODS)
    steps = whole(steps, "steps", low=1)
    learning_rate = real(learning_rate, "learning_rate", low=0, low_open=True)
    tolerance = real(tolerance, "tolerance", low=0)
    check_profile_keywords(options, "descend_batch")
    check_options(options, BATCH_OPTIONS, "descend_batch")
    starts = real_array(starts, "starts")
    starts = starts[None] if starts.ndim == 1 else starts
    if starts.ndim != 2 or starts.shape[1] != parametrization.size or len(starts) == 0:
        raise ValueError(
            f"starts must have shape (B, {parametrization.size}) with B ≥ 1, one parameter vector "
            f"of the parametrisation per row, got {starts.shape}")
    n_starts = len(starts)
    objective = _BatchObjective(parametrization, target, diffractometer, options, starts)
    params = starts.copy()
    best_params = np.full(starts.shape, np.nan)
    best_loss = np.full(n_starts, np.inf)
    start_loss = np.full(n_starts, np.nan)
    evaluations = np.zeros(n_starts, dtype=np.int64)
    status = ["step budget"] * n_starts
    step_sizes = default_steps(parametrization) * learning_rate
    first_moment = np.zeros(starts.shape)
    second_moment = np.zeros(starts.shape)
    active = np.arange(n_starts)
    beta1, beta2 = ADAM_BETAS
    for step in range(1, steps + 1):
        losses, gradients = objective(params[active])
        valid = np.isfinite(losses)
        for b in active[~valid]:
            status[b] = "invalid structure"
        evaluations[active[valid]] += 1
        if step == 1:
            start_loss[active] = losses
        better = valid & (losses < best_loss[active])
        best_loss[active[better]] = losses[better]
        best_params[active[better]] = params[active[better]]
        converged = valid & (losses < tolerance)
        for b in active[converged]:
            status[b] = "converged"
        keep = valid & ~converged
        active, gradients = active[keep], gradients[keep]
        if step == steps or len(active) == 0:
            break
        if method == "gd":
            params[active] -= learning_rate * gradients
            continue
        first_moment[active] = beta1 * first_moment[active] + (1 - beta1) * gradients
        second_moment[active] = beta2 * second_moment[active] + (1 - beta2) * gradients**2
        corrected = first_moment[active] / (1 - beta1**step)
        scale = np.sqrt(second_moment[active] / (1 - beta2**step)) + ADAM_EPSILON
        params[active] = params[active] - step_sizes * corrected / scale
    return BatchDescent(best_params, best_loss, start_loss, status, evaluations)
