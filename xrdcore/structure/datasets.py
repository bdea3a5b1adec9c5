"""The study's structures, with no download: what pymatgen's wheel already ships.

* The AFLOW Library of Crystallographic Prototypes as bundled in
  ``pymatgen/analysis/prototypes/aflow_prototypes.json.gz`` (288 ordered prototypes,
  100 space groups, all 7 crystal systems, 1–105 atoms in the primitive cell that the file
  stores; the Pearson symbol counts the conventional cell). Each entry keeps its
  AFLOW label, Strukturbericht designation, mineral name, Pearson symbol and the
  original structure reference. Nine labels occur more than once in that file; they
  are told apart by a suffix "-001", "-002", … in file order (AFLOW's own convention for variants).
* pymatgen's example structures (``pymatgen/util/structures/*.json``: Si, CsCl, LiFePO4, …).
* The book's result tables, shipped inside this package (``xrdcore/data/``, see its
  README): :func:`book_data` finds them wherever the package is installed, so a chapter
  runs from any working directory.

Cite the library as Mehl et al., Comput. Mater. Sci. 136, S1 (2017),
Hicks et al., Comput. Mater. Sci. 161, S1 (2019) and 199, 110450 (2021).

The default study set (:func:`study_set`) is the 250 prototypes with ≤ 20 atoms
(like MP-20), ordered by crystal family.
"""

from __future__ import annotations

import difflib
import gzip
import json
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xrdcore.structure.crystal import Crystal
from xrdcore.validation import choice, describe, whole

if TYPE_CHECKING:
    from pymatgen.core import Structure

CITATIONS = ("M. J. Mehl et al., The AFLOW Library of Crystallographic Prototypes: Part 1, "
             "Comput. Mater. Sci. 136, S1-S828 (2017), doi:10.1016/j.commatsci.2017.01.017",
             "D. Hicks et al., The AFLOW Library of Crystallographic Prototypes: Part 2, "
             "Comput. Mater. Sci. 161, S1-S1011 (2019), doi:10.1016/j.commatsci.2018.10.043",
             "D. Hicks et al., The AFLOW Library of Crystallographic Prototypes: Part 3, "
             "Comput. Mater. Sci. 199, 110450 (2021), doi:10.1016/j.commatsci.2021.110450")

#: Crystal families in order of rising symmetry (hexagonal family = trigonal + hexagonal systems).
CRYSTAL_FAMILIES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")
CRYSTAL_SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal",
                   "cubic")
#: Highest space-group number of each crystal system (International Tables numbering).
_LAST_SPACE_GROUP = {
    "triclinic": 2,
    "monoclinic": 15,
    "orthorhombic": 74,
    "tetragonal": 142,
    "trigonal": 167,
    "hexagonal": 194,
    "cubic": 230
}
#: Default largest cell of the study set (atoms), as in MP-20.
STUDY_MAX_ATOMS = 20


def crystal_system(space_group: int) -> str:
    """Crystal system of a space group number 1 … 230."""
    if not 1 <= space_group <= 230:
        raise ValueError(f"space group number must be 1 … 230, got {space_group}")
    return next(system for system in CRYSTAL_SYSTEMS if space_group <= _LAST_SPACE_GROUP[system])


def crystal_family(space_group: int) -> str:
    """Crystal family of a space group: the system, with trigonal folded into hexagonal."""
    system = crystal_system(space_group)
    return "hexagonal" if system == "trigonal" else system


@dataclass(frozen=True)
class Prototype:
    """One AFLOW prototype: its labels, symmetry and (lazily) its structure."""

    name: str  # unique id: the AFLOW label, with "-00n" where the label repeats
    aflow_label: str
    pearson: str
    strukturbericht: str  # "" where none is assigned
    mineral: str  # "" where none is known
    space_group: int
    num_atoms: int
    formula: str
    reference: str  # BibTeX of the original structure determination and the library

    @property
    def crystal_system(self) -> str:
        return crystal_system(self.space_group)

    @property
    def crystal_family(self) -> str:
        return crystal_family(self.space_group)

    def structure(self) -> Structure:
        """The prototype as a pymatgen ``Structure`` (a fresh copy)."""
        from pymatgen.core import Structure

        return Structure.from_dict(_raw_entries()[self.name]["snl"])

    def crystal(self) -> Crystal:
        """The prototype as an :class:`xrdcore.Crystal`."""
        return Crystal.from_pymatgen(self.structure())


