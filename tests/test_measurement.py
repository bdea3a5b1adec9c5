"""Measured patterns: the instrument and sample model (:mod:`xrdcore.physics.instrument`), its
patterns and exact gradients (:mod:`xrdcore.measurement`) and the joint refinement
(:mod:`xrdcore.optimize.joint`).

References: fourth-order finite differences, the ideal engine (:meth:`Diffractometer.pattern`,
:func:`xrdcore.gradients.loss_and_grad`), pymatgen's wavelengths and Kα2 patterns, numpy's
Chebyshev series, Bragg's law and hand-derived corrections.
"""

from dataclasses import replace

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import WAVELENGTHS, XRDCalculator
from test_gradients import finite_difference, perturbed

from xrdcore import Crystal, Diffractometer, datasets
from xrdcore.gradients import loss_and_grad
from xrdcore.measurement import (COUNTS_METRIC, fit_linear, measured_loss_and_grad,
                                 measured_pattern)
from xrdcore.optimize.joint import refine
from xrdcore.physics.instrument import (DEG_PER_RAD, SCALARS, Instrument, chebyshev_basis,
                                        counting_rwp, kalpha_doublet, line_factors, march_dollase,
                                        orientation_cosines, poisson_counts)
from xrdcore.similarity import loss as metric_loss
from xrdcore.structure.parametrize import p1, space_group

XRD = Diffractometer("CuKa", (20, 60), step=0.02)
#: The finite-difference grid: shorter, since the wide window (below) evaluates every
#: reflection up to 180° at every grid point.
XRD_FD = Diffractometer("CuKa", (20, 45), step=0.02)
RUTILE = "A2B_tP6_136_f_a"
TRICLINIC = "A2B_aP6_2_2i_i"
#: Prototype and preferred-orientation direction of each gradient case.
CASES = {"rutile": (RUTILE, (1, 1, 0)), "triclinic": (TRICLINIC, (1, 0, 0))}
METRICS = ("cosine", "mse", "rwp", COUNTS_METRIC)
FD_TOLERANCE = 1e-6  # relative to the largest component of a group
#: Finite-difference steps of the settings (the scale's relative to its value), small where
#: they move the peaks: mse normalises by the pattern's maximum, which has a kink wherever the
#: highest grid point changes.
SCALAR_STEPS = dict(scale=1e-4, zero_shift=1e-5, displacement=1e-4, u=1e-5, v=1e-5, w=1e-5,
                    eta=1e-4, march_dollase=1e-4)
STRUCTURE_STEP = 1e-6  # Å and fractional
#: A pseudo-Voigt cut at the default window (50 FWHMs) jumps by ~2e-5 of its height where a
#: grid point leaves the window; a window wider than 180° keeps every cut off the grid, so that
#: the loss is smooth where the finite differences probe it.
WIDE_WINDOW = 2000.0
PEAK_COUNTS = 1e4
B_ISO = {"Ti": 0.4, "O": 0.8, "P": 0.5, "I": 1.1}


def assert_close(analytic, numeric, name, tolerance=FD_TOLERANCE):
    """Gradient against finite differences, relative to the largest numeric component."""
    analytic, numeric = np.atleast_1d(analytic), np.atleast_1d(numeric)
    scale = np.abs(numeric).max()
    assert scale > 0, f"{name}: zero finite-difference gradient, the test would prove nothing"
    error = np.abs(analytic - numeric).max() / scale
    assert error < tolerance, (f"{name}: relative error {error:.2e} (analytic {analytic}, "
                               f"numeric {numeric})")


def with_b_iso(crystal):
    return crystal.replace(b_iso=[B_ISO[s] for s in crystal.species])


def full_instrument(truth, orientation, diffractometer=XRD):
    """Every correction on, the peaks' maximum near 100 pattern units."""
    scale = 100 / diffractometer.pattern(truth, normalize=False).max()
    return Instrument(scale=scale, zero_shift=0.03, displacement=0.05, u=0.002, v=-0.001, w=0.008,
                      eta=0.3, window=WIDE_WINDOW, background=(5.0, 1.0, -0.5), kalpha2=True,
                      march_dollase=0.8, orientation=orientation)


