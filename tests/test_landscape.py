"""Scans agree with point-wise evaluation; minima, curvature, basins; correlation and mutual
information."""

import numpy as np
import pytest

from xrdcore import Diffractometer, datasets
from xrdcore.gradients import loss_value
from xrdcore.landscape.dependence import dependence, mutual_information
from xrdcore.landscape.directions import (atom_direction, lattice_direction, random_direction,
                                          symmetry_axis_direction)
from xrdcore.landscape.scans import basin, curvature, local_minima, scan
from xrdcore.structure.parametrize import space_group

XRD = Diffractometer("CuKa", (15, 60), backend="cpu")


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype("A2B_tP6_136_f_a")


@pytest.fixture(scope="module")
def target(rutile):
    return XRD.pattern(rutile, fwhm=0.2)


def moved(crystal, direction, t):
    return crystal.replace(lattice=crystal.lattice + t * direction.d_lattice,
                           frac_coords=crystal.frac_coords + t * direction.d_frac)


@pytest.mark.parametrize("make", [
    lambda c: lattice_direction(c, 0), lambda c: atom_direction(c, 2, 1),
    lambda c: random_direction(c, np.random.default_rng(0), strain=0.01)
])
def test_1d_scan_agrees_with_pointwise_evaluation(rutile, target, make):
    direction = make(rutile)
    offsets = np.linspace(-0.05, 0.05, 11)
    result = scan(rutile, direction, offsets, target, XRD, fwhm=0.2)
    pointwise = [loss_value(moved(rutile, direction, t), target, XRD, fwhm=0.2) for t in offsets]
    np.testing.assert_allclose(result.loss, pointwise, rtol=1e-9, atol=1e-12)
    # the exact slope matches a central difference of the loss along the direction
    h = 1e-6
    numeric = [(loss_value(moved(rutile, direction, t + h), target, XRD, fwhm=0.2) -
                loss_value(moved(rutile, direction, t - h), target, XRD, fwhm=0.2)) / (2 * h)
               for t in offsets[::5]]
    np.testing.assert_allclose(result.slope[::5], numeric, rtol=1e-5, atol=1e-8)


def test_2d_scan_agrees_with_pointwise_evaluation(rutile, target):
    first, second = (lattice_direction(rutile,
                                       0), symmetry_axis_direction(space_group(rutile, rutile), 0))
    a, b = np.linspace(-0.02, 0.02, 3), np.linspace(-0.1, 0.1, 4)
    result = scan(rutile, [first, second], (a, b), target, XRD, fwhm=0.2)
    assert result.loss.shape == (3, 4)
    for i, s in enumerate(a):
        for j, t in enumerate(b):
            crystal = rutile.replace(
                lattice=rutile.lattice + s * first.d_lattice,
                frac_coords=rutile.frac_coords + s * first.d_frac + t * second.d_frac)
            assert result.loss[i, j] == pytest.approx(loss_value(crystal, target, XRD, fwhm=0.2),
                                                      rel=1e-9, abs=1e-12)


def test_minima_curvature_and_basin_on_known_profiles():
    x = np.linspace(-2, 2, 401)
    quadratic = 3.0 * (x - 0.1)**2 + 1
    assert curvature(x, quadratic, at=0.1) == pytest.approx(6.0, rel=1e-9)
    assert list(local_minima(quadratic)) == [int(np.argmin(quadratic))]
    double_well = (x**2 - 1)**2 + 0.1 * x
    minima = local_minima(double_well)
    assert len(minima) == 2 and x[minima[0]] < 0 < x[minima[1]]
    low, high = basin(x, double_well, at=0.8)
    assert (0 < low < 0.1 and
            high == 2.0)  # the barrier top near x ≈ 0.025 bounds the right-hand basin
    with pytest.raises(ValueError, match="1-D"):
        local_minima(np.zeros((2, 2)))


def test_mutual_information_of_a_gaussian_pair():
    rng = np.random.default_rng(0)
    rho = 0.8
    x = rng.standard_normal(3000)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(3000)
    assert mutual_information(x, y) == pytest.approx(-0.5 * np.log(1 - rho**2), abs=0.05)
    assert mutual_information(x, rng.standard_normal(3000)) == pytest.approx(0, abs=0.03)