@lru_cache(maxsize=1)
def _raw_entries() -> dict[str, dict]:
    # The file, not the package: importing pymatgen.analysis.prototypes rebuilds all 288 structures.
    path = (resources.files("pymatgen").joinpath("analysis").joinpath("prototypes").joinpath(
        "aflow_prototypes.json.gz"))
    with path.open("rb") as handle:
        entries = json.loads(gzip.decompress(handle.read()))
    repeats = Counter(entry["tags"]["aflow"] for entry in entries)
    seen: Counter = Counter()
    named = {}
    for entry in entries:
        label = entry["tags"]["aflow"]
        seen[label] += 1
        named[label if repeats[label] == 1 else f"{label}-{seen[label]:03d}"] = entry
    return named


def _prototype(name: str, entry: dict) -> Prototype:
    from pymatgen.core import Composition

    tags = entry["tags"]
    sites = entry["snl"]["sites"]
    formula = Composition(Counter(site["species"][0]["element"] for site in sites)).reduced_formula
    strukturbericht = tags["strukturbericht"]
    return Prototype(name=name, aflow_label=tags["aflow"], pearson=tags["pearson"],
                     strukturbericht="" if strukturbericht == "None" else strukturbericht,
                     mineral=tags["mineral"], space_group=int(
                         tags["aflow"].split("_")[2]), num_atoms=len(sites), formula=formula,
                     reference=entry["snl"]["about"]["references"])


@lru_cache(maxsize=1)
def _all_prototypes() -> tuple[Prototype, ...]:
    return tuple(_prototype(name, entry) for name, entry in _raw_entries().items())


def list_prototypes(max_atoms: int | None = None, min_atoms: int = 1,
                    crystal_family: str | None = None, crystal_system: str | None = None,
                    space_group: int | None = None) -> list[Prototype]:
    """Prototypes matching every filter given, in file order."""
    if max_atoms is not None:
        whole(max_atoms, "max_atoms", low=1)
    whole(min_atoms, "min_atoms", low=0)
    if crystal_family is not None:
        choice(crystal_family, "crystal family", CRYSTAL_FAMILIES)
    if crystal_system is not None:
        choice(crystal_system, "crystal system", CRYSTAL_SYSTEMS)
    if space_group is not None:
        whole(space_group, "space_group", low=1, high=230)
    selected = []
    for proto in _all_prototypes():
        if max_atoms is not None and proto.num_atoms > max_atoms:
            continue
        if proto.num_atoms < min_atoms:
            continue
        if crystal_family is not None and proto.crystal_family != crystal_family:
            continue
        if crystal_system is not None and proto.crystal_system != crystal_system:
            continue
        if space_group is not None and proto.space_group != space_group:
            continue
        selected.append(proto)
    return selected


class UnknownPrototypeError(KeyError, ValueError):
    """No prototype has this name (a KeyError for lookups, a ValueError for settings that name
    one)."""

    def __str__(self) -> str:  # the message, not KeyError's repr of it
        return str(self.args[0])


def get_prototype(name: str) -> Prototype:
    """A prototype by its unique name (AFLOW label, e.g. "AB_cP2_221_b_a" for CsCl)."""
    if not isinstance(name, str):
        raise TypeError(
            f"a prototype name must be a string such as 'AB_cP2_221_b_a', got {describe(name)}")
    for proto in _all_prototypes():
        if proto.name == name:
            return proto
    names = [p.name for p in _all_prototypes()]
    close = [n for n in names if n.startswith(name)] or difflib.get_close_matches(name, names, n=3)
    hint = (f"; did you mean {' or '.join(map(repr, close[:5]))}?"
            if close else "; see list_prototypes()")
    raise UnknownPrototypeError(f"unknown prototype {name!r}{hint}")


def load_prototype(name: str) -> Crystal:
    """The :class:`Crystal` of a prototype given by name."""
    return get_prototype(name).crystal()


def study_set(max_atoms: int = STUDY_MAX_ATOMS, per_family: int | None = None,
              seed: int = 0) -> list[Prototype]:
    """The default study set: prototypes with ≤ ``max_atoms`` atoms, stratified by crystal family.

    Ordered by family (``CRYSTAL_FAMILIES``), then by name. With ``per_family`` set, a
    seeded random draw of that many per family (all of a family when it has fewer),
    for small, still-balanced runs.
    """
    if per_family is not None:
        whole(per_family, "per_family", low=1)
    rng = np.random.default_rng(whole(seed, "seed", low=0))
    chosen = []
    for family in CRYSTAL_FAMILIES:
        members = sorted(list_prototypes(max_atoms=max_atoms, crystal_family=family),
                         key=lambda p: p.name)
        if per_family is not None and per_family < len(members):
            picks = np.sort(rng.choice(len(members), size=per_family, replace=False))
            members = [members[i] for i in picks]
        chosen.extend(members)
    return chosen