def gradient_case(case, metric):
    """(crystal, target, instrument): a perturbed structure with its own B per species against
    its prototype measured with other settings; counts for ``rwp_counts``, with the model's
    scale and background in counts."""
    name, orientation = CASES[case]
    truth = datasets.get_prototype(name).crystal()
    instrument = full_instrument(truth, orientation, XRD_FD)
    target = measured_pattern(truth, XRD_FD, replace(instrument, zero_shift=0.0,
                                                     march_dollase=0.9, eta=0.4))
    crystal = with_b_iso(perturbed(truth, np.random.default_rng(7)))
    if metric == COUNTS_METRIC:
        factor = PEAK_COUNTS / target.max()
        target = poisson_counts(target, PEAK_COUNTS, seed=3)
        instrument = replace(instrument, scale=instrument.scale * factor,
                             background=tuple(factor * c for c in instrument.background))
    return crystal, target, instrument


class MeasuredLoss:
    """The loss of a case as a function of one group of parameters (for finite differences),
    from the measured pattern and the metric alone."""

    def __init__(self, case, metric):
        self.metric = metric
        self.crystal, self.target, self.instrument = gradient_case(case, metric)
        self.result = measured_loss_and_grad(self.crystal, self.target, XRD_FD, self.instrument,
                                             metric)

    def __call__(self, crystal=None, instrument=None):
        pattern = measured_pattern(crystal or self.crystal, XRD_FD, instrument or self.instrument)
        if self.metric == COUNTS_METRIC:
            return counting_rwp(pattern, self.target)[0]
        return metric_loss(self.metric, pattern, self.target, XRD_FD.two_theta)[0]

    def setting(self, name, value):
        return self(instrument=replace(self.instrument, **{name: value}))

    def b_iso(self, symbol, change):
        b_iso = self.crystal.b_iso.copy()
        b_iso[np.array(self.crystal.species) == symbol] += change
        return self(crystal=self.crystal.replace(b_iso=b_iso))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", CASES)
def test_setting_gradients_match_finite_differences(case, metric):
    loss = MeasuredLoss(case, metric)
    result, instrument, label = loss.result, loss.instrument, f"{case} {metric}"
    assert loss() == pytest.approx(result.loss, rel=1e-12)
    for name in SCALARS:
        step = SCALAR_STEPS[name] * (instrument.scale if name == "scale" else 1.0)
        numeric = finite_difference(lambda v: loss.setting(name, v[0]),
                                    np.array([getattr(instrument, name)]), step)
        assert_close(result.d_instrument[name], numeric, f"{label} {name}")
    numeric = finite_difference(lambda c: loss.setting("background", tuple(c)),
                                np.array(instrument.background), 1e-3)
    assert_close(result.d_instrument["background"], numeric, f"{label} background")
    species = sorted(set(loss.crystal.species))
    assert sorted(result.d_b_iso) == species
    numeric = [finite_difference(lambda d: loss.b_iso(s, d[0]), np.zeros(1), 1e-3)[0]
               for s in species]
    assert_close([result.d_b_iso[s] for s in species], numeric, f"{label} B per species")


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", CASES)
def test_structure_gradient_matches_finite_differences(case, metric):
    """Every component with the cosine; along a random direction of the lattice and of the
    coordinates with the other metrics (which change only dL/dy, pulled back the same way)."""
    loss = MeasuredLoss(case, metric)
    crystal, result, label = loss.crystal, loss.result, f"{case} {metric}"
    rng = np.random.default_rng(13)
    for field, analytic in (("lattice", result.d_lattice), ("frac_coords", result.d_frac)):
        start = getattr(crystal, field)
        if metric == "cosine":
            numeric = finite_difference(lambda x: loss(crystal.replace(**{field: x})), start,
                                        STRUCTURE_STEP)
            assert_close(analytic, numeric, f"{label} {field}")
        else:
            direction = rng.uniform(-1, 1, start.shape)
            numeric = finite_difference(
                lambda t: loss(crystal.replace(**{field: start + t[0] * direction})),
                np.zeros(1), STRUCTURE_STEP)
            assert_close(np.sum(analytic * direction), numeric, f"{label} {field} (direction)")


# --------------------------------------------------------------------------- the ideal engine


@pytest.mark.parametrize("case", CASES)
def test_ideal_instrument_reproduces_the_ideal_pattern(case):
    crystal = with_b_iso(datasets.get_prototype(CASES[case][0]).crystal())
    ideal = XRD.pattern(crystal, fwhm=0.1, normalize=False)
    np.testing.assert_allclose(measured_pattern(crystal, XRD, Instrument.ideal(0.1)), ideal,
                               rtol=1e-9, atol=1e-12 * ideal.max())


