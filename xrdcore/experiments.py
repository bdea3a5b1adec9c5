"""The retrieval study as a resumable grid of independent runs.

One *task* = (structure, perturbation kind, magnitude, metric, parametrisation, optimiser,
seed). Each task perturbs the ground truth, optimises back from the perturbed start against
the truth's pattern and records whether pymatgen's StructureMatcher matches the result to
the truth (default, strict and recovery tolerances, see :mod:`xrdcore.structsim`; also
for the start, since mild distortions already pass the default ones), the RMS distance,
the final loss, cheap distances and the cost. Kinds and what moves (see ``xrdcore/parametrize.py``):

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
(:func:`~xrdcore.batch_optimize.descend_batch`, the same Adam/GD as :func:`optimize`);
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
import importlib.util
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing, contextmanager, suppress
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from importlib import metadata
from itertools import product
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # not on Windows: no lock against a second run writing the same file
    fcntl = None

from . import datasets
from .batch_optimize import BATCH_METHODS, descend_batch
from .diffraction import Diffractometer
from .gradients import loss_value
from .kernels import select_backend
from .landscape import nearest_barrier
from .optimize import METHODS, BasinHopping, Continuation, optimize
from .parametrize import Parametrization
from .perturb import LATTICE_NOISES, perturb
from .scattering import resolve_wavelength
from .similarity import METRICS
from .structsim import RECOVERY_TOLERANCES, STRICT_TOLERANCES, lattice_error, match, rms_displacement
from .validation import LIMITS, choice, describe, did_you_mean, guard, real, whole

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
#: Remedy names (a grid dimension) and the default of their one parameter after a colon:
#: start FWHM (deg), number of starts, number of hops, energy weight (atoms/eV; no default).
REMEDY_DEFAULTS = {"none": None, "continuation": 1.0, "multistart": 4, "basin": 4, "energy": None}
#: Peak-width stages of the "continuation" remedy.
CONTINUATION_STAGES = 4


def remedy_options(remedy: str, steps: int) -> dict:
    """Keyword arguments of :func:`xrdcore.optimize.optimize` (``steps`` included) for a remedy
    name such as ``"continuation:3"``; every remedy spends at most ``steps`` evaluations."""
    if not isinstance(remedy, str):
        raise TypeError(f"a remedy must be a name such as 'continuation:3', got {describe(remedy)}")
    name, colon, value = remedy.partition(":")
    choice(name, "remedy", REMEDY_DEFAULTS)
    if name == "none" and colon:
        raise ValueError(f"remedy {remedy!r}: 'none' takes no parameter")
    if name == "energy" and not value:
        raise ValueError("the energy remedy needs its weight (atoms/eV), e.g. 'energy:1'")
    try:
        parameter = float(value) if value else REMEDY_DEFAULTS[name]
    except ValueError:
        raise ValueError(f"remedy {remedy!r}: {value!r} is not a number") from None
    if name == "none":
        return dict(steps=steps)
    real(parameter, f"the parameter of remedy {remedy!r}", low=0, low_open=True)
    if name == "continuation":
        return dict(steps=steps, continuation=Continuation(parameter, CONTINUATION_STAGES))
    if name == "energy":
        return dict(steps=steps, energy_weight=parameter)
    count = int(parameter)
    if count != parameter or not 1 <= count <= steps:
        raise ValueError(f"remedy {remedy!r}: need a whole number of starts or hops between 1 and {steps}")
    if name == "multistart":
        return dict(steps=steps // count, restarts=count - 1)  # (1 + restarts) × steps // count ≤ steps
    return dict(steps=steps, basin_hopping=BasinHopping(hops=count))


#: Settings that change a result but are not part of a task's key: a results file is resumed
#: only with the settings it was computed with (:func:`run_study` compares them).
RESULT_SETTINGS = ("steps", "wavelength", "two_theta_range", "grid_step", "fwhm", "lattice_noise", "starts")
#: Grid dimensions (tuples of values); a resumed run may add values to them.
GRID_DIMENSIONS = ("structures", "kinds", "strains", "displacements", "metrics", "parametrizations", "methods", "seeds",
                   "remedies")


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study depends on; saved beside its results. Lists given for the grid
    dimensions and ``two_theta_range`` become tuples; :meth:`validate` checks every setting."""

    structures: tuple = ()  # prototype names; empty = the default study set
    per_family: int | None = None  # with empty structures: this many per crystal family
    kinds: tuple = KINDS
    strains: tuple = (0.01, 0.02, 0.05, 0.10)
    displacements: tuple = (0.05, 0.1, 0.2, 0.3)  # Å
    metrics: tuple = ("cosine", "mse", "spectral_entropy")
    parametrizations: tuple = ("p1", "family", "spacegroup")
    methods: tuple = ("adam",)
    seeds: tuple = (0, 1, 2)
    remedies: tuple = ("none",)  # see REMEDY_DEFAULTS
    steps: int = 200
    wavelength: str = "CuKa"
    two_theta_range: tuple = (10.0, 90.0)
    grid_step: float = 0.02
    fwhm: float = 0.1
    lattice_noise: str = "strain"  # or "matrix": the paper's A' = (I + σN) A, σ = the strain value
    starts: str = "subspace"  # see START_DESIGNS

    def __post_init__(self):
        for name in (*GRID_DIMENSIONS, "two_theta_range"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_json(cls, path) -> StudyConfig:
        """A validated configuration from a JSON object of settings (at most ``LIMITS.max_file_mb``)."""
        path = Path(path)
        text = _read_text(path, "study config")
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"study config {path} is not valid JSON: {error.msg} (line {error.lineno}, "
                             f"column {error.colno})") from None
        if not isinstance(values, dict):
            raise ValueError(f"study config {path} must hold a JSON object of settings such as "
                             f'{{"metrics": ["cosine"]}}, got a JSON {type(values).__name__}')
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            hint = did_you_mean(unknown[0], names) or f" (settings: {', '.join(names)})"
            raise ValueError(f"unknown study settings {unknown} in {path}{hint}")
        config = cls(**values)
        config.validate()
        return config

    def to_json(self, path) -> None:
        """Write the settings as JSON (atomically: a killed write leaves the old file)."""
        _write_atomically(Path(path), json.dumps(asdict(self), indent=2))

    def structure_names(self) -> list[str]:
        if self.structures:
            return list(dict.fromkeys(self.structures))
        return [p.name for p in datasets.study_set(per_family=self.per_family)]

    def validate(self) -> None:
        """Check every setting — types, ranges, names (with the nearest valid one suggested), the
        instrument (through :class:`~xrdcore.diffraction.Diffractometer`), magnitudes that the
        task key would not tell apart, an empty grid — so that a bad study fails before its
        first task. TypeError for a wrong type, ValueError for a wrong value."""
        for name in (*GRID_DIMENSIONS, "two_theta_range"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                raise TypeError(f"study setting {name} must be a list, got {describe(value)}")
        for structure in self.structures:
            datasets.get_prototype(structure)
        if self.per_family is not None:
            if self.structures:
                raise ValueError("per_family draws from the default study set; give it or structures, not both")
            whole(self.per_family, "per_family", low=1)
        for name, choices in (("kinds", KINDS), ("metrics", METRICS), ("parametrizations", PARAMETRIZATIONS),
                              ("methods", METHODS)):
            if not getattr(self, name):
                raise ValueError(f"study setting {name} is empty; give at least one of {tuple(choices)}")
            for value in getattr(self, name):
                choice(value, name[:-1], choices)
        if all(pair in REDUNDANT for pair in product(self.kinds, self.parametrizations)):
            raise ValueError(f"the grid is empty: {self.kinds} × {self.parametrizations} are all left out as repeats "
                             f"of other combinations ({sorted(REDUNDANT)})")
        for name, unit, used in (("strains", "", {"lattice", "both"}), ("displacements", "Å", {"coordinates"})):
            values = getattr(self, name)
            for index, value in enumerate(values):
                real(value, f"{name}[{index}]", low=0, low_open=True, unit=unit)
            if not values and used & set(self.kinds):
                raise ValueError(f"study setting {name} is empty but kinds {sorted(used & set(self.kinds))} need it")
            _key_magnitudes(values, name)
        if not self.seeds:
            raise ValueError("study setting seeds is empty; give at least one, e.g. [0]")
        for index, seed in enumerate(self.seeds):
            whole(seed, f"seeds[{index}]", low=0)
        steps = whole(self.steps, "steps", low=1)
        if not self.remedies:
            raise ValueError("study setting remedies is empty; give at least ['none']")
        for remedy in self.remedies:
            remedy_options(remedy, steps)
        if any(remedy.startswith("energy") for remedy in self.remedies) and importlib.util.find_spec("chgnet") is None:
            raise ModuleNotFoundError("the energy remedy needs CHGNet: pip install 'xrdcore[energy]'")
        choice(self.lattice_noise, "lattice noise", LATTICE_NOISES)
        choice(self.starts, "start design", START_DESIGNS)
        if not isinstance(self.wavelength, str):
            real(self.wavelength, "wavelength", unit="Å")
        if len(self.two_theta_range) != 2:
            raise ValueError(f"two_theta_range must be [low, high] in degrees, got {self.two_theta_range}")
        for index, value in enumerate(self.two_theta_range):
            real(value, f"two_theta_range[{index}]", unit="deg")
        real(self.grid_step, "grid_step", low=0, low_open=True, unit="deg")
        real(self.fwhm, "fwhm", low=0, low_open=True, unit="deg")
        instrument = Diffractometer(self.wavelength, self.two_theta_range, self.grid_step, backend="cpu")
        instrument.profile_setup(None, self.fwhm)
        if not self.structure_names():
            raise ValueError("the study has no structures")

    def tasks(self) -> list[Task]:
        """The full grid, in a fixed order, each task once (after :meth:`validate`)."""
        self.validate()
        unique = {name: tuple(dict.fromkeys(getattr(self, name))) for name in ("kinds", "metrics", "parametrizations",
                                                                                "methods", "remedies")}
        seeds = tuple(dict.fromkeys(int(seed) for seed in self.seeds))
        tasks = []
        for name, kind, metric, parametrization, method, seed, remedy in product(
            self.structure_names(), unique["kinds"], unique["metrics"], unique["parametrizations"], unique["methods"],
            seeds, unique["remedies"]
        ):
            if (kind, parametrization) in REDUNDANT:
                continue
            magnitudes = self.displacements if kind == "coordinates" else self.strains
            for magnitude in dict.fromkeys(float(m) for m in magnitudes):
                tasks.append(Task(name, kind, magnitude, metric, parametrization, method, seed, remedy))
        return tasks


def _key_magnitudes(values, name: str) -> None:
    """ValueError when two different magnitudes would have the same task key (which writes them with ``:g``)."""
    seen: dict[str, float] = {}
    for value in map(float, values):
        text = f"{value:g}"
        if seen.get(text, value) != value:
            raise ValueError(f"{name} {seen[text]!r} and {value!r} are both {text} in a task's key; give magnitudes "
                             f"that differ within 6 significant digits")
        seen[text] = value


def _read_text(path: Path, what: str) -> str:
    """A UTF-8 text file of at most ``LIMITS.max_file_mb``, read no further than that (a device
    such as /dev/zero included)."""
    limit = int(LIMITS.max_file_mb * 2**20)
    if not path.exists():
        raise FileNotFoundError(f"no {what} file {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
    size = max(size, len(data))
    more = "more than " if len(data) > limit else ""
    guard(size / 2**20, "max_file_mb", f"{what} {path} ({more}{size / 2**20:.3g} MiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not a text file (not UTF-8 at byte {error.start})") from None


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

#: The run shipped with the book (xrdcore/data/retrieval_study.csv): four prototypes per crystal
#: family from the ≤ 20-atom study set, every kind, magnitude, metric and parametrisation.
SHIPPED = StudyConfig(per_family=4, seeds=(0, 1), steps=200)

#: Three remedies against plain P1 and crystal-family descent (xrdcore/data/remedies_study.csv):
#: SHIPPED's 24 prototypes, strained cells alone ("lattice") and with displaced atoms ("both"),
#: every strain, cosine loss, seeds 0 and 1, and the same 200-evaluation budget for every remedy.
REMEDIES = replace(SHIPPED, kinds=("lattice", "both"), metrics=("cosine",), parametrizations=("p1", "family"),
                   remedies=("none", "continuation", "continuation:3", "multistart", "basin"))
#: The combined objective (xrdcore/data/remedies_energy.csv), two weights. A CHGNet evaluation costs
#: 10–100 XRD evaluations, so this arm is smaller: the first prototype of each crystal family in
#: SHIPPED's order (all within CHGNet's elements), 2 % strain only; its "none" rows are REMEDIES'.
REMEDIES_ENERGY = replace(
    REMEDIES, per_family=None, strains=(0.02,), remedies=("energy:10", "energy:100"),
    structures=("A2B_aP6_2_2i_i", "A5B2_mC14_12_a2i_i", "A2B3C7D_oP13_47_t_aq_eqrs_h", "AB5C_tP7_123_b_ci_a",
                "A2B3_hR10_167_c_e", "A3B_cI32_204_g_c"),
)


#: The paper's regime (xrdcore/data/paper_regime.parquet): lattice noise A' = (I + σN) A with σ = 0.03 and
#: 0.09 (the RMS principal strain of the paper's BPO4 start, a 4.90 b 4.31 c 7.37 Å 96/82/85° from
#: a = b = 4.44 c = 6.71 Å, is 0.127 ≈ √2 · 0.09), coordinate noise separately, the three metrics
#: of the paper, P1 against crystal family and space group, on the 250-prototype study set.
PAPER = StudyConfig(kinds=("lattice", "coordinates"), lattice_noise="matrix", strains=(0.03, 0.09),
                    displacements=(0.1, 0.3), seeds=(0, 1, 2), steps=200)
#: The workshop version's design (10 structures × 50 perturbations) in the paper regime, at its
#: middle sizes: ten prototypes drawn from the study set (``numpy.random.default_rng(0).choice(250,
#: 10, replace=False)``, sorted; a test checks the draw) and seeds 0–49.
WORKSHOP = replace(
    PAPER, strains=(0.06,), displacements=(0.2,), seeds=tuple(range(50)),
    structures=("A2B5_mC28_15_f_e2f", "AB3_mC16_12_g_ij", "A_mC4_12_i", "AB2_oI6_71_a_i", "AB_oP8_57_d_d",
                "A_oP8_62_2c", "A_tP4_129_ac", "AB3C_hR10_148_c_f_c", "A2B_cF24_227_d_a", "A3B2_cI40_220_d_c"),
)


@dataclass(frozen=True)
class Task:
    structure: str
    kind: str
    magnitude: float
    metric: str
    parametrization: str
    method: str
    seed: int

    remedy: str = "none"

    @property
    def key(self) -> str:
        """Unique per task; without a remedy, the key of results files written before remedies existed."""
        key = f"{self.structure}|{self.kind}|{self.magnitude:g}|{self.metric}|{self.parametrization}|{self.method}|{self.seed}"
        return key if self.remedy == "none" else f"{key}|{self.remedy}"


RESULT_FIELDS = (
    "key", "structure", "crystal_family", "space_group", "atoms", "kind", "magnitude", "metric", "parametrization",
    "method", "seed", "matched", "rms", "matched_strict", "recovered", "start_matched", "start_recovered",
    "final_loss", "start_loss", "lattice_error",
    "rms_displacement", "start_rms_displacement", "start_lattice_error", "status", "evaluations", "seconds",
    "remedy", "final_energy", "energy_evaluations", "optimize_seconds", "start_angle_error",
)
#: Columns added with remedies: a results file without them is resumed for remedy-free tasks.
REMEDY_FIELDS = ("remedy", "final_energy", "energy_evaluations", "optimize_seconds")


EXECUTORS = ("batched", "task")


@lru_cache(maxsize=16)
def _setup(structure: str, config: StudyConfig):
    """Prototype, truth, diffractometer and target pattern of one structure (cached per process)."""
    prototype = datasets.get_prototype(structure)
    truth = prototype.crystal()
    diffractometer = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step, backend="cpu")
    return prototype, truth, diffractometer, diffractometer.pattern(truth, fwhm=config.fwhm)


#: How a constrained run's start is drawn (a grid setting, :attr:`StudyConfig.starts`):
#: ``"subspace"`` — a perturbation of the same size already inside the run's own subspace
#: (crystal-family strain, symmetry-axis displacements; the P1 draw of the same seed, projected
#: and rescaled), so P1 and constrained runs start equally far from the truth; ``"projected"`` —
#: every run starts from the P1 perturbation, which the constrained descent projects onto its
#: constraint (the design of the study before 2026-12; the projection alone brings the start
#: closer to the truth).
START_DESIGNS = ("subspace", "projected")
#: The perturbation symmetry (:func:`xrdcore.perturb.perturb`'s ``symmetric``) of a subspace start.
SUBSPACE = {"p1": False, "family": "family", "spacegroup": "spacegroup"}


@lru_cache(maxsize=256)
def _start(structure: str, kind: str, magnitude: float, seed: int, parametrization: str, config: StudyConfig):
    """The start a run descends from (after any projection onto its parametrisation) and its
    verdicts and distances against the truth, shared by every metric and remedy (cached per process)."""
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
        start_angle_error=angles,
    )
    return start, verdicts


