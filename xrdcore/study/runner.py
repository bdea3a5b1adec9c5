"""The retrieval study as a resumable grid of independent runs.

One *task* = (structure, perturbation kind, magnitude, metric, parametrisation, optimiser,
seed). Each task perturbs the ground truth, optimises back from the perturbed start against
the truth's pattern and records whether pymatgen's StructureMatcher matches the result to
the truth (default, strict and recovery tolerances, see :mod:`xrdcore.structure.matching`; also
for the start, since mild distortions already pass the default ones), the RMS distance,
the final loss, cheap distances and the cost. Kinds and what moves (see
``xrdcore/structure/parametrize.py``):

Grids leave out (lattice, spacegroup) and (coordinates, family), which repeat another row.

Starts are fair by default (:data:`START_DESIGNS`): a constrained run starts from a perturbation
of the same size inside its own subspace, and every row records the distances of the start it
actually descended from (``start_lattice_error``, ``start_angle_error``,
``start_rms_displacement``). Two regimes are presets: the strict one (:data:`SHIPPED`, the default
grid: strains 1–10 %, displacements 0.05–0.3 Å, judged by "recovered") and the paper's
(:data:`PAPER`: the symmetry-breaking lattice noise A' = (I + σN) A up to the size of the
paper's BPO4 example, judged by StructureMatcher's default "matched" as well).

A *remedy* (the last grid dimension, :data:`REMEDY_DEFAULTS`) changes how the optimiser searches,
always within the same budget of ``steps`` loss + gradient evaluations (see
:mod:`xrdcore.optimize`): ``"none"``, ``"continuation"`` (peak width 1° → FWHM in 4 stages;
``"continuation:3"`` starts at 3°), ``"multistart"`` (4 starts of steps/4 each;
``"multistart:8"``), ``"basin"`` (basin hopping, 4 hops; ``"basin:8"``) and ``"energy:<w>"``
(XRD loss + w · CHGNet energy per atom; each evaluation includes one CHGNet call).

===============  ==========================  ===================================================
kind             perturbation                parametrisations "p1" / "family" / "spacegroup"
===============  ==========================  ===================================================
``lattice``      strain ε                    lattice free / crystal family / crystal family;
                                             coordinates fixed at the truth's
``coordinates``  displacement δ (Å)          coordinates free / free / symmetry axes; lattice fixed
``both``         ε and δ = 10 ε Å            both free / family + free / family + symmetry axes
===============  ==========================  ===================================================

Two executors compute the rows. ``"batched"`` (the default, :func:`run_group`) descends all
runs of a group — one structure, kind, metric, parametrisation, method and remedy, every seed ×
magnitude — together through :class:`~xrdcore.batch.BatchLoss`
(:func:`~xrdcore.optimize.batch.descend_batch`, the same Adam/GD as :func:`optimize`);
``"task"`` (:func:`run_task`) runs each through :func:`optimize`, the reference. The unit of
work is (structure, kind), so that a start and its StructureMatcher verdicts, shared by every
metric and parametrisation, are computed once; StructureMatcher is asked only where cheap
distances cannot decide (:func:`final_verdicts`).

A configuration is validated completely (:meth:`StudyConfig.validate`: types, ranges, names with
the nearest valid one suggested, the instrument) before the first task; the grid holds each task
once (repeated values are dropped; magnitudes that differ but print alike in a key are refused).

Rows stream to a CSV file (or a ``.parquet`` file's journal) as units finish, one write per unit;
a killed run resumes where it stopped: tasks whose key is already in the file are skipped, a
half-written last line is cut (with a :class:`ResumeWarning`), and a failed write (a full disk)
is cut off again and reported, so the file never holds a partial row or a task twice. The
settings that change a result but not a key (:data:`RESULT_SETTINGS`: steps, instrument, peak
width, lattice noise, start design) must equal those stored in ``<output>.config.json``, which
then holds the union of the grids that wrote the file. One run writes a file at a time (a lock).
Units run on local processes (one numba thread each, so processes × threads never exceed the
cores), which die with the runner even when it is SIGKILLed, or on a dask.distributed cluster
given its scheduler address.
"""

from __future__ import annotations

import csv
import ctypes
import hashlib
import io
import json
import math
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, replace
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import loss_value
from xrdcore.kernels import select_backend
from xrdcore.optimize.batch import BATCH_METHODS, BatchDescent, descend_batch
from xrdcore.optimize.core import optimize
from xrdcore.optimize.joint import refine
from xrdcore.physics.profiles import Profile
from xrdcore.physics.scattering import resolve_wavelength
from xrdcore.structure import datasets
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.datasets import Prototype
from xrdcore.structure.matching import (RECOVERY_TOLERANCES, STRICT_TOLERANCES, lattice_error,
                                        match, rms_displacement)