@pytest.mark.parametrize("metric", ("cosine", "mse", "rwp"))
@pytest.mark.parametrize("case", CASES)
def test_ideal_instrument_reproduces_the_ideal_gradient(case, metric):
    truth = with_b_iso(datasets.get_prototype(CASES[case][0]).crystal())
    crystal = perturbed(truth, np.random.default_rng(11))
    target = XRD.pattern(truth, fwhm=0.1)
    ours = measured_loss_and_grad(crystal, target, XRD, Instrument.ideal(0.1), metric)
    ideal = loss_and_grad(crystal, target, XRD, metric, fwhm=0.1)
    assert ours.loss == pytest.approx(ideal.loss, rel=1e-9)
    for mine, theirs in ((ours.d_lattice, ideal.d_lattice), (ours.d_frac, ideal.d_frac)):
        assert np.abs(theirs).max() > 0
        np.testing.assert_allclose(mine, theirs, rtol=1e-8, atol=1e-8 * np.abs(theirs).max())


# --------------------------------------------------------------------------- the Kα doublet


@pytest.mark.parametrize("anode", ("Cu", "Mo", "Cr", "Fe", "Co", "Ag"))
def test_kalpha_doublet_is_pymatgens_lines(anode):
    mean = WAVELENGTHS[f"{anode}Ka"]
    (first, one), (second, ratio) = kalpha_doublet(mean)
    assert (first, one, second) == (WAVELENGTHS[f"{anode}Ka1"], 1.0, WAVELENGTHS[f"{anode}Ka2"])
    assert (first + ratio * second) / (1 + ratio) == pytest.approx(mean, rel=1e-12)
    assert 0.45 < ratio < 0.55  # the tabulated intensity ratio of Kα2 to Kα1 is about 1/2
    assert kalpha_doublet(first) == kalpha_doublet(mean)  # the Kα1 line names the same anode


def test_kalpha_doublet_of_copper():
    (first, _), (second, ratio) = kalpha_doublet(1.54184)
    assert (first, second) == (1.54056, 1.54439)
    assert ratio == pytest.approx(0.00128 / 0.00255, rel=1e-9)


def test_doublet_pattern_is_the_sum_of_its_lines():
    crystal = with_b_iso(datasets.get_prototype(RUTILE).crystal())
    doublet = measured_pattern(crystal, XRD, Instrument.ideal(0.1, kalpha2=True))
    (_, _), (_, ratio) = kalpha_doublet(XRD.wavelength)
    lines = [
        Diffractometer(line, XRD.two_theta_range, step=XRD.step).pattern(crystal, fwhm=0.1,
                                                                          normalize=False)
        for line in ("CuKa1", "CuKa2")
    ]
    expected = lines[0] + ratio * lines[1]
    np.testing.assert_allclose(doublet, expected, rtol=1e-9, atol=1e-12 * expected.max())


def test_alpha2_positions_match_pymatgen():
    prototype = datasets.get_prototype(RUTILE)
    reference = XRDCalculator("CuKa2").get_pattern(prototype.structure(), two_theta_range=(20, 60))
    peaks = Diffractometer("CuKa", (10, 90)).peaks(prototype.crystal())
    (_, _), (second, _) = kalpha_doublet(WAVELENGTHS["CuKa"])
    alpha2 = line_factors(1 / peaks.d_spacing, second).two_theta
    alpha2 = alpha2[(alpha2 >= 20) & (alpha2 <= 60)]
    assert len(alpha2) == len(reference.x) > 5
    np.testing.assert_allclose(alpha2, reference.x, rtol=0, atol=1e-5)


def test_kalpha2_needs_a_kalpha_wavelength():
    crystal = datasets.get_prototype(RUTILE).crystal()
    with pytest.raises(ValueError, match="Kα"):
        measured_pattern(crystal, Diffractometer(1.3, (20, 60), step=0.02),
                         Instrument.ideal(0.1, kalpha2=True))
    with pytest.raises(ValueError, match="1.39222"):
        kalpha_doublet(WAVELENGTHS["CuKb1"])


# --------------------------------------------------------------------------- hand-derived cases