@lru_cache(maxsize=64)
def _parametrization(structure: str, kind: str, parametrization: str, config: StudyConfig) -> Parametrization:
    """What moves in a run; what is "fixed" stays at the truth's values, which the start shares for that part."""
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


def final_verdicts(found, truth, shortcut: bool = True) -> dict:
    """StructureMatcher verdicts of a result at the default, strict and recovery tolerances, its
    RMS (StructureMatcher's, normalised by (V/N)^(1/3), of the first mapping within the default
    tolerances: ``match(first=True)``) and cheap distances. With ``shortcut``,
    StructureMatcher is asked only where the cheap distances cannot decide: a near-identical
    result (:data:`NEAR_IDENTICAL`) matches everywhere (its RMS is then the known-order RMS
    displacement in the same units); a tighter set of tolerances is tried only when the looser
    one matched (each contains the next); recovery not when the volume is off by more than
    :data:`RECOVERY_VOLUME`. Tests check the verdicts equal those of asking it always."""
    if found is None:
        return dict(matched=False, rms=math.nan, matched_strict=False, recovered=False, lattice_error=math.nan,
                    rms_displacement=math.nan)
    lengths, angles = lattice_error(found, truth)
    displacement = rms_displacement(found, truth)
    distances = dict(lattice_error=lengths, rms_displacement=displacement)
    unit = (truth.volume / len(truth)) ** (1 / 3)
    if shortcut and (lengths <= NEAR_IDENTICAL["lattice"] and angles <= NEAR_IDENTICAL["angle"]
                     and displacement <= NEAR_IDENTICAL["rms"] * unit):
        return dict(matched=True, rms=displacement / unit, matched_strict=True, recovered=True, **distances)
    default = match(found, truth, first=True)
    if not shortcut:
        strict, recovered = match(found, truth, **STRICT_TOLERANCES).matched, match(found, truth, **RECOVERY_TOLERANCES).matched
    elif not default.matched:
        strict = recovered = False
    else:
        strict = match(found, truth, first=True, **STRICT_TOLERANCES).matched
        recovered = (strict and abs(found.volume / truth.volume - 1) <= RECOVERY_VOLUME
                     and match(found, truth, first=True, **RECOVERY_TOLERANCES).matched)
    return dict(matched=default.matched, rms=default.rms, matched_strict=strict, recovered=recovered, **distances)