from xrdcore.structure.parametrize import Parametrization
from xrdcore.structure.perturb import perturb
from xrdcore.study.realism import JOINT_FREE, joint_instrument, noisy, realistic_target
from xrdcore.study.config import (BOTH_DISPLACEMENT_PER_STRAIN, EXECUTORS, GRID_DIMENSIONS, KINDS,
                                  MODES, PARAMETRIZATIONS, RESULT_SETTINGS, StudyConfig, Task,
                                  check_key_magnitudes, os_error, remedy_options, write_atomically)
from xrdcore.validation import choice, whole

fcntl: ModuleType | None
try:
    import fcntl
except ImportError:  # not on Windows: no lock against a second run writing the same file
    fcntl = None

if TYPE_CHECKING:
    from distributed import Client

RESULT_FIELDS = ("key", "structure", "crystal_family", "space_group", "atoms", "kind", "magnitude",
                 "metric", "parametrization", "method", "seed", "matched", "rms", "matched_strict",
                 "recovered", "start_matched", "start_recovered", "final_loss", "start_loss",
                 "lattice_error", "rms_displacement", "start_rms_displacement",
                 "start_lattice_error", "status", "evaluations", "seconds", "remedy",
                 "final_energy", "energy_evaluations", "optimize_seconds", "start_angle_error",
                 "target")
#: Columns added with remedies: a results file without them is resumed for remedy-free tasks.
REMEDY_FIELDS = ("remedy", "final_energy", "energy_evaluations", "optimize_seconds")
#: The column added with realistic targets: a file without it is resumed for ideal targets.
TARGET_FIELDS = ("target", )


@lru_cache(maxsize=16)
def _setup(structure: str,
           config: StudyConfig) -> tuple[Prototype, Crystal, Diffractometer, np.ndarray]:
    """Prototype, truth, diffractometer and target pattern of one structure (cached per
    process)."""
    prototype = datasets.get_prototype(structure)
    truth = prototype.crystal()
    diffractometer = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step,
                                    backend="cpu")
    return prototype, truth, diffractometer, diffractometer.pattern(truth, fwhm=config.fwhm)


@lru_cache(maxsize=64)
def _target(structure: str, target: str, seed: int, config: StudyConfig) -> np.ndarray:
    """The pattern a run of ``target`` is given (:func:`~xrdcore.study.realism.realistic_target`;
    ``seed`` draws the noise; cached per process)."""
    _, truth, diffractometer, ideal = _setup(structure, config)
    if target == "ideal":
        return ideal
    return realistic_target(truth, diffractometer, target, config.fwhm, seed)


#: The perturbation symmetry (:func:`xrdcore.structure.perturb.perturb`'s ``symmetric``) of a
#: subspace start.
SUBSPACE: dict[str, bool | str] = {"p1": False, "family": "family", "spacegroup": "spacegroup"}


@lru_cache(maxsize=256)
def _start(structure: str, kind: str, magnitude: float, seed: int, parametrization: str,
           config: StudyConfig) -> tuple[Crystal, dict[str, Any]]:
    """The start a run descends from (after any projection onto its parametrisation) and its
    verdicts and distances against the truth, shared by every metric and remedy (cached per
    process)."""
    _, truth, _, _ = _setup(structure, config)
    strain = magnitude if kind != "coordinates" else 0.0
    displacement = magnitude if kind == "coordinates" else 0.0
    if kind == "both":
        displacement = BOTH_DISPLACEMENT_PER_STRAIN * magnitude
    symmetric = SUBSPACE[parametrization] if config.starts == "subspace" else False
    drawn = perturb(truth, strain=strain, displacement=displacement, seed=seed, symmetric=symmetric,
                    lattice_noise=config.lattice_noise)
    start = _parametrization(structure, kind, parametrization, config).project(drawn)
    matched = match(start, truth, first=True).matched
    lengths, angles = lattice_error(start, truth)
    verdicts = dict(
        start_matched=matched,
        # recovery is tighter than the default match: no default match, no recovery
        start_recovered=matched and match(start, truth, first=True, **RECOVERY_TOLERANCES).matched,
        start_rms_displacement=rms_displacement(start, truth),
        start_lattice_error=lengths,
        start_angle_error=angles)
    return start, verdicts


@lru_cache(maxsize=64)
def _parametrization(structure: str, kind: str, parametrization: str,
                     config: StudyConfig) -> Parametrization:
    """What moves in a run; what is "fixed" stays at the truth's values, which the start shares
    for that part."""
    _, truth, _, _ = _setup(structure, config)
    lattice_mode, coordinate_mode = MODES[(kind, parametrization)]
    return Parametrization(truth, lattice_mode, coordinate_mode, reference=truth)


