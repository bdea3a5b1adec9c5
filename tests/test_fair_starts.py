"""Fair starts and the paper regime: constrained runs start inside their own subspace at the
size of the P1 start, rows record the start actually descended from, the paper's matrix noise."""

from dataclasses import replace

import numpy as np
import pytest

from xrdcore import datasets
from xrdcore.structure.matching import lattice_error
from xrdcore.structure.parametrize import Parametrization
from xrdcore.structure.perturb import perturb
from xrdcore.structure.symmetry import find_symmetry
from xrdcore.study.config import PAPER, WORKSHOP, StudyConfig
from xrdcore.study.runner import _parametrization, _start

RUTILE = "A2B_tP6_136_f_a"


def _rms_principal(lattice, reference):
    """RMS principal strain of the symmetric part of A_ref⁻¹ A − I."""
    deformation = np.linalg.solve(reference, lattice) - np.eye(3)
    return np.linalg.norm(0.5 * (deformation + deformation.T)) / np.sqrt(3)


def test_matrix_noise_is_the_papers_formula():
    truth = datasets.load_prototype(RUTILE)
    sigma, seed = 0.05, 3
    noise = np.random.default_rng(seed).standard_normal((3, 3))
    moved = perturb(truth, strain=sigma, seed=seed, lattice_noise="matrix")
    np.testing.assert_allclose(moved.lattice, (np.eye(3) + sigma * noise) @ truth.lattice, rtol=0,
                               atol=1e-12)
    np.testing.assert_array_equal(moved.frac_coords, truth.frac_coords)
    with pytest.raises(ValueError, match="lattice_noise"):
        perturb(truth, strain=sigma, lattice_noise="gaussian")


@pytest.mark.parametrize("name", [RUTILE, "AB_cF8_225_a_b", "AB3C_hR10_148_c_f_c"])
def test_symmetric_matrix_noise_stays_in_the_family_at_the_p1_draws_size(name):
    truth = datasets.load_prototype(name)
    free = perturb(truth, strain=0.09, seed=1, lattice_noise="matrix")
    family = perturb(truth, strain=0.09, seed=1, lattice_noise="matrix", symmetric="family")
    strain = np.linalg.solve(truth.lattice, family.lattice) - np.eye(3)
    np.testing.assert_allclose(find_symmetry(truth).project_strain(strain), strain, atol=1e-12)
    assert _rms_principal(family.lattice, truth.lattice) == pytest.approx(
        _rms_principal(free.lattice, truth.lattice), rel=1e-9)


@pytest.mark.parametrize("kind,parametrization", [("lattice", "family"),
                                                  ("coordinates", "spacegroup"), ("both", "family"),
                                                  ("both", "spacegroup"), ])
def test_subspace_starts_lie_in_their_subspace_at_the_nominal_size(kind, parametrization):
    config = StudyConfig(structures=(RUTILE, ))
    start, verdicts = _start(RUTILE, kind, 0.05, 0, parametrization, config)
    projected = _parametrization(RUTILE, kind, parametrization, config).project(start)
    np.testing.assert_allclose(projected.lattice, start.lattice, atol=1e-12)
    np.testing.assert_allclose(projected.frac_coords, start.frac_coords, atol=1e-12)
    truth = datasets.load_prototype(RUTILE)
    if kind != "coordinates":
        assert _rms_principal(start.lattice, truth.lattice) == pytest.approx(0.05, rel=1e-9)
    displacement = {"lattice": 0.0, "coordinates": 0.05, "both": 0.5}[kind]
    assert verdicts["start_rms_displacement"] == pytest.approx(displacement, rel=1e-9, abs=1e-12)
    assert verdicts["start_lattice_error"] == pytest.approx(lattice_error(start, truth)[0])


def test_projected_design_records_the_projected_start():
    config = StudyConfig(structures=(RUTILE, ), starts="projected")
    truth = datasets.load_prototype(RUTILE)
    drawn = perturb(truth, strain=0.05, seed=0)
    start, verdicts = _start(RUTILE, "lattice", 0.05, 0, "family", config)
    projected = _parametrization(RUTILE, "lattice", "family", config).project(drawn)
    np.testing.assert_allclose(start.lattice, projected.lattice, atol=1e-12)
    assert verdicts["start_lattice_error"] == pytest.approx(lattice_error(projected, truth)[0])
    # the projection alone makes the strain smaller (not always the largest length error)
    assert _rms_principal(start.lattice,
                          truth.lattice) < 0.9 * _rms_principal(drawn.lattice, truth.lattice)


@pytest.mark.parametrize("kind", ["lattice", "coordinates", "both"])
def test_p1_starts_do_not_depend_on_the_start_design(kind):
    fair, old = (StudyConfig(structures=(RUTILE, )),
                 StudyConfig(structures=(RUTILE, ), starts="projected"))
    a, verdicts_a = _start(RUTILE, kind, 0.02, 1, "p1", fair)
    b, verdicts_b = _start(RUTILE, kind, 0.02, 1, "p1", old)
    np.testing.assert_array_equal(a.lattice, b.lattice)
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    assert verdicts_a == verdicts_b