def _row(task: Task, config: StudyConfig, found, status: str, evaluations: int, final_loss: float, start_loss: float,
         seconds: float, optimize_seconds: float, energy: float = math.nan, energy_evaluations: int = 0) -> dict:
    prototype, truth, _, _ = _setup(task.structure, config)
    _, start_verdicts = _start(task.structure, task.kind, task.magnitude, task.seed, task.parametrization, config)
    row = dict(asdict(task), key=task.key, crystal_family=prototype.crystal_family, space_group=prototype.space_group,
               atoms=len(truth), status=status, evaluations=int(evaluations))
    row.update(final_verdicts(found, truth))
    row.update(start_verdicts, final_loss=float(final_loss), start_loss=float(start_loss), final_energy=energy,
               energy_evaluations=energy_evaluations, optimize_seconds=optimize_seconds, seconds=seconds)
    return row


def run_task(task: Task, config: StudyConfig) -> dict:
    """Perturb, optimise back with :func:`xrdcore.optimize.optimize`, compare with the truth:
    one result row (the task executor, the reference)."""
    if task.kind not in KINDS or task.parametrization not in PARAMETRIZATIONS:
        raise ValueError(f"unknown kind or parametrisation in {task}")
    begin = time.perf_counter()
    _, truth, diffractometer, target = _setup(task.structure, config)
    start, _ = _start(task.structure, task.kind, task.magnitude, task.seed, task.parametrization, config)
    parametrization = _parametrization(task.structure, task.kind, task.parametrization, config)
    result = optimize(
        parametrization, start, target, diffractometer, method=task.method, metric=task.metric,
        fwhm=config.fwhm, **remedy_options(task.remedy, config.steps),
    )
    start_loss = _start_loss(parametrization, start, target, diffractometer, task.metric, config.fwhm)
    return _row(task, config, result.crystal, result.status, result.evaluations, result.xrd_loss, start_loss,
                time.perf_counter() - begin, result.seconds, result.energy, result.energy_evaluations)