#: Below these cheap distances under the known atom order (50× inside RECOVERY_TOLERANCES) a
#: result is near-identical to the truth and matches at every set of tolerances without asking
#: StructureMatcher: relative lattice-length error, angle error (deg), RMS displacement in
#: units of (V/N)^(1/3).
NEAR_IDENTICAL = dict(lattice=1e-4, angle=1e-2, rms=2e-4)
#: A cell whose volume differs from the truth's by more than this fraction cannot pass the
#: recovery tolerances (ltol 0.005 changes a volume by ≤ 1.5 %, angle_tol 0.5° a reduced cell's
#: by ≤ 1.5 %; twice their sum).
RECOVERY_VOLUME = 0.06


def final_verdicts(found: Crystal | None, truth: Crystal, shortcut: bool = True) -> dict:
    """StructureMatcher verdicts of a result at the default, strict and recovery tolerances, its
    RMS (StructureMatcher's, normalised by (V/N)^(1/3), of the first mapping within the default
    tolerances: ``match(first=True)``) and cheap distances. With ``shortcut``,
    StructureMatcher is asked only where the cheap distances cannot decide: a near-identical
    result (:data:`NEAR_IDENTICAL`) matches everywhere (its RMS is then the known-order RMS
    displacement in the same units); a tighter set of tolerances is tried only when the looser
    one matched (each contains the next); recovery not when the volume is off by more than
    :data:`RECOVERY_VOLUME`. Tests check the verdicts equal those of asking it always."""
    if found is None:
        return dict(matched=False, rms=math.nan, matched_strict=False, recovered=False,
                    lattice_error=math.nan, rms_displacement=math.nan)
    lengths, angles = lattice_error(found, truth)
    displacement = rms_displacement(found, truth)
    distances = dict(lattice_error=lengths, rms_displacement=displacement)
    unit = (truth.volume / len(truth))**(1 / 3)
    if shortcut and (lengths <= NEAR_IDENTICAL["lattice"] and angles <= NEAR_IDENTICAL["angle"] and
                     displacement <= NEAR_IDENTICAL["rms"] * unit):
        return dict(matched=True, rms=displacement / unit, matched_strict=True, recovered=True,
                    **distances)
    default = match(found, truth, first=True)
    if not shortcut:
        strict, recovered = (match(found, truth, first=False, **STRICT_TOLERANCES).matched,
                             match(found, truth, first=False, **RECOVERY_TOLERANCES).matched)
    elif not default.matched:
        strict = recovered = False
    else:
        strict = match(found, truth, first=True, **STRICT_TOLERANCES).matched
        recovered = (strict and abs(found.volume / truth.volume - 1) <= RECOVERY_VOLUME and
                     match(found, truth, first=True, **RECOVERY_TOLERANCES).matched)
    return dict(matched=default.matched, rms=default.rms, matched_strict=strict,
                recovered=recovered, **distances)


def _row(task: Task, config: StudyConfig, found: Crystal | None, status: str, evaluations: int,
         final_loss: float, start_loss: float, seconds: float, optimize_seconds: float,
         energy: float = math.nan, energy_evaluations: int = 0) -> dict:
    prototype, truth, _, _ = _setup(task.structure, config)
    _, start_verdicts = _start(task.structure, task.kind, task.magnitude, task.seed,
                               task.parametrization, config)
    row = dict(asdict(task), key=task.key, crystal_family=prototype.crystal_family,
               space_group=prototype.space_group, atoms=len(truth), status=status,
               evaluations=int(evaluations))
    row.update(final_verdicts(found, truth))
    row.update(start_verdicts, final_loss=float(final_loss), start_loss=float(start_loss),
               final_energy=energy, energy_evaluations=energy_evaluations,
               optimize_seconds=optimize_seconds, seconds=seconds)
    return row


