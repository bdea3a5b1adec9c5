"""Diffractometer: hand-derived cases, profiles, and clear errors for bad input."""

import numpy as np
import pytest

from xrdcore import Crystal, Diffractometer
from xrdcore.physics.profiles import Profile


def test_cscl_100_peak_position_by_hand(cscl):
    """Bragg: 2θ(100) = 2 asin(λ / 2a) = 21.108° for a = 4.209 Å and Cu Kα 1.54184 Å."""
    peaks = Diffractometer().peaks(cscl)
    assert peaks.two_theta[0] == pytest.approx(np.degrees(2 * np.arcsin(1.54184 / (2 * 4.209))),
                                               abs=1e-12)
    assert peaks.two_theta[0] == pytest.approx(21.108, abs=1e-3)
    assert peaks.d_spacing[0] == pytest.approx(4.209)
    assert peaks.multiplicity[0] == 6
    assert sorted(map(tuple, np.abs(peaks.hkls[0]))) == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]
    assert peaks.intensity.max() == pytest.approx(100)


def test_bcc_extinction():
    """Body-centred cubic: reflections with h + k + l odd vanish and are dropped."""
    iron = Crystal(np.eye(3) * 2.8665, [[0, 0, 0], [0.5, 0.5, 0.5]], ["Fe", "Fe"])
    peaks = Diffractometer(two_theta_range=(10, 150)).peaks(iron)
    for members in peaks.hkls:
        assert all(h.sum() % 2 == 0 for h in members)
    assert len(peaks) == 6  # 110 200 211 220 310 222; 321 would need sin θ > 1


def test_no_reflections_in_range_gives_empty_results(cscl):
    diffractometer = Diffractometer(two_theta_range=(1, 5))
    peaks = diffractometer.peaks(cscl)
    assert len(peaks) == 0 and peaks.hkls == [] and len(peaks.multiplicity) == 0
    np.testing.assert_array_equal(diffractometer.pattern(cscl), 0.0)


def test_pattern_area_equals_sum_of_intensities(cscl):
    """Unit-area peaks: the integral of the unnormalised profile is Σ I_h over peaks well inside
    the grid."""
    diffractometer = Diffractometer(two_theta_range=(15, 80), step=0.005)
    y = diffractometer.pattern(cscl, fwhm=0.2, normalize=False)
    refl = diffractometer.reflections(cscl)
    assert np.trapezoid(y, diffractometer.two_theta) == pytest.approx(refl.intensity.sum(),
                                                                      rel=1e-6)


def test_pattern_peak_maxima_sit_at_bragg_angles(cscl):
    diffractometer = Diffractometer(step=0.001)
    y = diffractometer.pattern(cscl, fwhm=0.1)
    grid = diffractometer.two_theta
    peaks = diffractometer.peaks(cscl)
    strongest = peaks.two_theta[np.argmax(peaks.intensity)]
    assert grid[np.argmax(y)] == pytest.approx(strongest, abs=0.001)
    assert y.max() == pytest.approx(100)


def test_caglioti_widths_grow_with_angle(cscl):
    diffractometer = Diffractometer(two_theta_range=(15, 90), step=0.002)
    y = diffractometer.pattern(cscl, fwhm=(0.02, -0.01, 0.01), normalize=False)
    grid = diffractometer.two_theta

    def measured_fwhm(centre):
        near = np.abs(grid - centre) < 1.0
        above = grid[near][y[near] >= y[near].max() / 2]
        return above[-1] - above[0]

    tt = diffractometer.peaks(cscl).two_theta
    expected = np.sqrt(0.02 * np.tan(np.radians(tt / 2))**2 - 0.01 * np.tan(np.radians(tt / 2)) +
                       0.01)
    for centre, width in zip(tt[[0, 1, -1]], expected[[0, 1, -1]]):
        assert measured_fwhm(centre) == pytest.approx(width, abs=0.005)


@pytest.mark.parametrize("shape", ["gaussian", "lorentzian", "pseudo-voigt"])
def test_shapes_have_requested_fwhm(cscl, shape):
    diffractometer = Diffractometer(two_theta_range=(25, 35), step=0.0005)
    y = diffractometer.pattern(cscl, fwhm=Profile(0.3, shape=shape))
    above = diffractometer.two_theta[y >= y.max() / 2]
    assert above[-1] - above[0] == pytest.approx(0.3, abs=0.002)


@pytest.mark.parametrize("kwargs, error, message",
                         [(dict(wavelength=20.0), ValueError, "outside the supported X-ray range"),
                          (dict(wavelength=-1.0), ValueError, "outside"),
                          (dict(wavelength=float("nan")), ValueError, "finite"),
                          (dict(wavelength="CuKalpha"), ValueError, "unknown X-ray line"),
                          (dict(wavelength=[1.5]), TypeError, "line name"),
                          (dict(two_theta_range=(90, 10)), ValueError, "low < high"),
                          (dict(two_theta_range=(10, 180)), ValueError, "179.9"),
                          (dict(two_theta_range=(-5, 30)), ValueError, "0 ≤ low"),
                          (dict(two_theta_range=(10, float("nan"))), ValueError, "two_theta_range"),
                          (dict(two_theta_range=10), ValueError, r"\(low, high\)"),
                          (dict(step=0), ValueError, "step"), ])
def test_bad_instrument_settings(kwargs, error, message):
    with pytest.raises(error, match=message):
        Diffractometer(**kwargs)


@pytest.mark.parametrize("kwargs, message", [(dict(two_theta=[10, 20, np.nan]), "NaN or inf"),
                                             (dict(two_theta=[]), "non-empty"),
                                             (dict(two_theta=[20, 10, 30]), "ascending"),
                                             (dict(fwhm=0), "positive"),
                                             (dict(fwhm=np.nan), "finite"),
                                             (dict(fwhm=(1, 2)), "Caglioti"),
                                             (dict(fwhm=(0, 0, -1)), "non-positive"),
                                             (dict(shape="voigt"), "unknown peak shape"),
                                             (dict(shape="gaussian", eta=0.3), "only applies"),
                                             (dict(shape="pseudo-voigt", eta=1.5), r"\[0, 1\]"),
                                             (dict(window=0), "window"),
                                             (dict(two_theta=[185.0, 190.0]), "outside"), ])
def test_bad_pattern_arguments(cscl, kwargs, message):
    with pytest.raises(ValueError, match=message):
        shape = {name: kwargs.pop(name) for name in ("shape", "eta", "window") if name in kwargs}
        if shape:
            kwargs["fwhm"] = Profile(kwargs.pop("fwhm", 0.1), **shape)
        Diffractometer().pattern(cscl, **kwargs)


def test_non_crystal_input_is_rejected():
    from pymatgen.core import Lattice, Structure

    structure = Structure(Lattice.cubic(4), ["Na"], [[0, 0, 0]])
    with pytest.raises(TypeError, match="Crystal.from_pymatgen"):
        Diffractometer().peaks(structure)


def test_element_without_form_factor_is_reported():
    crystal = Crystal(np.eye(3) * 4, [[0, 0, 0]], ["Og"])
    with pytest.raises(ValueError, match="no X-ray form-factor coefficients for element 'Og'"):
        Diffractometer().peaks(crystal)