def run_group(tasks: list, config: StudyConfig, backend: str = "cpu") -> list[dict]:
    """The runs of one (structure, kind, metric, parametrisation, method, remedy) — every seed
    and magnitude — descended together by :func:`xrdcore.batch_optimize.descend_batch` (the
    batched executor) on ``backend`` ("cpu", "cuda" or "auto": CUDA when a GPU is present);
    remedies other than "none" and L-BFGS run task by task. ``seconds`` and
    ``optimize_seconds`` of a row are the group's divided by its runs."""
    first = tasks[0]
    shared = {(t.structure, t.kind, t.metric, t.parametrization, t.method, t.remedy) for t in tasks}
    if len(shared) != 1:
        raise ValueError("a group's tasks must share structure, kind, metric, parametrisation, method and remedy")
    if first.remedy != "none" or first.method not in BATCH_METHODS:
        return [run_task(task, config) for task in tasks]
    begin = time.perf_counter()
    _, _, diffractometer, target = _setup(first.structure, config)
    if backend != "cpu":
        diffractometer = Diffractometer(config.wavelength, config.two_theta_range, config.grid_step, backend=backend)
    parametrization = _parametrization(first.structure, first.kind, first.parametrization, config)
    starts = [_start(t.structure, t.kind, t.magnitude, t.seed, t.parametrization, config)[0] for t in tasks]
    descent = descend_batch(parametrization, [parametrization.parameters(start) for start in starts], target,
                            diffractometer, method=first.method, steps=config.steps, metric=first.metric, fwhm=config.fwhm)
    optimize_seconds = (time.perf_counter() - begin) / len(tasks)
    rows = [_row(task, config, *_result(descent, parametrization, index), descent.evaluations[index],
                 descent.loss[index] if np.isfinite(descent.loss[index]) else math.nan,
                 descent.start_loss[index], 0.0, optimize_seconds) for index, task in enumerate(tasks)]
    seconds = (time.perf_counter() - begin) / len(tasks)
    for row in rows:
        row["seconds"] = seconds
    return rows


