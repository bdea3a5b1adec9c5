"""Optimisers for structure retrieval: Adam, plain gradient descent and L-BFGS (scipy), on any
:class:`~xrdcore.structure.parametrize.Parametrization` and any metric, with a recorded trajectory,
and three remedies for a rough loss landscape that combine with any of them.

Parameters of different kinds have different natural scales (Å for a free lattice, strain
for a family-constrained one, fractional units for coordinates). Adam's steps are in
parameter units, so each parameter gets a default step size from :func:`default_steps`
(0.01 Å, 0.002 strain, 0.002 fractional), multiplied by ``learning_rate``. Plain gradient
descent takes x ← x − ``learning_rate`` · g, with no rescaling. L-BFGS (scipy's L-BFGS-B)
needs no rate.

Every argument is checked before the first evaluation: a wrong call (an unknown metric, a bad
width, a target of the wrong length or all zero, a NaN learning rate, …) raises TypeError or
ValueError. What a *run* reaches is a status instead: a step that produces an invalid crystal
(a collapsed or inverted cell, NaN: :class:`~xrdcore.validation.StructureError`) or a pattern
on which the metric is undefined (nothing diffracts in range:
:class:`~xrdcore.validation.UndefinedMetricError`) ends that run with
``status="invalid structure"``, a cell grown beyond a resource guard
(:class:`~xrdcore.validation.ResourceLimitError`) with ``status="resource limit"``; the best
valid point so far is kept. In a study these are failures to count.

Remedies (each keeps the evaluation budget: one *evaluation* is one objective value with
its gradient; the number spent is :attr:`OptimizationResult.evaluations`):

* **continuation in peak width** (``continuation=Continuation(start_fwhm, stages)``): the
  budget is split over ``stages`` widths falling geometrically from ``start_fwhm`` to the
  target width (:func:`width_schedule`); each stage starts where the previous one ended
  best, and the result is the best point of the last stage, at the target width. The
  target at each width: re-rendered from the target *structure* when a Crystal is given;
  a measured pattern (an array) is broadened by convolution with a Gaussian of FWHM
  √(w² − w₀²) (:func:`broaden_pattern`), which is exact for Gaussian peaks of width w₀
  away from the edges of the range (peaks just outside it are missing, as in any measured
  pattern) and a smoothing of the same width for other shapes. The last stage uses the
  target as given. A broad stage samples a coarser grid (every k-th point, k = ⌊w / w₀⌋),
  so that every stage has as many grid points per peak width, and costs, as the last.
* **combined objective** (``energy_weight`` w > 0): XRD loss + w · E, with E the potential
  energy per atom (eV/atom; CHGNet by default, any ASE calculator through
  ``energy_calculator``, see :mod:`xrdcore.energy`), w in atoms/eV, and its gradient from
  forces and stress (:func:`combined_loss_and_grad`). One evaluation then includes one
  energy + forces + stress call, counted in :attr:`OptimizationResult.energy_evaluations`
  (a CHGNet call costs 10–50 × an XRD evaluation; :attr:`OptimizationResult.seconds` has the
  wall time). Convergence (``tolerance``) is judged on the XRD loss.
* **multi-start and basin hopping**: ``restarts`` runs extra starts near the start
  ((1 + restarts) × steps evaluations; pass steps // (1 + restarts) for an equal budget);
  ``basin_hopping=BasinHopping(hops, temperature)`` splits ``steps`` into ``hops`` local
  descents, each from a random kick of the last accepted end point, accepted by the
  Metropolis rule on the loss, and returns the best end point.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import check_fixed_width, loss_and_grad, loss_setup
from xrdcore.physics.profiles import as_profile
from xrdcore.optimize.remedies import (BasinHopping, Continuation, broaden_pattern,
                                       combined_loss_and_grad, split_budget, width_schedule)
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.matching import lattice_error, rms_displacement
from xrdcore.structure.parametrize import Parametrization
from xrdcore.validation import (ResourceLimitError, StructureError, UndefinedMetricError, choice,
                                instance, real, whole)

METHODS = ("adam", "gd", "lbfgs")
#: Default Adam step per parameter kind (see the module docstring).
STEP_LATTICE = 0.01  # Å
STEP_STRAIN = 0.002
STEP_COORDINATE = 0.002  # fractional
ADAM_BETAS = (0.9, 0.999)
ADAM_EPSILON = 1e-12
#: Peak width (deg) of :func:`loss_and_grad` when none is given.
DEFAULT_FWHM = inspect.signature(loss_and_grad).parameters["fwhm"].default


@dataclass
class Trajectory:
    """Per evaluation: parameters, loss, and (when the truth is known) RMS displacement (Å) and
    largest relative lattice-length error; the peak width (deg) the loss was computed at, and
    the energy (eV/atom) when the objective has an energy term (else NaN)."""

    params: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    rms_displacement: list = field(default_factory=list)
    lattice_error: list = field(default_factory=list)
    fwhm: list = field(default_factory=list)
    energy: list = field(default_factory=list)


@dataclass
class OptimizationResult:
    crystal: Crystal | None  # None when not even the start was a valid structure
    params: np.ndarray
    loss: float  # the objective: XRD loss (+ w · energy per atom with an energy term)
    # "converged", "step budget", "stalled" (L-BFGS gave up), "invalid structure",
    # "resource limit"
    status: str
    evaluations: int
    trajectory: Trajectory
    start_index: int = 0  # which start (0 = the given one) produced this result
    xrd_loss: float = math.nan  # the XRD loss alone at the result, at the target width
    energy: float = math.nan  # eV/atom at the result, with an energy term
    energy_evaluations: int = (
        0  # energy + forces + stress calls (one per evaluation with an energy term)
    )
    seconds: float = 0.0  # wall time of the whole optimisation


def default_steps(parametrization: Parametrization) -> np.ndarray:
    """Adam step size for each parameter, by kind."""
    lattice_step = STEP_LATTICE if parametrization.lattice_mode == "free" else STEP_STRAIN
    return np.concatenate([
        np.full(parametrization.n_lattice, lattice_step),
        np.full(parametrization.n_coordinates, STEP_COORDINATE)
    ])


class _Objective:
    """Objective and gradient in parameter space at one peak width, recording the trajectory."""

    def __init__(self, parametrization: Parametrization, target: ArrayLike | Crystal,
                 diffractometer: Diffractometer, truth: Crystal | None, options: dict[str, Any],
                 energy: tuple[float, Any] = (0.0, None),
                 trajectory: Trajectory | None = None) -> None:
        self.parametrization = parametrization
        self.target = target
        self.diffractometer = diffractometer
        self.truth = truth
        self.options = options
        self.energy_weight, self.calculator = energy
        self.trajectory = Trajectory() if trajectory is None else trajectory
        self.evaluations = 0
        self.energy_evaluations = 0
        self.best_params: np.ndarray | None = None
        self.best_loss: float = np.inf
        self.best_xrd_loss: float = np.inf
        self.best_energy: float = math.nan
        self.last_xrd_loss: float = np.inf

    def __call__(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        crystal = self.parametrization.crystal(params)  # ValueError for an invalid structure
        result = combined_loss_and_grad(crystal, self.target, self.diffractometer,
                                        self.energy_weight, self.calculator, **self.options)
        self.evaluations += 1
        self.energy_evaluations += int(not math.isnan(result.energy))
        self.last_xrd_loss = result.xrd_loss
        if result.loss < self.best_loss:
            self.best_params, self.best_loss = np.array(params, dtype=float), result.loss
            self.best_xrd_loss, self.best_energy = result.xrd_loss, result.energy
        self.trajectory.params.append(np.array(params, dtype=float))
        self.trajectory.loss.append(result.loss)
        self.trajectory.fwhm.append(self.options["fwhm"].fwhm)
        self.trajectory.energy.append(result.energy)
        if self.truth is not None:
            self.trajectory.rms_displacement.append(rms_displacement(crystal, self.truth))
            self.trajectory.lattice_error.append(lattice_error(crystal, self.truth)[0])
        return result.loss, self.parametrization.gradient(result)


class _Problem:
    """What every local descent of one :func:`optimize` call shares: the stages (targets at each
    width), the method and its settings."""

    def __init__(self, parametrization: Parametrization, target: ArrayLike | Crystal,
                 diffractometer: Diffractometer, truth: Crystal | None, options: dict[str, Any],
                 energy: tuple[float, Any], method: str, learning_rate: float, tolerance: float,
                 continuation: Continuation | None) -> None:
        self.parametrization, self.diffractometer, self.truth = (parametrization, diffractometer,
                                                                 truth)
        self.options, self.energy = options, energy
        self.method, self.learning_rate, self.tolerance = method, learning_rate, tolerance
        self.continuation = continuation
        self.target = target
        self._targets: dict[float, np.ndarray] = {}

    def stages(self, steps: int) -> list[tuple[dict[str, Any], ArrayLike | Crystal, int]]:
        """(options, target, evaluations) per stage of a descent of ``steps`` evaluations. A stage
        of width w samples every k-th point of the grid, k = ⌊w / FWHM⌋: as many points per peak
        width as the target has, so a broad stage costs no more than a sharp one."""
        profile = self.options["fwhm"]
        if self.continuation is None:
            return [(self.options, self.target, steps)]
        fwhm = profile.fwhm
        grid = self.diffractometer.profile_setup(self.options.get("two_theta"), profile).grid
        stages = []
        for width, budget in width_schedule(self.continuation.start_fwhm, fwhm,
                                            self.continuation.stages, steps):
            stride = max(1, int(width / fwhm + 1e-9))
            options = {**self.options, "fwhm": replace(profile, fwhm=width)}
            if stride > 1:
                options["two_theta"] = grid[::stride]
            stages.append((options, self._target_at(width, fwhm, grid, stride), budget))
        return stages

    def _target_at(self, width: float, fwhm: float, grid: np.ndarray,
                   stride: int) -> ArrayLike | Crystal:
        if width == fwhm or isinstance(self.target, Crystal):
            return (
                self.target)  # loss_and_grad renders a Crystal target at the stage's width and grid
        if width not in self._targets:
            self._targets[width] = broaden_pattern(self.target, grid, fwhm, width)[::stride]
        return self._targets[width]

    def descend(self, params: np.ndarray, steps: int, trajectory: Trajectory) -> OptimizationResult:
        """One local descent (through every continuation stage) from ``params``."""
        evaluations = energy_evaluations = 0
        result = None
        stages = self.stages(steps)
        for index, (options, target, budget) in enumerate(stages):
            budget += (steps - evaluations - sum(b for _, _, b in stages[index:])
                       )  # unspent evaluations roll over
            objective = _Objective(self.parametrization, target, self.diffractometer, self.truth,
                                   options, self.energy, trajectory)
            result = _run(self.method, objective, params, budget, self.learning_rate,
                          self.tolerance)
            evaluations += objective.evaluations
            energy_evaluations += objective.energy_evaluations
            if result.crystal is None:
                break
            params = result.params
        assert result is not None  # stages() gives at least one stage
        result.evaluations, result.energy_evaluations = evaluations, energy_evaluations
        return result


def optimize(parametrization: Parametrization, start: Crystal, target: ArrayLike | Crystal,
             diffractometer: Diffractometer, method: str = "adam", steps: int = 200,
             learning_rate: float = 1.0, tolerance: float = 1e-10, restarts: int = 0,
             restart_scale: float = 5.0, seed: int = 0, truth: Crystal | None = None,
             continuation: Continuation | None = None, energy_weight: float = 0.0,
             energy_calculator: Any = None, basin_hopping: BasinHopping | None = None,
             **options: Any) -> OptimizationResult:
    """Minimise the loss of :func:`xrdcore.gradients.loss_and_grad` over ``parametrization``,
    optionally with the remedies of the module docstring.

    Parameters
    ----------
    start : the starting structure, projected onto the parametrisation first.
    target : pattern on the diffractometer's grid, or a Crystal.
    method : "adam", "gd" or "lbfgs".
    steps : evaluation budget per start.
    learning_rate : multiplier of the default Adam steps; the step for "gd".
    tolerance : stop once the (XRD) loss is below this.
    restarts : extra starts, each the projected start plus Gaussian noise of ``restart_scale``
        default steps per parameter (seeded); the best final loss wins. Total budget is
        (1 + restarts) × steps evaluations.
    truth : when known, the trajectory records the distance to it.
    continuation : a :class:`Continuation` (peak-width schedule within the budget).
    energy_weight : w of the combined objective XRD loss + w · E (atoms/eV); 0 = XRD only.
    energy_calculator : ASE calculator or name for the energy term (default CHGNet).
    basin_hopping : a :class:`BasinHopping` (``steps`` shared by its hops; not with ``restarts``).
    options : metric, fwhm (a width or a :class:`~xrdcore.physics.profiles.Profile`), two_theta
        and the metric's own options, as for :func:`loss_and_grad`.
    """
    begin = time.perf_counter()
    instance(parametrization, "parametrization", Parametrization,
             "make one with xrdcore.structure.parametrize (p1, space_group, …)")
    instance(start, "start", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    if truth is not None:
        instance(truth, "truth", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
        if len(truth) != len(start):
            raise ValueError(
                f"truth has {len(truth)} atoms, the start {len(start)}: they must be the same atoms"
            )
    method = choice(method, "method", METHODS)
    steps = whole(steps, "steps", low=1)
    learning_rate = real(learning_rate, "learning_rate", low=0, low_open=True)
    tolerance = real(tolerance, "tolerance")  # a negative one never stops a run early
    restarts = whole(restarts, "restarts", low=0)
    restart_scale = real(restart_scale, "restart_scale", low=0)
    seed = whole(seed, "seed", low=0)
    energy_weight = real(energy_weight, "energy_weight", low=0, unit="atoms/eV")
    if continuation is not None:
        instance(continuation, "continuation", Continuation)
        real(continuation.start_fwhm, "continuation.start_fwhm", low=0, low_open=True, unit="deg")
        whole(continuation.stages, "continuation.stages", low=1)
    if basin_hopping is not None:
        instance(basin_hopping, "basin_hopping", BasinHopping)
        whole(basin_hopping.hops, "basin_hopping.hops", low=1, high=steps)
        real(basin_hopping.temperature, "basin_hopping.temperature", low=0, low_open=True)
        if basin_hopping.scale is not None:
            real(basin_hopping.scale, "basin_hopping.scale", low=0)
        if restarts:
            raise ValueError("choose restarts or basin hopping, not both")
    if energy_weight:
        from xrdcore.energy import check_supported

        check_supported(start, energy_calculator)  # a missing element is an error, not a failed run
    if "reflections" in options:
        raise TypeError(
            "optimize enumerates the reflections of every step itself; do not pass reflections=")
    loss_setup(target, diffractometer, **options)  # a wrong call fails here, not as a failed run
    # one Profile for every evaluation
    options["fwhm"] = as_profile(check_fixed_width(options.get("fwhm", DEFAULT_FWHM)))
    problem = _Problem(parametrization, target, diffractometer, truth, options,
                       (energy_weight, energy_calculator if energy_weight else None), method,
                       learning_rate, tolerance, continuation)
    if continuation is not None:
        problem.stages(steps)  # a start width below the target's fails here, not in the run
    rng = np.random.default_rng(seed)
    first = parametrization.parameters(start)
    if basin_hopping is not None:
        scale = restart_scale if basin_hopping.scale is None else basin_hopping.scale
        best = _basin_hopping(problem, first, steps, basin_hopping, scale, rng)
    else:
        starts = [first] + [
            first +
            restart_scale * default_steps(parametrization) * rng.standard_normal(first.shape)
            for _ in range(restarts)
        ]
        results = []
        for index, params in enumerate(starts):
            result = problem.descend(params, steps, Trajectory())
            result.start_index = index
            results.append(result)
        best = min(results, key=lambda r: r.loss if np.isfinite(r.loss) else np.inf)
        best.evaluations = sum(r.evaluations for r in results)
        best.energy_evaluations = sum(r.energy_evaluations for r in results)
    best.seconds = time.perf_counter() - begin
    return best


def _basin_hopping(problem: _Problem, first: np.ndarray, steps: int, settings: BasinHopping,
                   scale: float, rng: np.random.Generator) -> OptimizationResult:
    """Metropolis chain of local descents sharing ``steps``; one trajectory for the whole chain
    (``settings`` checked by :func:`optimize`)."""
    kick = scale * default_steps(problem.parametrization)
    trajectory = Trajectory()
    evaluations = energy_evaluations = 0
    current: OptimizationResult | None = None
    best: OptimizationResult | None = None
    for hop, budget in enumerate(split_budget(steps, settings.hops)):
        params = (first if current is None else current.params +
                  kick * rng.standard_normal(first.shape))
        result = problem.descend(params, budget, trajectory)
        result.start_index = hop
        evaluations += result.evaluations
        energy_evaluations += result.energy_evaluations
        if best is None or result.loss < best.loss:
            best = result
        if (current is None or result.loss <= current.loss or
            (np.isfinite(result.loss) and
             rng.random() < math.exp(-(result.loss - current.loss) / settings.temperature))):
            current = result
        if best.status == "converged":
            break
    assert best is not None  # split_budget gives at least one hop
    best.trajectory, best.evaluations, best.energy_evaluations = (trajectory, evaluations,
                                                                  energy_evaluations)
    return best


def _run(method: str, objective: _Objective, params: np.ndarray, steps: int, learning_rate: float,
         tolerance: float) -> OptimizationResult:
    try:
        if method == "lbfgs":
            status = lbfgs_descent(objective, params, steps, tolerance)
        else:
            status = first_order_descent(
                method, objective, params, steps,
                default_steps(objective.parametrization) * learning_rate, learning_rate, tolerance)
    except (StructureError, UndefinedMetricError):
        status = "invalid structure"
    except ResourceLimitError:
        status = "resource limit"
    if objective.best_params is None:  # not even the start was a valid structure
        return OptimizationResult(None, params, float("inf"), status, objective.evaluations,
                                  objective.trajectory)
    crystal = objective.parametrization.crystal(objective.best_params)
    return OptimizationResult(crystal, objective.best_params, float(objective.best_loss), status,
                              objective.evaluations, objective.trajectory, xrd_loss=float(
                                  objective.best_xrd_loss), energy=float(objective.best_energy),
                              energy_evaluations=objective.energy_evaluations)


def first_order_descent(method: str, objective: Any, params: np.ndarray, steps: int,
                        step_sizes: np.ndarray, learning_rate: float, tolerance: float) -> str:
    """Adam (per-parameter steps ``step_sizes``) or plain gradient descent (steps of
    ``learning_rate`` · gradient) on ``objective(params) -> (loss, gradient)``, stopping once its
    ``last_xrd_loss`` is below ``tolerance``; returns the stopping status."""
    first_moment = np.zeros_like(params)
    second_moment = np.zeros_like(params)
    for step in range(1, steps + 1):
        loss, gradient = objective(params)
        if objective.last_xrd_loss < tolerance:
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


def lbfgs_descent(objective: Any, params: np.ndarray, steps: int, tolerance: float) -> str:
    """scipy's L-BFGS-B on ``objective`` for at most ``steps`` evaluations (its ``evaluations``
    and ``best_xrd_loss`` judge the status)."""
    from scipy.optimize import minimize

    minimize(objective, params, jac=True, method="L-BFGS-B", options=dict(
        maxfun=steps, maxiter=steps, ftol=0, gtol=0))
    if objective.best_xrd_loss < tolerance:
        return "converged"
    return "step budget" if objective.evaluations >= steps else "stalled"
