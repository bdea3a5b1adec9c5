"""The retrieval study as a resumable grid of independent runs.

One *task* = (structure, perturbation kind, magnitude, metric, parametrisation, optimiser,
seed). Each task perturbs the ground truth, optimises back from the perturbed start against
the truth's pattern and records whether pymatgen's StructureMatcher matches the result to
the truth (default, strict and recovery tolerances, see :mod:`xrdcore.structsim`; also
for the start, since mild distortions already pass the default ones), the RMS distance,
the final loss, cheap distances and the cost. Kinds and what moves (see ``xrdcore/parametrize.py``):

Grids leave out (lattice, spacegroup) and (coordinates, family), which repeat another row.

===============  ==========================  ===================================================
kind             perturbation                parametrisations "p1" / "family" / "spacegroup"
===============  ==========================  ===================================================
``lattice``      strain ε                    lattice free / crystal family / crystal family;
                                             coordinates fixed at the truth's
``coordinates``  displacement δ (Å)          coordinates free / free / symmetry axes; lattice fixed
``both``         ε and δ = 10 ε Å            both free / family + free / family + symmetry axes
===============  ==========================  ===================================================

Rows stream to a CSV file as tasks finish; a killed run resumes where it stopped (tasks
whose key is already in the file are skipped). Tasks run on all local cores by default
(process pool), or on a dask.distributed cluster given its scheduler address.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from itertools import product
from pathlib import Path

from . import datasets
from .diffraction import Diffractometer
from .optimize import optimize
from .parametrize import Parametrization
from .perturb import perturb
from .structsim import RECOVERY_TOLERANCES, STRICT_TOLERANCES, lattice_error, match, rms_displacement

KINDS = ("lattice", "coordinates", "both")
PARAMETRIZATIONS = ("p1", "family", "spacegroup")
#: Lattice and coordinate modes of each (kind, parametrisation).
MODES = {
    ("lattice", "p1"): ("free", "fixed"),
    ("lattice", "family"): ("family", "fixed"),
    ("lattice", "spacegroup"): ("family", "fixed"),
    ("coordinates", "p1"): ("fixed", "free"),
    ("coordinates", "family"): ("fixed", "free"),
    ("coordinates", "spacegroup"): ("fixed", "spacegroup"),
    ("both", "p1"): ("free", "free"),
    ("both", "family"): ("family", "free"),
    ("both", "spacegroup"): ("family", "spacegroup"),
}
#: Combinations identical to another one (same modes), left out of grids.
REDUNDANT = {("lattice", "spacegroup"), ("coordinates", "family")}
#: Displacement (Å) per unit strain in the "both" kind: 2 % strain goes with 0.2 Å.
BOTH_DISPLACEMENT_PER_STRAIN = 10.0


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study depends on; saved beside its results."""

    structures: tuple = ()  # prototype names; empty = the default study set
    per_family: int | None = None  # with empty structures: this many per crystal family
    kinds: tuple = KINDS
    strains: tuple = (0.01, 0.02, 0.05, 0.10)
    displacements: tuple = (0.05, 0.1, 0.2, 0.3)  # Å
    metrics: tuple = ("cosine", "mse", "spectral_entropy")
    parametrizations: tuple = ("p1", "family", "spacegroup")
    methods: tuple = ("adam",)
    seeds: tuple = (0, 1, 2)
    steps: int = 200
    wavelength: str = "CuKa"
    two_theta_range: tuple = (10.0, 90.0)
    grid_step: float = 0.02
    fwhm: float = 0.1

    @classmethod
    def from_json(cls, path) -> StudyConfig:
        values = json.loads(Path(path).read_text())
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown study settings {sorted(unknown)} in {path}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def structure_names(self) -> list[str]:
        if self.structures:
            return list(self.structures)
        return [p.name for p in datasets.study_set(per_family=self.per_family)]

    def tasks(self) -> list[Task]:
        """The full grid, in a fixed order."""
        tasks = []
        for name, kind, metric, parametrization, method, seed in product(
            self.structure_names(), self.kinds, self.metrics, self.parametrizations, self.methods, self.seeds
        ):
            if (kind, parametrization) in REDUNDANT:
                continue
            magnitudes = self.displacements if kind == "coordinates" else self.strains
            for magnitude in magnitudes:
                tasks.append(Task(name, kind, float(magnitude), metric, parametrization, method, int(seed)))
        return tasks


