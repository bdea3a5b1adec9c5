"""numba kernels against their plain-numpy twins (xrdcore.kernels.reference)."""

import numpy as np
import pytest
from conftest import random_triclinic

from xrdcore import Diffractometer
from xrdcore.diffraction import scatterer_types
from xrdcore.kernels import cpu, reference
from xrdcore.physics.profiles import Profile, pseudo_voigt


def _enumeration_inputs(crystal, wavelength=1.54184, two_theta_range=(5.0, 120.0)):
    g_min, g_max = (2 * np.sin(np.radians(t / 2)) / wavelength for t in two_theta_range)
    bounds = np.floor(g_max * np.linalg.norm(crystal.lattice, axis=1)).astype(np.int64)
    return np.linalg.inv(crystal.lattice).T, bounds, g_min, g_max


@pytest.mark.parametrize("seed", range(5))
def test_reflection_enumeration_matches_reference(seed):
    crystal = random_triclinic(np.random.default_rng(seed), 3)
    fast_hkl, fast_g = cpu.half_space_reflections(*_enumeration_inputs(crystal))
    ref_hkl, ref_g = reference.half_space_reflections(*_enumeration_inputs(crystal))
    assert len(fast_g) > 50
    fast = {tuple(h): g for h, g in zip(fast_hkl.astype(int), fast_g)}
    ref = {tuple(h): g for h, g in zip(ref_hkl.astype(int), ref_g)}
    assert list(fast) == list(ref)  # same reflections in the same order
    np.testing.assert_allclose([fast[k] for k in ref], list(ref.values()), rtol=1e-14)


def test_enumeration_bounds_are_complete():
    """No reflection inside the sphere is missed by the |h| ≤ g_max |a| bound: compare with a
    wider box."""
    crystal = random_triclinic(np.random.default_rng(7), 2)
    reciprocal, bounds, g_min, g_max = _enumeration_inputs(crystal)
    hkl, _ = reference.half_space_reflections(reciprocal, bounds, g_min, g_max)
    wide, _ = reference.half_space_reflections(reciprocal, bounds + 3, g_min, g_max)
    assert len(hkl) == len(wide)


@pytest.mark.parametrize("seed", range(5))
def test_intensities_match_reference(seed):
    rng = np.random.default_rng(100 + seed)
    crystal = random_triclinic(rng, int(rng.integers(1, 12)))
    crystal = crystal.replace(occupancies=rng.uniform(0.3, 1.0, len(crystal)))
    hkl, g = cpu.half_space_reflections(*_enumeration_inputs(crystal))
    scatterer_type, *type_tables = scatterer_types(crystal)
    for fast, slow in zip(cpu.form_factor_tables(g, *type_tables),
                          reference.form_factor_tables(g, *type_tables)):
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    table, _ = reference.form_factor_tables(g, *type_tables)
    sum_args = (hkl, crystal.frac_coords, crystal.occupancies, scatterer_type, len(type_tables[0]))
    for fast, slow in zip(cpu.structure_factor_sums(*sum_args),
                          reference.structure_factor_sums(*sum_args)):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10 * len(crystal))
    sums = reference.structure_factor_sums(*sum_args)
    fast_tt, fast_i = cpu.reflection_intensities(g, 1.54184, table, *sums)
    ref_tt, ref_i = reference.reflection_intensities(g, 1.54184, table, *sums)
    np.testing.assert_allclose(fast_tt, ref_tt, rtol=1e-13)
    np.testing.assert_allclose(fast_i, ref_i, rtol=1e-10, atol=1e-10 * ref_i.max())


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_profile_matches_dense_reference(eta):
    rng = np.random.default_rng(3)
    grid = np.linspace(10, 60, 2501)
    centres = np.sort(rng.uniform(5, 65, 40))
    intensities = rng.uniform(0, 10, 40)
    fwhm = rng.uniform(0.05, 0.5, 40)
    dense = reference.broadened_profile(grid, centres, intensities, fwhm, eta, None)
    # with a window wider than the grid nothing is cut: agreement to rounding
    np.testing.assert_allclose(cpu.broadened_profile(grid, centres, intensities, fwhm, eta, 1e4),
                               dense, rtol=1e-12, atol=1e-14)
    # with the default windows each peak's neglected tail is below the documented fraction of its
    # height
    window = 5.0 if eta == 0 else 50.0
    windowed = cpu.broadened_profile(grid, centres, intensities, fwhm, eta, window)
    tail_fraction = 1e-13 if eta == 0 else 1e-4  # Gaussian: only rounding remains
    heights = intensities * pseudo_voigt(0.0, fwhm, eta)
    assert np.max(np.abs(windowed - dense)) <= tail_fraction * heights.sum()


