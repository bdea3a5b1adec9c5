"""Perturbations, structural similarity and optimisers."""

import numpy as np
import pytest

from xrdcore import Diffractometer, datasets
from xrdcore.optimize.core import optimize
from xrdcore.structure.matching import lattice_error, lattice_parameters, match, rms_displacement
from xrdcore.structure.parametrize import crystal_family, lattice_only, p1, space_group
from xrdcore.structure.perturb import perturb, random_strain
from xrdcore.structure.symmetry import find_symmetry

RUTILE = "A2B_tP6_136_f_a"


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype(RUTILE)


@pytest.fixture(scope="module")
def setup(rutile):
    diffractometer = Diffractometer("CuKa", (10, 90))
    return diffractometer, diffractometer.pattern(rutile, fwhm=0.1)


@pytest.mark.parametrize("strain", [0.01, 0.05])
def test_strain_has_the_requested_size(strain):
    values = np.linalg.eigvalsh(random_strain(np.random.default_rng(0), strain))
    assert np.sqrt(np.mean(values**2)) == pytest.approx(strain)


@pytest.mark.parametrize("displacement", [0.05, 0.3])
def test_displacement_has_the_requested_size_and_no_drift(rutile, displacement):
    moved = perturb(rutile, displacement=displacement, seed=3)
    assert rms_displacement(moved, rutile) == pytest.approx(displacement, rel=1e-9)
    np.testing.assert_allclose(moved.lattice, rutile.lattice)
    drift = ((moved.frac_coords - rutile.frac_coords) @ rutile.lattice).mean(axis=0)
    np.testing.assert_allclose(drift, 0, atol=1e-12)


def test_perturbations_are_seeded(rutile):
    a = perturb(rutile, strain=0.02, displacement=0.1, seed=5)
    b = perturb(rutile, strain=0.02, displacement=0.1, seed=5)
    c = perturb(rutile, strain=0.02, displacement=0.1, seed=6)
    np.testing.assert_array_equal(a.frac_coords, b.frac_coords)
    assert not np.allclose(a.lattice, c.lattice)


def test_symmetric_perturbation_keeps_the_space_group(rutile):
    moved = perturb(rutile, strain=0.03, displacement=0.2, seed=1, symmetric=True)
    assert find_symmetry(moved).space_group == 136
    assert rms_displacement(moved, rutile) == pytest.approx(0.2, rel=1e-9)


def test_family_perturbation_keeps_the_lattice_family_and_moves_atoms_freely(rutile):
    from xrdcore.structure.matching import lattice_parameters

    moved = perturb(rutile, strain=0.03, displacement=0.2, seed=1, symmetric="family")
    a, b, c, alpha, beta, gamma = lattice_parameters(moved.lattice)
    assert b == pytest.approx(c, rel=1e-12) and a != pytest.approx(
        b, rel=1e-3)  # rutile is loaded c, a, a
    np.testing.assert_allclose([alpha, beta, gamma], 90, atol=1e-9)
    assert find_symmetry(moved).space_group < 136  # free displacements break the space group
    assert rms_displacement(moved, rutile) == pytest.approx(0.2, rel=1e-9)
    with pytest.raises(ValueError, match="symmetric"):
        perturb(rutile, strain=0.03, symmetric="cubic")


def test_bad_perturbation_sizes(rutile):
    with pytest.raises(ValueError, match="≥ 0"):
        perturb(rutile, strain=-0.1)
    with pytest.raises(ValueError, match="≥ 0"):
        perturb(rutile, displacement=-0.1)


def test_structure_matching(rutile):
    assert match(rutile, rutile).matched and match(rutile, rutile).rms == pytest.approx(0, abs=1e-8)
    slightly = perturb(rutile, displacement=0.05, seed=0)
    far = perturb(rutile, displacement=0.8, seed=0)
    assert match(slightly, rutile).matched
    assert not match(far, rutile, stol=0.1).matched
    assert np.isnan(match(far, rutile, stol=0.1).rms)


def test_cheap_distances(rutile):
    np.testing.assert_allclose(lattice_parameters(np.diag([3.0, 4.0, 5.0])), [3, 4, 5, 90, 90, 90])
    stretched = rutile.replace(lattice=rutile.lattice * 1.02)
    assert lattice_error(stretched, rutile)[0] == pytest.approx(0.02)
    assert lattice_error(stretched, rutile)[1] == pytest.approx(0, abs=1e-9)
    shifted = rutile.replace(
        frac_coords=rutile.frac_coords + 0.25)  # a common translation is no error
    assert rms_displacement(shifted, rutile) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("method", ["adam", "lbfgs"])
def test_small_lattice_perturbation_is_recovered(rutile, setup, method):
    diffractometer, target = setup
    start = perturb(rutile, strain=0.01, seed=1)
    result = optimize(crystal_family(start, rutile), start, target, diffractometer, method=method,
                      steps=300, truth=rutile, fwhm=0.1)
    assert result.loss < 1e-6
    assert lattice_error(result.crystal, rutile)[0] < 1e-4
    assert match(result.crystal, rutile, stol=0.1).matched
    assert len(result.trajectory.loss) == result.evaluations
    assert (result.trajectory.lattice_error[-1] < result.trajectory.lattice_error[0] or
            result.trajectory.lattice_error[0] < 1e-4)


def test_gradient_descent_lowers_the_loss(rutile, setup):
    diffractometer, target = setup
    start = perturb(rutile, displacement=0.05, seed=2)
    result = optimize(space_group(start, rutile), start, target, diffractometer, method="gd",
                      steps=30, learning_rate=1e-5, fwhm=0.1)
    assert result.loss < result.trajectory.loss[0]


def test_multistart_keeps_the_best_and_counts_every_evaluation(rutile, setup):
    diffractometer, target = setup
    start = perturb(rutile, strain=0.03, seed=4)
    single = optimize(lattice_only(start), start, target, diffractometer, steps=40, fwhm=0.1)
    several = optimize(lattice_only(start), start, target, diffractometer, steps=40, restarts=3,
                       seed=1, fwhm=0.1)
    assert several.loss <= single.loss
    assert several.evaluations == 4 * 40


def test_invalid_structures_end_a_run_instead_of_raising(rutile, setup):
    diffractometer, target = setup
    start = perturb(rutile, strain=0.02, seed=0)
    huge = optimize(p1(start), start, target, diffractometer, method="gd", steps=5,
                    learning_rate=1e6, fwhm=0.1)
    assert huge.status == "invalid structure"
    assert np.isfinite(huge.loss) and huge.loss == min(
        huge.trajectory.loss)  # the best valid point is kept


def test_optimizer_errors(rutile, setup):
    diffractometer, target = setup
    with pytest.raises(ValueError, match="unknown method"):
        optimize(p1(rutile), rutile, target, diffractometer, method="sgd")
    with pytest.raises(ValueError, match="steps"):
        optimize(p1(rutile), rutile, target, diffractometer, steps=0)


def test_recovery_requires_the_right_cell_size(rutile):
    """StructureMatcher rescales volumes by default; recovery must not: a cell 2 % too large
    in every direction "matches" but is not recovered."""
    from xrdcore.structure.matching import RECOVERY_TOLERANCES

    expanded = rutile.replace(lattice=rutile.lattice * 1.02)
    assert match(expanded, rutile).matched
    assert not match(expanded, rutile, **RECOVERY_TOLERANCES).matched
    assert match(rutile.replace(lattice=rutile.lattice * 1.001), rutile,
                 **RECOVERY_TOLERANCES).matched
