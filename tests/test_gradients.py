"""Exact gradients: central finite differences (float64), invariances, reference kernels,
reflection sets."""

import numpy as np
import pytest
from conftest import random_triclinic

from xrdcore import Crystal, Diffractometer
from xrdcore.gradients import loss_and_grad, reflection_set
from xrdcore.kernels import cpu, reference
from xrdcore.physics.profiles import Profile
from xrdcore.similarity import METRICS

FD_TOLERANCE = 1e-6  # relative to the largest gradient component
#: Finite-difference steps (Å and fractional), default 1e-5. W1 has kinks wherever two
#: CDFs touch, which a wide stencil would straddle.
FD_STEP = {"wasserstein": 1e-7}
DIFFRACTOMETER = Diffractometer("CuKa", (15, 60), step=0.02)


def perturbed(crystal, rng, strain=0.01, displacement=0.01):
    lattice = crystal.lattice @ (np.eye(3) + strain * rng.standard_normal((3, 3)))
    return crystal.replace(
        lattice=lattice, frac_coords=crystal.frac_coords +
        displacement * rng.standard_normal(crystal.frac_coords.shape))


def finite_difference(loss_of, x, step):
    """Fourth-order central differences: truncation O(step⁴), so a step large enough to keep
    rounding (the loss 1 − S cancels digits near a match) far below the tolerance."""
    gradient = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        values = []
        for offset in (2, 1, -1, -2):
            shifted = x.copy()
            shifted[index] += offset * step
            values.append(loss_of(shifted))
        gradient[index] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * step)
    return gradient


def assert_gradient_matches(crystal, target, metric, **options):
    result = loss_and_grad(crystal, target, DIFFRACTOMETER, metric=metric, **options)

    def loss_at(**change):
        return loss_and_grad(crystal.replace(**change), target, DIFFRACTOMETER, metric=metric,
                             **options).loss

    step = FD_STEP.get(metric, 1e-5)
    fd_lattice = finite_difference(lambda a: loss_at(lattice=a), crystal.lattice, step)
    fd_frac = finite_difference(lambda x: loss_at(frac_coords=x), crystal.frac_coords, step)
    for analytic, numeric, name in ((result.d_lattice, fd_lattice, "lattice"),
                                    (result.d_frac, fd_frac, "coordinates")):
        scale = np.abs(numeric).max()
        assert scale > 0, f"{metric}: zero {name} gradient, the test would prove nothing"
        error = np.abs(analytic - numeric).max() / scale
        assert error < FD_TOLERANCE, f"{metric} {name}: relative error {error:.2e}"


def triclinic_case(seed):
    rng = np.random.default_rng(seed)
    crystal = random_triclinic(rng, 4)
    return crystal, perturbed(crystal, rng)


def rock_salt_case():
    """Cubic cell: many exactly coincident reflections (atoms nudged off their special positions,
    where every coordinate gradient vanishes by symmetry)."""
    a = 5.64
    frac = [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0],
            [0, 0, 0.5], [0.5, 0.5, 0.5], ]
    frac = np.array(frac) + 0.004 * np.random.default_rng(3).standard_normal((8, 3))
    crystal = Crystal(np.eye(3) * a, frac, ["Na"] * 4 + ["Cl"] * 4)
    target = crystal.replace(lattice=np.diag([a * 1.004, a, a * 0.997]))
    return crystal, target


def overlap_case():
    """Nearly tetragonal cell: (h00) and (00l) peaks overlap within the peak width."""
    crystal = Crystal(np.diag([4.0, 4.0, 4.006]), [[0, 0, 0], [0.5, 0.5, 0.52]], ["Ba", "O"])
    return crystal, crystal.replace(lattice=np.diag([4.01, 3.995, 4.0]))


CASES = {
    "triclinic-0": lambda: triclinic_case(0),
    "triclinic-1": lambda: triclinic_case(1),
    "rock-salt": rock_salt_case,
    "overlap": overlap_case
}


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_match_finite_differences(metric, case):
    crystal, target = CASES[case]()
    assert_gradient_matches(crystal, target, metric, fwhm=0.3)


@pytest.mark.parametrize("shape, eta", [("pseudo-voigt", 0.4), ("lorentzian", None)])
def test_gradients_with_lorentzian_tails(shape, eta):
    """Window wide enough to cover the grid: a truncated Lorentzian tail jumps (by up to 1e-4
    of the peak height) when a window edge crosses a grid point, which a difference quotient
    sees."""
    crystal, target = triclinic_case(2)
    assert_gradient_matches(crystal, target, "cosine", fwhm=Profile(0.2, shape=shape, eta=eta,
                                                                    window=500.0))


def test_gradients_with_narrow_peaks():
    crystal, target = triclinic_case(3)
    assert_gradient_matches(crystal, target, "mse", fwhm=0.08)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_perfect_match_has_zero_gradient(metric):
    crystal, _ = triclinic_case(4)
    result = loss_and_grad(crystal, crystal, DIFFRACTOMETER, metric=metric, fwhm=0.3)
    assert result.loss == pytest.approx(0, abs=1e-12)
    off_target = loss_and_grad(crystal, perturbed(crystal, np.random.default_rng(5)),
                               DIFFRACTOMETER, metric=metric, fwhm=0.3)
    assert np.abs(result.d_frac).max() <= 1e-7 * np.abs(off_target.d_frac).max()
    assert np.abs(result.d_lattice).max() <= 1e-7 * np.abs(off_target.d_lattice).max()