def run_task(task: Task, config: StudyConfig) -> dict:
    """Perturb, optimise back with :func:`xrdcore.optimize.core.optimize`, compare with the truth:
    one result row (the task executor, the reference)."""
    if task.kind not in KINDS or task.parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown kind or parametrisation in {task}")
    begin = time.perf_counter()
    _, truth, diffractometer, _ = _setup(task.structure, config)
    target = _target(task.structure, task.target, task.seed, config)
    start, _ = _start(task.structure, task.kind, task.magnitude, task.seed, task.parametrization,
                      config)
    parametrization = _parametrization(task.structure, task.kind, task.parametrization, config)
    if task.remedy == "joint":
        refined = refine(parametrization, start, target, diffractometer,
                         joint_instrument(task.target, config.fwhm), free=JOINT_FREE,
                         metric=task.metric, method=task.method, steps=config.steps)
        start_loss = refined.losses[0] if refined.losses else math.nan
        return _row(task, config, refined.crystal, refined.status, refined.evaluations,
                    refined.loss, start_loss,
                    time.perf_counter() - begin, refined.seconds)
    result = optimize(parametrization, start, target, diffractometer, method=task.method,
                      metric=task.metric, fwhm=config.fwhm,
                      **remedy_options(task.remedy, config.steps))
    start_loss = _start_loss(parametrization, start, target, diffractometer, task.metric,
                             config.fwhm)
    return _row(task, config, result.crystal, result.status, result.evaluations, result.xrd_loss,
                start_loss,
                time.perf_counter() - begin, result.seconds, result.energy,
                result.energy_evaluations)


def run_group(tasks: list, config: StudyConfig, backend: str = "cpu") -> list[dict]:
    """The runs of one (structure, kind, metric, parametrisation, method, remedy, target) — every
    seed (of a noise-free target) and magnitude — descended together by
    :func:`xrdcore.optimize.batch.descend_batch` (the batched executor) on ``backend`` ("cpu",
    "cuda" or "auto": CUDA when a GPU is present); remedies other than "none" and L-BFGS run
    task by task. ``seconds`` and ``optimize_seconds`` of a row are the group's divided by its
    runs."""
    first = tasks[0]
    shared = {_group_of(t) + (t.structure, t.kind) for t in tasks}
    if len(shared) != 1:
        raise ValueError(
            "a group's tasks must share structure, kind, metric, parametrisation, method, remedy "
            "and target (and the seed, for a noisy target)")
    if first.remedy != "none" or first.method not in BATCH_METHODS:
        return [run_task(task, config) for task in tasks]
    begin = time.perf_counter()
    _, _, diffractometer, _ = _setup(first.structure, config)
    target = _target(first.structure, first.target, first.seed, config)
    if backend != "cpu":
        diffractometer = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step,
                                        backend=backend)
    parametrization = _parametrization(first.structure, first.kind, first.parametrization, config)
    starts = [
        _start(t.structure, t.kind, t.magnitude, t.seed, t.parametrization, config)[0]
        for t in tasks
    ]
    descent = descend_batch(parametrization,
                            [parametrization.parameters(start)
                             for start in starts], target, diffractometer, method=first.method,
                            steps=config.steps, metric=first.metric, fwhm=config.fwhm)
    optimize_seconds = (time.perf_counter() - begin) / len(tasks)
    rows = [
        _row(task, config, *_result(descent, parametrization, index), descent.evaluations[index],
             descent.loss[index] if np.isfinite(descent.loss[index]) else math.nan,
             descent.start_loss[index], 0.0, optimize_seconds) for index, task in enumerate(tasks)
    ]
    seconds = (time.perf_counter() - begin) / len(tasks)
    for row in rows:
        row["seconds"] = seconds
    return rows


def _result(descent: BatchDescent, parametrization: Parametrization,
            index: int) -> tuple[Crystal | None, str]:
    """The crystal and status of one run of a batch; a best point that is no crystal (e.g. two
    atoms moved onto one site, which the loss does not forbid) is an "invalid structure"."""
    try:
        return descent.crystal(parametrization, index), descent.status[index]
    except ValueError:
        return None, "invalid structure"