def _result(descent, parametrization: Parametrization, index: int) -> tuple:
    """The crystal and status of one run of a batch; a best point that is no crystal (e.g. two
    atoms moved onto one site, which the loss does not forbid) is an "invalid structure"."""
    try:
        return descent.crystal(parametrization, index), descent.status[index]
    except ValueError:
        return None, "invalid structure"


def run_unit(tasks: list, config: StudyConfig, executor: str = "batched", backend: str = "cpu") -> list[dict]:
    """All runs of one (structure, kind) — the unit of work a process or dask worker takes, so
    that starts and their verdicts are computed once — group by group (batched) or task by task."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {EXECUTORS}")
    if executor == "task":
        return [run_task(task, config) for task in tasks]
    groups: dict[tuple, list] = {}
    for task in tasks:
        groups.setdefault((task.metric, task.parametrization, task.method, task.remedy), []).append(task)
    return [row for group in groups.values() for row in run_group(group, config, backend)]


def work_units(tasks: list) -> list[list]:
    """Tasks split by (structure, kind), in grid order."""
    units: dict[tuple, list] = {}
    for task in tasks:
        units.setdefault((task.structure, task.kind), []).append(task)
    return list(units.values())


def _start_loss(parametrization, start, target, diffractometer, metric, fwhm) -> float:
    try:
        return loss_value(parametrization.project(start), target, diffractometer, metric=metric, fwhm=fwhm)
    except ValueError:
        return math.nan


def finished_keys(path) -> set:
    """Keys of the complete rows already in a results file, CSV or Parquet (empty if it does not exist)."""
    return {row["key"] for row in read_rows(path)}


def read_rows(path) -> list[dict]:
    """The rows of a results file as dicts of strings (CSV as written; Parquet values as CSV
    would write them). A CSV's last line cut short by a kill is not a row, nor is a line with
    the wrong number of fields. Parsed files are cached by path, size and modification time
    (each call returns fresh dicts)."""
    path = Path(path)
    if not path.exists():
        return []
    status = path.stat()
    return [dict(row) for row in _parsed_rows(str(path.resolve()), status.st_size, status.st_mtime_ns)]


@lru_cache(maxsize=4)
def _parsed_rows(path: str, size: int, modified: int) -> tuple:
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except pa.ArrowException as error:
            raise ValueError(f"{path} is not a Parquet results file ({error})") from None
        return tuple({name: _as_text(value) for name, value in row.items()} for row in table.to_pylist())
    try:
        text = path.read_bytes().decode("utf-8")
        complete = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(complete.splitlines(keepends=True)))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a CSV results file ({error})") from None
    return tuple(row for row in rows if None not in row and None not in row.values())


def _as_text(value) -> str:
    return "" if value is None else str(value)


def _header(path: Path) -> tuple | None:
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
    if first and not first.endswith(b"\n") and _csv_block([], RESULT_FIELDS, header=True).startswith(first):
        return None
    try:
        return tuple(next(csv.reader([first.decode("utf-8")]), ()))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path} is not a CSV results file ({error})") from None


def journal_path(output: Path) -> Path:
    """Where a Parquet study streams its rows (CSV) until it is complete."""
    return output.with_suffix(".journal.csv")


def run_study(config: StudyConfig, output, workers: int | None = None, scheduler: str | None = None, progress: bool = True,
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
            records.append(dict(environment_record(config, len(todo)), executor=executor, backend=backend))
            _write_atomically(record_path, json.dumps(records, indent=2))
        if new_file:
            _append(results, _csv_block([], columns, header=True), journal, 0)
        begin = time.perf_counter()
        bar = _progress(len(todo), progress, initial=len(done), total=len(done) + len(todo))
        written = 0
        with closing(_execute(units, config, workers, scheduler, executor, backend)) as finished:
            for rows in finished:  # one write per unit: a kill or a full disk loses at most the units in flight
                rows = [row for row in rows if row["key"] not in done]
                _append(results, _csv_block(rows, columns), journal, len(done) + written)
                written += len(rows)
                bar.update(len(rows))
        bar.close()
    if todo:
        records[-1]["wall_seconds"] = round(time.perf_counter() - begin, 1)
        _write_atomically(record_path, json.dumps(records, indent=2))
    if parquet:
        streamed = read_rows(journal)
        if streamed:  # a complete Parquet file with nothing new is left as it is
            existing = read_rows(output)
            kept = {row["key"] for row in existing}  # a kill after the last merge leaves them in both
            _write_parquet(output, existing + [row for row in streamed if row["key"] not in kept], columns)
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
    """Something found in a results file was repaired on resume (e.g. a half-written last line cut)."""


def resumed_config(config: StudyConfig, stored_path, done) -> StudyConfig:
    """The configuration to keep beside a results file: ``config`` when the file holds no rows
    (``done``: their keys); else the stored one (``stored_path``) with ``config``'s grid values
    added — the union, so that every row in the file is one of its tasks — after checking that
    ``config`` has the same :data:`RESULT_SETTINGS`, magnitudes the keys tell apart, and that a
    stored configuration exists (ValueError otherwise, naming each difference old → new)."""
    stored_path = Path(stored_path)
    if not done:
        return config
    if not stored_path.exists():
        raise ValueError(f"results exist ({len(done)} rows) but not their configuration {stored_path}, so resuming "
                         f"could mix settings: if they were computed with this configuration, save it there "
                         f"(StudyConfig.to_json, or copy the --config file) and rerun; else write to a new output file")
    try:
        stored = StudyConfig.from_json(stored_path)
    except (TypeError, ValueError) as error:
        raise ValueError(f"the stored configuration is unreadable ({error}); restore it or write to a new "
                         f"output file") from None
    changed = [f"{name} {getattr(stored, name)!r} → {getattr(config, name)!r}" for name in RESULT_SETTINGS
               if not _same_setting(name, getattr(stored, name), getattr(config, name))]
    if changed:
        raise ValueError(f"the results beside {stored_path} were computed with other settings ({'; '.join(changed)}); "
                         f"resuming would mix them: rerun with the stored settings or write to a new output file")
    for name in ("strains", "displacements"):
        _key_magnitudes(getattr(stored, name) + getattr(config, name), name)
    union = {name: tuple(dict.fromkeys(getattr(stored, name) + getattr(config, name))) for name in GRID_DIMENSIONS}
    old, new = stored.structure_names(), config.structure_names()
    if set(new) <= set(old):
        union.update(structures=stored.structures, per_family=stored.per_family)
    elif set(old) <= set(new):
        union.update(structures=config.structures, per_family=config.per_family)
    else:
        union.update(structures=tuple(dict.fromkeys(old + new)), per_family=None)
    return replace(stored, **union)


def _same_setting(name: str, old, new) -> bool:
    if name == "wavelength":
        return resolve_wavelength(old) == resolve_wavelength(new)
    if name == "two_theta_range":
        return tuple(map(float, old)) == tuple(map(float, new))
    return old == new


@contextmanager
def _results_file(path: Path):
    """The results CSV opened for appending (created if new) and locked against a second
    writer; yields the file descriptor."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _os_error(error, f"cannot create the output folder {path.parent} ({error.strerror})") from error
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise _os_error(error, f"cannot write the results file {path} ({error.strerror}); choose an output you can "
                               f"write to") from error
    try:
        if fcntl is not None:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                raise _os_error(error, f"another run is writing to {path}; wait for it to finish or write to another "
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
        warnings.warn(f"{path}: cut a half-written last line ({size - end} bytes) that an interrupted run left; "
                      f"its task runs again", ResumeWarning, stacklevel=3)


def _csv_block(rows: list[dict], columns, header: bool = False) -> bytes:
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
        raise _os_error(error, f"cannot append to the results file {path} ({error.strerror}); its {kept} rows are "
                               f"kept: fix the cause and rerun the same command to resume") from error


def _os_error(error: OSError, message: str) -> OSError:
    """An OSError of ``error``'s type and errno with our message."""
    ours = type(error)(message)
    ours.errno = error.errno
    return ours


def _write_atomically(path: Path, text: str) -> None:
    """Write a text file so that a kill leaves either the old or the new one, never a part."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        raise _os_error(error, f"cannot write {path} ({error.strerror})") from error


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


def _write_parquet(output: Path, rows: list[dict], columns) -> None:
    """Rows (strings, as read) to a typed, zstd-compressed Parquet file, written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = {"key", "structure", "crystal_family", "space_group", "kind", "metric", "parametrization", "method",
            "status", "remedy"}

    def typed(name, value):
        if name in text:
            return value
        if name in BOOL_FIELDS:
            return value == "True"
        if name in INT_FIELDS:
            return int(value)
        return float(value) if value != "" else math.nan

    table = pa.Table.from_pylist([{name: typed(name, row[name]) for name in columns} for row in rows])
    partial = output.with_suffix(".parquet.partial")
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, output)


