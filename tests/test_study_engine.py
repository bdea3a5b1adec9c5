"""The batched study engine: batched descent = optimize, batched executor = task executor,
StructureMatcher shortcuts = asking it always, Parquet output (killed and resumed runs:
tests/test_faults.py)."""

import math
import os
from dataclasses import replace

import numpy as np
import pytest

from xrdcore import datasets
from xrdcore.batch import BatchLoss
from xrdcore.diffraction import Diffractometer
from xrdcore.kernels import batched
from xrdcore.optimize.batch import descend_batch
from xrdcore.optimize.core import optimize
from xrdcore.physics.profiles import uniform_step
from xrdcore.similarity import loss, loss_batch
from xrdcore.structure.matching import (DEFAULT_TOLERANCES, RECOVERY_TOLERANCES, STRICT_TOLERANCES,
                                        match)
from xrdcore.structure.parametrize import Parametrization
from xrdcore.structure.perturb import perturb
from xrdcore.study.config import SMALL
from xrdcore.study.runner import (WORKER_ENVIRONMENT, _worker_environment, final_verdicts,
                                  journal_path, read_rows, run_study, work_units)

TINY = replace(SMALL, structures=("AB_cF8_225_a_b", ), strains=(0.02, ), displacements=(0.1, ),
               steps=20)
VERDICTS = ("matched", "matched_strict", "recovered", "start_matched", "start_recovered", "status",
            "evaluations")


@pytest.fixture(scope="module")
def rutile():
    truth = datasets.get_prototype("A2B_tP6_136_f_a").crystal()
    diffractometer = Diffractometer("CuKa", (10, 90), 0.02, backend="cpu")
    return truth, diffractometer, diffractometer.pattern(truth, fwhm=0.1)


def same_loss(a: float, b: float) -> bool:
    """Equal to 1e-8 relative, or both at the rounding floor of a loss at the truth."""
    return abs(a - b) <= 1e-8 * abs(a) + 1e-12


@pytest.mark.parametrize("modes, method", [(("free", "free"), "adam"),
                                           (("family", "spacegroup"), "adam"),
                                           (("free", "fixed"), "gd")])
def test_batched_descent_is_optimize(rutile, modes, method):
    truth, diffractometer, target = rutile
    parametrization = Parametrization(truth, *modes, reference=truth)
    starts = [
        perturb(truth, strain=strain, displacement=0.05, seed=seed) for strain in (0.01, 0.03)
        for seed in (0, 1)
    ]
    rate = 1e-4 if method == "gd" else 1.0
    reference = [
        optimize(parametrization, start, target, diffractometer, method=method, steps=40,
                 learning_rate=rate) for start in starts
    ]
    batch = descend_batch(parametrization, [parametrization.parameters(s) for s in starts], target,
                          diffractometer, method=method, steps=40, learning_rate=rate)
    for index, run in enumerate(reference):
        assert batch.status[index] == run.status and batch.evaluations[index] == run.evaluations
        assert same_loss(run.xrd_loss, batch.loss[index])
        assert np.allclose(batch.params[index], run.params, rtol=1e-7, atol=1e-9)


def test_batched_descent_stops_like_optimize(rutile):
    """At the truth: converged after one evaluation; a collapsed cell: invalid, nothing evaluated;
    a start strained far beyond the default margin (a rebuilt reflection list): same as optimize."""
    truth, diffractometer, target = rutile
    parametrization = Parametrization(truth, "free", "fixed", reference=truth)
    collapsed = parametrization.parameters(truth)
    collapsed[:3] = 0.0  # first lattice vector zero: volume 0
    far = parametrization.parameters(perturb(truth, strain=0.3, seed=4))
    starts = [parametrization.parameters(truth), collapsed, far]
    batch = descend_batch(parametrization, starts, target, diffractometer, steps=30)
    assert batch.status[:2] == ["converged", "invalid structure"] and list(
        batch.evaluations[:2]) == [1, 0]
    assert batch.crystal(parametrization, 1) is None and math.isnan(batch.start_loss[1])
    run = optimize(parametrization, parametrization.crystal(far), target, diffractometer, steps=30)
    assert batch.status[2] == run.status and batch.evaluations[2] == run.evaluations
    assert same_loss(run.xrd_loss, batch.loss[2])