def test_zero_shift_translates_the_pattern():
    crystal = with_b_iso(datasets.get_prototype(RUTILE).crystal())
    instrument = full_instrument(crystal, (1, 1, 0))
    shift = 0.037
    shifted = measured_pattern(crystal, XRD, replace(instrument, zero_shift=shift))
    unshifted = measured_pattern(crystal, XRD, replace(instrument, zero_shift=0.0),
                                 two_theta=XRD.two_theta - shift)
    np.testing.assert_allclose(shifted, unshifted, rtol=1e-9, atol=1e-12 * unshifted.max())


def simple_cubic(a=3.0, b_iso=0.0):
    return Crystal(np.eye(3) * a, [[0, 0, 0]], ["Cu"], b_iso=[b_iso])


def test_peak_centres_follow_bragg_zero_shift_and_displacement():
    """Gaussian peaks are parabolas in log y: three points at each maximum give the centre."""
    a, zero, displacement, radius = 3.0, 0.013, 0.2, 200.0
    xrd = Diffractometer("CuKa", (25, 60), step=0.002)
    instrument = Instrument.ideal(0.02, zero_shift=zero, displacement=displacement, radius=radius)
    pattern = measured_pattern(simple_cubic(a), xrd, instrument)
    grid = xrd.two_theta
    for n in (1, 2, 3):  # (100), (110), (111)
        theta = np.arcsin(xrd.wavelength * np.sqrt(n) / (2 * a))
        expected = 2 * theta * DEG_PER_RAD + zero - 2 * displacement / radius * np.cos(
            theta) * DEG_PER_RAD
        near = np.flatnonzero(np.abs(grid - expected) < 0.05)
        k = near[np.argmax(pattern[near])]
        left, middle, right = np.log(pattern[k - 1:k + 2])
        centre = grid[k] + 0.5 * xrd.step * (left - right) / (left - 2 * middle + right)
        assert centre == pytest.approx(expected, abs=1e-7)
        assert abs(expected - 2 * theta * DEG_PER_RAD - zero) > 0.05  # displacement is visible


def test_march_dollase_values():
    cos2 = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(march_dollase(cos2, 1.0)[0], 1.0)
    for ratio in (0.5, 0.8, 1.7):
        factor = march_dollase(np.array([1.0, 0.0]), ratio)[0]
        np.testing.assert_allclose(factor, [ratio**-3, ratio**1.5], rtol=1e-13)


@pytest.mark.parametrize("ratio", (0.4, 0.8, 1.0, 1.3, 2.5))
def test_march_dollase_averages_to_one(ratio):
    mu, weights = np.polynomial.legendre.leggauss(100)
    mu = 0.5 * (mu + 1)  # ∫_0^1 P(μ²) dμ, μ = cos α
    assert 0.5 * weights @ march_dollase(mu**2, ratio)[0] == pytest.approx(1.0, rel=1e-10)


def test_march_dollase_derivatives():
    cos2, ratio = np.array([0.0, 0.3, 0.9, 1.0]), 0.7
    _, d_cos2, d_ratio = march_dollase(cos2, ratio)
    for index in range(len(cos2)):
        numeric = finite_difference(
            lambda c: march_dollase(np.array([c[0]]), ratio)[0][0], cos2[index:index + 1], 1e-4)
        assert_close(d_cos2[index], numeric, f"dP/dcos² at {cos2[index]}")
    numeric = finite_difference(lambda r: march_dollase(cos2, r[0])[0] @ [1, 2, 3, 4],
                                np.array([ratio]), 1e-4)
    assert_close(d_ratio @ [1, 2, 3, 4], numeric, "dP/dr")


def test_orientation_cosines_against_cartesian_vectors():
    rng = np.random.default_rng(5)
    lattice = datasets.get_prototype(TRICLINIC).crystal().lattice
    hkl = rng.integers(-3, 4, (12, 3)).astype(float)
    hkl = hkl[np.any(hkl != 0, axis=1)]
    direction = (1, -2, 1)
    reciprocal = np.linalg.inv(lattice).T  # rows b_i, a_i · b_j = δ_ij
    g, p = hkl @ reciprocal, np.array(direction) @ reciprocal
    expected = (g @ p)**2 / (np.einsum("mi,mi->m", g, g) * (p @ p))
    metric = np.linalg.inv(lattice @ lattice.T)
    cos2, d_metric = orientation_cosines(hkl, metric, direction)
    np.testing.assert_allclose(cos2, expected, rtol=1e-12, atol=1e-15)
    weights = rng.standard_normal(len(hkl))
    numeric = finite_difference(lambda m: orientation_cosines(hkl, m, direction)[0] @ weights,
                                metric, 1e-6)
    assert_close(np.einsum("m,mij->ij", weights, d_metric), numeric, "dcos²/dG*")


