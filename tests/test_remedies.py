"""Remedies for a rough landscape (xrdcore.optimize): gradients against finite differences,
the width schedule, equal budgets, the combined objective at w = 0, and the runner's remedy
dimension (a tiny grid, resumed)."""

import csv
from dataclasses import replace

import numpy as np
import pytest

from xrdcore import Crystal, Diffractometer, datasets
from xrdcore.gradients import loss_and_grad, loss_value
from xrdcore.optimize.core import optimize
from xrdcore.optimize.remedies import (BasinHopping, Continuation, broaden_pattern,
                                       combined_loss_and_grad, split_budget, width_schedule)
from xrdcore.structure.parametrize import Parametrization, crystal_family, lattice_only, p1
from xrdcore.structure.perturb import perturb
from xrdcore.study.config import SMALL, StudyConfig, remedy_options
from xrdcore.study.runner import Task, run_study

FCC = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]


@pytest.fixture(scope="module")
def copper():
    """fcc Cu a little off EMT's minimum, one atom moved: non-zero forces and stress."""
    coords = np.array(FCC, dtype=float)
    coords[1] += [0.02, -0.01, 0.015]
    return Crystal(np.array([[3.65, 0.02, 0.0], [0.0, 3.60, 0.01], [0.03, 0.0, 3.62]]), coords,
                   ["Cu"] * 4)


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype("A2B_tP6_136_f_a")


@pytest.fixture(scope="module")
def xrd():
    return Diffractometer("CuKa", (10, 90), backend="cpu")


def finite_difference(function, params, h):
    gradient = np.zeros_like(params)
    for i in range(len(params)):
        step = np.zeros_like(params)
        step[i] = h
        gradient[i] = (function(params + step) - function(params - step)) / (2 * h)
    return gradient