@pytest.mark.parametrize("case", sorted(CASES))
def test_invariances(case):
    """Translating all atoms changes nothing: Σ_j dL/dx_j = 0. Rotating the frame changes
    nothing: Aᵀ dL/dA symmetric."""
    crystal, target = CASES[case]()
    result = loss_and_grad(crystal, target, DIFFRACTOMETER, fwhm=0.3)
    assert np.abs(result.d_frac.sum(axis=0)).max() <= 1e-10 * np.abs(result.d_frac).max() + 1e-14
    torque = crystal.lattice.T @ result.d_lattice
    assert np.abs(torque - torque.T).max() <= 1e-10 * np.abs(torque).max()


class ReferenceDiffractometer(Diffractometer):
    kernels = reference


@pytest.mark.parametrize("metric", ["cosine", "spectral_entropy", "wcc"])
def test_numba_and_numpy_reference_pipelines_agree(metric):
    crystal, target = triclinic_case(6)
    options = dict(metric=metric, fwhm=Profile(0.3,
                                               window=200.0))  # the dense reference never truncates
    fast = loss_and_grad(crystal, target, DIFFRACTOMETER, **options)
    slow = loss_and_grad(crystal, target, ReferenceDiffractometer("CuKa", (15, 60), step=0.02),
                         **options)
    assert fast.loss == pytest.approx(slow.loss, rel=1e-10)
    np.testing.assert_allclose(fast.d_lattice, slow.d_lattice, rtol=1e-8,
                               atol=1e-10 * np.abs(slow.d_lattice).max())
    np.testing.assert_allclose(fast.d_frac, slow.d_frac, rtol=1e-8,
                               atol=1e-10 * np.abs(slow.d_frac).max())


def test_adjoint_kernels_match_reference(rng):
    crystal = random_triclinic(rng, 7).replace(occupancies=rng.uniform(0.4, 1, 7))
    from xrdcore.diffraction import scatterer_types

    hkl, g = DIFFRACTOMETER.enumerate_hkl(crystal.lattice, *DIFFRACTOMETER.g_window((5, 120)))
    types, *tables = scatterer_types(crystal)
    f, f_slope = reference.form_factor_tables(g, *tables)
    d_i, d_c = rng.standard_normal(len(g)), rng.standard_normal(len(g))
    sums = reference.structure_factor_sums(hkl, crystal.frac_coords, crystal.occupancies, types,
                                           len(tables[0]))
    args = (hkl, g, 1.54184, crystal.frac_coords, crystal.occupancies, types, f, f_slope, *sums,
            d_i, d_c)
    for fast, slow in zip(cpu.reflection_intensities_adjoint(*args),
                          reference.reflection_intensities_adjoint(*args)):
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * np.abs(slow).max())
    grid = np.linspace(10, 40, 1501)
    centres = np.sort(rng.uniform(12, 38, 30))
    intensities, widths, d_profile = (rng.uniform(0, 5, 30), rng.uniform(
        0.1, 0.4, 30), rng.standard_normal(1501))
    for fast, slow in zip(
            cpu.broadened_profile_adjoint(grid, centres, intensities, widths, 0.3, 1e4, d_profile),
            reference.broadened_profile_adjoint(grid, centres, intensities, widths, 0.3, None,
                                                d_profile)):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-12 * np.abs(slow).max())


def test_reflection_set_margin_rule(rng):
    crystal = random_triclinic(rng, 3)
    window = (15.0, 60.0)
    margin = 0.05
    shared = reflection_set(DIFFRACTOMETER, crystal.lattice, window, margin)
    members = {tuple(h) for h in shared.hkl.astype(int)}
    for _ in range(40):
        strain = rng.uniform(-0.04, 0.04, (3, 3))
        lattice = crystal.lattice @ (np.eye(3) + strain)
        hkl, _ = DIFFRACTOMETER.enumerate_hkl(lattice, *DIFFRACTOMETER.g_window(window))
        missing = {tuple(h) for h in hkl.astype(int)} - members
        if shared.covers(lattice):
            assert not missing, "a covered lattice has reflections missing from the set"
    # a large strain is refused, and it would indeed miss reflections
    far = crystal.lattice * 1.2
    assert not shared.covers(far)
    hkl, _ = DIFFRACTOMETER.enumerate_hkl(far, *DIFFRACTOMETER.g_window(window))
    assert {tuple(h) for h in hkl.astype(int)} - members


def test_reused_reflection_set_gives_the_same_gradient():
    crystal, target = triclinic_case(7)
    shared = reflection_set(DIFFRACTOMETER, crystal.lattice,
                            DIFFRACTOMETER.profile_setup(fwhm=0.3).two_theta_range, 0.05)
    moved = crystal.replace(lattice=crystal.lattice * 1.02)
    fresh = loss_and_grad(moved, target, DIFFRACTOMETER, fwhm=0.3)
    reused = loss_and_grad(moved, target, DIFFRACTOMETER, fwhm=0.3, reflections=shared)
    assert reused.loss == pytest.approx(fresh.loss, rel=1e-12)
    np.testing.assert_allclose(reused.d_lattice, fresh.d_lattice, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="beyond the reflection set's margin"):
        loss_and_grad(crystal.replace(lattice=crystal.lattice * 1.3), target, DIFFRACTOMETER,
                      fwhm=0.3, reflections=shared)


def test_gradient_errors():
    crystal, target = triclinic_case(0)
    with pytest.raises(ValueError, match="Caglioti"):
        loss_and_grad(crystal, target, DIFFRACTOMETER, fwhm=(0.01, 0, 0.01))
    with pytest.raises(ValueError, match="same grid"):
        loss_and_grad(crystal, np.ones(10), DIFFRACTOMETER)
    with pytest.raises(ValueError, match="unknown metric"):
        loss_and_grad(crystal, target, DIFFRACTOMETER, metric="chi2")
    with pytest.raises(ValueError, match="all zero"):
        loss_and_grad(crystal, target, Diffractometer("CuKa", (1, 3)))
