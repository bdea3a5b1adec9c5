"""Bad calls of the diffraction engine: the diffractometer, stick and broadened patterns, the
similarity metrics, loss_and_grad, the batched loss and descent, and the parametrisations. Each
is refused with our error, in our words, before any kernel runs (see tests/bad_input.py); the
resource guards answer at once for cells whose reflections would not fit in memory."""

import numpy as np
import pytest
from bad_input import rejects
from pymatgen.core import Molecule

from xrdcore import similarity
from xrdcore.batch import BatchLoss
from xrdcore.diffraction import Diffractometer
from xrdcore.gradients import loss_and_grad, loss_value, reflection_set
from xrdcore.optimize.batch import descend_batch
from xrdcore.physics.profiles import Profile
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.datasets import load_prototype
from xrdcore.structure.parametrize import Parametrization, p1
from xrdcore.validation import ResourceLimitError, StructureError, UndefinedMetricError, limits

RUTILE = load_prototype("A2B_tP6_136_f_a")
COPPER = load_prototype("A_cF4_225_a")
HUGE = Crystal(np.eye(3) * 1000.0, [[0, 0, 0]],
               ["Cu"])  # ~1.6e9 reflections in 10–90°: 50 GB of them
LARGE = Crystal(np.eye(3) * 150.0, [[0, 0, 0]], ["Cu"])  # ~5e6 reflections
OBLIQUE = Crystal([[1000, 0, 0], [0, 1000, 0], [999.9, 0, 0.01]], [[0, 0, 0]],
                  ["Cu"])  # 16 000 reflections, 3e9 to try
XRD = Diffractometer()
TARGET = XRD.pattern(RUTILE)
SMALL = Diffractometer(two_theta_range=(20, 40), step=0.05, backend="cpu")
BATCH = BatchLoss(RUTILE, RUTILE, SMALL, fwhm=0.3)
LATTICES = RUTILE.lattice[None].repeat(2, axis=0)
COORDS = RUTILE.frac_coords[None].repeat(2, axis=0)
P1 = p1(RUTILE)
ONES = np.ones(5)
GRID = np.linspace(20, 21, 5)


def instrument(**changes):
    return lambda: Diffractometer(**changes)


def pattern(crystal=RUTILE, **options):
    return lambda: XRD.pattern(crystal, **options)


def shaped(**settings):
    """A pattern whose peak profile has the given settings (checked when the Profile is made)."""
    return lambda: XRD.pattern(RUTILE, fwhm=Profile(**settings))


def gradient(crystal=RUTILE, target=TARGET, diffractometer=XRD, **options):
    return lambda: loss_and_grad(crystal, target, diffractometer, **options)


def batch(lattices=LATTICES, frac_coords=COORDS, **options):
    return lambda: BATCH(lattices, frac_coords, **options)


def descend(starts=None, **options):
    starts = np.array([P1.parameters(RUTILE)]) if starts is None else starts
    return lambda: descend_batch(P1, starts, RUTILE, SMALL, **{"steps": 2, "fwhm": 0.3, **options})


def within(call, **guards):

    def guarded():
        with limits(**guards):
            return call()

    return guarded