def test_chebyshev_basis_matches_numpy():
    grid = np.array([20.0, 21.5, 30.0, 44.0, 59.0, 60.0])
    x = 2 * (grid - 20.0) / 40.0 - 1
    basis = chebyshev_basis(grid, 4)
    assert basis.shape == (6, 4)
    for n in range(4):
        np.testing.assert_allclose(basis[:, n], np.polynomial.chebyshev.chebval(x, np.eye(4)[n]),
                                   rtol=0, atol=1e-14)
    assert (basis[0, 1], basis[-1, 1]) == (-1.0, 1.0)
    assert chebyshev_basis(grid, 0).shape == (6, 0)


def test_background_is_the_chebyshev_series():
    crystal = datasets.get_prototype(RUTILE).crystal()
    coefficients = (40.0, -7.0, 3.0, 1.5)
    with_background = measured_pattern(crystal, XRD, Instrument.ideal(0.1,
                                                                      background=coefficients))
    x = np.linspace(-1, 1, len(XRD.two_theta))
    np.testing.assert_allclose(
        with_background - measured_pattern(crystal, XRD, Instrument.ideal(0.1)),
        np.polynomial.chebyshev.chebval(x, coefficients), rtol=0, atol=1e-9)


def test_b_iso_damps_intensities_by_exp_minus_2_b_s2():
    xrd, b_iso, a = Diffractometer("CuKa", (20, 90), step=0.01), 0.8, 3.0
    instrument = Instrument.ideal(0.05)
    damped = measured_pattern(simple_cubic(a, b_iso), xrd, instrument)
    sharp = measured_pattern(simple_cubic(a), xrd, instrument)
    # every grid point within reach of exactly one reflection (peaks ≥ 5° apart, window 0.25°)
    n = np.arange(1, 12)
    n = n[n != 7]  # h² + k² + l² = 7 is no sum of three squares
    centres = 2 * np.arcsin(xrd.wavelength * np.sqrt(n) / (2 * a)) * DEG_PER_RAD
    s2 = n / (2 * a)**2  # s = |g|/2 = sin θ / λ
    covered = sharp > 1e-9 * sharp.max()
    nearest = np.argmin(np.abs(xrd.two_theta[covered, None] - centres[None, :]), axis=1)
    assert len(np.unique(nearest)) >= 6
    np.testing.assert_allclose(damped[covered] / sharp[covered], np.exp(-2 * b_iso * s2[nearest]),
                               rtol=1e-10)


def test_b_iso_gradient_sums_over_the_scatterer_types_of_an_element():
    """Atoms of one element with different B (and occupancies) are several scatterer types:
    the gradient by the element's B (all its atoms shifted together) adds them up."""
    truth = datasets.get_prototype(RUTILE).crystal()
    crystal = perturbed(truth, np.random.default_rng(2)).replace(
        b_iso=[0.3, 0.6, 0.8, 0.9, 1.0, 0.7], occupancies=[1, 0.7, 1, 1, 0.9, 1])
    instrument = Instrument.ideal(0.1, eta=0.2, window=WIDE_WINDOW, kalpha2=True)
    target = measured_pattern(truth, XRD_FD, instrument)
    result = measured_loss_and_grad(crystal, target, XRD_FD, instrument)

    def loss(symbol, change):
        b_iso = crystal.b_iso.copy()
        b_iso[np.array(crystal.species) == symbol] += change[0]
        return measured_loss_and_grad(crystal.replace(b_iso=b_iso), target, XRD_FD,
                                      instrument).loss

    numeric = [finite_difference(lambda d: loss(s, d), np.zeros(1), 1e-3)[0] for s in ("Ti", "O")]
    assert_close([result.d_b_iso["Ti"], result.d_b_iso["O"]], numeric, "B of mixed types")


def test_poisson_counts_are_seeded():
    pattern = np.linspace(0.0, 3.0, 40)**2
    first = poisson_counts(pattern, 500.0, seed=4)
    np.testing.assert_array_equal(first, poisson_counts(pattern, 500.0, seed=4))
    assert np.any(first != poisson_counts(pattern, 500.0, seed=5))
    assert first.dtype == float and first[0] == 0.0