#: Small grid for tests and the chapters' live runs.
SMALL = StudyConfig(
    structures=("A2B_tP6_136_f_a", "AB_cF8_225_a_b"),
    kinds=("lattice", "coordinates"),
    strains=(0.01, 0.05),
    displacements=(0.05, 0.2),
    metrics=("cosine",),
    parametrizations=("p1", "family", "spacegroup"),
    seeds=(0,),
    steps=60,
)

#: The run shipped with the book (book/data/retrieval_study.csv): four prototypes per crystal
#: family from the ≤ 20-atom study set, every kind, magnitude, metric and parametrisation.
SHIPPED = StudyConfig(per_family=4, seeds=(0, 1), steps=200)


@dataclass(frozen=True)
class Task:
    structure: str
    kind: str
    magnitude: float
    metric: str
    parametrization: str
    method: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.structure}|{self.kind}|{self.magnitude:g}|{self.metric}|{self.parametrization}|{self.method}|{self.seed}"


RESULT_FIELDS = (
    "key", "structure", "crystal_family", "space_group", "atoms", "kind", "magnitude", "metric", "parametrization",
    "method", "seed", "matched", "rms", "matched_strict", "recovered", "start_matched", "start_recovered",
    "final_loss", "start_loss", "lattice_error",
    "rms_displacement", "start_rms_displacement", "start_lattice_error", "status", "evaluations", "seconds",
)


def run_task(task: Task, config: StudyConfig) -> dict:
    """Perturb, optimise back, compare with the truth; returns one result row."""
    if task.kind not in KINDS or task.parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown kind or parametrisation in {task}")
    begin = time.perf_counter()
    prototype = datasets.get_prototype(task.structure)
    truth = prototype.crystal()
    strain = task.magnitude if task.kind != "coordinates" else 0.0
    displacement = task.magnitude if task.kind == "coordinates" else 0.0
    if task.kind == "both":
        displacement = BOTH_DISPLACEMENT_PER_STRAIN * task.magnitude
    start = perturb(truth, strain=strain, displacement=displacement, seed=task.seed)
    lattice_mode, coordinate_mode = MODES[(task.kind, task.parametrization)]
    # what is "fixed" stays at the truth's values, which the start shares for that part
    parametrization = Parametrization(truth, lattice_mode, coordinate_mode, reference=truth)
    diffractometer = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step, backend="cpu")
    target = diffractometer.pattern(truth, fwhm=config.fwhm)
    result = optimize(
        parametrization, start, target, diffractometer, method=task.method, steps=config.steps,
        truth=truth, metric=task.metric, fwhm=config.fwhm,
    )
    found = result.crystal
    matched = match(found, truth) if found is not None else None
    strict = match(found, truth, **STRICT_TOLERANCES) if found is not None else None
    recovered = match(found, truth, **RECOVERY_TOLERANCES) if found is not None else None
    row = dict(asdict(task), key=task.key, crystal_family=prototype.crystal_family, space_group=prototype.space_group,
               atoms=len(truth), status=result.status, evaluations=result.evaluations)
    row.update(
        matched=bool(matched and matched.matched),
        rms=matched.rms if matched else math.nan,
        matched_strict=bool(strict and strict.matched),
        recovered=bool(recovered and recovered.matched),
        start_matched=match(start, truth).matched,
        start_recovered=match(start, truth, **RECOVERY_TOLERANCES).matched,
        final_loss=result.loss,
        start_loss=result.trajectory.loss[0] if result.trajectory.loss else math.nan,
        lattice_error=lattice_error(found, truth)[0] if found is not None else math.nan,
        rms_displacement=rms_displacement(found, truth) if found is not None else math.nan,
        start_rms_displacement=rms_displacement(start, truth),
        start_lattice_error=lattice_error(start, truth)[0],
        seconds=time.perf_counter() - begin,
    )
    return row