def run_unit(tasks: list, config: StudyConfig, executor: str = "batched",
             backend: str = "cpu") -> list[dict]:
    """All runs of one (structure, kind) — the unit of work a process or dask worker takes, so
    that starts and their verdicts are computed once — group by group (batched) or task by task."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if executor == "task":
        return [run_task(task, config) for task in tasks]
    groups: dict[tuple, list] = {}
    for task in tasks:
        groups.setdefault(_group_of(task), []).append(task)
    return [row for group in groups.values() for row in run_group(group, config, backend)]


def _group_of(task: Task) -> tuple:
    """What the runs of one batch share besides structure and kind: one target pattern."""
    return (task.metric, task.parametrization, task.method, task.remedy, task.target,
            task.seed if noisy(task.target) else None)


def work_units(tasks: list) -> list[list]:
    """Tasks split by (structure, kind), in grid order."""
    units: dict[tuple, list] = {}
    for task in tasks:
        units.setdefault((task.structure, task.kind), []).append(task)
    return list(units.values())


def _start_loss(parametrization: Parametrization, start: Crystal, target: ArrayLike | Crystal,
                diffractometer: Diffractometer, metric: str, fwhm: float | Profile) -> float:
    try:
        return loss_value(parametrization.project(start), target, diffractometer, metric=metric,
                          fwhm=fwhm)
    except ValueError:
        return math.nan


def finished_keys(path: Path | str) -> set:
    """Keys of the complete rows already in a results file, CSV or Parquet (empty if it does not
    exist)."""
    return {row["key"] for row in read_rows(path)}


def read_rows(path: Path | str) -> list[dict]:
    """The rows of a results file as dicts of strings (CSV as written; Parquet values as CSV
    would write them). A CSV's last line cut short by a kill is not a row, nor is a line with
    the wrong number of fields. Parsed files are cached by path, size and modification time
    (each call returns fresh dicts)."""
    path = Path(path)
    if not path.exists():
        return []
    status = path.stat()
    return [
        dict(row) for row in _parsed_rows(str(path.resolve()), status.st_size, status.st_mtime_ns)
    ]


@lru_cache(maxsize=4)
def _parsed_rows(path: str, size: int, modified: int) -> tuple:
    file = Path(path)
    if file.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(file)
        except pa.ArrowException as error:
            raise ValueError(f"{file} is not a Parquet results file ({error})") from None
        return tuple({
            name: _as_text(value)
            for name, value in row.items()
        } for row in table.to_pylist())
    try:
        text = file.read_bytes().decode("utf-8")
        complete = text[:text.rfind("\n") + 1]
        rows = list(csv.DictReader(complete.splitlines(keepends=True)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{file} is not a CSV results file ({error})") from None
    return tuple(row for row in rows if None not in row and None not in row.values())


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def read_header(path: Path) -> tuple | None:
    """The column names of a results file (CSV header or Parquet schema); None for a CSV header
    that a kill cut short."""
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return tuple(pq.read_schema(path).names)
        except pa.ArrowException as error:
            raise ValueError(f"{path} is not a Parquet results file ({error})") from None
    with path.open("rb") as handle:
        first = handle.readline(2**20)
    if (first and not first.endswith(b"\n") and
            _csv_block([], RESULT_FIELDS, header=True).startswith(first)):
        return None
    try:
        return tuple(next(csv.reader([first.decode("utf-8")]), ()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a CSV results file ({error})") from None


def journal_path(output: Path) -> Path:
    """Where a Parquet study streams its rows (CSV) until it is complete."""
    return output.with_suffix(".journal.csv")


def run_study(config: StudyConfig, output: Path | str, workers: int | None = None,
              scheduler: str | Client | None = None, progress: bool = True,
              executor: str = "batched", backend: str = "cpu") -> Path:
    """Run every task of ``config`` not yet in ``output``, appending rows as (structure, kind)
    units finish; a killed run resumes with no row lost or repeated.

    ``output``: a CSV file, or a ``.parquet`` file (rows stream to ``<name>.journal.csv``, which
    becomes the Parquet file, zstd-compressed, once every task is done). ``executor``: "batched"
    (default, :func:`run_group`) or "task" (:func:`run_task`, the reference); ``backend`` of the
    batched executor ("cpu", "cuda", "auto"; with a GPU use one worker). ``workers``: local
    processes (default: as many as cores and units), each with one numba thread and one BLAS
    thread; with one worker the kernels may use every core. ``scheduler``: a dask.distributed
    scheduler address ("tcp://host:8786") or a ``distributed.Client``, instead of the pool.

    Before the first task: the configuration and arguments are validated, the results file is
    opened (a clear OSError when it cannot be written) and locked against a second run, a line
    a kill left half-written is cut (with a :class:`ResumeWarning`), and a resumed file's
    :data:`RESULT_SETTINGS` are compared with those stored in ``<output>.config.json``: a
    ValueError names each difference (see :func:`resumed_config`). The unit of the file's last
    row, if only part of it is there, is computed again whole, so that a resumed run's rows are
    those of an uninterrupted one (timings aside). A failed write (a full disk) leaves the file
    as it was before that unit and raises an OSError; rerunning resumes.
    """
    choice(executor, "executor", EXECUTORS)
    select_backend(backend)
    if workers is not None:
        whole(workers, "workers", low=1)
    tasks = config.tasks()
    output = Path(output)
    parquet = output.suffix == ".parquet"
    journal = journal_path(output) if parquet else output
    config_path = output.with_suffix(".config.json")
    record_path = output.with_suffix(".env.json")  # one record per session that wrote rows
    with _results_file(journal) as results:
        columns = RESULT_FIELDS if os.fstat(results).st_size == 0 else _columns(journal, tasks)
        if parquet and output.exists():
            _columns(output, tasks)
        streamed = read_rows(journal)
        done = {row["key"] for row in streamed} | (finished_keys(output) if parquet else set())
        stored = resumed_config(config, config_path, done)
        _cut_fragment(results, journal)
        new_file = os.fstat(results).st_size == 0
        todo = [task for task in tasks if task.key not in done]
        units = _units_to_run(tasks, todo, streamed[-1] if streamed else None)
        if not done or stored != StudyConfig.from_json(config_path):
            stored.to_json(config_path)
        records = _records(record_path)
        if todo:
            records.append(
                dict(environment_record(config, len(todo)), executor=executor, backend=backend))
            write_atomically(record_path, json.dumps(records, indent=2))
        if new_file:
            _append(results, _csv_block([], columns, header=True), journal, 0)
        begin = time.perf_counter()
        bar = _progress(len(todo), progress, initial=len(done), total=len(done) + len(todo))
        written = 0
        with closing(_execute(units, config, workers, scheduler, executor, backend)) as finished:
            for rows in (
                    finished
            ):  # one write per unit: a kill or a full disk loses at most the units in flight
                rows = [row for row in rows if row["key"] not in done]
                _append(results, _csv_block(rows, columns), journal, len(done) + written)
                written += len(rows)
                bar.update(len(rows))
        bar.close()
    if todo:
        records[-1]["wall_seconds"] = round(time.perf_counter() - begin, 1)
        write_atomically(record_path, json.dumps(records, indent=2))
    if parquet:
        streamed = read_rows(journal)
        if streamed:  # a complete Parquet file with nothing new is left as it is
            existing = read_rows(output)
            kept = {row["key"]
                    for row in existing}  # a kill after the last merge leaves them in both
            _write_parquet(output, existing + [row for row in streamed if row["key"] not in kept],
                           columns)
        journal.unlink()
    return output


def _units_to_run(tasks: list, todo: list, last_row: dict | None) -> list[list]:
    """The units of ``todo``; the one of the file's last row whole, when only part of it is there
    (a run stopped while writing it), so that its runs descend in the same batches as in an
    uninterrupted run (its rows already there are not written again)."""
    units = work_units(todo)
    if last_row is not None:
        tail = (last_row["structure"], last_row["kind"])
        for index, unit in enumerate(units):
            if (unit[0].structure, unit[0].kind) == tail:
                units[index] = [task for task in tasks if (task.structure, task.kind) == tail]
    return units


class ResumeWarning(UserWarning):
    """Something found in a results file was repaired on resume (e.g. a half-written last line
    cut)."""


def resumed_config(config: StudyConfig, stored_path: Path | str,
                   done: Collection[str]) -> StudyConfig:
    """The configuration to keep beside a results file: ``config`` when the file holds no rows
    (``done``: their keys); else the stored one (``stored_path``) with ``config``'s grid values
    added — the union, so that every row in the file is one of its tasks — after checking that
    ``config`` has the same :data:`RESULT_SETTINGS`, magnitudes the keys tell apart, and that a
    stored configuration exists (ValueError otherwise, naming each difference old → new)."""
    stored_path = Path(stored_path)
    if not done:
        return config
    if not stored_path.exists():
        raise ValueError(
            f"results exist ({len(done)} rows) but not their configuration {stored_path}, so "
            f"resuming could mix settings: if they were computed with this configuration, save it "
            f"there (StudyConfig.to_json, or copy the --config file) and rerun; else write to a "
            f"new output file")
    try:
        stored = StudyConfig.from_json(stored_path)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"the stored configuration is unreadable ({error}); restore it or write to a new "
            f"output file") from None
    changed = [
        f"{name} {getattr(stored, name)!r} → {getattr(config, name)!r}" for name in RESULT_SETTINGS
        if not _same_setting(name, getattr(stored, name), getattr(config, name))
    ]
    if changed:
        raise ValueError(
            f"the results beside {stored_path} were computed with other settings "
            f"({'; '.join(changed)}); resuming would mix them: rerun with the stored settings or "
            f"write to a new output file")
    for name in ("strains", "displacements"):
        check_key_magnitudes(getattr(stored, name) + getattr(config, name), name)
    union: dict[str, Any] = {
        name: tuple(dict.fromkeys(getattr(stored, name) + getattr(config, name)))
        for name in GRID_DIMENSIONS
    }
    old, new = stored.structure_names(), config.structure_names()
    if set(new) <= set(old):
        union.update(structures=stored.structures, per_family=stored.per_family)
    elif set(old) <= set(new):
        union.update(structures=config.structures, per_family=config.per_family)
    else:
        union.update(structures=tuple(dict.fromkeys(old + new)), per_family=None)
    return replace(stored, **union)


def _same_setting(name: str, old: Any, new: Any) -> bool:
    if name == "wavelength":
        return resolve_wavelength(old) == resolve_wavelength(new)
    if name == "two_theta_range":
        return tuple(map(float, old)) == tuple(map(float, new))
    return old == new


@contextmanager
def _results_file(path: Path) -> Iterator[int]:
    """The results CSV opened for appending (created if new) and locked against a second
    writer; yields the file descriptor."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise os_error(
            error, f"cannot create the output folder {path.parent} ({error.strerror})") from error
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise os_error(
            error,
            f"cannot write the results file {path} ({error.strerror}); choose an output you can "
            f"write to") from error
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise os_error(
                    error,
                    f"another run is writing to {path}; wait for it to finish or write to another "
                    f"output") from None
        yield descriptor
    finally:
        os.close(descriptor)