def test_poisson_counts_statistics():
    pattern = np.linspace(0.0, 3.0, 40)**2
    expected = pattern * 50.0 / pattern.max()
    draws = np.array([poisson_counts(pattern, 50.0, seed=seed) for seed in range(2000)])
    n = len(draws)
    mean_margin = 5 * np.sqrt(expected / n)
    assert np.all(np.abs(draws.mean(axis=0) - expected) <= mean_margin)
    # the sample variance of Poisson draws has a variance ≈ (λ + 2λ²)/n
    variance_margin = 5 * np.sqrt((expected + 2 * expected**2) / n)
    assert np.all(np.abs(draws.var(axis=0, ddof=1) - expected) <= variance_margin)


def test_counting_rwp():
    assert counting_rwp([1.0, 2.0, 9.0], [0.0, 4.0, 9.0])[0] == pytest.approx(np.sqrt(2 / 13))
    counts = np.array([0.0, 3.0, 7.0, 120.0, 40.0])
    value, gradient = counting_rwp(counts, counts)
    assert value == 0.0 and not np.any(gradient)
    pattern = counts + np.array([0.5, -1.0, 2.0, 6.0, -3.0])
    numeric = finite_difference(lambda y: counting_rwp(y, counts)[0], pattern, 1e-4)
    assert_close(counting_rwp(pattern, counts)[1], numeric, "dRwp/dy")


# --------------------------------------------------------------------------- fits and refinement


def test_fit_linear_recovers_scale_and_background():
    crystal = with_b_iso(datasets.get_prototype(RUTILE).crystal())
    truth = replace(full_instrument(crystal, (1, 1, 0)), scale=3.7, background=(50.0, 10.0, -5.0),
                    window=None)
    target = measured_pattern(crystal, XRD, truth)
    fitted = fit_linear(crystal, target, XRD, replace(truth, scale=1.0, background=(0, 0, 0)))
    assert fitted.scale == pytest.approx(3.7, rel=1e-6)
    np.testing.assert_allclose(fitted.background, truth.background, rtol=1e-6)


def refinement_case():
    truth = with_b_iso(datasets.get_prototype(RUTILE).crystal())
    instrument = replace(full_instrument(truth, (1, 1, 0)), window=None, zero_shift=0.04,
                         kalpha2=False, march_dollase=1.0)
    return truth, instrument, measured_pattern(truth, XRD, instrument)


@pytest.mark.parametrize("constrained", (True, False), ids=("space_group", "p1"))
def test_refine_recovers_the_zero_shift(constrained):
    truth, instrument, target = refinement_case()
    parametrization = space_group(truth, truth) if constrained else p1(truth)
    result = refine(parametrization, truth, target, XRD, replace(instrument, zero_shift=0.0),
                    free=("scale", "zero_shift", "background"), steps=200)
    # 1e-5° off after 200 steps, P1 1.5e-4° (after 100: 3e-3° and 9e-3°, the lattice moving too)
    assert abs(result.instrument.zero_shift - 0.04) < 0.005
    assert result.loss < result.losses[0]


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_refine_recovers_the_zero_shift_from_counts(seed):
    truth, instrument, target = refinement_case()
    counts = poisson_counts(target, PEAK_COUNTS, seed=seed)
    result = refine(space_group(truth, truth), truth, counts, XRD,
                    replace(instrument, zero_shift=0.0), free=("scale", "zero_shift", "background"),
                    metric=COUNTS_METRIC, steps=100)
    # seeds 0–7: within 0.0011° (P1: 0.0016°), the counting noise of 1e4 peak counts
    assert abs(result.instrument.zero_shift - 0.04) < 0.005
    assert result.loss < result.losses[0]


def test_refine_rejects_unknown_parameters():
    truth, instrument, target = refinement_case()
    with pytest.raises(ValueError, match="zeroshift"):
        refine(p1(truth), truth, target, XRD, instrument, free=("scale", "zeroshift"))
    with pytest.raises(ValueError, match="Fe"):
        refine(p1(truth), truth, target, XRD, instrument, free=("b_iso:Fe", ))


# --------------------------------------------------------------------------- bad input


