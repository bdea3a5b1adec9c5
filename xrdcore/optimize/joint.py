"""Joint refinement: the structure together with instrument and sample settings, against a
measured pattern (:mod:`xrdcore.measurement`), as a Rietveld program refines them.

The structure moves through any :class:`~xrdcore.structure.parametrize.Parametrization` (P1 or
constrained); the settings named in ``free`` (of
:data:`~xrdcore.physics.instrument.PARAMETERS`, and ``"b_iso:<element>"`` for one species' B)
move with it. Every parameter is optimised in units of its own step (:data:`INSTRUMENT_STEPS`,
:func:`~xrdcore.optimize.core.default_steps` for the structure): Adam then takes the same
steps as :func:`~xrdcore.optimize.core.optimize`, and L-BFGS sees a well-scaled problem. The
scale and the March–Dollase ratio move on a log scale (they stay positive), η is clipped to
[0, 1]. A free background starts from the target's lower envelope
(:func:`~xrdcore.physics.instrument.background_envelope`: fitted to the start structure, a
background would soak up the peaks the start puts in the wrong places), then a free scale from
its weighted least-squares fit to the rest (:func:`~xrdcore.measurement.fit_linear`).

The losses are the book's metrics, or ``metric="rwp_counts"`` against counts. A step that makes
an invalid crystal or instrument (a non-positive Caglioti width) ends the run with
``status="invalid structure"`` and keeps the best point so far, as :func:`optimize` does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.measurement import fit_linear, measured_loss_and_grad, measurement_grid
from xrdcore.optimize.core import METHODS, default_steps, first_order_descent, lbfgs_descent
from xrdcore.physics.instrument import PARAMETERS, Instrument, background_envelope
from xrdcore.physics.profiles import LORENTZIAN_WINDOW
from xrdcore.structure.crystal import Crystal, atomic_number
from xrdcore.structure.matching import rms_displacement
from xrdcore.structure.parametrize import Parametrization
from xrdcore.validation import (ResourceLimitError, StructureError, UndefinedMetricError, choice,
                                instance, real, whole)

#: Step (the unit of optimisation) of each instrument setting: relative for the scale and the
#: March–Dollase ratio (log scale), deg for the zero shift, mm for the displacement, deg² for
#: U, V, W, Å² for B; the background's is this fraction of the target's mean (a step of the
#: peaks' size would send the background negative wherever the pattern is near zero).
INSTRUMENT_STEPS = dict(scale=0.01, zero_shift=0.002, displacement=0.005, u=1e-4, v=1e-4, w=1e-4,
                        eta=0.01, march_dollase=0.005, background=0.002, b_iso=0.01)
#: Settings optimised as logarithms.
LOG_SCALE = ("scale", "march_dollase")


@dataclass
class RefinementResult:
    """The best point of a joint refinement: ``crystal`` (None when not even the start was
    valid), ``instrument``, ``loss``, ``status`` (as :class:`~xrdcore.optimize.core.
    OptimizationResult`), ``evaluations``, the loss (and, with a truth, the RMS displacement in
    Å) at every evaluation, and the wall time (s)."""

    crystal: Crystal | None
    instrument: Instrument
    loss: float
    status: str
    evaluations: int
    losses: list = field(default_factory=list)
    rms_displacement: list = field(default_factory=list)
    seconds: float = 0.0


class _Layout:
    """Where each parameter sits in the optimiser's vector, and its step."""

    def __init__(self, parametrization: Parametrization, instrument: Instrument,
                 free: Sequence[str], target_scale: float) -> None:
        self.parametrization = parametrization
        self.settings = tuple(name for name in free if not name.startswith("b_iso:"))
        self.species = tuple(name.partition(":")[2] for name in free if name.startswith("b_iso:"))
        steps = [default_steps(parametrization)]
        for name in self.settings:
            size = len(instrument.background) if name == "background" else 1
            step = INSTRUMENT_STEPS[name] * (target_scale if name == "background" else 1.0)
            steps.append(np.full(size, step))
        steps.append(np.full(len(self.species), INSTRUMENT_STEPS["b_iso"]))
        self.steps = np.concatenate(steps)
        self.n_structure = parametrization.size
        self.n_settings = len(self.steps) - self.n_structure - len(self.species)

    def vector(self, crystal: Crystal, instrument: Instrument) -> np.ndarray:
        """The optimiser's vector (in steps) of a crystal and instrument."""
        settings = instrument.values(self.settings)
        for name, offset in zip(self.settings, self._offsets(instrument)):
            if name in LOG_SCALE:
                settings[offset] = math.log(settings[offset])
        b_iso = [
            crystal.b_iso[crystal.atomic_numbers == atomic_number(s)].mean() for s in self.species
        ]
        return np.concatenate([self.parametrization.parameters(crystal), settings, b_iso
                               ]) / self.steps

    def point(self, vector: np.ndarray, instrument: Instrument) -> tuple[Crystal, Instrument]:
        """The crystal and instrument of an optimiser's vector (ValueError if invalid)."""
        values = vector * self.steps
        crystal = self.parametrization.crystal(values[:self.n_structure])
        settings = values[self.n_structure:self.n_structure + self.n_settings].copy()
        for name, offset in zip(self.settings, self._offsets(instrument)):
            if name in LOG_SCALE:
                settings[offset] = math.exp(min(settings[offset], 700.0))
            if name == "eta":
                settings[offset] = min(max(settings[offset], 0.0), 1.0)
        instrument = instrument.with_values(self.settings, settings)
        if self.species:
            b_iso = crystal.b_iso.copy()
            for symbol, value in zip(self.species, values[self.n_structure + self.n_settings:]):
                b_iso[crystal.atomic_numbers == atomic_number(symbol)] = value
            crystal = crystal.replace(b_iso=np.clip(b_iso, 0.0, None))
        return crystal, instrument

    def _offsets(self, instrument: Instrument) -> list[int]:
        offsets, position = [], 0
        for name in self.settings:
            offsets.append(position)
            position += len(instrument.background) if name == "background" else 1
        return offsets

    def gradient(self, result: Any, instrument: Instrument) -> np.ndarray:
        """dL/d(vector) from a :class:`~xrdcore.measurement.MeasuredGradient`."""
        parts = [self.parametrization.gradient(result)]
        for name in self.settings:
            value = np.atleast_1d(np.asarray(result.d_instrument[name], dtype=float))
            if name in LOG_SCALE:
                value = value * getattr(instrument, name)  # d/d log x = x d/dx
            parts.append(value)
        parts.append(np.array([result.d_b_iso.get(s, 0.0) for s in self.species]))
        return np.concatenate(parts) * self.steps