def _cut_fragment(descriptor: int, path: Path) -> None:
    """Cut a last line that a kill left half-written (no newline), so that appending continues
    cleanly; its task runs again."""
    size = end = os.fstat(descriptor).st_size
    while end > 0:
        chunk = os.pread(descriptor, min(end, 2**16), max(0, end - 2**16))
        if chunk.endswith(b"\n") and end == size:
            return
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            end = end - len(chunk) + newline + 1
            break
        end -= len(chunk)
    os.ftruncate(descriptor, end)
    if size:
        warnings.warn(
            f"{path}: cut a half-written last line ({size - end} bytes) that an interrupted run "
            f"left; its task runs again", ResumeWarning, stacklevel=3)


def _csv_block(rows: list[dict], columns: Sequence[str], header: bool = False) -> bytes:
    """Rows (and the header) as CSV, exactly as ``csv.DictWriter`` writes them."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    if header:
        writer.writeheader()
    writer.writerows({name: row[name] for name in columns} for row in rows)
    return buffer.getvalue().encode("utf-8")


def _append(descriptor: int, data: bytes, path: Path, kept: int) -> None:
    """Write ``data`` at the end of the results file, all or nothing: a failed write (a full disk)
    is cut off again and raised as an OSError that says the ``kept`` rows before it are safe."""
    start = os.fstat(descriptor).st_size
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(descriptor, view):]
    except OSError as error:
        with suppress(OSError):
            os.ftruncate(descriptor, start)
        raise os_error(
            error,
            f"cannot append to the results file {path} ({error.strerror}); its {kept} rows are "
            f"kept: fix the cause and rerun the same command to resume") from error


def _records(path: Path) -> list:
    """The environment records of the sessions that wrote a results file."""
    if not path.exists():
        return []
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); move it away to resume") from None


#: Column types of a results table (the rest are text).
BOOL_FIELDS = ("matched", "matched_strict", "recovered", "start_matched", "start_recovered")
INT_FIELDS = ("atoms", "seed", "evaluations", "energy_evaluations")


def _write_parquet(output: Path, rows: list[dict], columns: Sequence[str]) -> None:
    """Rows (strings, as read) to a typed, zstd-compressed Parquet file, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = {
        "key", "structure", "crystal_family", "space_group", "kind", "metric", "parametrization",
        "method", "status", "remedy", "target"
    }

    def typed(name, value):
        if name in text:
            return value
        if name in BOOL_FIELDS:
            return value == "True"
        if name in INT_FIELDS:
            return int(value)
        return float(value) if value != "" else math.nan

    table = pa.Table.from_pylist([{
        name: typed(name, row[name])
        for name in columns
    } for row in rows])
    partial = output.with_suffix(".parquet.partial")
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, output)


