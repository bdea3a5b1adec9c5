"""Bad calls of the optimiser, the perturbations, the landscape scans, the energy, the symmetry
finder and the analysis helpers (overlap, dependence): each one
refused with our error, in our words, before any evaluation (see tests/bad_input.py).
And the other half of the contract: what a *run* reaches is a status, not an exception."""

import numpy as np
import pytest
from bad_input import rejects

from xrdcore.diffraction import Diffractometer
from xrdcore.energy import energy, relax
from xrdcore.landscape.dependence import dependence, mutual_information, perturbed_sample
from xrdcore.landscape.directions import Direction, lattice_direction
from xrdcore.landscape.overlap import overlap_report, peak_coverage
from xrdcore.landscape.scans import energy_scan, scan
from xrdcore.optimize.core import optimize
from xrdcore.optimize.remedies import BasinHopping, Continuation
from xrdcore.physics.profiles import Profile
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.datasets import load_prototype
from xrdcore.structure.parametrize import p1
from xrdcore.structure.perturb import perturb
from xrdcore.structure.symmetry import find_symmetry
from xrdcore.study.search import median_interval, spurious_search, summarize_search
from xrdcore.validation import ResourceLimitError, StructureError, limits

RUTILE = load_prototype("A2B_tP6_136_f_a")
COPPER = load_prototype("A_cF4_225_a")
XRD = Diffractometer()
TARGET = XRD.pattern(RUTILE)
START = perturb(RUTILE, strain=0.02, seed=0)
COLLAPSED = Crystal(np.eye(3) * 0.5, [[0, 0, 0]], ["Cu"])
STRETCH = lattice_direction(RUTILE, 0)


def run(**changes):
    """optimize() on rutile with one argument changed (a 3-step budget)."""
    args = dict(parametrization=p1(START), start=START, target=TARGET, diffractometer=XRD, steps=3)
    args.update(changes)
    return lambda: optimize(**args)