CASES = [
    # ------------------------------------------------------------------ the instrument
    ("step a string", instrument(step="0.02"), TypeError, "step must be a real number"),
    ("step True", instrument(step=True), TypeError, "True/False is not a number"),
    ("step 1e-9 degrees", instrument(step=1e-9), ResourceLimitError,
     "80,000,000,001 points.*max_grid_points"),
    ("step negative", instrument(step=-0.02), ValueError, "step must be > 0"),
    ("step infinite", instrument(step=float("inf")), ValueError, "step must be finite"),
    ("step wider than the range", instrument(two_theta_range=(10, 12),
                                             step=5), ValueError, "wider than the 2θ range"),
    ("range a string", instrument(two_theta_range="10-90"), TypeError,
     r"two_theta_range must be \(low, high\)"),
    ("range None", instrument(two_theta_range=None), TypeError, "got NoneType"),
    ("range with a bool", instrument(two_theta_range=(True, 90)), TypeError,
     r"two_theta_range\[0\].*True/False"),
    ("range complex", instrument(two_theta_range=(10, 90j)), TypeError,
     r"two_theta_range\[1\] must be a real"),
    ("range of three", instrument(two_theta_range=(10, 50, 90)), ValueError, "got 3 values"),
    ("range NaN", instrument(two_theta_range=(np.nan, 90)), ValueError, "must be finite"),
    ("range reversed", instrument(two_theta_range=(90, 10)), ValueError, "low < high"),
    ("backend 'gpu'", instrument(backend="gpu"), ValueError, "did you mean 'cuda'"),
    ("backend 'CPU'", instrument(backend="CPU"), ValueError, "did you mean 'cpu'"),
    ("backend None", instrument(backend=None), TypeError, "backend must be one of"),
    ("wavelength True", instrument(wavelength=True), TypeError, "wavelength must be"),
    # ------------------------------------------------------------------ what is diffracted
    ("a pymatgen Structure", lambda: XRD.peaks(RUTILE.to_pymatgen()), TypeError,
     "Crystal.from_pymatgen"),
    ("a pymatgen Molecule", lambda: XRD.peaks(Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]])),
     TypeError, "got a pymatgen Molecule; a molecule has no lattice"),
    ("crystal None", lambda: XRD.peaks(None), TypeError,
     "crystal must be an xrdcore Crystal, got NoneType"),
    ("a CIF path", pattern("rutile.cif"), TypeError, r"Crystal\.from_cif"),
    ("a 1000 Å cell", lambda: XRD.peaks(HUGE), ResourceLimitError,
     "1,6[0-9,]+ reflections.*max_reflections"),
    ("a 150 Å cell", pattern(LARGE), ResourceLimitError, "max_reflections.*narrow the 2θ range"),
    ("a 150 Å cell's gradient", gradient(LARGE), ResourceLimitError, "max_reflections"),
    ("a 150 Å reflection set", lambda: reflection_set(XRD, LARGE.lattice, (10, 90)),
     ResourceLimitError, "max_reflections"),
    ("a 1000 Å batch template", lambda: BatchLoss(HUGE, TARGET, XRD), ResourceLimitError,
     "max_reflections"),
    ("an oblique cell's index box", lambda: XRD.peaks(OBLIQUE), ResourceLimitError,
     "GiB.*reduce it first"),
    ("reflections × atoms", within(lambda: XRD.peaks(RUTILE), max_terms=100), ResourceLimitError,
     "6 atoms.*structure-factor terms.*max_terms"),
    ("enumeration memory", within(lambda: XRD.peaks(RUTILE),
                                  max_memory_gb=1e-6), ResourceLimitError, "GiB.*max_memory_gb"),
    ("a singular lattice to enumerate", lambda: XRD.enumerate_hkl(np.zeros(
        (3, 3)), 0.1, 1.0), StructureError, "right-handed"),
    ("a lattice with NaN to enumerate", lambda: XRD.enumerate_hkl(np.full(
        (3, 3), np.nan), 0.1, 1.0), ValueError, "lattice contains NaN"),
    # ------------------------------------------------------------------ profile settings
    ("fwhm below the grid step", pattern(fwhm=0.01), ValueError,
     "fall between grid points.*finer step or a wider"),
    ("fwhm True", pattern(fwhm=True), TypeError, "fwhm must be a real number"),
    ("fwhm complex", pattern(fwhm=0.1j), TypeError, "fwhm must be a real number.*complex"),
    ("fwhm a string", pattern(fwhm="0.1"), TypeError, "fwhm must be a real number"),
    ("fwhm negative", pattern(fwhm=-0.1), ValueError, "fwhm must be a positive number"),
    ("fwhm NaN", pattern(fwhm=np.nan), ValueError, "fwhm must be finite"),
    ("Caglioti W a string", pattern(fwhm=(0.0, 0.0, "0.01")), TypeError,
     "Caglioti W must be a real number"),
    ("Caglioti of two", pattern(fwhm=(0.01, 0.01)), ValueError, r"Caglioti parameters \(U, V, W\)"),
    ("shape misspelt", shaped(shape="gausian"), ValueError, "did you mean 'gaussian'"),
    ("shape None", shaped(shape=None), TypeError, "peak shape must be one of"),
    ("shape as a keyword of its own", gradient(shape="lorentzian"), TypeError,
     r"fwhm=Profile\(fwhm, shape="),
    ("eta True", shaped(shape="pseudo-voigt", eta=True), TypeError, "eta must be a real number"),
    ("eta NaN", shaped(shape="pseudo-voigt", eta=np.nan), ValueError, "eta must be finite"),
    ("eta for a Gaussian", shaped(eta=0.5), ValueError, "only applies to shape='pseudo-voigt'"),
    ("window infinite", shaped(window=np.inf), ValueError, "window must be finite"),
    ("window True", shaped(window=True), TypeError, "window must be a real number"),
    ("window negative", shaped(window=-5), ValueError, "window must be a positive number of FWHMs"),
    ("window narrower than the step", shaped(window=0.05), ValueError,
     "window ±0.05 FWHM: peaks would fall between"),
    ("window beyond the work guard", within(shaped(window=1e6), max_terms=100_000),
     ResourceLimitError, "peak-shape evaluations.*smaller window"),
    ("grid of strings", pattern(two_theta=["10", "20"]), TypeError,
     "two_theta grid must hold real numbers"),
    ("grid 2-D", pattern(two_theta=np.ones((2, 3))), ValueError,
     "two_theta grid must have shape 1-D"),
    ("grid descending", pattern(two_theta=np.linspace(40, 30, 501)), ValueError,
     "strictly ascending"),
    ("grid with NaN", pattern(two_theta=[20.0, np.nan, 20.1]), ValueError, "NaN"),
    ("grid beyond the guard",
     within(pattern(two_theta=np.linspace(20, 30, 1001)),
            max_grid_points=1000), ResourceLimitError, "1,001 points.*max_grid_points"),
    ("grid beyond 180°", pattern(two_theta=np.linspace(170, 185, 1001)), ValueError,
     "outside 0–179.9°"),
    ("normalize a string", pattern(normalize="yes"), TypeError, "normalize must be True or False"),
    # ------------------------------------------------------------------ similarity
    ("metric misspelt", lambda: similarity.loss("cosin", ONES, ONES), ValueError,
     "did you mean 'cosine'"),
    ("metric a number", lambda: similarity.loss(3, ONES, ONES), TypeError, "metric must be one of"),
    ("pattern of strings", lambda: similarity.loss("cosine", list("abcde"), ONES), TypeError,
     "strings"),
    ("pattern complex", lambda: similarity.loss("cosine", ONES + 1j, ONES), TypeError,
     "complex numbers"),
    ("pattern of booleans", lambda: similarity.loss("cosine", ONES > 0, ONES), TypeError,
     "booleans"),
    ("patterns of two lengths", lambda: similarity.loss("mse", ONES, np.ones(6)), ValueError,
     "same grid"),
    ("pattern with inf", lambda: similarity.loss("rwp", np.array([1, np.inf, 1, 1, 1]), ONES),
     ValueError, "simulated pattern contains NaN or inf"),
    ("simulated all zero", lambda: similarity.loss("cosine", np.zeros(5), ONES),
     UndefinedMetricError, "simulated pattern is all zero: nothing diffracts"),
    ("target all zero", lambda: similarity.loss("cosine", ONES, np.zeros(5)), ValueError,
     "target pattern is all zero: there is nothing to compare"),
    ("metric option unknown", lambda: similarity.loss("cosine", ONES, ONES, GRID, width=1.0),
     TypeError, "unknown option.*takes none"),
    ("wcc width NaN", lambda: similarity.loss("wcc", ONES, ONES, GRID, width=np.nan), ValueError,
     "width must be finite"),
    ("two_theta of strings", lambda: similarity.loss("wasserstein", ONES, ONES, list("abcde")),
     TypeError, "two_theta must hold real numbers"),
    ("batch rows 1-D", lambda: similarity.loss_batch("cosine", ONES, ONES), ValueError,
     r"shape \(B, 5\)"),
    ("undefined misspelt", lambda: similarity.loss_batch("cosine", np.ones(
        (2, 5)), ONES, undefined="nans"), ValueError, "did you mean 'nan'"),
    # ------------------------------------------------------------------ loss_and_grad
    ("diffractometer None", gradient(diffractometer=None), TypeError,
     "diffractometer must be an xrdcore Diffractometer, got NoneType None"),
    ("target a Structure", gradient(target=RUTILE.to_pymatgen()), TypeError,
     "convert it with Crystal.from_pymatgen"),
    ("target a string", gradient(target="rutile.xy"), TypeError,
     "the target is a Crystal or its pattern"),
    ("target None", gradient(target=None), TypeError, "target pattern must be an array"),
    ("target 2-D", gradient(target=np.stack([TARGET, TARGET])), ValueError,
     "target pattern must have shape 1-D"),
    ("target one point short", gradient(target=TARGET[:-1]), ValueError,
     "target pattern has 4000 points, the 2θ grid 4001"),
    ("target with NaN", gradient(target=np.where(np.arange(4001) == 3, np.nan, TARGET)), ValueError,
     "NaN"),
    ("target all zero (gradient)", gradient(target=np.zeros(4001)), ValueError,
     "target pattern is all zero"),
    ("option misspelt", gradient(fwmh=0.1), TypeError,
     r"unknown option\(s\) \['fwmh'\].*did you mean 'fwhm'"),
    ("Caglioti widths differentiated", gradient(fwhm=(0.01, 0.0, 0.01)), ValueError, "fixed FWHM"),
    ("reflections not a set", gradient(reflections=[[1, 0, 0]]), TypeError,
     "reflections must be an xrdcore"),
    ("crystal None (gradient)", gradient(crystal=None), TypeError,
     "crystal must be an xrdcore Crystal"),
    ("loss_value option misspelt", lambda: loss_value(RUTILE, TARGET, XRD, metrc="mse"), TypeError,
     "did you mean 'metric'"),
    ("margin 1", lambda: reflection_set(XRD, RUTILE.lattice, (10, 90), margin=1.0), ValueError,
     r"margin must lie in \[0, 1\)"),
    ("margin a string", lambda: reflection_set(XRD, RUTILE.lattice, (10, 90), margin="0.05"),
     TypeError, "margin must be a real number"),
    ("stale reflection set",
     gradient(crystal=RUTILE.replace(lattice=RUTILE.lattice * 1.3), reflections=reflection_set(
         XRD, RUTILE.lattice, (5, 95))), ValueError, "beyond the reflection set's margin"),
    # ------------------------------------------------------------------ the batched loss
    ("one lattice, not a batch", batch(lattices=RUTILE.lattice), ValueError, r"\(B, 3, 3\)"),
    ("an empty batch", batch(lattices=np.zeros((0, 3, 3)), frac_coords=np.zeros(
        (0, 6, 3))), ValueError, "the batch is empty"),
    ("batch coordinates of 5 atoms", batch(frac_coords=COORDS[:, :5]), ValueError,
     r"frac_coords must have shape \(2, 6, 3\)"),
    ("batch lattices of strings", batch(lattices=np.full((2, 3, 3), "1")), TypeError,
     "lattices must hold real numbers"),
    ("batch occupancy 2", batch(occupancies=np.full((2, 6), 2.0)), ValueError,
     r"values in \[0, 1\]"),
    ("batch memory", within(
        batch(), max_memory_gb=1e-9), ResourceLimitError, "a batch of 2 structures.*max_memory_gb"),
    ("batch undefined misspelt", batch(undefined="skip"), ValueError, "unknown undefined 'skip'"),
    ("batch dtype int32", lambda: BatchLoss(RUTILE, RUTILE, SMALL, fwhm=0.3, dtype=np.int32),
     ValueError, "unknown dtype 'int32'"),
    ("batch dtype misspelt", lambda: BatchLoss(RUTILE, RUTILE, SMALL, fwhm=0.3, dtype="flot32"),
     ValueError, "did you mean 'float32'"),
    ("batch dtype an object", lambda: BatchLoss(RUTILE, RUTILE, SMALL, fwhm=0.3, dtype=object()),
     TypeError, "dtype must be np.float64 or np.float32"),
    ("batch template a Structure", lambda: BatchLoss(RUTILE.to_pymatgen(), RUTILE, SMALL),
     TypeError, "template must be an xrdcore Crystal"),
    ("batch metric misspelt", lambda: BatchLoss(RUTILE, RUTILE, SMALL, metric="pearsn", fwhm=0.3),
     ValueError, "did you mean 'pearson'"),
    ("descend steps fractional", lambda: BATCH.descend(LATTICES, COORDS, 1.5, 1e-3, 1e-3),
     ValueError, "steps must be a whole number"),
    ("descend rate NaN", lambda: BATCH.descend(LATTICES, COORDS, 2, np.nan, 1e-3), ValueError,
     "lattice_rate must be finite"),
    # ------------------------------------------------------------------ the batched descent
    ("batched L-BFGS", descend(method="lbfgs"), ValueError, "use xrdcore.optimize"),
    ("batched method misspelt", descend(method="adm"), ValueError, "did you mean 'adam'"),
    ("batched zero steps", descend(steps=0), ValueError, "steps must be ≥ 1"),
    ("batched rate True", descend(learning_rate=True), TypeError,
     "learning_rate must be a real number"),
    ("batched starts too short", descend(starts=np.zeros((2, 7))), ValueError,
     r"starts must have shape \(B, 27\)"),
    ("batched starts empty", descend(starts=np.zeros((0, 27))), ValueError, "B ≥ 1"),
    ("batched option unknown", descend(margin=0.1), TypeError,
     r"unknown option\(s\) \['margin'\] for descend_batch"),
    ("batched parametrisation a crystal", lambda: descend_batch(RUTILE, np.zeros(
        (1, 27)), RUTILE, SMALL), TypeError, "parametrization must be an xrdcore Parametrization"),
    # ------------------------------------------------------------------ parametrisations
    ("template a Structure", lambda: p1(RUTILE.to_pymatgen()), TypeError, "Crystal.from_pymatgen"),
    ("reference a name", lambda: Parametrization(RUTILE, "family", reference="rutile"), TypeError,
     "reference must be an xrdcore Crystal"),
    ("lattice mode misspelt", lambda: Parametrization(RUTILE, lattice="famly"), ValueError,
     "did you mean 'family'"),
    ("coordinate mode misspelt", lambda: Parametrization(RUTILE, coordinates="spacegrup"),
     ValueError, "did you mean 'spacegroup'"),
    ("params with NaN", lambda: P1.crystal(np.full(27, np.nan)), ValueError, "params contains NaN"),
    ("params of booleans", lambda: P1.crystal(np.ones(27, dtype=bool)), TypeError,
     "params must hold real numbers"),
    ("params too few", lambda: P1.crystal(np.zeros(7)), ValueError, "expected 27 parameters"),
    ("params of a collapsed cell", lambda: P1.crystal(np.zeros(27)), StructureError, "singular"),
    ("parameters of other atoms", lambda: P1.parameters(COPPER), ValueError,
     "the template's atoms in the same order"),
    ("gradient of a tuple", lambda: P1.gradient((0.0, np.zeros((3, 3)), np.zeros(
        (6, 3)))), TypeError, "result must hold d_lattice and d_frac"),
    ("structures of one vector", lambda: P1.structures(np.zeros(27)), ValueError,
     r"params must have shape \(B, 27\)")
]