def finished_keys(path) -> set:
    """Keys of the rows already in a results file (empty if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return set()
    with path.open(newline="") as handle:
        return {row["key"] for row in csv.DictReader(handle)}


def run_study(config: StudyConfig, output, workers: int | None = None, scheduler: str | None = None, progress: bool = True) -> Path:
    """Run every task of ``config`` not yet in ``output`` (CSV), appending rows as they finish.

    ``workers``: local processes (default: all cores). ``scheduler``: a dask.distributed
    scheduler address ("tcp://host:8786") or a ``distributed.Client``, instead of the pool.
    """
    output = Path(output)
    done = finished_keys(output)
    todo = [task for task in config.tasks() if task.key not in done]
    output.parent.mkdir(parents=True, exist_ok=True)
    config_path = output.with_suffix(".config.json")
    if not config_path.exists():
        config_path.write_text(json.dumps(asdict(config), indent=2))
    new_file = not output.exists()
    with output.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_FIELDS)
        if new_file:
            writer.writeheader()
            handle.flush()
        bar = _progress(len(todo), progress, initial=len(done), total=len(done) + len(todo))
        for row in _execute(todo, config, workers, scheduler):
            writer.writerow({name: row[name] for name in RESULT_FIELDS})
            handle.flush()  # a killed run loses at most the tasks in flight
            bar.update(1)
        bar.close()
    return output


def _execute(tasks, config, workers, scheduler):
    if not tasks:
        return
    if scheduler is not None:
        from distributed import Client, as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        futures = client.map(run_task, tasks, config=config, pure=False)
        for future in dask_completed(futures):
            yield future.result()
        return
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for task in tasks:
            yield run_task(task, config)
        return
    # "spawn": forking a process whose OpenMP threads (numba) are running is unsafe
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_task, task, config) for task in tasks]
        for future in as_completed(futures):
            yield future.result()


def _progress(count, enabled, initial, total):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled or count == 0, unit="run", desc="retrieval")


# ------------------------------------------------------------------ summary
def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    # the interval always contains p; rounding can leave an end a hair inside it at p = 0 or 1
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass
class RateRow:
    group: tuple
    trials: int
    matches: int
    low: float = field(default=math.nan)
    high: float = field(default=math.nan)

    @property
    def rate(self) -> float:
        return self.matches / self.trials if self.trials else math.nan


def match_rates(path, by=("kind", "parametrization", "magnitude"), column: str = "recovered") -> list[RateRow]:
    """Success rate of ``column`` ("recovered", "matched", …) with a 95 % Wilson interval for
    each combination of the ``by`` columns."""
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    groups: dict[tuple, list[bool]] = {}
    for row in rows:
        groups.setdefault(tuple(row[name] for name in by), []).append(row[column] == "True")
    table = []
    for group in sorted(groups, key=lambda g: tuple(_sortable(v) for v in g)):
        outcomes = groups[group]
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        table.append(RateRow(group, len(outcomes), sum(outcomes), low, high))
    return table


def format_rates(table: list[RateRow], by) -> str:
    header = " | ".join(by) + " | runs | matched | rate | 95 % CI"
    lines = [header, "-" * len(header)]
    for row in table:
        lines.append(" | ".join(row.group) + f" | {row.trials} | {row.matches} | {row.rate:.2f} | [{row.low:.2f}, {row.high:.2f}]")
    return "\n".join(lines)


def _sortable(value: str):
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