CASES = [
    ("method typo", run(method="adm"), ValueError, "did you mean 'adam'"),
    ("method not a string", run(method=1), TypeError, "method must be one of"),
    ("steps zero", run(steps=0), ValueError, "steps must be ≥ 1"),
    ("steps fractional", run(steps=2.5), ValueError, "whole number"),
    ("steps True", run(steps=True), TypeError, "steps must be a whole number"),
    ("steps string", run(steps="200"), TypeError, "steps must be a whole number"),
    ("learning rate NaN", run(learning_rate=float("nan")), ValueError,
     "learning_rate must be finite"),
    ("learning rate zero", run(learning_rate=0), ValueError, "learning_rate must be >"),
    ("learning rate complex", run(learning_rate=1j), TypeError,
     "learning_rate must be a real number"),
    ("tolerance NaN", run(tolerance=float("nan")), ValueError, "tolerance must be finite"),
    ("restarts negative", run(restarts=-1), ValueError, "restarts must be ≥ 0"),
    ("restart scale inf", run(restart_scale=float("inf")),
     ValueError, "restart_scale must be finite"),
    ("seed negative", run(seed=-3), ValueError, "seed must be ≥ 0"),
    ("seed string", run(seed="0"), TypeError, "seed must be a whole number"),
    ("energy weight negative", run(energy_weight=-1), ValueError, "energy_weight must be ≥ 0"),
    ("energy weight NaN", run(energy_weight=float("nan")), ValueError,
     "energy_weight must be finite"),
    ("metric typo", run(metric="cosin"), ValueError, "unknown metric 'cosin'"),
    ("option typo", run(fwmh=0.1), TypeError, r"unknown option\(s\) \['fwmh'\]"),
    ("fwhm negative", run(fwhm=-0.1), ValueError, "fwhm"),
    ("shape typo", lambda: run(fwhm=Profile(0.1, shape="gauss"))(), ValueError, "shape"),
    ("target one point short", run(target=TARGET[:-1]), ValueError,
     "target pattern has 4000 points, the 2θ grid 4001"),
    ("target all zero", run(target=np.zeros_like(TARGET)), ValueError,
     "target pattern is all zero"),
    ("target with NaN", run(target=np.where(np.arange(len(TARGET)) == 7, np.nan, TARGET)),
     ValueError, "NaN"),
    ("target a string", run(target="rutile.xy"), TypeError, "target pattern must be an array"),
    ("target a 2-D array", run(target=np.stack([TARGET, TARGET])), ValueError,
     "target pattern must have shape 1-D"),
    ("target complex", run(target=TARGET + 0j), TypeError, "complex"),
    ("target a pymatgen Structure", run(target=RUTILE.to_pymatgen()), TypeError,
     "Crystal.from_pymatgen"),
    ("diffractometer None", run(diffractometer=None), TypeError,
     "diffractometer must be an xrdcore Diffractometer"),
    ("start a pymatgen Structure", run(start=RUTILE.to_pymatgen()), TypeError,
     "Crystal.from_pymatgen"),
    ("start None", run(start=None), TypeError, "start must be an xrdcore Crystal"),
    ("parametrization a crystal", run(parametrization=RUTILE), TypeError,
     "parametrization must be"),
    ("truth of other atoms", run(truth=COPPER), ValueError, "truth has 1 atoms, the start 6"),
    ("continuation a number", run(continuation=1.0), TypeError, "continuation must be"),
    ("continuation below the target width", run(continuation=Continuation(0.01)), ValueError,
     "start FWHM"),
    ("continuation zero stages", run(continuation=Continuation(1.0, 0)), ValueError,
     "stages must be ≥ 1"),
    ("basin hopping a dict", run(basin_hopping={"hops": 2}), TypeError, "basin_hopping must be"),
    ("basin hopping zero temperature", run(basin_hopping=BasinHopping(2, 0.0)), ValueError,
     "temperature must be >"),
    ("basin hopping more hops than steps", run(basin_hopping=BasinHopping(5)), ValueError,
     "hops must be ≤ 3"),
    ("restarts and basin hopping", run(restarts=1,
                                       basin_hopping=BasinHopping(2)), ValueError, "not both"),
    ("reflections passed", run(reflections=None), TypeError, "reflections"),
    ("perturb a Structure", lambda: perturb(RUTILE.to_pymatgen(), strain=0.01), TypeError,
     "Crystal.from_pymatgen"),
    ("perturb strain negative", lambda: perturb(RUTILE, strain=-0.1), ValueError,
     "strain must be ≥ 0"),
    ("perturb strain True", lambda: perturb(RUTILE, strain=True), TypeError,
     "strain must be a real number"),
    ("perturb displacement NaN", lambda: perturb(RUTILE, displacement=float("nan")), ValueError,
     "displacement must be finite"),
    ("perturb symmetric unknown", lambda: perturb(RUTILE, strain=0.01, symmetric="cubic"),
     ValueError, "symmetric must be"),
    ("perturb symmetric 1", lambda: perturb(RUTILE, strain=0.01, symmetric=1), ValueError,
     "symmetric must be"),
    ("perturb noise typo", lambda: perturb(RUTILE, strain=0.01, lattice_noise="matrx"), ValueError,
     "did you mean 'matrix'"),
    ("perturb seed fractional", lambda: perturb(RUTILE, strain=0.01, seed=0.5), ValueError,
     "seed must be a whole number"),
    ("scan three directions", lambda: scan(RUTILE, [STRETCH] * 3, [0.0], TARGET, XRD), ValueError,
     "one direction"),
    ("scan direction of another crystal",
     lambda: scan(RUTILE, lattice_direction(COPPER, 0), [0.0], TARGET, XRD), ValueError,
     "does not fit"),
    ("scan a non-direction", lambda: scan(RUTILE, [np.eye(3)], [0.0], TARGET, XRD), TypeError,
     "direction must be"),
    ("scan direction with NaN",
     lambda: scan(RUTILE, Direction(np.full((3, 3), np.nan), np.zeros(
         (6, 3))), [0.0], TARGET, XRD), ValueError, "NaN"),
    ("scan offsets empty", lambda: scan(RUTILE, STRETCH, [], TARGET, XRD), ValueError, "empty"),
    ("scan offsets strings", lambda: scan(RUTILE, STRETCH, ["a", "b"], TARGET, XRD), TypeError,
     "strings"),
    ("scan offsets 2-D for one direction", lambda: scan(RUTILE, STRETCH, np.zeros(
        (2, 2)), TARGET, XRD), ValueError, "1-D"),
    ("scan 2-D offsets not a pair", lambda: scan(RUTILE, [STRETCH, STRETCH], [[0.0]], TARGET, XRD),
     ValueError, "pair"),
    ("energy of a collapsed cell", lambda: energy(COLLAPSED, "emt"), StructureError, "collapsed"),
    ("energy beyond the memory guard", lambda: _with_memory_limit(lambda: energy(COPPER, "emt")),
     ResourceLimitError, "max_memory_gb"),
    ("energy of a Structure", lambda: energy(COPPER.to_pymatgen(), "emt"), TypeError,
     "Crystal.from_pymatgen"),
    ("energy calculator unknown", lambda: energy(COPPER, "mace"), ValueError, "unknown calculator"),
    ("energy scan offsets NaN",
     lambda: energy_scan(COPPER, lattice_direction(COPPER, 0), [np.nan], "emt"), ValueError, "NaN"),
    ("relax optimizer typo", lambda: relax(COPPER, "emt", optimizer="FRE"), ValueError,
     "did you mean 'FIRE'"),
    ("relax fmax zero", lambda: relax(COPPER, "emt", fmax=0), ValueError, "fmax must be >"),
    ("relax steps negative", lambda: relax(COPPER, "emt", steps=-1), ValueError,
     "steps must be ≥ 0"),
    ("relax cell not a bool", lambda: relax(COPPER, "emt", cell="yes"), TypeError,
     "cell must be True or False")
]