@pytest.mark.parametrize("call, error, phrase", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_call_is_refused(call, error, phrase):
    rejects(call, error, phrase)


def test_the_cases_are_distinct():
    assert len({case[0] for case in CASES}) == len(CASES) >= 60


def test_the_study_structures_are_far_below_every_guard():
    """The largest prototypes and examples the study and the book use get within a tenth of no
    guard, even over the widest 2θ range at a short (Mo Kα) wavelength."""
    from xrdcore import datasets
    from xrdcore.diffraction import reflection_count
    from xrdcore.validation import LIMITS

    crystals = [p.crystal() for p in datasets.list_prototypes()]
    crystals += [datasets.load_example(name) for name in datasets.example_names()]
    wide = Diffractometer("MoKa", (0.0, 179.9))
    g_min, g_max = wide.g_window(wide.two_theta_range)
    worst = max(reflection_count(c.lattice, g_min, g_max) for c in crystals)
    assert worst < LIMITS.max_reflections / 10
    assert (max(reflection_count(c.lattice, g_min, g_max) * len(c) for c in crystals)
            < LIMITS.max_terms / 10)


def test_the_reflection_estimate_is_close_to_the_count():
    """The guard's estimate (4π/3)(g_max³ − g_min³)V/2 is within a few per cent of the
    enumeration."""
    from xrdcore.diffraction import reflection_count

    cell = Crystal(np.diag([20.0, 21.0, 22.0]), [[0, 0, 0]], ["Cu"])
    g_min, g_max = XRD.g_window(XRD.two_theta_range)
    counted = len(XRD.enumerate_hkl(cell.lattice, g_min, g_max)[1])
    assert reflection_count(cell.lattice, g_min, g_max) == pytest.approx(counted, rel=0.03)