def test_bad_design_names_fail_before_any_run():
    with pytest.raises(ValueError, match="start design"):
        replace(PAPER, starts="projection").tasks()
    with pytest.raises(ValueError, match="lattice noise"):
        replace(PAPER, lattice_noise="matrices").tasks()


def test_workshop_preset_is_the_documented_draw_of_ten():
    names = [p.name for p in datasets.study_set()]
    drawn = np.sort(np.random.default_rng(0).choice(len(names), 10, replace=False))
    assert WORKSHOP.structures == tuple(names[i] for i in drawn)
    assert len(WORKSHOP.seeds) == 50 and len(WORKSHOP.tasks()) == 10 * 50 * 3 * 4


def test_paper_preset_reaches_the_bpo4_example():
    """The largest σ gives the RMS principal strain of the paper's BPO4 start (√2 σ on average)."""
    from xrdcore.structure.datasets import BPO4_NOISED_START, bpo4_worked_example

    truth = bpo4_worked_example()
    assert len(truth) == 12 and find_symmetry(truth).space_group == 82
    inverse = np.linalg.inv(truth.lattice)
    metric = BPO4_NOISED_START.lattice() @ BPO4_NOISED_START.lattice().T
    green_lagrange = 0.5 * (inverse @ metric @ inverse.T - np.eye(3)
                            )  # rotation-free strain of the start
    size = np.linalg.norm(green_lagrange) / np.sqrt(3)
    assert np.sqrt(2) * max(PAPER.strains) == pytest.approx(size, rel=0.05)


def test_binned_rates_count_by_the_measured_start_error(tmp_path):
    from xrdcore.study.summary import binned_rates

    path = tmp_path / "rows.csv"
    rows = [("p1", 0.005, True), ("p1", 0.015, False), ("p1", 0.015, True), ("family", 0.015, True),
            ("p1", 0.5, True), ]
    path.write_text("key,parametrization,start_lattice_error,recovered\n" +
                    "".join(f"{i},{p},{e},{r}\n" for i, (p, e, r) in enumerate(rows)))
    table = binned_rates(path, [0, 0.01, 0.02, 0.05], parametrization="p1")
    assert [(row.group, row.trials, row.matches)
            for row in table] == [((0.0, 0.01), 1, 1), ((0.01, 0.02), 2, 1),
                                  ((0.02, 0.05), 0, 0)]  # 0.5 is beyond the last edge
    assert np.isnan(table[2].rate) and table[1].low < 0.5 < table[1].high
    with pytest.raises(ValueError, match="increasing"):
        binned_rates(path, [0.02, 0.01])


def test_repair_rate_counts_only_the_starts_that_failed(tmp_path):
    from xrdcore.study.summary import repair_rate

    path = tmp_path / "rows.csv"
    rows = [(True, True), (False, True), (False, False), (False, False),
            (True, False)]  # (start_matched, matched)
    path.write_text("key,kind,start_matched,matched\n" + "".join(f"{i},lattice,{a},{b}\n"
                                                                 for i, (a, b) in enumerate(rows)))
    row = repair_rate(path, kind="lattice")
    assert (row.trials, row.matches) == (3, 1) and row.low < 1 / 3 < row.high
    with pytest.raises(ValueError, match="matched"):
        repair_rate(path, column="matched_strict")


@pytest.mark.parametrize("parametrization", ["p1", "spacegroup"])
def test_coordinate_tasks_of_the_paper_regime_are_the_strict_grids(parametrization):
    """No strain, so the lattice noise never enters: the paper regime's coordinate rows are the
    full grid's."""
    task_keys = {t.key for t in PAPER.tasks() if t.kind == "coordinates"}
    assert task_keys <= {t.key for t in StudyConfig().tasks()}
    a, verdicts_a = _start(RUTILE, "coordinates", 0.3, 2, parametrization,
                           replace(PAPER, structures=(RUTILE, )))
    b, verdicts_b = _start(RUTILE, "coordinates", 0.3, 2, parametrization,
                           StudyConfig(structures=(RUTILE, )))
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    np.testing.assert_array_equal(a.lattice, b.lattice)
    assert verdicts_a == verdicts_b


def test_a_batch_result_that_is_no_crystal_is_an_invalid_structure():
    """Two atoms moved onto one site: the loss allows it, a Crystal does not; the row says so."""
    from xrdcore.study.runner import _result, final_verdicts

    truth = datasets.load_prototype(RUTILE)
    free = Parametrization(truth, "fixed", "free")

    class Descent:
        params = np.array([free.parameters(truth)])
        status = ["step budget"]

        def crystal(self, parametrization, index):
            return parametrization.crystal(self.params[index])

    descent = Descent()
    descent.params[0, 3:6] = descent.params[0, :3]  # atom 1 onto atom 0 (both Ti)
    found, status = _result(descent, free, 0)
    assert (found is None and status == "invalid structure" and
            not final_verdicts(found, truth)["matched"])
    descent.params = np.array([free.parameters(truth)])
    found, status = _result(descent, free, 0)
    assert status == "step budget" and final_verdicts(found, truth)["recovered"]