def _with_memory_limit(call):
    with limits(max_memory_gb=1e-9):
        return call()


@pytest.mark.parametrize("call, error, phrase", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_call_is_refused(call, error, phrase):
    rejects(call, error, phrase)


def test_a_run_that_breaks_its_structure_ends_with_a_status():
    """A huge plain-GD step makes the cell absurd: the run ends (invalid structure or beyond a
    resource guard) and keeps its best valid point, instead of raising."""
    huge = optimize(p1(START), START, TARGET, XRD, method="gd", steps=5, learning_rate=1e6)
    assert huge.status in ("invalid structure", "resource limit")
    assert huge.crystal is not None and huge.loss == min(huge.trajectory.loss)


def test_a_resource_limit_reached_in_a_run_is_a_status():
    start = perturb(RUTILE, strain=0.05, seed=1)
    with limits(max_reflections=len(XRD.reflections(start).g) + 3):
        result = optimize(p1(start), start, TARGET, XRD, method="gd", steps=20, learning_rate=1e-3)
    assert result.status in ("resource limit", "step budget")
    assert result.status == "resource limit" or result.evaluations == 20


SYMMETRY_CASES = [
    ("symprec zero", lambda: find_symmetry(RUTILE, 0.0), ValueError, "symprec must be >"),
    ("symprec huge", lambda: find_symmetry(RUTILE, 3.0), ValueError, "symprec must be ≤ 0.5"),
    ("symprec a string", lambda: find_symmetry(RUTILE, "1e-3"), TypeError,
     "symprec must be a real number"),
    ("symmetry of a Structure", lambda: find_symmetry(RUTILE.to_pymatgen()), TypeError,
     "Crystal.from_pymatgen")
]


@pytest.mark.parametrize("call, error, phrase", [case[1:] for case in SYMMETRY_CASES],
                         ids=[case[0] for case in SYMMETRY_CASES])
def test_bad_symmetry_call_is_refused(call, error, phrase):
    rejects(call, error, phrase)


ANALYSIS_CASES = [
    ("overlap of None", lambda: overlap_report(None, RUTILE, XRD), TypeError,
     "candidate must be an xrdcore Crystal"),
    ("overlap with a Structure truth", lambda: overlap_report(RUTILE, RUTILE.to_pymatgen(), XRD),
     TypeError, "truth must be an xrdcore Crystal"),
    ("overlap fwhm a string", lambda: overlap_report(RUTILE, RUTILE, XRD, fwhm="0.1"), TypeError,
     "fwhm must be a real number"),
    ("overlap top negative", lambda: overlap_report(RUTILE, RUTILE, XRD, top=-1), ValueError,
     "top must be ≥ 0"),
    ("overlap without a diffractometer", lambda: overlap_report(RUTILE, RUTILE, None), TypeError,
     "diffractometer must be"),
    ("coverage threshold negative", lambda: peak_coverage(RUTILE, RUTILE, XRD, strong=-5),
     ValueError, "strong must be ≥ 0"),
    ("coverage tolerance zero", lambda: peak_coverage(RUTILE, RUTILE, XRD, tolerance=0), ValueError,
     "tolerance must be >"),
    ("spurious search with no starts", lambda: spurious_search(RUTILE, XRD, starts=0), ValueError,
     "starts must be ≥ 1"),
    ("median interval of NaN", lambda: median_interval([1.0, np.nan]), ValueError, "NaN"),
    ("median interval confidence 2", lambda: median_interval([1.0, 2.0], confidence=2), ValueError,
     "confidence must be ≤ 1"),
    ("summary among a typo", lambda: summarize_search([], among="wrng"), ValueError,
     "did you mean 'wrong'"),
    ("dependence of unequal samples", lambda: dependence(np.arange(12.0), np.arange(11.0)),
     ValueError, "same length, got 12 and 11"),
    ("dependence with NaN", lambda: dependence(np.r_[np.arange(11.0), np.nan], np.arange(12.0)),
     ValueError, "NaN"),
    ("dependence of strings", lambda: dependence(["a"] * 12, np.arange(12.0)), TypeError,
     "strings"),
    ("mutual information of 2-D samples", lambda: mutual_information(np.ones(
        (3, 3)), np.ones(3)), ValueError, "x must have shape 1-D"),
    ("perturbed sample count zero", lambda: perturbed_sample(RUTILE, XRD, count=0), ValueError,
     "count must be ≥ 1"),
    ("perturbed sample strain negative", lambda: perturbed_sample(RUTILE, XRD, max_strain=-1),
     ValueError, "max_strain must be ≥ 0")
]


@pytest.mark.parametrize("call, error, phrase", [case[1:] for case in ANALYSIS_CASES],
                         ids=[case[0] for case in ANALYSIS_CASES])
def test_bad_analysis_call_is_refused(call, error, phrase):
    rejects(call, error, phrase)