def test_pattern_equals_dense_sum_over_reflections(rng):
    crystal = random_triclinic(rng, 6)
    diffractometer = Diffractometer(two_theta_range=(20, 60))
    refl = diffractometer.reflections(crystal, (0.0, 179.9))
    grid = diffractometer.two_theta
    y = diffractometer.pattern(crystal, fwhm=Profile(0.3, shape="pseudo-voigt", eta=0.3,
                                                     window=1e3), normalize=False)
    dense = reference.broadened_profile(grid, refl.two_theta, refl.intensity,
                                        np.full(len(refl.g), 0.3), 0.3, None)
    np.testing.assert_allclose(y, dense, rtol=1e-10)


class ReferenceDiffractometer(Diffractometer):
    kernels = reference


@pytest.mark.parametrize("name", ["LiFePO4", "SiO2", "Li3V2(PO4)3"])
def test_whole_pipeline_with_reference_kernels_agrees(name):
    from xrdcore import datasets

    crystal = datasets.load_example(name)
    fast = Diffractometer().peaks(crystal)
    slow = ReferenceDiffractometer().peaks(crystal)
    np.testing.assert_allclose(fast.two_theta, slow.two_theta, rtol=1e-13)
    np.testing.assert_allclose(fast.intensity, slow.intensity, atol=1e-9)


def test_reflections_come_sorted_like_pymatgen():
    """Sorted by (|g|, −h, −k, −l), pymatgen's order, in both kernels."""
    crystal = random_triclinic(np.random.default_rng(11), 2).replace(lattice=np.eye(3) * 4.0)
    for kernels in (cpu, reference):
        hkl, g = kernels.half_space_reflections(*_enumeration_inputs(crystal))
        expected = np.lexsort((-hkl[:, 2], -hkl[:, 1], -hkl[:, 0], np.round(g, 12)))
        np.testing.assert_array_equal(expected, np.arange(len(g)))


def test_gaussian_recurrence_matches_dense_reference():
    """On a uniform grid (step given) Gaussian peaks use the recurrence; it agrees with the dense
    sum."""
    from xrdcore.physics.profiles import uniform_step

    rng = np.random.default_rng(4)
    grid = np.linspace(10, 60, 2501)
    centres = np.sort(rng.uniform(5, 65, 40))
    intensities, fwhm, d_profile = (rng.uniform(0, 10, 40), rng.uniform(
        0.05, 0.5, 40), rng.standard_normal(2501))
    step = uniform_step(grid)
    assert step == pytest.approx(0.02)
    dense = reference.broadened_profile(grid, centres, intensities, fwhm, 0.0, None)
    fast = cpu.broadened_profile(grid, centres, intensities, fwhm, 0.0, 1e4, step)
    np.testing.assert_allclose(fast, dense, rtol=1e-10, atol=1e-12 * dense.max())
    for fast, slow in zip(
            cpu.broadened_profile_adjoint(grid, centres, intensities, fwhm, 0.0, 1e4, d_profile,
                                          step),
            reference.broadened_profile_adjoint(grid, centres, intensities, fwhm, 0.0, None,
                                                d_profile)):
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-11 * np.abs(slow).max())