class _JointObjective:
    """Loss and gradient in the optimiser's units, keeping the best point and the history."""

    def __init__(self, layout: _Layout, instrument: Instrument, target: ArrayLike,
                 diffractometer: Diffractometer, metric: str, two_theta: ArrayLike | None,
                 truth: Crystal | None, options: dict[str, Any]) -> None:
        self.layout, self.instrument, self.target = layout, instrument, target
        self.diffractometer, self.metric, self.two_theta = diffractometer, metric, two_theta
        self.truth, self.options = truth, options
        self.evaluations = 0
        self.best_vector: np.ndarray | None = None
        self.best_loss = self.last_xrd_loss = math.inf
        self.losses: list[float] = []
        self.rms: list[float] = []

    @property
    def best_xrd_loss(self) -> float:
        """The loss :func:`~xrdcore.optimize.core.lbfgs_descent` judges (there is no energy
        term here: the best loss)."""
        return self.best_loss

    def __call__(self, vector: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            crystal, instrument = self.layout.point(vector, self.instrument)
            result = measured_loss_and_grad(crystal, self.target, self.diffractometer, instrument,
                                            self.metric, self.two_theta, **self.options)
        except (StructureError, UndefinedMetricError, ResourceLimitError):
            raise
        except ValueError as error:  # an instrument no measurement can have
            raise StructureError(str(error)) from error
        self.evaluations += 1
        self.last_xrd_loss = result.loss
        if result.loss < self.best_loss:
            self.best_vector, self.best_loss = np.array(vector, dtype=float), result.loss
        self.losses.append(result.loss)
        if self.truth is not None:
            self.rms.append(rms_displacement(crystal, self.truth))
        return result.loss, self.layout.gradient(result, instrument)


def refine(parametrization: Parametrization, start: Crystal, target: ArrayLike,
           diffractometer: Diffractometer, instrument: Instrument,
           free: Sequence[str] = ("scale", "zero_shift", "background"), metric: str = "cosine",
           method: str = "adam", steps: int = 200, learning_rate: float = 1.0,
           tolerance: float = 1e-10, two_theta: ArrayLike | None = None,
           truth: Crystal | None = None, **options: Any) -> RefinementResult:
    """Refine the structure and the instrument settings ``free`` together against ``target``.

    Parameters
    ----------
    start : the starting structure (projected onto the parametrisation).
    target : the measured pattern (or counts, with ``metric="rwp_counts"``) on the grid.
    instrument : the model's settings, fixed unless named in ``free``; their start values.
    free : names of :data:`~xrdcore.physics.instrument.PARAMETERS` and ``"b_iso:<element>"``.
    method, steps, learning_rate, tolerance : as for :func:`~xrdcore.optimize.core.optimize`.
    options : the metric's own options.
    """
    begin = time.perf_counter()
    instance(parametrization, "parametrization", Parametrization,
             "make one with xrdcore.structure.parametrize (p1, space_group, …)")
    instance(start, "start", Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    method = choice(method, "method", METHODS)
    steps = whole(steps, "steps", low=1)
    learning_rate = real(learning_rate, "learning_rate", low=0, low_open=True)
    tolerance = real(tolerance, "tolerance")
    free = _check_free(free, start)
    grid = measurement_grid(diffractometer, instrument, two_theta)
    measured_loss_and_grad(start, target, diffractometer, instrument, metric, two_theta,
                           **options)  # a wrong call fails here, not as a failed run
    if "eta" in free and instrument.window is None:
        instrument = replace(instrument, window=LORENTZIAN_WINDOW)  # fixed while η moves
    start = parametrization.project(start)
    if "background" in free:  # from the data alone: a misfit start would put peaks in it
        instrument = replace(instrument, background=tuple(
            background_envelope(grid, target, len(instrument.background))))
    if "scale" in free:
        instrument = fit_linear(start, target, diffractometer, instrument, grid,
                                background=False)
    layout = _Layout(parametrization, instrument, free, float(np.abs(target).mean()))
    objective = _JointObjective(layout, instrument, target, diffractometer, metric, two_theta,
                                truth, options)
    vector = layout.vector(start, instrument)
    try:
        if method == "lbfgs":
            status = lbfgs_descent(objective, vector, steps, tolerance)
        else:
            status = first_order_descent(method, objective, vector, steps,
                                         np.full(len(vector), learning_rate), learning_rate,
                                         tolerance)
    except (StructureError, UndefinedMetricError):
        status = "invalid structure"
    except ResourceLimitError:
        status = "resource limit"
    seconds = time.perf_counter() - begin
    if objective.best_vector is None:
        return RefinementResult(None, instrument, math.inf, status, objective.evaluations,
                                objective.losses, objective.rms, seconds)
    crystal, best_instrument = layout.point(objective.best_vector, instrument)
    return RefinementResult(crystal, best_instrument, float(objective.best_loss), status,
                            objective.evaluations, objective.losses, objective.rms, seconds)


def _check_free(free: Sequence[str], crystal: Crystal) -> tuple[str, ...]:
    if isinstance(free, str):
        free = (free, )
    names = tuple(free)
    for name in names:
        if name.startswith("b_iso:"):
            symbol = name.partition(":")[2]
            if symbol not in crystal.species:
                raise ValueError(f"{name!r}: the crystal has no {symbol!r} atoms "
                                 f"(it has {sorted(set(crystal.species))})")
        elif name not in PARAMETERS:
            raise ValueError(f"unknown refinement parameter {name!r}; choose from {PARAMETERS} "
                             "or 'b_iso:<element>'")
    if len(set(names)) != len(names):
        raise ValueError(f"refinement parameters {names} name one twice")
    return names