def environment_record(config: StudyConfig, runs: int) -> dict:
    """What a results table was computed with: git commit, lock hash, CPU, library versions,
    the BLAS kernel and numba's target, and the resolved prototype names (not ``per_family``)."""
    import numba
    from threadpoolctl import threadpool_info

    root = Path(__file__).resolve().parents[1]
    lock = root / "requirements.lock"
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    versions = {name: metadata.version(name) for name in ("numpy", "numba", "scipy", "pymatgen", "spglib")}
    return {
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": runs,
        "git_commit": commit,
        "git_dirty": dirty,
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.exists() else None,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numba_target_cpu": numba.config.CPU_NAME or "host",
        "blas": sorted({f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in threadpool_info()}),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "structures": config.structure_names(),
    }


def _cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.processor())


def _columns(output, tasks) -> tuple:
    """The header of an existing results file; one written before remedies existed can take
    remedy-free ``tasks`` only."""
    header = _header(output)
    if header is None:  # the file starts again
        return RESULT_FIELDS
    missing = [name for name in RESULT_FIELDS if name not in header]
    if not header or [name for name in missing if name not in REMEDY_FIELDS]:
        shown = "all" if len(missing) == len(RESULT_FIELDS) else ", ".join(missing)
        raise ValueError(f"{output} is not a results file of this version (columns missing: {shown}); "
                         f"write to a new output file")
    if missing and any(task.remedy != "none" for task in tasks):
        raise ValueError(f"{output} has no remedy columns; write runs with remedies to a new file")
    return header