def test_required_margin_of_a_uniform_scaling():
    """A' = 1.1 A: T = A'⁻¹A = I/1.1 needs 1/(1 + m) ≤ 1/1.1, m ≥ 0.1; A' = A/1.2: T = 1.2 I needs
    1.2 ≤ 1/(1 − m), m ≥ 1/6; and ReflectionSet.covers agrees just above and below."""
    from xrdcore.gradients import ReflectionSet, required_margin

    lattice = np.diag([3.0, 4.0, 5.0])
    lattices = np.stack([lattice * 1.1, lattice / 1.2, lattice])
    margins = required_margin(lattice, lattices)
    assert np.allclose(margins, [0.1, 1 / 6, 0.0])
    for lattice_b, margin in zip(lattices, margins):
        assert ReflectionSet(np.zeros((0, 3)), lattice, margin + 1e-9, (0.0, 1.0)).covers(lattice_b)
        if margin > 0:
            assert not ReflectionSet(np.zeros((0, 3)), lattice, margin - 1e-6,
                                     (0.0, 1.0)).covers(lattice_b)


def test_gaussian_recurrence_equals_direct_evaluation(rutile):
    truth, diffractometer, target = rutile
    batch = BatchLoss(truth, target, diffractometer, fwhm=0.1)
    assert uniform_step(batch.setup.grid) == pytest.approx(0.02)
    lattices = np.stack([truth.lattice * s for s in (0.99, 1.0, 1.02)])
    coords = np.broadcast_to(truth.frac_coords, (3, len(truth), 3)).copy()
    engine = batch.engine
    a = engine.arrays
    wavelength, fwhm, eta, window = engine.scalars
    occupancies = np.ones((3, len(truth)))
    arguments = (lattices, coords, occupancies, a["scatterer_type"], a["type_z"], a["type_coeffs"],
                 a["type_b"], a["hkl"], engine.max_index, *engine.g_window, wavelength, a["grid"])
    recurrence, saved = batched.forward_batch(*arguments, engine.step, fwhm, eta, window)
    direct, _ = batched.forward_batch(*arguments, 0.0, fwhm, eta, window)
    assert np.max(np.abs(recurrence - direct)) <= 1e-10 * np.max(direct)
    d_profile = np.random.default_rng(0).standard_normal(recurrence.shape)
    backward = (d_profile, saved, lattices, coords, occupancies, a["scatterer_type"], a["hkl"],
                engine.max_index, wavelength, a["grid"])
    for fast, slow in zip(batched.backward_batch(*backward, engine.step, fwhm, eta, window),
                          batched.backward_batch(*backward, 0.0, fwhm, eta, window)):
        assert np.max(np.abs(fast - slow)) <= 1e-9 * np.max(np.abs(slow))


@pytest.mark.parametrize("metric", ["cosine", "mse"])
def test_loss_batch_is_loss_row_by_row(metric):
    rng = np.random.default_rng(1)
    target = rng.random(50)
    patterns = rng.random((4, 50))
    patterns[2] = 0.0  # nothing diffracts: undefined
    with pytest.raises(ValueError, match="all zero"):
        loss_batch(metric, patterns, target)
    losses, gradients = loss_batch(metric, patterns, target, undefined="nan")
    assert math.isnan(losses[2]) and not np.any(gradients[2])
    for b in (0, 1, 3):
        value, gradient = loss(metric, patterns[b], target)
        assert losses[b] == pytest.approx(value, rel=1e-13) and np.allclose(
            gradients[b], gradient, rtol=1e-12, atol=1e-15)