@pytest.mark.parametrize("seed", range(3))
def test_fused_kernels_match_reference(seed):
    """reflection_list, reflection_lengths, structure_intensities, merge_peaks, lattice_gradient
    and required_margins against their numpy twins."""
    from xrdcore.diffraction import SCALED_INTENSITY_TOL
    from xrdcore.physics.scattering import TWO_THETA_TOL

    rng = np.random.default_rng(200 + seed)
    crystal = random_triclinic(rng, int(rng.integers(1, 10)))
    g_min, g_max = 0.1, 1.1
    fast_hkl, fast_g = cpu.reflection_list(crystal.lattice, g_min, g_max)
    ref_hkl, ref_g = reference.reflection_list(crystal.lattice, g_min, g_max)
    np.testing.assert_array_equal(fast_hkl, ref_hkl)
    np.testing.assert_allclose(fast_g, ref_g, rtol=1e-14)
    moved = crystal.lattice @ (np.eye(3) + 0.01 * rng.standard_normal((3, 3)))
    for fast, slow in zip(cpu.reflection_lengths(moved, ref_hkl, 1.0),
                          reference.reflection_lengths(moved, ref_hkl, 1.0)):
        np.testing.assert_allclose(fast, slow, rtol=1e-13)
    scatterer_type, *tables = scatterer_types(crystal)
    args = (ref_hkl, ref_g, 1.54184, crystal.frac_coords, crystal.occupancies, scatterer_type,
            *tables)
    for fast, slow in zip(cpu.structure_intensities(*args), reference.structure_intensities(*args)):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10 * np.abs(slow).max())
    two_theta, intensity = reference.structure_intensities(*args)[:2]
    intensity[::7] = 0.0  # some peaks below the threshold
    for fast, slow in zip(
            cpu.merge_peaks(two_theta, intensity, TWO_THETA_TOL, SCALED_INTENSITY_TOL),
            reference.merge_peaks(two_theta, intensity, TWO_THETA_TOL, SCALED_INTENSITY_TOL)):
        np.testing.assert_allclose(fast, slow, rtol=1e-14)
    d_g = rng.standard_normal(len(ref_g))
    np.testing.assert_allclose(cpu.lattice_gradient(crystal.lattice, ref_hkl, ref_g, d_g),
                               reference.lattice_gradient(crystal.lattice, ref_hkl, ref_g, d_g),
                               rtol=1e-10, atol=1e-12)
    lattices = crystal.lattice @ (np.eye(3) + 0.03 * rng.standard_normal((5, 3, 3)))
    np.testing.assert_allclose(cpu.required_margins(crystal.lattice, lattices),
                               reference.required_margins(crystal.lattice, lattices), rtol=1e-12)


def test_merge_of_nothing_is_empty():
    for kernels in (cpu, reference):
        first, scaled, member_start, members = kernels.merge_peaks(np.zeros(0), np.zeros(0), 1e-5,
                                                                   1e-3)
        assert len(first) == len(scaled) == len(members) == 0 and list(member_start) == [0]
        first, *_ = kernels.merge_peaks(np.array([20.0, 30.0]), np.zeros(2), 1e-5,
                                        1e-3)  # all extinct
        assert len(first) == 0


def test_structure_factor_sums_of_special_positions():
    """Analytic case: fcc copper, S(h) = 4 for h, k, l unmixed and 0 for mixed parity, whatever
    the run layout."""
    from xrdcore import Crystal

    fcc = Crystal(
        np.eye(3) * 3.61, [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]], ["Cu"] * 4)
    hkl, _ = cpu.reflection_list(fcc.lattice, 0.1, 1.2)
    real, imag = cpu.structure_factor_sums(hkl, fcc.frac_coords, fcc.occupancies,
                                           np.zeros(4, np.int64), 1)
    unmixed = np.all(hkl % 2 == 0, axis=1) | np.all(hkl % 2 == 1, axis=1)
    np.testing.assert_allclose(real[:, 0], np.where(unmixed, 4.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(imag[:, 0], 0.0, atol=1e-12)


def test_cosine_rows_match_reference():
    rng = np.random.default_rng(9)
    target, patterns = rng.random(300), rng.random((6, 300))
    patterns[1], patterns[4, 7] = 0.0, np.nan  # undefined rows
    fast, slow = (cpu.cosine_loss_rows(patterns,
                                       target), reference.cosine_loss_rows(patterns, target))
    np.testing.assert_array_equal(fast[2], slow[2])
    assert list(np.flatnonzero(fast[2])) == [1, 4]
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-12)
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-10, atol=1e-14)
