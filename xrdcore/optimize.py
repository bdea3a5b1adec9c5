"""Optimisers for structure retrieval: Adam, plain gradient descent and L-BFGS (scipy), on any
:class:`~xrdcore.parametrize.Parametrization` and any metric, with a recorded trajectory.

Parameters of different kinds have different natural scales (Å for a free lattice, strain
for a family-constrained one, fractional units for coordinates). Adam's steps are in
parameter units, so each parameter gets a default step size from :func:`default_steps`
(0.01 Å, 0.002 strain, 0.002 fractional), multiplied by ``learning_rate``. Plain gradient
descent takes x ← x − ``learning_rate`` · g, with no rescaling. L-BFGS (scipy's L-BFGS-B)
needs no rate.

A step that produces an invalid crystal (a collapsed or inverted cell, NaN) ends that run
with ``status="invalid structure"`` instead of raising: in a study this is a failure to count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .crystal import Crystal
from .gradients import loss_and_grad
from .parametrize import Parametrization
from .structsim import lattice_error, rms_displacement

METHODS = ("adam", "gd", "lbfgs")
#: Default Adam step per parameter kind (see the module docstring).
STEP_LATTICE = 0.01  # Å
STEP_STRAIN = 0.002
STEP_COORDINATE = 0.002  # fractional
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-12


@dataclass
class Trajectory:
    """Per evaluation: parameters, loss, and (when the truth is known) RMS displacement (Å) and
    largest relative lattice-length error."""

    params: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    rms_displacement: list = field(default_factory=list)
    lattice_error: list = field(default_factory=list)


@dataclass
class OptimizationResult:
    crystal: Crystal
    params: np.ndarray
    loss: float
    status: str  # "converged", "step budget", "stalled" (L-BFGS line search gave up), "invalid structure"
    evaluations: int
    trajectory: Trajectory
    start_index: int = 0  # which start (0 = the given one) produced this result


def default_steps(parametrization: Parametrization) -> np.ndarray:
    """Adam step size for each parameter, by kind."""
    lattice_step = STEP_LATTICE if parametrization.lattice_mode == "free" else STEP_STRAIN
    return np.concatenate([np.full(parametrization.n_lattice, lattice_step), np.full(parametrization.n_coordinates, STEP_COORDINATE)])


class _Objective:
    """loss and gradient in parameter space, recording the trajectory."""

    def __init__(self, parametrization, target, diffractometer, truth, options):
        self.parametrization = parametrization
        self.target = target
        self.diffractometer = diffractometer
        self.truth = truth
        self.options = options
        self.trajectory = Trajectory()
        self.evaluations = 0
        self.best_params = None
        self.best_loss = np.inf

    def __call__(self, params):
        crystal = self.parametrization.crystal(params)  # ValueError for an invalid structure
        result = loss_and_grad(crystal, self.target, self.diffractometer, **self.options)
        self.evaluations += 1
        if result.loss < self.best_loss:
            self.best_params, self.best_loss = np.array(params, dtype=float), result.loss
        self.trajectory.params.append(np.array(params, dtype=float))
        self.trajectory.loss.append(result.loss)
        if self.truth is not None:
            self.trajectory.rms_displacement.append(rms_displacement(crystal, self.truth))
            self.trajectory.lattice_error.append(lattice_error(crystal, self.truth)[0])
        return result.loss, self.parametrization.gradient(result)


def optimize(
    parametrization: Parametrization,
    start: Crystal,
    target,
    diffractometer,
    method: str = "adam",
    steps: int = 200,
    learning_rate: float = 1.0,
    tolerance: float = 1e-10,
    restarts: int = 0,
    restart_scale: float = 5.0,
    seed: int = 0,
    truth: Crystal | None = None,
    **options,
) -> OptimizationResult:
    """Minimise the loss of :func:`xrdcore.gradients.loss_and_grad` over ``parametrization``.

    Parameters
    ----------
    start : the starting structure, projected onto the parametrisation first.
    target : pattern on the diffractometer's grid, or a Crystal.
    method : "adam", "gd" or "lbfgs".
    steps : evaluation budget per start.
    learning_rate : multiplier of the default Adam steps; the step for "gd".
    tolerance : stop once the loss is below this.
    restarts : extra starts, each the projected start plus Gaussian noise of ``restart_scale``
        default steps per parameter (seeded); the best final loss wins. Total budget is
        (1 + restarts) × steps evaluations.
    truth : when known, the trajectory records the distance to it.
    options : metric, fwhm, shape, … for :func:`loss_and_grad`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if steps < 1:
        raise ValueError("steps must be ≥ 1")
    rng = np.random.default_rng(seed)
    first = parametrization.parameters(start)
    starts = [first] + [first + restart_scale * default_steps(parametrization) * rng.standard_normal(first.shape) for _ in range(restarts)]
    results = []
    for index, params in enumerate(starts):
        objective = _Objective(parametrization, target, diffractometer, truth, options)
        result = _run(method, objective, params, steps, learning_rate, tolerance)
        result.start_index = index
        results.append(result)
    best = min(results, key=lambda r: r.loss if np.isfinite(r.loss) else np.inf)
    best.evaluations = sum(r.evaluations for r in results)
    return best


def _run(method, objective, params, steps, learning_rate, tolerance) -> OptimizationResult:
    try:
        if method == "lbfgs":
            status = _lbfgs(objective, params, steps, tolerance)
        else:
            status = _first_order(method, objective, params, steps, learning_rate, tolerance)
    except ValueError:
        status = "invalid structure"
    if objective.best_params is None:  # not even the start was a valid structure
        return OptimizationResult(None, params, float("inf"), status, objective.evaluations, objective.trajectory)
    crystal = objective.parametrization.crystal(objective.best_params)
    return OptimizationResult(crystal, objective.best_params, float(objective.best_loss), status, objective.evaluations, objective.trajectory)


def _first_order(method, objective, params, steps, learning_rate, tolerance) -> str:
    """Adam or plain gradient descent; returns the stopping status."""
    step_sizes = default_steps(objective.parametrization) * learning_rate
    first_moment = np.zeros_like(params)
    second_moment = np.zeros_like(params)
    for step in range(1, steps + 1):
        loss, gradient = objective(params)
        if loss < tolerance:
            return "converged"
        if step == steps:
            break
        if method == "gd":
            params = params - learning_rate * gradient
            continue
        beta1, beta2 = ADAM_BETAS
        first_moment = beta1 * first_moment + (1 - beta1) * gradient
        second_moment = beta2 * second_moment + (1 - beta2) * gradient**2
        corrected = first_moment / (1 - beta1**step)
        scale = np.sqrt(second_moment / (1 - beta2**step)) + ADAM_EPSILON
        params = params - step_sizes * corrected / scale
    return "step budget"


def _lbfgs(objective, params, steps, tolerance) -> str:
    from scipy.optimize import minimize

    minimize(objective, params, jac=True, method="L-BFGS-B", options=dict(maxfun=steps, maxiter=steps, ftol=0, gtol=0))
    if objective.best_loss < tolerance:
        return "converged"
    return "step budget" if objective.evaluations >= steps else "stalled"