def test_structurematcher_shortcuts_decide_as_asking_always(rutile):
    """First-mapping search = get_rms_dist's verdict; final_verdicts' shortcuts = three full calls.
    Cases from near-identical to far, strained, displaced, rescaled, and the truth itself."""
    truth, _, _ = rutile
    cases = [
        truth,
        truth.replace(lattice=truth.lattice * 1.00001),
        truth.replace(lattice=truth.lattice * 1.1)
    ]
    cases += [
        perturb(truth, strain=s, displacement=d, seed=seed)
        for s, d in ((0.003, 0.0), (0.0, 0.02), (0.02, 0.2), (0.1, 0.5), (0.0, 0.004))
        for seed in (0, 1)
    ]
    for case in cases:
        for tolerances in (DEFAULT_TOLERANCES, STRICT_TOLERANCES, RECOVERY_TOLERANCES):
            assert (match(case, truth, first=True, **tolerances).matched == match(
                case, truth, **tolerances).matched)
        fast, always = final_verdicts(case, truth), final_verdicts(case, truth, shortcut=False)
        assert [fast[k] for k in VERDICTS[:3]] == [always[k] for k in VERDICTS[:3]]
    assert (final_verdicts(truth, truth)["recovered"] and
            not final_verdicts(cases[2], truth)["recovered"])


def test_executors_agree_on_a_small_grid(tmp_path):
    task = {
        row["key"]: row
        for row in read_rows(
            run_study(SMALL, tmp_path / "task.csv", workers=1, progress=False, executor="task"))
    }
    rows = read_rows(run_study(SMALL, tmp_path / "batched.csv", workers=1, progress=False))
    assert len(rows) == len(task) == len(SMALL.tasks())
    for row in rows:
        reference = task[row["key"]]
        assert [row[k] for k in VERDICTS] == [reference[k] for k in VERDICTS], row["key"]
        assert same_loss(float(reference["final_loss"]), float(row["final_loss"])), row["key"]
        assert same_loss(float(reference["start_loss"]), float(row["start_loss"])), row["key"]


def test_units_group_by_structure_and_kind():
    units = work_units(SMALL.tasks())
    assert len(units) == 4 and sum(map(len, units)) == len(SMALL.tasks())
    assert all(len({(t.structure, t.kind) for t in unit}) == 1 for unit in units)


def test_parquet_output_and_summary(tmp_path, capsys):
    from xrdcore.study.cli import main

    output = run_study(TINY, tmp_path / "runs.parquet", workers=1, progress=False)
    assert output.exists() and not journal_path(output).exists()
    csv_rows = read_rows(run_study(TINY, tmp_path / "runs.csv", workers=1, progress=False))
    parquet_rows = read_rows(output)
    assert {r["key"] for r in parquet_rows} == {r["key"] for r in csv_rows}
    by_key = {r["key"]: r for r in csv_rows}
    for row in parquet_rows:
        assert [row[k] for k in VERDICTS] == [by_key[row["key"]][k] for k in VERDICTS]
    assert main(["summary", str(output)]) == 0
    assert "rate" in capsys.readouterr().out


def test_worker_processes_get_one_thread():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import numba

    before = dict(os.environ)
    with (_worker_environment(),
          ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool):
        assert pool.submit(numba.get_num_threads).result() == 1
        assert (pool.submit(os.getenv,
                            "OMP_WAIT_POLICY").result() == WORKER_ENVIRONMENT["OMP_WAIT_POLICY"])
    assert dict(os.environ) == before


@pytest.mark.skipif(not __import__("xrdcore.kernels", fromlist=["cuda_available"]).cuda_available(),
                    reason="no CUDA GPU or simulator")
def test_batched_descent_on_cuda_equals_cpu():
    """The batched executor's descent with CUDA batches (numba's simulator without a GPU), small
    sizes."""
    truth = datasets.get_prototype("AB_cF8_225_a_b").crystal()
    small = dict(two_theta_range=(25, 50), step=0.05)
    cpu, gpu = Diffractometer(backend="cpu", **small), Diffractometer(backend="cuda", **small)
    target = cpu.pattern(truth, fwhm=0.3)
    parametrization = Parametrization(truth, "free", "fixed", reference=truth)
    starts = [parametrization.parameters(perturb(truth, strain=0.02, seed=seed)) for seed in (0, 1)]
    on_cpu = descend_batch(parametrization, starts, target, cpu, steps=4, fwhm=0.3)
    on_gpu = descend_batch(parametrization, starts, target, gpu, steps=4, fwhm=0.3)
    assert on_cpu.status == on_gpu.status and list(on_cpu.evaluations) == list(on_gpu.evaluations)
    assert np.allclose(on_cpu.loss, on_gpu.loss, rtol=1e-9) and np.allclose(
        on_cpu.params, on_gpu.params, rtol=1e-9)