# ------------------------------------------------------------------ energy gradient
def test_energy_gradient_matches_finite_differences_emt(copper):
    energy = pytest.importorskip("xrdcore.energy")
    pytest.importorskip("ase")
    value, d_lattice, d_frac = energy.energy_gradient(copper, "emt")
    assert value == pytest.approx(energy.energy(copper, "emt"), rel=1e-12)
    lattice_fd = finite_difference(
        lambda v: energy.energy(copper.replace(lattice=v.reshape(3, 3)), "emt"),
        copper.lattice.ravel(), 1e-5)
    frac_fd = finite_difference(
        lambda v: energy.energy(copper.replace(frac_coords=v.reshape(-1, 3)), "emt"),
        copper.frac_coords.ravel(), 1e-6)
    np.testing.assert_allclose(d_lattice.ravel(), lattice_fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(d_frac.ravel(), frac_fd, rtol=1e-6, atol=1e-9)
    assert (np.abs(d_lattice).max() > 1e-2 and
            np.abs(d_frac).max() > 1e-2)  # the comparison has teeth


def test_energy_gradient_matches_finite_differences_chgnet(rutile):
    energy = pytest.importorskip("xrdcore.energy")
    pytest.importorskip("chgnet")
    start = perturb(rutile, strain=0.02, displacement=0.05, seed=0)
    _, d_lattice, d_frac = energy.energy_gradient(start)
    # CHGNet runs in float32: steps large enough to beat rounding, tolerances to match
    lattice_fd = finite_difference(lambda v: energy.energy(start.replace(lattice=v.reshape(3, 3))),
                                   start.lattice.ravel(), 5e-3)
    np.testing.assert_allclose(d_lattice.ravel(), lattice_fd,
                               atol=0.01 * np.abs(lattice_fd).max() + 2e-3)
    picks = [0, 4, 8, 13]  # some fractional coordinates (atom, axis)
    frac_fd = finite_difference(
        lambda v: energy.energy(start.replace(frac_coords=v.reshape(-1, 3))),
        start.frac_coords.ravel(), 1e-3)
    np.testing.assert_allclose(d_frac.ravel()[picks], frac_fd[picks],
                               atol=0.02 * np.abs(frac_fd).max() + 2e-3)
    assert np.abs(lattice_fd).max() > 0.05


@pytest.mark.parametrize("mode", ["p1", "family"])
def test_combined_objective_gradient_matches_finite_differences(copper, xrd, mode):
    pytest.importorskip("ase")
    truth = Crystal(np.eye(3) * 3.61, FCC, ["Cu"] * 4)
    target = xrd.pattern(truth, fwhm=0.3)
    parametrization = p1(copper) if mode == "p1" else crystal_family(copper, truth)
    params = parametrization.parameters(copper)

    def value(v):
        return combined_loss_and_grad(parametrization.crystal(v), target, xrd, 0.5, "emt",
                                      fwhm=0.3).loss

    result = combined_loss_and_grad(parametrization.crystal(params), target, xrd, 0.5, "emt",
                                    fwhm=0.3)
    assert result.loss == pytest.approx(result.xrd_loss + 0.5 * result.energy, rel=1e-12)
    np.testing.assert_allclose(parametrization.gradient(result),
                               finite_difference(value, params, 1e-6), rtol=1e-6, atol=1e-8)


def test_combined_objective_with_zero_weight_is_the_plain_loss(copper, xrd):
    pytest.importorskip("ase")
    target = xrd.pattern(Crystal(np.eye(3) * 3.61, FCC, ["Cu"] * 4), fwhm=0.2)
    plain = loss_and_grad(copper, target, xrd, fwhm=0.2)
    combined = combined_loss_and_grad(copper, target, xrd, 0.0, "emt", fwhm=0.2)
    assert combined.loss == plain.loss == combined.xrd_loss and np.isfinite(combined.energy)
    np.testing.assert_array_equal(combined.d_lattice, plain.d_lattice)
    np.testing.assert_array_equal(combined.d_frac, plain.d_frac)
    start = perturb(copper, strain=0.01, seed=0)
    runs = [
        optimize(lattice_only(start), start, target, xrd, steps=15, fwhm=0.2, **extra)
        for extra in ({}, {
            "energy_weight": 0.0
        })
    ]
    np.testing.assert_array_equal(runs[0].trajectory.loss, runs[1].trajectory.loss)
    assert runs[1].energy_evaluations == 0 and np.isnan(runs[1].energy)


# ------------------------------------------------------------------ continuation
def test_width_schedule_ends_at_the_target_width_within_the_budget():
    schedule = width_schedule(1.0, 0.1, 4, 200)
    widths, budgets = zip(*schedule)
    assert widths[0] == 1.0 and widths[-1] == 0.1 and sum(budgets) == 200
    np.testing.assert_allclose(np.diff(np.log(widths)), np.log(0.1) / 3)  # geometric
    assert width_schedule(0.5, 0.5, 1, 7) == [(0.5, 7)]
    assert split_budget(10, 4) == [3, 3, 2, 2]
    for bad in [
            dict(start_fwhm=0.05, fwhm=0.1, stages=3, steps=10),
            dict(start_fwhm=1, fwhm=0.1, stages=0, steps=10),
            dict(start_fwhm=1, fwhm=0.1, stages=4, steps=3)
    ]:
        with pytest.raises(ValueError):
            width_schedule(**bad)


def test_broadened_pattern_is_the_pattern_at_the_wider_width(rutile, xrd):
    wide = xrd.pattern(rutile, fwhm=0.6, normalize=False)
    broadened = broaden_pattern(xrd.pattern(rutile, fwhm=0.1, normalize=False), xrd.two_theta, 0.1,
                                0.6)
    inside = (xrd.two_theta > 15) & (xrd.two_theta < 85)  # away from the ends of the range
    assert np.abs(broadened - wide)[inside].max() < 2e-3 * wide.max()
    assert np.array_equal(broaden_pattern(wide, xrd.two_theta, 0.6, 0.6), wide)
    with pytest.raises(ValueError, match="only broaden"):
        broaden_pattern(wide, xrd.two_theta, 0.6, 0.1)


def test_continuation_stage_gradient_matches_finite_differences(rutile, xrd):
    """A stage's objective: the pattern at width w against the broadened measured pattern."""
    target = broaden_pattern(xrd.pattern(rutile, fwhm=0.1), xrd.two_theta, 0.1, 0.8)
    start = perturb(rutile, strain=0.03, displacement=0.05, seed=2)
    parametrization = p1(start)
    params = parametrization.parameters(start)
    result = combined_loss_and_grad(start, target, xrd, fwhm=0.8)
    fd = finite_difference(lambda v: loss_value(parametrization.crystal(v), target, xrd, fwhm=0.8),
                           params, 1e-6)
    np.testing.assert_allclose(parametrization.gradient(result), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("as_crystal", [False, True])
def test_continuation_run_ends_at_the_target_width(rutile, xrd, as_crystal):
    target = rutile if as_crystal else xrd.pattern(rutile, fwhm=0.1)
    start = perturb(rutile, strain=0.02, seed=0)
    result = optimize(lattice_only(start), start, target, xrd, steps=40, fwhm=0.1, tolerance=-1,
                      continuation=Continuation(1.0, 4))
    assert result.evaluations == 40 == len(result.trajectory.fwhm)
    assert result.trajectory.fwhm[0] == 1.0 and result.trajectory.fwhm[-1] == 0.1
    assert sorted(set(result.trajectory.fwhm),
                  reverse=True) == [w for w, _ in width_schedule(1.0, 0.1, 4, 40)]
    assert result.loss == pytest.approx(loss_value(result.crystal, target, xrd, fwhm=0.1),
                                        rel=1e-12)
    assert result.loss == min(result.trajectory.loss[-10:])  # the best of the last stage


# ------------------------------------------------------------------ budgets and basin hopping
def test_budgets_are_equal_across_remedies(rutile, xrd):
    target = xrd.pattern(rutile, fwhm=0.1)
    start = perturb(rutile, strain=0.05, seed=1)
    parametrization = Parametrization(rutile, "free", "fixed", reference=rutile)
    counts = {}
    for remedy in [
            "none", "continuation", "continuation:3", "multistart", "multistart:3", "basin",
            "basin:8"
    ]:
        result = optimize(parametrization, start, target, xrd, metric="cosine", fwhm=0.1,
                          tolerance=-1, seed=0, **remedy_options(remedy, 64))
        counts[remedy] = result.evaluations
        assert len(result.trajectory.loss) <= result.evaluations
    assert counts == dict.fromkeys(counts, 64) | {
        "multistart:3": 63
    }  # 3 × 21: never more than the budget
    with pytest.raises(ValueError, match="unknown remedy"):
        remedy_options("annealing", 64)
    with pytest.raises(ValueError, match="weight"):
        remedy_options("energy", 64)


def test_energy_remedy_counts_energy_evaluations(copper, xrd):
    pytest.importorskip("ase")
    target = xrd.pattern(Crystal(np.eye(3) * 3.61, FCC, ["Cu"] * 4), fwhm=0.1)
    result = optimize(lattice_only(copper), copper, target, xrd, steps=12, tolerance=-1, fwhm=0.1,
                      energy_weight=1.0, energy_calculator="emt")
    assert result.evaluations == result.energy_evaluations == 12
    assert (result.loss == pytest.approx(result.xrd_loss + result.energy, rel=1e-12) and
            result.seconds > 0)
    with pytest.raises(ValueError,
                       match="no parameters"):  # EMT knows no Ti or O: an error, not a failed run
        optimize(p1(datasets.load_prototype("A2B_tP6_136_f_a")),
                 datasets.load_prototype("A2B_tP6_136_f_a"), target, xrd, steps=2,
                 energy_weight=1.0, energy_calculator="emt")


def test_basin_hopping_keeps_the_best_hop_and_is_seeded(rutile, xrd):
    target = xrd.pattern(rutile, fwhm=0.1)
    start = perturb(rutile, strain=0.03, seed=4)

    def run(seed):
        return optimize(lattice_only(start), start, target, xrd, steps=60, seed=seed, fwhm=0.1,
                        basin_hopping=BasinHopping(hops=3, temperature=0.02))

    first, again, other = run(1), run(1), run(2)
    assert first.loss == again.loss and first.evaluations == len(first.trajectory.loss) == 60
    assert first.loss == pytest.approx(min(first.trajectory.loss),
                                       rel=1e-12)  # the chain's best point is kept
    assert (other.trajectory.loss[:20] == first.trajectory.loss[:20]
            )  # the first descent is from the start itself
    assert first.start_index in (0, 1, 2)
    with pytest.raises(ValueError, match="not both"):
        optimize(lattice_only(start), start, target, xrd, steps=10, restarts=1,
                 basin_hopping=BasinHopping())


# ------------------------------------------------------------------ the runner
TINY = replace(SMALL, structures=("AB_cF8_225_a_b", ), kinds=("lattice", ), strains=(0.02, ),
               parametrizations=("p1", "family"), steps=12,
               remedies=("none", "continuation", "multistart", "basin:3", "energy:1"))


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_runner_runs_a_remedy_grid_and_resumes(tmp_path):
    pytest.importorskip("chgnet")
    tasks = TINY.tasks()
    assert len(tasks) == 2 * 5 and len({t.key for t in tasks}) == len(tasks)
    assert (Task("x", "lattice", 0.01, "cosine", "p1", "adam",
                 0).key == "x|lattice|0.01|cosine|p1|adam|0")  # old keys stay valid
    complete = read_rows(run_study(TINY, tmp_path / "all.csv", workers=1, progress=False))
    assert {row["remedy"] for row in complete} == set(TINY.remedies)
    for row in complete:
        assert int(row["evaluations"]) <= TINY.steps
        assert (int(row["energy_evaluations"]) > 0) == (row["remedy"] == "energy:1")
        assert float(row["optimize_seconds"]) <= float(row["seconds"])
    assert all(
        np.isfinite(float(row["final_energy"])) == (row["remedy"] == "energy:1")
        for row in complete)
    partial = tmp_path / "partial.csv"
    with partial.open("w", newline="") as handle:  # killed after four tasks
        writer = csv.DictWriter(handle, fieldnames=list(complete[0]))
        writer.writeheader()
        writer.writerows(complete[:4])
    TINY.to_json(
        tmp_path / "partial.config.json")  # what the killed run had written beside its rows
    rows = read_rows(run_study(TINY, partial, workers=1, progress=False))
    assert (sorted(row["key"] for row in rows) == sorted(row["key"] for row in complete) and
            rows[:4] == complete[:4])
    assert StudyConfig.from_json(tmp_path / "all.config.json") == TINY


def test_runner_resumes_a_file_from_before_remedies(tmp_path):
    plain = replace(TINY, remedies=("none", ), parametrizations=("p1", ), steps=5)
    rows = read_rows(run_study(plain, tmp_path / "new.csv", workers=1, progress=False))
    old = tmp_path / "old.csv"
    columns = [
        name for name in rows[0]
        if name not in ("remedy", "final_energy", "energy_evaluations", "optimize_seconds")
    ]
    with old.open("w", newline="") as handle:
        csv.DictWriter(handle, fieldnames=columns).writeheader()
    assert (len(read_rows(run_study(plain, old, workers=1,
                                    progress=False))) == 1)  # remedy-free rows fit the old header
    with pytest.raises(ValueError, match="no remedy columns"):
        run_study(replace(plain, remedies=("basin", )), old, workers=1, progress=False)
    with pytest.raises(ValueError, match="not a number"):
        replace(plain, remedies=("basin:x", )).tasks()


def test_broad_stages_sample_a_coarser_grid(rutile, xrd):
    from xrdcore.optimize.core import _Problem
    from xrdcore.physics.profiles import Profile

    target = xrd.pattern(rutile, fwhm=0.1)
    problem = _Problem(lattice_only(rutile), target, xrd, None, {"fwhm": Profile(0.1)}, (0.0, None),
                       "adam", 1.0, 0.0, Continuation(1.0, 3))
    stages = problem.stages(30)
    widths = [options["fwhm"].fwhm for options, _, _ in stages]
    assert widths == pytest.approx([1.0, np.sqrt(0.1), 0.1])
    assert np.array_equal(stages[0][0]["two_theta"], xrd.two_theta[::10]) and np.array_equal(
        stages[1][0]["two_theta"], xrd.two_theta[::3])
    assert "two_theta" not in stages[2][0] and stages[2][1] is target
    np.testing.assert_array_equal(stages[0][1],
                                  broaden_pattern(target, xrd.two_theta, 0.1, 1.0)[::10])