def _execute(units, config, workers, scheduler, executor, backend):
    """Rows of every unit (a list per unit), as units finish. An exception of a unit is raised
    with the unit named in a note and in its attribute ``study_unit``."""
    if not units:
        return
    if scheduler is not None:
        from distributed import Client, as_completed as dask_completed

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            futures = client.map(run_unit, units, config=config, executor=executor, backend=backend, pure=False)
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
    # "spawn": forking a process whose OpenMP threads (numba) are running is unsafe. One level
    # of parallelism: every worker gets one numba thread, passive OpenMP waits and one BLAS thread.
    context = multiprocessing.get_context("spawn")
    with _worker_environment(), ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start,
                                                    initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_unit, unit, config, executor, backend): unit for unit in units}
        try:
            for future in as_completed(futures):
                with _naming(futures[future]):
                    rows = future.result()
                yield rows
        except BaseException:  # a failed unit, an interrupt, a full disk: stop now, not after every other unit
            _stop(pool)
            raise


@contextmanager
def _naming(unit):
    """Add the unit's (structure, kind) to an exception raised while it runs."""
    try:
        yield
    except Exception as error:
        error.study_unit = f"{unit[0].structure} {unit[0].kind}"
        error.add_note(f"(while running the study unit {error.study_unit})")
        raise


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the pending units and end the workers now, not after their running units."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # the pool has no public way before 3.14
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
    threading.Thread(target=_watch_runner, args=(runner,), name="xrdcore-watch-runner", daemon=True).start()


def _watch_runner(runner: int) -> None:
    while os.getppid() == runner:
        time.sleep(PARENT_POLL)
    os._exit(1)