def example_names() -> list[str]:
    """Names of pymatgen's bundled example structures (e.g. "Si", "CsCl", "LiFePO4")."""
    folder = resources.files("pymatgen.util").joinpath("structures")
    return sorted(
        item.name[:-len(".json")] for item in folder.iterdir() if item.name.endswith(".json"))


def load_example(name: str) -> Crystal:
    """One of pymatgen's example structures as a :class:`Crystal`."""
    from pymatgen.core import Structure

    if name not in example_names():
        raise KeyError(f"no example structure {name!r}; choose one of {example_names()}")
    text = resources.files("pymatgen.util").joinpath("structures", f"{name}.json").read_text()
    return Crystal.from_pymatgen(Structure.from_dict(json.loads(text)))


def book_data_names() -> list[str]:
    """File names of the result tables shipped in ``xrdcore/data/`` (tables and their records)."""
    folder = resources.files("xrdcore").joinpath("data")
    return sorted(
        item.name for item in folder.iterdir() if item.name.endswith((".csv", ".parquet", ".json")))


def book_data(name: str) -> Path:
    """Path of one shipped result table (e.g. ``"retrieval_full.parquet"``) or its record.

    Found through the installed package, never the working directory; ``xrdcore/data/README.md``
    gives the command that regenerates each table.
    """
    if not isinstance(name, str) or name not in book_data_names():
        raise FileNotFoundError(
            f"no shipped table {name!r} in xrdcore/data; choose one of {book_data_names()}")
    return Path(str(resources.files("xrdcore").joinpath("data", name)))


@dataclass(frozen=True)
class Cell:
    """Lattice parameters: lengths in Å, angles in degrees."""

    a: float
    b: float
    c: float
    alpha: float
    beta: float
    gamma: float

    def lattice(self) -> np.ndarray:
        """Lattice vectors (3, 3) in Å as rows, in pymatgen's standard orientation."""
        from pymatgen.core import Lattice

        return np.array(
            Lattice.from_parameters(self.a, self.b, self.c, self.alpha, self.beta,
                                    self.gamma).matrix)


#: The paper's worked example (Segal et al. 2026, BPO4 figure; values as published, read from
#: the authors' figure): the ground-truth cell, the noised start, the result of unconstrained
#: descent ("Snapped") and of crystal-family-constrained descent ("Snapped + Constraints"),
#: each with its cosine similarity to the truth's pattern and the authors' match verdict.
BPO4_TRUTH = Cell(4.44, 4.44, 6.71, 90, 90, 90)
BPO4_NOISED_START = Cell(4.90, 4.31, 7.37, 96, 82, 85)
BPO4_PUBLISHED = {
    "noised start": dict(cell=BPO4_NOISED_START, cosine=0.12, match=False),
    "unconstrained": dict(cell=Cell(4.72, 4.03, 7.53, 96, 81, 86), cosine=0.71, match=False),
    "crystal family": dict(cell=Cell(4.60, 4.60, 7.31, 90, 90, 90), cosine=0.05, match=True)
}
#: The published BPO4 structure the example is built from (AFLOW prototype H0_7, I-4).
BPO4_PROTOTYPE = "AB4C_tI12_82_c_g_a"


def bpo4_worked_example() -> Crystal:
    """Tetragonal BPO4 (I-4) as in the paper's worked example: the conventional 12-atom cell of
    the published structure (Schmidt et al., Z. Anorg. Allg. Chem. 630, 655 (2004), through
    the AFLOW prototype :data:`BPO4_PROTOTYPE`), its fractional coordinates kept and its cell
    set to the authors' ground truth :data:`BPO4_TRUTH` (a = b = 4.44 Å, c = 6.71 Å)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    conventional = SpacegroupAnalyzer(
        get_prototype(BPO4_PROTOTYPE).structure()).get_conventional_standard_structure()
    crystal = Crystal.from_pymatgen(conventional)
    return crystal.replace(lattice=BPO4_TRUTH.lattice())