def environment_record(config: StudyConfig, runs: int) -> dict:
    """What a results table was computed with: git commit, lock hash, CPU, library versions,
    the BLAS kernel and numba's target, and the resolved prototype names (not ``per_family``)."""
    import numba
    from threadpoolctl import threadpool_info

    root = Path(__file__).resolve().parents[2]  # the repository (this is xrdcore/study/runner.py)
    lock = root / "requirements.lock"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C",
                 str(root), "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    versions = {
        name: metadata.version(name)
        for name in ("numpy", "numba", "scipy", "pymatgen", "spglib")
    }
    return {
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "git_commit": commit,
        "git_dirty": dirty,
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        # numba.config sets its settings as module globals at import time: no stub knows them
        "numba_target_cpu": numba.config.CPU_NAME or "host",  # type: ignore[attr-defined]
        "blas": sorted({
            f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
            for i in threadpool_info()
        }),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "structures": config.structure_names()
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.processor())


def _columns(output: Path, tasks: list[Task]) -> tuple:
    """The header of an existing results file; one written before remedies existed can take
    remedy-free ``tasks`` only."""
    header = read_header(output)
    if header is None:  # the file starts again
        return RESULT_FIELDS
    missing = [name for name in RESULT_FIELDS if name not in header]
    if not header or [name for name in missing if name not in REMEDY_FIELDS + TARGET_FIELDS]:
        shown = "all" if len(missing) == len(RESULT_FIELDS) else ", ".join(missing)
        raise ValueError(
            f"{output} is not a results file of this version (columns missing: {shown}); "
            f"write to a new output file")
    if set(missing) & set(REMEDY_FIELDS) and any(task.remedy != "none" for task in tasks):
        raise ValueError(f"{output} has no remedy columns; write runs with remedies to a new file")
    if "target" in missing and any(task.target != "ideal" for task in tasks):
        raise ValueError(f"{output} has no target column; write runs with realistic targets to a "
                         "new file")
    return header


