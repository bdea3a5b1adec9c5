"""The profile-parameter adjoint (dL/d intensities, centres, widths and η of a broadened profile)
against its numpy twin, finite differences of the forward kernel and closed-form integrals."""

import math

import numpy as np
import pytest

from xrdcore.kernels import cpu, reference
from xrdcore.kernels.elements import CPU

ETAS = (0.0, 0.3, 1.0)


def _grid(kind, rng):
    """A uniform or a non-uniform (random, ascending) grid over 10–60° (deg)."""
    if kind == "uniform":
        return np.linspace(10.0, 60.0, 1251)
    return np.sort(rng.uniform(10.0, 60.0, 1251))


def _peaks(rng, n_peaks):
    """Sorted centres (deg), intensities and per-peak FWHM (deg) of random peaks."""
    return (np.sort(rng.uniform(15.0, 55.0, n_peaks)), rng.uniform(1.0, 10.0, n_peaks),
            rng.uniform(0.1, 0.8, n_peaks))


@pytest.mark.parametrize("kind", ["uniform", "non-uniform"])
@pytest.mark.parametrize("eta", ETAS)
def test_parameter_adjoint_matches_reference(kind, eta):
    """numba against the dense numpy twin, with a window wide enough that nothing is cut; its
    dL/dI and dL/d2θ also equal broadened_profile_adjoint's (without the Gaussian recurrence)."""
    rng = np.random.default_rng(31 + int(10 * eta))
    grid = _grid(kind, rng)
    centres, intensities, fwhm = _peaks(rng, 12)
    d_profile = rng.standard_normal(grid.shape[0])
    fast = cpu.broadened_profile_parameter_adjoint(grid, centres, intensities, fwhm, eta, 1e4,
                                                   d_profile)
    slow = reference.broadened_profile_parameter_adjoint(grid, centres, intensities, fwhm, eta,
                                                         1e4, d_profile)
    for fast_part, slow_part in zip(fast[:3], slow[:3]):
        np.testing.assert_allclose(fast_part, slow_part, rtol=1e-10,
                                   atol=1e-12 * np.abs(slow_part).max())
    assert isinstance(fast[3], float)
    assert fast[3] == pytest.approx(slow[3], rel=1e-10)
    for fixed_width, full in zip(
            cpu.broadened_profile_adjoint(grid, centres, intensities, fwhm, eta, 1e4, d_profile),
            fast[:2]):
        np.testing.assert_array_equal(full, fixed_width)


@pytest.mark.parametrize("window", [1e4, 5.0])
@pytest.mark.parametrize("kind", ["uniform", "non-uniform"])
@pytest.mark.parametrize("eta", ETAS)
def test_parameter_adjoint_matches_finite_differences(kind, eta, window):
    """Central differences of L = dL/dy · y (y from cpu.broadened_profile) in every intensity,
    centre and width and in η; with window = 5 no grid point crosses a window edge within
    ± the difference step, so the fixed-window derivative is the forward's."""
    rng = np.random.default_rng(47 + int(10 * eta))
    grid = _grid(kind, rng)
    centres, intensities, fwhm = _peaks(rng, 5)
    d_profile = rng.standard_normal(grid.shape[0])

    def loss(parameters, eta):
        """dL/dy · y of (centres, intensities, fwhm) ``parameters``."""
        centres, intensities, fwhm = parameters
        return d_profile @ cpu.broadened_profile(grid, centres, intensities, fwhm, eta, window)

    d_intensity, d_centre, d_fwhm, d_eta = cpu.broadened_profile_parameter_adjoint(
        grid, centres, intensities, fwhm, eta, window, d_profile)
    args = (centres, intensities, fwhm)
    for which, analytic, h in ((0, d_centre, 1e-6), (1, d_intensity, 1e-4), (2, d_fwhm, 1e-6)):
        for p in range(centres.shape[0]):
            up, down = [a.copy() for a in args], [a.copy() for a in args]
            up[which][p] += h
            down[which][p] -= h
            numeric = (loss(up, eta) - loss(down, eta)) / (2 * h)
            tolerance = 1e-6 * np.abs(analytic).max()
            assert analytic[p] == pytest.approx(numeric, rel=1e-6, abs=tolerance)
    numeric = (loss(args, eta + 1e-5) - loss(args, eta - 1e-5)) / 2e-5
    assert d_eta == pytest.approx(numeric, rel=1e-7)


@pytest.mark.parametrize("eta", ETAS)
def test_parameter_adjoint_integrates_in_closed_form(eta):
    """One peak at 0 on [−X, X] with trapezoid weights as dL/dy: L = ∫P = η (2/π) atan(2X/w) +
    (1 − η) erf(2√(ln 2) X/w), so dL/dw and dL/dη are its derivatives; for a Gaussian (η = 0)
    ∫∂P/∂w = 0 (unit area at any width), and L − G integrates to (2/π) atan(2X/w) − 1 ≈ 0."""
    half_range, width, intensity = 10.0, 0.5, 2.0
    grid = np.linspace(-half_range, half_range, 20001)
    weights = np.full(grid.shape[0], grid[1] - grid[0])
    weights[[0, -1]] /= 2
    d_intensity, d_centre, d_fwhm, d_eta = cpu.broadened_profile_parameter_adjoint(
        grid, np.zeros(1), np.array([intensity]), np.array([width]), eta, 1e4, weights)
    lorentz_area = 2 / math.pi * math.atan(2 * half_range / width)
    gauss_area = math.erf(2 * math.sqrt(math.log(2)) * half_range / width)
    lorentz_slope = -4 * half_range / (math.pi * (width**2 + 4 * half_range**2))
    gauss_slope = 0.0  # the Gaussian's tail beyond ±20 w is below 1e-300
    assert d_intensity[0] == pytest.approx(eta * lorentz_area + (1 - eta) * gauss_area, abs=1e-10)
    assert d_centre[0] == pytest.approx(0.0, abs=1e-10)
    assert d_fwhm[0] / intensity == pytest.approx(
        eta * lorentz_slope + (1 - eta) * gauss_slope, abs=1e-10)
    assert d_eta / intensity == pytest.approx(lorentz_area - gauss_area, abs=1e-10)
    assert abs(d_eta / intensity) < 0.02  # L − G integrates to 0 over the whole line


@pytest.mark.parametrize("eta", ETAS)
@pytest.mark.parametrize("offset", [0.0, 0.07, -0.2, 0.45, 1.3])
def test_peak_slopes_match_finite_differences_of_peak_shape(offset, eta):
    """The element functions ∂P/∂w and ∂P/∂η against central differences of peak_shape."""
    shape, fwhm, h = CPU["peak_shape"], 0.3, 1e-6
    numeric_width = (shape(offset, fwhm + h, eta) - shape(offset, fwhm - h, eta)) / (2 * h)
    numeric_mixing = (shape(offset, fwhm, eta + h) - shape(offset, fwhm, eta - h)) / (2 * h)
    scale = shape(0.0, fwhm, eta) / fwhm
    assert CPU["peak_width_slope"](offset, fwhm, eta) == pytest.approx(numeric_width, rel=1e-7,
                                                                       abs=1e-8 * scale)
    assert CPU["peak_mixing_slope"](offset, fwhm) == pytest.approx(numeric_mixing, rel=1e-7,
                                                                   abs=1e-8 * scale)
