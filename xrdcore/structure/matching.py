"""Structural similarity: did a retrieval find the truth, and how far is it?

* :func:`match`: pymatgen's ``StructureMatcher`` (tolerances as in the study: ltol 0.2,
  stol 0.3, angle_tol 5°; the strict variant uses stol 0.1; ``RECOVERY_TOLERANCES`` ask
  for a genuinely repaired structure), with the RMS distance it reports (normalised by
  (V/N)^(1/3), pymatgen's convention). Every call depends on its two crystals alone: pymatgen
  keeps the reduced cells of every structure it has matched in a process-wide cache whose
  lookup compares structures to 1e-5 Å, so a nearly equal structure reduced before (even the
  other one of the same call) stands in for this one: a true RMS of 1.0e-6 came out 1.6e-6, or
  2e-16 after other calls. :func:`match` reduces afresh.
* Cheap distances for use inside loops, under the known atom order:
  :func:`lattice_error`, :func:`rms_displacement` and their sum :func:`structural_distance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.structure.crystal import Crystal
from xrdcore.validation import instance

if TYPE_CHECKING:
    from pymatgen.core import IStructure, Structure

DEFAULT_TOLERANCES = dict(ltol=0.2, stol=0.3, angle_tol=5.0)
STRICT_TOLERANCES = dict(ltol=0.2, stol=0.1, angle_tol=5.0)
#: "Recovered": tight enough that the study's smallest distortions (1 % strain, 0.05 Å)
#: do not pass unrepaired, which the two sets above let through (a 5 % strained cell
#: still "matches" at ltol 0.2); and without StructureMatcher's default volume scaling,
#: which would accept a cell of the right shape but the wrong size.
RECOVERY_TOLERANCES = dict(ltol=0.005, stol=0.01, angle_tol=0.5, scale=False)


@dataclass(frozen=True)
class MatchResult:
    matched: bool
    rms: float  # pymatgen's normalised RMS distance; NaN when there is no match


@lru_cache(maxsize=1)
def _fresh_matcher() -> type:
    """pymatgen's StructureMatcher, reducing every structure afresh: without its process-wide
    cache of reduced cells, keyed by a tolerant equality (see the module docstring)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    class FreshMatcher(StructureMatcher):

        @classmethod
        def _get_reduced_structure(cls, struct: Structure | IStructure, primitive_cell: bool = True,
                                   niggli: bool = True) -> Structure:
            reduced = struct.copy()
            if niggli:
                reduced = reduced.get_reduced_structure(reduction_algo="niggli")
            result = reduced.get_primitive_structure() if primitive_cell else reduced
            # a Structure: the matcher hands this Structures (made by its _process_species)
            return cast("Structure", result)

    return FreshMatcher


def match(crystal: Crystal, reference: Crystal, first: bool = False,
          **tolerances: float | bool) -> MatchResult:
    """StructureMatcher verdict and RMS distance between two crystals.

    The verdict is ``get_rms_dist``'s (some lattice mapping and site assignment has a normalised
    RMS below stol). ``first=True`` stops at the first such mapping — the same verdict,
    5–15× sooner at loose tolerances — and reports that mapping's RMS, which may exceed the
    smallest one; the default searches every mapping for the smallest.
    """
    _check_pair(crystal, reference)
    matcher = _fresh_matcher()(**{**DEFAULT_TOLERANCES, **tolerances})
    ours, theirs = crystal.to_pymatgen(), reference.to_pymatgen()
    if not first:
        result = matcher.get_rms_dist(ours, theirs)
        return (MatchResult(False, float("nan")) if result is None else MatchResult(
            True, float(result[0])))
    # get_rms_dist's own steps (pymatgen 2025+), with break_on_match: the search stops at the
    # first mapping whose RMS is below stol, which exists exactly when get_rms_dist finds one
    ours, theirs = matcher._process_species([ours, theirs])
    ours, theirs, units, supercell = matcher._preprocess(ours, theirs)
    found = matcher._match(ours, theirs, units, supercell, use_rms=True, break_on_match=True)
    return MatchResult(False, float("nan")) if found is None else MatchResult(True, float(found[0]))


def _check_pair(crystal: object, reference: object) -> None:
    hint = "convert a pymatgen Structure with Crystal.from_pymatgen"
    instance(crystal, "crystal", Crystal, hint)
    instance(reference, "reference", Crystal, hint)


def lattice_parameters(lattice: ArrayLike) -> np.ndarray:
    """(a, b, c) in Å and (α, β, γ) in degrees."""
    lattice = np.asarray(lattice, dtype=float)
    lengths = np.linalg.norm(lattice, axis=1)
    cosines = [lattice[1] @ lattice[2], lattice[0] @ lattice[2], lattice[0] @ lattice[1]]
    products = [lengths[1] * lengths[2], lengths[0] * lengths[2], lengths[0] * lengths[1]]
    angles = np.degrees(np.arccos(np.clip(np.divide(cosines, products), -1, 1)))
    return np.concatenate([lengths, angles])


def lattice_error(crystal: Crystal, reference: Crystal) -> tuple[float, float]:
    """Largest relative error of a, b, c and largest error of α, β, γ (degrees)."""
    _check_pair(crystal, reference)
    ours, theirs = lattice_parameters(crystal.lattice), lattice_parameters(reference.lattice)
    return float(np.max(np.abs(ours[:3] / theirs[:3] - 1))), float(
        np.max(np.abs(ours[3:] - theirs[3:])))


def rms_displacement(crystal: Crystal, reference: Crystal) -> float:
    """RMS Cartesian distance (Å) between matching atoms (same order), nearest periodic image,
    after removing the mean displacement (a common translation is not an error); measured in
    the reference's lattice."""
    _check_pair(crystal, reference)
    if len(crystal) != len(reference):
        raise ValueError("the crystals have different numbers of atoms")
    difference = crystal.frac_coords - reference.frac_coords
    difference -= np.round(difference)
    difference -= difference.mean(axis=0)
    cartesian = difference @ reference.lattice
    return float(np.sqrt(np.mean(np.sum(cartesian**2, axis=1))))


#: Length (Å) that turns a relative lattice error into a distance in :func:`structural_distance`.
LATTICE_LENGTH_SCALE = 5.0


def structural_distance(crystal: Crystal, reference: Crystal) -> float:
    """One number for "how far": RMS displacement (Å) plus the largest relative lattice-length
    error times ``LATTICE_LENGTH_SCALE`` (5 Å, a typical cell edge)."""
    return (rms_displacement(crystal, reference) +
            LATTICE_LENGTH_SCALE * lattice_error(crystal, reference)[0])