def _execute(units, config, workers, scheduler, executor, backend):
    """Rows of every unit (a list per unit), as units finish. An exception of a unit is raised
    with the unit named in a note and in its attribute ``study_unit``."""
    if not units:
        return
    if scheduler is not None:
        from distributed import Client
        from distributed import as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = client.map(run_unit, units, config=config, executor=executor, backend=backend,
                                 pure=False)
            unit_of = {future.key: unit for future, unit in zip(futures, units)}
            for future in dask_completed(futures):
                with _naming(unit_of[future.key]):
                    rows = future.result()
                yield rows
        finally:
            if client is not scheduler:  # ours, from an address
                client.close()
        return
    workers = min(workers or os.cpu_count() or 1, len(units))
    if workers == 1:
        for unit in units:
            with _naming(unit):
                rows = run_unit(unit, config, executor, backend)
            yield rows
        return
    with worker_pool(workers) as pool:
        submitted = {pool.submit(run_unit, unit, config, executor, backend): unit for unit in units}
        try:
            for future in as_completed(submitted):
                with _naming(submitted[future]):
                    rows = future.result()
                yield rows
        except (BaseException
                ):  # a failed unit, an interrupt, a full disk: stop now, not after every other unit
            _stop(pool)
            raise


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """``workers`` local processes as the runner starts them: spawned ("fork" is unsafe in a
    process whose OpenMP threads, numba's, are running), each with one numba thread, passive
    OpenMP waits and one BLAS thread (one level of parallelism), dying with the runner."""
    context = multiprocessing.get_context("spawn")
    with (_worker_environment(),
          ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start,
                              initargs=(os.getpid(), )) as pool):
        yield pool


@contextmanager
def _naming(unit: list[Task]) -> Iterator[None]:
    """Add the unit's (structure, kind) to an exception raised while it runs."""
    try:
        yield
    except Exception as error:
        name = f"{unit[0].structure} {unit[0].kind}"
        setattr(error, "study_unit", name)  # an attribute of ours: Exception declares none
        error.add_note(f"(while running the study unit {name})")
        raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending units and end the workers now, not after their running units."""
    processes = list((getattr(pool, "_processes", None) or
                      {}).values())  # the pool has no public way before 3.14
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with suppress(OSError, ValueError):
            process.kill()


#: Linux's prctl option that sends a process a signal when its parent dies.
PR_SET_PDEATHSIG = 1
#: How often (s) a worker looks whether its runner is still alive (where prctl is missing).
PARENT_POLL = 1.0


def _worker_start(runner: int) -> None:
    """Initializer of a pool worker: leave Ctrl-C to the runner (which ends its workers), and die
    with the runner even when it is SIGKILLed — on Linux by ``PR_SET_PDEATHSIG`` (sent when the
    runner's thread that started the pool ends; run_study's pool lives within one call), and
    everywhere by a thread that watches the parent process id."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    threading.Thread(target=_watch_runner, args=(runner, ), name="xrdcore-watch-runner",
                     daemon=True).start()


def _watch_runner(runner: int) -> None:
    while os.getppid() == runner:
        time.sleep(PARENT_POLL)
    os._exit(1)


#: Environment of the pool's worker processes (read when numba, OpenMP and BLAS start in them).
WORKER_ENVIRONMENT = {
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1"
}


@contextmanager
def _worker_environment():
    """:data:`WORKER_ENVIRONMENT` set while worker processes are spawned, then restored."""
    saved = {name: os.environ.get(name) for name in WORKER_ENVIRONMENT}
    os.environ.update(WORKER_ENVIRONMENT)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _progress(count, enabled, initial, total):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled or count == 0, unit="run",
                desc="retrieval")