def test_instrument_rejects_bad_settings():
    with pytest.raises(ValueError, match="eta"):
        Instrument(eta=1.5)
    with pytest.raises(ValueError, match="scale"):
        Instrument(scale=0)
    with pytest.raises(TypeError, match="kalpha2"):
        Instrument(kalpha2="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="orientation"):
        Instrument(orientation=(0, 0, 0))


def test_measurement_rejects_bad_input():
    crystal = datasets.get_prototype(RUTILE).crystal()
    instrument = Instrument.ideal(0.1)
    with pytest.raises(ValueError, match="Caglioti"):
        measured_pattern(crystal, XRD, Instrument(u=0.0, v=-0.1, w=0.01))
    target = measured_pattern(crystal, XRD, instrument)
    with pytest.raises(ValueError, match="target"):
        measured_loss_and_grad(crystal, target[:-1], XRD, instrument)
    with pytest.raises(TypeError, match="widht"):
        measured_loss_and_grad(crystal, target, XRD, instrument, "wcc", widht=1.0)
    with pytest.raises(TypeError, match="width"):
        measured_loss_and_grad(crystal, target, XRD, instrument, COUNTS_METRIC, width=1.0)
    with pytest.raises(ValueError, match="non-negative"):
        poisson_counts(-target, 100.0)


def test_background_envelope_lies_under_the_peaks_and_on_the_background():
    """Peaks on a smooth background: the envelope passes under the peaks (above the pattern by at
    most 1 % of the background, a least-squares fit to the clipped pattern), within a few per
    cent of the background's level between them, and is nowhere negative; with no background it
    is about zero."""
    from xrdcore.physics.instrument import background_envelope, chebyshev_basis

    xrd = Diffractometer("CuKa", (10, 90), 0.02)
    truth = datasets.get_prototype("A2B_tP6_136_f_a").crystal()
    peaks = measured_pattern(truth, xrd, Instrument.ideal(0.1))
    grid = xrd.two_theta
    true_background = (0.1 * peaks.max(), -0.06 * peaks.max(), 0.02 * peaks.max())
    basis = chebyshev_basis(grid, 3)
    background = basis @ np.array(true_background)
    envelope = basis @ background_envelope(grid, peaks + background, 3)
    quiet = peaks < 1e-6 * peaks.max()  # between the peaks
    assert quiet.mean() > 0.5
    assert np.all(envelope >= -1e-9 * peaks.max())
    assert np.all(envelope <= peaks + background + 0.01 * background.max())
    assert np.abs(envelope - background)[quiet].max() < 0.05 * background.max()
    bare = basis @ background_envelope(grid, peaks, 3)
    assert np.abs(bare).max() < 0.01 * peaks.max()


def test_measured_model_on_the_numpy_reference_kernels():
    """The whole measurement, pattern and every gradient, with the numba kernels swapped for
    their numpy twins (``kernels.reference``, dense sums): the same numbers."""
    from xrdcore.kernels import reference

    class ReferenceDiffractometer(Diffractometer):
        kernels = reference

    numpy_xrd = ReferenceDiffractometer("CuKa", (20, 45), step=0.02)
    truth = datasets.get_prototype("A2B_aP6_2_2i_i").crystal()
    crystal = perturbed(truth, np.random.default_rng(4))
    instrument = Instrument(scale=1.5, zero_shift=0.02, displacement=0.03, u=0.002, v=-0.001,
                            w=0.008, eta=0.3, window=WIDE_WINDOW, background=(2.0, 0.5),
                            kalpha2=True, march_dollase=0.85, orientation=(1, 0, 0))
    target = measured_pattern(truth, XRD_FD, replace(instrument, zero_shift=0.0))
    ours = measured_loss_and_grad(crystal, target, XRD_FD, instrument)
    twin = measured_loss_and_grad(crystal, target, numpy_xrd, instrument)
    np.testing.assert_allclose(measured_pattern(crystal, numpy_xrd, instrument),
                               measured_pattern(crystal, XRD_FD, instrument), rtol=1e-9)
    assert ours.loss == pytest.approx(twin.loss, rel=1e-9)
    np.testing.assert_allclose(ours.d_lattice, twin.d_lattice, rtol=1e-7,
                               atol=1e-9 * np.abs(twin.d_lattice).max())
    np.testing.assert_allclose(ours.d_frac, twin.d_frac, rtol=1e-7,
                               atol=1e-9 * np.abs(twin.d_frac).max())
    for name in SCALARS:
        assert ours.d_instrument[name] == pytest.approx(twin.d_instrument[name], rel=1e-7,
                                                        abs=1e-12)
    np.testing.assert_allclose(ours.d_instrument["background"], twin.d_instrument["background"],
                               rtol=1e-7)
    assert ours.d_b_iso == pytest.approx(twin.d_b_iso, rel=1e-7)