def test_dependence_of_a_noisy_monotone_relation():
    rng = np.random.default_rng(1)
    distance = rng.uniform(0, 1, 300)
    similarity = 1 - distance**2 + 0.02 * rng.standard_normal(300)
    result = dependence(distance, similarity, resamples=50)
    assert (result.spearman.value < -0.95 and
            result.spearman.low <= result.spearman.value <= result.spearman.high)
    assert result.pearson.value < -0.9
    assert result.mutual_information.value > 1.0
    assert (result.mutual_information.low <= result.mutual_information.value <=
            result.mutual_information.high)
    with pytest.raises(ValueError, match="at least 10"):
        dependence(distance[:5], similarity[:5])
    with pytest.raises(ValueError, match="NaN"):
        dependence(np.full(20, np.nan), np.ones(20))


def test_dependence_intervals_cover_the_truth_on_synthetic_data():
    """Over repeated synthetic samples with known ρ, the 95 % interval of Pearson's r covers it
    most of the time."""
    rho, covered = 0.5, 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        x = rng.standard_normal(200)
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(200)
        estimate = dependence(x, y, resamples=60, seed=seed).pearson
        covered += estimate.low <= rho <= estimate.high
    assert covered >= 16  # nominal 19 of 20; an unscaled subsample interval covers far fewer


def test_perturbed_sample_matches_copies_built_by_hand(rutile):
    from xrdcore.landscape.dependence import perturbed_sample
    from xrdcore.similarity import loss
    from xrdcore.structure.matching import lattice_error, rms_displacement, structural_distance
    from xrdcore.structure.perturb import perturb

    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    sample = perturbed_sample(rutile, xrd, ("cosine", "mse"), count=4, symmetric="family", seed=7)
    for index in range(4):
        rng = np.random.default_rng(7 + index)
        copy = perturb(rutile, strain=0.03 * rng.uniform(), displacement=0.3 * rng.uniform(),
                       seed=7 + index, symmetric="family")
        assert sample.distance[index] == pytest.approx(
            rms_displacement(copy, rutile) + 5.0 * lattice_error(copy, rutile)[0])
        assert structural_distance(copy, rutile) == pytest.approx(sample.distance[index])
        pattern, truth_pattern = xrd.pattern(copy, fwhm=0.1), xrd.pattern(rutile, fwhm=0.1)
        for metric in ("cosine", "mse"):
            assert sample.loss[metric][index] == pytest.approx(
                loss(metric, pattern, truth_pattern, xrd.two_theta)[0])
    assert sample.distance.min() > 0
    with pytest.raises(ValueError, match="count"):
        perturbed_sample(rutile, xrd, count=0)


def test_path_direction_lands_on_the_other_structure(rutile):
    from xrdcore.landscape.directions import path_direction
    from xrdcore.structure.perturb import perturb

    other = perturb(rutile, strain=0.02, displacement=0.3, seed=4)
    shifted = other.replace(frac_coords=other.frac_coords + [[1, 0, -1]] * np.ones(
        (len(other), 1)))  # another image
    direction = path_direction(rutile, shifted)
    arrived = moved(rutile, direction, 1.0)
    np.testing.assert_allclose(arrived.lattice, other.lattice, atol=1e-12)
    np.testing.assert_allclose(arrived.frac_coords, other.frac_coords,
                               atol=1e-12)  # nearest image, not a lattice vector away
    with pytest.raises(ValueError, match="same atoms"):
        path_direction(rutile, datasets.load_prototype("AB_cF8_225_a_b"))


def test_nearest_barrier_of_an_analytic_double_well():
    from xrdcore.landscape.scans import nearest_barrier

    offsets = np.linspace(-0.5, 1.5, 401)
    values = (
        offsets**2 * (offsets - 1)**2 + 0.01 * offsets)  # minima near 0 and 1, maximum near 0.5
    found = nearest_barrier(offsets, values)
    assert abs(found.wrong_minimum - 1) < 0.02 and abs(found.barrier - 0.5) < 0.02
    assert found.height == pytest.approx(values[np.argmin(np.abs(offsets - found.barrier))] -
                                         values.min())
    assert nearest_barrier(offsets, (offsets - 0.2)**2) is None  # one well: no barrier
