"""Property tests (hypothesis, derandomised so that CI sees the same examples every run):

* any valid crystal (1–6 atoms, a cell of 2.5–12 Å edges and 60–120° angles, random positions,
  occupancies and displacement factors) gives finite peaks, a finite non-negative pattern, and
  a finite loss with a finite gradient;
* any invalid input to the engine's entry points (NaN or inf, wrong shapes, booleans, strings,
  complex numbers, negative occupancies, singular or left-handed cells, arbitrary objects)
  raises TypeError or ValueError (our subclasses included): never another exception, never a
  silent result.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pymatgen.core.periodic_table import Element

from xrdcore import similarity
from xrdcore.batch import BatchLoss
from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import loss_and_grad
from xrdcore.physics.profiles import SHAPES, Profile
from xrdcore.physics.scattering import wavelengths
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.datasets import load_prototype
from xrdcore.structure.parametrize import Parametrization, p1

ELEMENTS = ("H", "Li", "C", "O", "Na", "Si", "Ti", "Fe", "Ba", "U")
METRICS = tuple(similarity.METRICS)
SYMBOLS = {element.symbol for element in Element}
#: Small, so that each example costs milliseconds; the fwhm is wider than the step, as it must be.
XRD = Diffractometer("CuKa", (10, 90), step=0.05, backend="cpu")
FWHM = 0.2
RUTILE = load_prototype("A2B_tP6_136_f_a")
TARGET = XRD.pattern(RUTILE, fwhm=FWHM)
#: Offsets that keep every drawn atom at its own position (k·OFFSET is never a lattice vector).
OFFSET = np.array([0.171, 0.313, 0.437])

PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def lattice_from(lengths, angles):
    """Rows of a cell with edges a, b, c (Å) and angles α, β, γ (deg), a along x, b in the xy
    plane."""
    a, b, c = lengths
    alpha, beta, gamma = np.radians(angles)
    cx = np.cos(beta)
    cy = (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    return np.array([[a, 0, 0], [b * np.cos(gamma), b * np.sin(gamma), 0],
                     [c * cx, c * cy, c * np.sqrt(1 - cx**2 - cy**2)], ])


def cell_factor(angles):
    """V / (abc) squared: positive exactly when the three angles form a cell."""
    ca, cb, cg = np.cos(np.radians(angles))
    return 1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg


@st.composite
def crystals(draw):
    lengths = draw(st.tuples(*[st.floats(2.5, 12.0)] * 3))
    angles = draw(st.tuples(*[st.floats(60.0, 120.0)] * 3))
    # V/(ab) = c·sqrt(factor) ≥ 1.1 Å: some d-spacing reaches the 10–90° window at Cu Kα
    # (d ≥ 1.09 Å)
    assume(cell_factor(angles) > 0.2)
    n_atoms = draw(st.integers(1, 6))
    raw = draw(arrays(float, (n_atoms, 3), elements=st.floats(0.0, 1.0, exclude_max=True)))
    frac_coords = (raw + np.arange(n_atoms)[:, None] * OFFSET) % 1.0
    species = draw(st.lists(st.sampled_from(ELEMENTS), min_size=n_atoms, max_size=n_atoms))
    occupancies = draw(arrays(float, n_atoms, elements=st.floats(0.1, 1.0, exclude_min=True)))
    b_iso = draw(arrays(float, n_atoms, elements=st.floats(0.0, 2.0)))
    return Crystal(lattice_from(lengths, angles), frac_coords, species, occupancies, b_iso)


# -------------------------------------------------------------------------- valid input never fails


@PROPERTY
@given(crystal=crystals())
def test_peaks_of_a_valid_crystal(crystal):
    peaks = XRD.peaks(crystal)
    assert len(peaks) > 0
    assert np.all(np.isfinite(peaks.two_theta)) and np.all(np.isfinite(peaks.intensity))
    assert np.all((peaks.two_theta >= 10) & (peaks.two_theta <= 90))
    assert peaks.intensity.max() == pytest.approx(100.0)
    assert np.all(peaks.intensity > 0) and np.all(peaks.d_spacing > 0)


@PROPERTY
@given(crystal=crystals(), shape=st.sampled_from(sorted(SHAPES)))
def test_pattern_of_a_valid_crystal(crystal, shape):
    pattern = XRD.pattern(crystal, fwhm=Profile(FWHM, shape=shape))
    assert pattern.shape == XRD.two_theta.shape
    assert np.all(np.isfinite(pattern)) and np.all(pattern >= 0)
    assert pattern.max() == pytest.approx(100.0)


@PROPERTY
@given(crystal=crystals(), metric=st.sampled_from(METRICS))
def test_loss_and_gradient_of_a_valid_crystal(crystal, metric):
    result = loss_and_grad(crystal, TARGET, XRD, metric=metric, fwhm=FWHM)
    assert np.isfinite(result.loss)
    assert result.d_lattice.shape == (3, 3) and result.d_frac.shape == (len(crystal), 3)
    assert np.all(np.isfinite(result.d_lattice)) and np.all(np.isfinite(result.d_frac))


# ------------------------------------------------------------------------- invalid input is refused

#: Values that are no number: booleans, strings, None, complex, containers, arbitrary objects.
NOT_NUMBERS = st.sampled_from([
    True, False,
    np.bool_(True), "0.1", "", None, 1j, 2 + 0j, [0.1], (0.1, ), {}, b"1",
    object(),
    np.array([0.1, 0.2]), Crystal
])
NON_FINITE = st.sampled_from([np.nan, np.inf, -np.inf])
NOT_POSITIVE = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.integers(max_value=0))
OBJECTS = st.one_of(NOT_NUMBERS, NON_FINITE, st.integers(), st.text(max_size=8),
                    st.just(RUTILE.to_pymatgen()), st.just(np.zeros((3, 3))))


def refused(call):
    """``call()`` raises TypeError or ValueError: a builtin one or one of ours, nothing else."""
    with pytest.raises((TypeError, ValueError)) as caught:
        call()
    kind = type(caught.value)
    assert kind in (TypeError, ValueError) or kind.__module__.startswith("xrdcore"), (
        f"{kind.__name__}: {caught.value}")


def bad_arrays(shape):
    """Arrays of ``shape`` with a NaN or inf somewhere, or of booleans, strings or complex
    numbers."""

    def poisoned(values, bad):
        values = values.copy()
        values.flat[len(values.flat) // 2] = bad
        return values

    finite = arrays(float, shape, elements=st.floats(-10, 10))
    return st.one_of(
        st.builds(poisoned, finite, NON_FINITE), arrays(bool, shape),
        arrays(complex, shape, elements=st.complex_numbers(max_magnitude=10, allow_nan=False)),
        st.just(np.full(shape, "1")))


def wrong_shapes(shape):
    """Finite arrays whose shape differs from ``shape``."""
    return arrays(
        float,
        st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple).filter(lambda s: s != shape),
        elements=st.floats(-10, 10))


@PROPERTY
@given(
    wavelength=st.one_of(st.sampled_from([True, None, 1j, [1.5], np.nan, -1.0, 0.0, 1e3]),
                         st.text(max_size=6).filter(lambda s: s not in wavelengths())),
    step=st.one_of(NOT_NUMBERS, NON_FINITE, NOT_POSITIVE), two_theta_range=st.one_of(
        NOT_NUMBERS.filter(lambda v: not isinstance(v, np.ndarray)),
        st.tuples(st.floats(allow_nan=True),
                  st.floats(allow_nan=True)).filter(lambda r: not (0 <= r[0] < r[1] <= 179.9)),
        st.tuples(st.floats(10, 20), NOT_NUMBERS)), backend=st.one_of(
            NOT_NUMBERS,
            st.text(max_size=6).filter(lambda s: s not in ("auto", "cpu", "cuda"))),
    which=st.integers(0, 3))
def test_a_bad_instrument_is_refused(wavelength, step, two_theta_range, backend, which):
    settings_ = [
        dict(wavelength=wavelength),
        dict(step=step),
        dict(two_theta_range=two_theta_range),
        dict(backend=backend)
    ][which]
    refused(lambda: Diffractometer(**settings_))


@PROPERTY
@given(data=st.data(),
       which=st.sampled_from(["fwhm", "shape", "eta", "window", "two_theta", "normalize"]))
def test_a_bad_profile_setting_is_refused(data, which):
    bad = {
        "fwhm": st.one_of(NOT_NUMBERS, NON_FINITE, NOT_POSITIVE,
                          st.tuples(st.floats(0, 1), st.floats(0, 1)), st.just(0.001),
                          st.just((0.0, 0.0, -1.0))),
        "shape": st.one_of(NOT_NUMBERS,
                           st.text(max_size=12).filter(lambda s: s not in SHAPES)),
        "eta": st.one_of(NOT_NUMBERS.filter(lambda v: v is not None), NON_FINITE,
                         st.floats(1.001, 10), st.floats(-10, -0.001)),
        "window": st.one_of(NOT_NUMBERS.filter(lambda v: v is not None), NON_FINITE, NOT_POSITIVE),
        "two_theta": st.one_of(bad_arrays((50, )), st.just(np.zeros((2, 50))),
                               st.just(np.linspace(40, 30, 300)), st.just(np.array([])),
                               st.just(np.linspace(170, 200, 3000)), st.text(max_size=5)),
        "normalize": st.one_of(NOT_NUMBERS.filter(lambda v: not isinstance(v, (bool, np.bool_))),
                               st.integers())
    }[which]
    options = {which: data.draw(bad, label=which)}
    if which == "eta":
        options["shape"] = "pseudo-voigt"
    refused(lambda: XRD.pattern(RUTILE, **{"fwhm": FWHM, **options}))


@PROPERTY
@given(data=st.data(),
       which=st.sampled_from(["lattice", "frac_coords", "species", "occupancies", "b_iso"]))
def test_a_bad_crystal_is_refused(data, which):
    valid = dict(lattice=RUTILE.lattice, frac_coords=RUTILE.frac_coords, species=RUTILE.species,
                 occupancies=RUTILE.occupancies, b_iso=RUTILE.b_iso)
    n = len(RUTILE)
    bad = {
        "lattice": st.one_of(bad_arrays((3, 3)), wrong_shapes((3, 3)), NOT_NUMBERS,
                             st.just(np.diag([1.0, 1.0, 0.0])), st.just(np.diag([-4.0, 4.0, 4.0])),
                             st.just(np.ones((3, 3)))),
        "frac_coords": st.one_of(bad_arrays((n, 3)), wrong_shapes((n, 3)), NOT_NUMBERS),
        "species": st.one_of(
            st.lists(
                st.text(max_size=3).filter(lambda s: s.strip() not in SYMBOLS), min_size=n,
                max_size=n), st.just(["Ti"] * (n - 1)), st.just([True] * n), st.just([0] * n),
            st.just([119] * n), st.just(None), st.just([1.5] * n)),
        "occupancies": st.one_of(bad_arrays((n, )),
                                 wrong_shapes((n, )).filter(lambda a: a.size != n),
                                 st.just(-np.ones(n)), st.just(np.zeros(n)), st.just(np.full(
                                     n, 1.5))),
        "b_iso": st.one_of(bad_arrays((n, )), st.just(-np.ones(n)), st.just(np.full(n, 1e9)))
    }[which]
    valid[which] = data.draw(bad, label=which)
    refused(lambda: Crystal(**valid))


@PROPERTY
@given(data=st.data(),
       which=st.sampled_from(["crystal", "target", "diffractometer", "metric", "option"]))
def test_a_bad_loss_call_is_refused(data, which):
    bad = {
        "crystal": OBJECTS,
        "target": st.one_of(bad_arrays(TARGET.shape), wrong_shapes(TARGET.shape),
                            st.just(np.zeros_like(TARGET)), NOT_NUMBERS,
                            st.just(RUTILE.to_pymatgen())),
        "diffractometer": OBJECTS,
        "metric": st.one_of(NOT_NUMBERS,
                            st.text(max_size=10).filter(lambda s: s not in METRICS)),
        "option": st.text(
            min_size=1,
            max_size=8).filter(lambda s: (s.isidentifier() and s not in
                                          ("metric", "fwhm", "shape", "eta", "window", "two_theta",
                                           "reflections", "crystal", "target", "diffractometer")))
    }[which]
    value = data.draw(bad, label=which)
    args = dict(crystal=RUTILE, target=TARGET, diffractometer=XRD, fwhm=FWHM)
    if which == "option":
        args[value] = 1.0
    else:
        args[which] = value
    refused(lambda: loss_and_grad(**args))


BATCH = BatchLoss(RUTILE, RUTILE, Diffractometer(two_theta_range=(20, 40), step=0.05,
                                                 backend="cpu"), fwhm=0.3)
P1 = p1(RUTILE)


@PROPERTY
@given(
    data=st.data(),
    which=st.sampled_from(["lattices", "frac_coords", "occupancies", "params", "mode", "patterns"]))
def test_bad_batches_parameters_and_patterns_are_refused(data, which):
    lattices, coords = (RUTILE.lattice[None].repeat(2, axis=0), RUTILE.frac_coords[None].repeat(
        2, axis=0))
    if which == "lattices":
        bad = data.draw(
            st.one_of(bad_arrays((2, 3, 3)), wrong_shapes((2, 3, 3)), NOT_NUMBERS,
                      st.just(np.zeros((0, 3, 3)))), label=which)
        refused(lambda: BATCH(bad, coords))
    elif which == "frac_coords":
        bad = data.draw(st.one_of(bad_arrays((2, 6, 3)), wrong_shapes((2, 6, 3)), NOT_NUMBERS),
                        label=which)
        refused(lambda: BATCH(lattices, bad))
    elif which == "occupancies":
        bad = data.draw(
            st.one_of(bad_arrays((2, 6)), wrong_shapes((2, 6)), st.just(-np.ones((2, 6)))),
            label=which)
        refused(lambda: BATCH(lattices, coords, bad))
    elif which == "params":
        bad = data.draw(
            st.one_of(bad_arrays((P1.size, )), wrong_shapes((P1.size, )), NOT_NUMBERS,
                      st.just(np.zeros(P1.size))), label=which)
        refused(lambda: P1.crystal(bad))
    elif which == "mode":
        bad = data.draw(
            st.one_of(NOT_NUMBERS,
                      st.text(max_size=10).filter(lambda s: s not in ("free", "family", "fixed"))),
            label=which)
        refused(lambda: Parametrization(RUTILE, lattice=bad))
    else:
        bad = data.draw(
            st.one_of(bad_arrays((20, )), wrong_shapes((20, )), NOT_NUMBERS, st.just(np.zeros(20))),
            label=which)
        refused(lambda: similarity.loss("cosine", bad, np.ones(20)))
