"""The study's configuration: :class:`StudyConfig` (the grid of structures, perturbation kinds
and magnitudes, metrics, parametrisations, methods, seeds and remedies, with the instrument
and budget), checked completely by :meth:`StudyConfig.validate` before any task; the presets
(:data:`SMALL`, :data:`SHIPPED`, :data:`PAPER`, :data:`WORKSHOP`, :data:`REMEDIES`,
:data:`REMEDIES_ENERGY`); the grid's element, :class:`Task`; and how a remedy name becomes
optimiser settings (:func:`remedy_options`). See :mod:`xrdcore.study.runner` for the runs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from itertools import product
from pathlib import Path
from typing import Any

from xrdcore.diffraction import Diffractometer
from xrdcore.optimize.core import METHODS
from xrdcore.optimize.remedies import BasinHopping, Continuation
from xrdcore.similarity import METRICS
from xrdcore.structure import datasets
from xrdcore.structure.perturb import LATTICE_NOISES
from xrdcore.study.realism import parse_target
from xrdcore.validation import LIMITS, choice, describe, did_you_mean, guard, real, whole

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
    ("both", "spacegroup"): ("family", "spacegroup")
}
#: Combinations identical to another one (same modes), left out of grids.
REDUNDANT = {("lattice", "spacegroup"), ("coordinates", "family")}
#: Displacement (Å) per unit strain in the "both" kind: 2 % strain goes with 0.2 Å.
BOTH_DISPLACEMENT_PER_STRAIN = 10.0
#: Remedy names (a grid dimension) and the default of their one parameter after a colon:
#: start FWHM (deg), number of starts, number of hops, energy weight (atoms/eV; no default).
REMEDY_DEFAULTS: dict[str, float | None] = {
    "none": None,
    "continuation": 1.0,
    "multistart": 4,
    "basin": 4,
    "energy": None,
    "joint": None
}
#: Peak-width stages of the "continuation" remedy.
CONTINUATION_STAGES = 4


def remedy_options(remedy: str, steps: int) -> dict[str, Any]:
    """Keyword arguments of :func:`xrdcore.optimize.core.optimize` (``steps`` included) for a
    remedy name such as ``"continuation:3"``; every remedy spends at most ``steps`` evaluations."""
    if not isinstance(remedy, str):
        raise TypeError(f"a remedy must be a name such as 'continuation:3', got {describe(remedy)}")
    name, colon, value = remedy.partition(":")
    choice(name, "remedy", REMEDY_DEFAULTS)
    if name in ("none", "joint") and colon:
        raise ValueError(f"remedy {remedy!r}: {name!r} takes no parameter")
    if name == "energy" and not value:
        raise ValueError("the energy remedy needs its weight (atoms/eV), e.g. 'energy:1'")
    try:
        parameter = float(value) if value else REMEDY_DEFAULTS[name]
    except ValueError:
        raise ValueError(f"remedy {remedy!r}: {value!r} is not a number") from None
    if name in ("none", "joint"):  # joint refinement: xrdcore.study.runner.run_task
        return dict(steps=steps)
    # every other remedy has a default parameter, or (energy) was refused above without one
    assert parameter is not None
    real(parameter, f"the parameter of remedy {remedy!r}", low=0, low_open=True)
    if name == "continuation":
        return dict(steps=steps, continuation=Continuation(parameter, CONTINUATION_STAGES))
    if name == "energy":
        return dict(steps=steps, energy_weight=parameter)
    count = int(parameter)
    if count != parameter or not 1 <= count <= steps:
        raise ValueError(
            f"remedy {remedy!r}: need a whole number of starts or hops between 1 and {steps}")
    if name == "multistart":
        return dict(steps=steps // count,
                    restarts=count - 1)  # (1 + restarts) × steps // count ≤ steps
    return dict(steps=steps, basin_hopping=BasinHopping(hops=count))


#: Settings that change a result but are not part of a task's key: a results file is resumed
#: only with the settings it was computed with (:func:`run_study` compares them).
RESULT_SETTINGS = ("steps", "wavelength", "two_theta_range", "grid_step", "fwhm", "lattice_noise",
                   "starts")
#: Grid dimensions (tuples of values); a resumed run may add values to them.
GRID_DIMENSIONS = ("structures", "kinds", "strains", "displacements", "metrics", "parametrizations",
                   "methods", "seeds", "remedies", "targets")


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
    methods: tuple = ("adam", )
    seeds: tuple = (0, 1, 2)
    remedies: tuple = ("none", )  # see REMEDY_DEFAULTS
    targets: tuple = ("ideal", )  # see xrdcore.study.realism
    steps: int = 200
    wavelength: str = "CuKa"
    two_theta_range: tuple = (10.0, 90.0)
    grid_step: float = 0.02
    fwhm: float = 0.1
    lattice_noise: str = "strain"  # or "matrix": the paper's A' = (I + σN) A, σ = the strain value
    starts: str = "subspace"  # see START_DESIGNS

    def __post_init__(self) -> None:
        for name in (*GRID_DIMENSIONS, "two_theta_range"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))

    @classmethod
    def from_json(cls, path: Path | str) -> StudyConfig:
        """A validated configuration from a JSON object of settings (at most
        ``LIMITS.max_file_mb``)."""
        path = Path(path)
        text = _read_text(path, "study config")
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"study config {path} is not valid JSON: {error.msg} (line {error.lineno}, "
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

    def to_json(self, path: Path | str) -> None:
        """Write the settings as JSON (atomically: a killed write leaves the old file)."""
        write_atomically(Path(path), json.dumps(asdict(self), indent=2))

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
                raise ValueError(
                    "per_family draws from the default study set; give it or structures, not both")
            whole(self.per_family, "per_family", low=1)
        for name, choices in (("kinds", KINDS), ("metrics", METRICS),
                              ("parametrizations", PARAMETRIZATIONS), ("methods", METHODS)):
            if not getattr(self, name):
                raise ValueError(
                    f"study setting {name} is empty; give at least one of {tuple(choices)}")
            for value in getattr(self, name):
                choice(value, name[:-1], choices)
        if all(pair in REDUNDANT for pair in product(self.kinds, self.parametrizations)):
            raise ValueError(
                f"the grid is empty: {self.kinds} × {self.parametrizations} are all left out as "
                f"repeats of other combinations ({sorted(REDUNDANT)})")
        for name, unit, used in (("strains", "", {"lattice", "both"}), ("displacements", "Å", {
                "coordinates"
        })):
            values = getattr(self, name)
            for index, value in enumerate(values):
                real(value, f"{name}[{index}]", low=0, low_open=True, unit=unit)
            if not values and used & set(self.kinds):
                raise ValueError(f"study setting {name} is empty but kinds "
                                 f"{sorted(used & set(self.kinds))} need it")
            check_key_magnitudes(values, name)
        if not self.seeds:
            raise ValueError("study setting seeds is empty; give at least one, e.g. [0]")
        for index, seed in enumerate(self.seeds):
            whole(seed, f"seeds[{index}]", low=0)
        steps = whole(self.steps, "steps", low=1)
        if not self.remedies:
            raise ValueError("study setting remedies is empty; give at least ['none']")
        for remedy in self.remedies:
            remedy_options(remedy, steps)
        if not self.targets:
            raise ValueError("study setting targets is empty; give at least ['ideal']")
        for target in self.targets:
            parse_target(target)
        if (any(remedy.startswith("energy") for remedy in self.remedies) and
                importlib.util.find_spec("chgnet") is None):
            raise ModuleNotFoundError(
                "the energy remedy needs CHGNet: pip install 'xrdcore[energy]'")
        choice(self.lattice_noise, "lattice noise", LATTICE_NOISES)
        choice(self.starts, "start design", START_DESIGNS)
        if not isinstance(self.wavelength, str):
            real(self.wavelength, "wavelength", unit="Å")
        if len(self.two_theta_range) != 2:
            raise ValueError(
                f"two_theta_range must be [low, high] in degrees, got {self.two_theta_range}")
        for index, value in enumerate(self.two_theta_range):
            real(value, f"two_theta_range[{index}]", unit="deg")
        real(self.grid_step, "grid_step", low=0, low_open=True, unit="deg")
        real(self.fwhm, "fwhm", low=0, low_open=True, unit="deg")
        instrument = Diffractometer(self.wavelength, self.two_theta_range, self.grid_step,
                                    backend="cpu")
        instrument.profile_setup(None, self.fwhm)
        if not self.structure_names():
            raise ValueError("the study has no structures")

    def tasks(self) -> list[Task]:
        """The full grid, in a fixed order, each task once (after :meth:`validate`)."""
        self.validate()
        unique = {
            name: tuple(dict.fromkeys(getattr(self, name)))
            for name in ("kinds", "metrics", "parametrizations", "methods", "remedies", "targets")
        }
        seeds = tuple(dict.fromkeys(int(seed) for seed in self.seeds))
        tasks = []
        for name, kind, metric, parametrization, method, seed, remedy, target in product(
                self.structure_names(), unique["kinds"], unique["metrics"],
                unique["parametrizations"], unique["methods"], seeds, unique["remedies"],
                unique["targets"]):
            if (kind, parametrization) in REDUNDANT:
                continue
            magnitudes = self.displacements if kind == "coordinates" else self.strains
            for magnitude in dict.fromkeys(float(m) for m in magnitudes):
                tasks.append(
                    Task(name, kind, magnitude, metric, parametrization, method, seed, remedy,
                         target))
        return tasks


def check_key_magnitudes(values: Iterable[float], name: str) -> None:
    """ValueError when two different magnitudes would have the same task key (which writes them
    with ``:g``)."""
    seen: dict[str, float] = {}
    for value in map(float, values):
        text = f"{value:g}"
        if seen.get(text, value) != value:
            raise ValueError(
                f"{name} {seen[text]!r} and {value!r} are both {text} in a task's key; give "
                f"magnitudes that differ within 6 significant digits")
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
        raise ValueError(
            f"{what} {path} is not a text file (not UTF-8 at byte {error.start})") from None


#: Small grid for tests and the chapters' live runs.
SMALL = StudyConfig(structures=("A2B_tP6_136_f_a", "AB_cF8_225_a_b"),
                    kinds=("lattice", "coordinates"), strains=(0.01, 0.05),
                    displacements=(0.05, 0.2), metrics=("cosine", ),
                    parametrizations=("p1", "family", "spacegroup"), seeds=(0, ), steps=60)

#: The run shipped with the book (xrdcore/data/retrieval_study.csv): four prototypes per crystal
#: family from the ≤ 20-atom study set, every kind, magnitude, metric and parametrisation.
SHIPPED = StudyConfig(per_family=4, seeds=(0, 1), steps=200)

#: Three remedies against plain P1 and crystal-family descent (xrdcore/data/remedies_study.csv):
#: SHIPPED's 24 prototypes, strained cells alone ("lattice") and with displaced atoms ("both"),
#: every strain, cosine loss, seeds 0 and 1, and the same 200-evaluation budget for every remedy.
REMEDIES = replace(SHIPPED, kinds=("lattice", "both"), metrics=("cosine", ),
                   parametrizations=("p1", "family"),
                   remedies=("none", "continuation", "continuation:3", "multistart", "basin"))
#: The combined objective (xrdcore/data/remedies_energy.csv), two weights. A CHGNet evaluation costs
#: 10–100 XRD evaluations, so this arm is smaller: the first prototype of each crystal family in
#: SHIPPED's order (all within CHGNet's elements), 2 % strain only; its "none" rows are REMEDIES'.
REMEDIES_ENERGY = replace(
    REMEDIES, per_family=None, strains=(0.02, ), remedies=("energy:10", "energy:100"),
    structures=("A2B_aP6_2_2i_i", "A5B2_mC14_12_a2i_i", "A2B3C7D_oP13_47_t_aq_eqrs_h",
                "AB5C_tP7_123_b_ci_a", "A2B3_hR10_167_c_e", "A3B_cI32_204_g_c"))

#: Ideal against realistic targets (xrdcore/data/realism_study.csv, :mod:`xrdcore.study.realism`):
#: SHIPPED's 24 prototypes, strained cells (1 %, P1 and crystal family) and displaced atoms (0.1 and
#: 0.2 Å, P1 and space group), cosine loss, seeds 0 and 1 (also the noise draws), 200 evaluations,
#: each nuisance alone and all together, met by the ideal model and by joint refinement.
REALISM = replace(SHIPPED, kinds=("lattice", "coordinates"), strains=(0.01, ),
                  displacements=(0.1, 0.2), metrics=("cosine", ), remedies=("none", "joint"),
                  targets=("ideal", "kalpha2", "background", "zero_shift", "orientation",
                           "noise:10000", "noise:100", "realistic"))

#: The paper's regime (xrdcore/data/paper_regime.parquet): lattice noise A' = (I + σN) A with
#: σ = 0.03 and 0.09 (the RMS principal strain of the paper's BPO4 start, a 4.90 b 4.31 c 7.37 Å
#: 96/82/85° from a = b = 4.44 c = 6.71 Å, is 0.127 ≈ √2 · 0.09), coordinate noise separately, the
#: three metrics of the paper, P1 against crystal family and space group, on the 250-prototype
#: study set.
PAPER = StudyConfig(kinds=("lattice", "coordinates"), lattice_noise="matrix", strains=(0.03, 0.09),
                    displacements=(0.1, 0.3), seeds=(0, 1, 2), steps=200)
#: The workshop version's design (10 structures × 50 perturbations) in the paper regime, at its
#: middle sizes: ten prototypes drawn from the study set (``numpy.random.default_rng(0).choice(250,
#: 10, replace=False)``, sorted; a test checks the draw) and seeds 0–49.
WORKSHOP = replace(
    PAPER, strains=(0.06, ), displacements=(0.2, ), seeds=tuple(range(50)),
    structures=("A2B5_mC28_15_f_e2f", "AB3_mC16_12_g_ij", "A_mC4_12_i", "AB2_oI6_71_a_i",
                "AB_oP8_57_d_d", "A_oP8_62_2c", "A_tP4_129_ac", "AB3C_hR10_148_c_f_c",
                "A2B_cF24_227_d_a", "A3B2_cI40_220_d_c"))

EXECUTORS = ("batched", "task")

#: How a constrained run's start is drawn (a grid setting, :attr:`StudyConfig.starts`):
#: ``"subspace"`` — a perturbation of the same size already inside the run's own subspace
#: (crystal-family strain, symmetry-axis displacements; the P1 draw of the same seed, projected
#: and rescaled), so P1 and constrained runs start equally far from the truth; ``"projected"`` —
#: every run starts from the P1 perturbation, which the constrained descent projects onto its
#: constraint (the design of the study before 2026-12; the projection alone brings the start
#: closer to the truth).
START_DESIGNS = ("subspace", "projected")


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
    target: str = "ideal"

    @property
    def key(self) -> str:
        """Unique per task; without a remedy and with the ideal target, the key of results files
        written before remedies and targets existed."""
        key = (f"{self.structure}|{self.kind}|{self.magnitude:g}|{self.metric}|"
               f"{self.parametrization}|{self.method}|{self.seed}")
        key = key if self.remedy == "none" else f"{key}|{self.remedy}"
        return key if self.target == "ideal" else f"{key}|target={self.target}"


def write_atomically(path: Path, text: str) -> None:
    """Write a text file so that a kill leaves either the old or the new one, never a part."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        raise os_error(error, f"cannot write {path} ({error.strerror})") from error


def os_error(error: OSError, message: str) -> OSError:
    """An OSError of ``error``'s type and errno with our message."""
    ours = type(error)(message)
    ours.errno = error.errno
    return ours