#: Environment of the pool's worker processes (read when numba, OpenMP and BLAS start in them).
WORKER_ENVIRONMENT = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
                      "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
    each combination of the ``by`` columns; ``path`` a CSV or Parquet results file."""
    rows = _table(path, (*by, column))
    groups: dict[tuple, list[bool]] = {}
    for row in rows:
        groups.setdefault(tuple(row[name] for name in by), []).append(row[column] == "True")
    table = []
    for group in sorted(groups, key=lambda g: tuple(_sortable(v) for v in g)):
        outcomes = groups[group]
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        table.append(RateRow(group, len(outcomes), sum(outcomes), low, high))
    return table


def rate_where(path, column: str = "recovered", **where) -> RateRow | None:
    """The rate of ``column`` pooled over the runs whose columns equal ``where`` (numbers compared
    as numbers: ``magnitude=0.02`` finds "0.02"); None when no run matches."""
    for row in match_rates(path, by=tuple(where), column=column):
        if all(_same_value(text, wanted) for text, wanted in zip(row.group, where.values())):
            return row
    return None


def repair_rate(path, column: str = "matched", **where) -> RateRow:
    """Among the runs whose columns equal ``where`` and whose *start* failed ``column``'s test
    ("matched" or "recovered"), the rate that ends passing it: what descent itself achieved,
    where a loose criterion lets many starts pass before any step (group = ``where``'s values)."""
    if column not in ("matched", "recovered"):
        raise ValueError(f"repair_rate needs 'matched' or 'recovered', got {column!r}")
    outcomes = [row[column] == "True" for row in _rows_where(path, where, (column, f"start_{column}"))
                if row[f"start_{column}"] != "True"]
    return RateRow(tuple(where.values()), len(outcomes), sum(outcomes), *wilson_interval(sum(outcomes), len(outcomes)))


def binned_rates(path, edges, measure: str = "start_lattice_error", column: str = "recovered", **where) -> list[RateRow]:
    """The rate of ``column`` among the runs whose columns equal ``where`` (as :func:`rate_where`),
    binned by a measured value, by default the start's largest relative lattice-length error
    after any projection: one row per bin ``edges[i] <= value < edges[i + 1]`` (group = the two
    edges; an empty bin has 0 trials and a NaN rate and interval). For comparisons at matched
    measured start distance."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin edges must be increasing, at least two, got {edges}")
    outcomes = [[] for _ in range(len(edges) - 1)]
    for row in _rows_where(path, where, (measure, column)):
        index = int(np.searchsorted(edges, float(row[measure]), side="right")) - 1
        if 0 <= index < len(outcomes):
            outcomes[index].append(row[column] == "True")
    return [RateRow((float(low), float(high)), len(hits), sum(hits), *wilson_interval(sum(hits), len(hits)))
            for low, high, hits in zip(edges[:-1], edges[1:], outcomes)]


def _rows_where(path, where: dict, columns) -> list[dict]:
    """The rows of a results file whose columns equal ``where`` (numbers compared as numbers);
    ``columns``: the others the caller reads."""
    return [row for row in _table(path, (*where, *columns))
            if all(_same_value(row[name], wanted) for name, wanted in where.items())]


def _table(path, columns) -> list[dict]:
    """The rows of an existing results file that has every one of ``columns`` (else a clear error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path}" + (" (it is a folder)" if path.is_dir() else ""))
    rows = read_rows(path)
    header = _header(path) or ()
    for name in columns:
        if not isinstance(name, str):
            raise TypeError(f"a column name must be a string, got {describe(name)}")
        if name not in header:
            hint = did_you_mean(name, header) or f" (it has {', '.join(header[:40]) or 'no header'})"
            raise ValueError(f"{path} has no column {name!r}{hint}")
    return rows


def _same_value(text: str, wanted) -> bool:
    try:
        return float(text) == float(wanted)
    except (TypeError, ValueError):
        return text == str(wanted)


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


# ------------------------------------------------------------------ barrier sweep
@dataclass(frozen=True)
class BarrierSweep:
    """Starts on both sides of a barrier along one symmetry axis, each descended with every
    parameter of the parametrisation free. Arrays have one entry per start (S,)."""

    axis: str
    wrong_minimum: float  # axis offset of the nearest wrong minimum on the scan
    barrier: float  # axis offset of the barrier between it and the truth
    starts: list  # axis offsets of the starts
    sides: list  # "truth" (between the truth and the barrier) or "far" (beyond the barrier)
    recovered: list  # RECOVERY_TOLERANCES verdict of each final structure
    final_offsets: list  # the final structure's coordinate along the axis

    def trapped(self, side: str) -> RateRow:
        """Fraction of the starts on ``side`` that do not recover the truth, with a 95 % interval."""
        outcomes = [not r for r, s in zip(self.recovered, self.sides) if s == side]
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        return RateRow((side,), len(outcomes), sum(outcomes), low, high)


def barrier_sweep(parametrization: Parametrization, truth, target, diffractometer, axis: int, offsets, values,
                  starts_per_side: int = 12, seeds: int = 3, jitter: float = 0.005, steps: int = 200,
                  **options) -> BarrierSweep:
    """Find the barrier on a scan (``offsets``, ``values``) along symmetry axis ``axis`` of a
    space-group ``parametrization`` and descend from starts on both sides of it.

    Starts sit at the same distances d from the barrier on either side, ``starts_per_side``
    values of d spread evenly up to the barrier's distance from the truth (so the truth side
    covers all of the way back to the truth), each repeated for ``seeds`` random jitters of
    the *other* parameters (normal, ``jitter`` in parameter units: strain coefficients and axis
    offsets). Every start gets ``steps`` evaluations of Adam (``options``: metric, fwhm, …).
    """
    found = nearest_barrier(offsets, values)
    if found is None:
        raise ValueError(f"the scan along axis {parametrization.axis_names[axis]!r} has no second minimum")
    index = parametrization.n_lattice + axis
    towards = 1.0 if found.wrong_minimum > 0 else -1.0
    distances = abs(found.barrier) * np.arange(1, starts_per_side + 1) / (starts_per_side + 1)
    starts, sides, recovered, finals = [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        noise = jitter * rng.standard_normal(parametrization.size)
        noise[index] = 0.0
        for side, sign in (("truth", -1.0), ("far", 1.0)):
            for d in distances:
                params = noise.copy()
                params[index] = found.barrier + sign * towards * d
                run = optimize(parametrization, parametrization.crystal(params), target, diffractometer, steps=steps, **options)
                starts.append(float(params[index]))
                sides.append(side)
                recovered.append(match(run.crystal, truth, **RECOVERY_TOLERANCES).matched)
                finals.append(float(parametrization.parameters(run.crystal)[index]))
    return BarrierSweep(parametrization.axis_names[axis], found.wrong_minimum, found.barrier, starts, sides, recovered, finals)
