"""Where does pattern agreement come from? Peak-by-peak decomposition of the overlap between
a candidate's pattern and the truth's.

For Gaussian peaks of one FWHM w (σ = w / 2√(2 ln 2)) the overlap of two unit-area peaks at
2θ_a and 2θ_b is ∫ P(x − a) P(x − b) dx = exp(−(a − b)²/4σ²) / (2σ√π), so the (continuous)
inner product of two patterns splits exactly into reflection pairs:

    ⟨y_C, y_T⟩ = Σ_h Σ_h' I_C(h) I_T(h') exp(−(2θ_C(h) − 2θ_T(h'))²/4σ²) / (2σ√π).

A pair is a *partner* pair when h' lies in the same peak of the truth as h (h itself, its
Friedel mate or a reflection merged with it); otherwise it is an *accidental* overlap: the
candidate scores because one of its reflections happens to sit on a different peak of
the truth. The cosine similarity is this inner product over the two norms, so
``accidental_fraction`` is the share of the candidate's similarity owed to such accidents.

:func:`spurious_search` looks for the wrong structures that score well: it descends the
loss from many random, strongly distorted starts and reports every end point with its
similarity to the truth, its structural distance and its accidental fraction. End points
that StructureMatcher does not match to the truth yet score high are the *spurious* cases.
One descent can end elsewhere on another CPU (fastmath, BLAS), so conclusions are drawn from
:func:`summarize_search`: the spurious rate with a Wilson interval and medians with
distribution-free intervals (:func:`median_interval`) over many end points.
:func:`peak_coverage` says which of the truth's strong peaks a candidate reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .analysis import Estimate
from .crystal import Crystal
from .diffraction import Diffractometer, starts_peak
from .experiments import wilson_interval
from .optimize import optimize
from .parametrize import p1
from .perturb import perturb
from .similarity import cosine
from .structsim import lattice_error, match, rms_displacement
from .validation import choice, instance, real, real_array, whole

#: Pairs farther apart than this many FWHM contribute less than 1e-30 of a coincident pair.
PAIR_REACH = 6.0


@dataclass(frozen=True)
class AccidentalPair:
    candidate_hkl: tuple
    truth_hkl: tuple
    candidate_two_theta: float
    truth_two_theta: float
    contribution: float  # share of the total inner product


@dataclass(frozen=True)
class OverlapReport:
    total: float  # ⟨y_C, y_T⟩ (continuous, intensities as returned by Diffractometer.reflections)
    from_partners: float
    from_accidents: float
    largest_accidents: list

    @property
    def accidental_fraction(self) -> float:
        return self.from_accidents / self.total if self.total else float("nan")


def overlap_report(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer, fwhm: float = 0.1, top: int = 10) -> OverlapReport:
    """Decompose ⟨y_candidate, y_truth⟩ into partner and accidental reflection pairs (Gaussian peaks)."""
    _check_pair(candidate, truth, diffractometer)
    fwhm = real(fwhm, "fwhm", low=0, low_open=True, unit="degrees")
    top = whole(top, "top", low=0)
    if len(candidate) != len(truth) or np.any(candidate.atomic_numbers != truth.atomic_numbers):
        raise ValueError("candidate and truth must have the same atoms in the same order")
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    lo, hi = diffractometer.two_theta_range
    reach = PAIR_REACH * fwhm
    window = (max(lo - reach, 0.0), min(hi + reach, 179.9))
    ours, theirs = diffractometer.reflections(candidate, window), diffractometer.reflections(truth, window)
    truth_peak = np.cumsum(starts_peak(theirs.two_theta)) - 1
    peak_of_hkl = {}
    for hkl, peak in zip(map(tuple, theirs.hkl), truth_peak):
        peak_of_hkl[hkl] = peak
        peak_of_hkl[tuple(-np.array(hkl))] = peak
    partners = accidents = 0.0
    accidental = []
    for hkl, centre, intensity in zip(map(tuple, ours.hkl), ours.two_theta, ours.intensity):
        first, last = np.searchsorted(theirs.two_theta, [centre - reach, centre + reach])
        own_peak = peak_of_hkl.get(hkl, -1)
        for j in range(first, last):
            separation = centre - theirs.two_theta[j]
            value = intensity * theirs.intensity[j] * np.exp(-(separation**2) / (4 * sigma**2)) / (2 * sigma * np.sqrt(np.pi))
            if truth_peak[j] == own_peak:
                partners += value
            else:
                accidents += value
                accidental.append((value, hkl, tuple(theirs.hkl[j]), centre, theirs.two_theta[j]))
    total = partners + accidents
    accidental.sort(reverse=True)
    largest = [AccidentalPair(tuple(map(int, h)), tuple(map(int, k)), float(a), float(b), float(v / total)) for v, h, k, a, b in accidental[:top]]
    return OverlapReport(float(total), float(partners), float(accidents), largest)


def _check_pair(candidate, truth, diffractometer) -> None:
    for name, crystal in (("candidate", candidate), ("truth", truth)):
        instance(crystal, name, Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    instance(diffractometer, "diffractometer", Diffractometer)


def cosine_split(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer, fwhm: float = 0.1) -> tuple[float, float]:
    """The cosine similarity of the two (continuous, Gaussian) patterns split into its partner
    and accidental parts; they add up to the cosine (to ~1e-3 of the grid value)."""
    report = overlap_report(candidate, truth, diffractometer, fwhm)
    norm = np.sqrt(_self_overlap(candidate, diffractometer, fwhm) * _self_overlap(truth, diffractometer, fwhm))
    return report.from_partners / norm, report.from_accidents / norm


def _self_overlap(crystal: Crystal, diffractometer: Diffractometer, fwhm: float) -> float:
    """⟨y, y⟩ of ``crystal``'s pattern, remembered on the crystal (a scan splits against one truth
    many times)."""
    key = ("self_overlap", diffractometer.wavelength, tuple(diffractometer.two_theta_range), float(fwhm))
    if key not in crystal.derived:
        crystal.derived[key] = overlap_report(crystal, crystal, diffractometer, fwhm).total
    return crystal.derived[key]


@dataclass(frozen=True)
class SearchResult:
    """One end point of :func:`spurious_search`."""

    crystal: Crystal
    start: Crystal
    loss: float  # final loss of the searched metric
    cosine: float  # cosine similarity of its pattern to the truth's (1 = identical)
    start_cosine: float
    matched: bool  # StructureMatcher (default, loose tolerances) calls it the truth
    rms_displacement: float  # Å, each atom to the truth atom it started from
    lattice_error: float  # largest relative error of a, b, c
    accidental_fraction: float  # share of its agreement owed to accidental peak pairs

    @property
    def spurious(self) -> bool:
        """Wrong (not even loosely matched) but scoring: cosine ≥ ``SPURIOUS_COSINE``."""
        return not self.matched and self.cosine >= SPURIOUS_COSINE


#: A wrong structure whose pattern has at least this cosine similarity to the truth's counts
#: as a spurious match (a well-refined powder pattern of the right structure scores > 0.95).
SPURIOUS_COSINE = 0.8


def spurious_search(
    truth: Crystal,
    diffractometer: Diffractometer,
    starts: int = 20,
    strain: float = 0.05,
    displacement: float = 0.5,
    metric: str = "cosine",
    fwhm: float = 0.1,
    steps: int = 100,
    seed: int = 0,
) -> list[SearchResult]:
    """Descend the loss (L-BFGS, P1, ``steps`` evaluations) from ``starts`` random distortions
    of the truth (RMS strain ``strain``, RMS displacement ``displacement`` Å, seeds
    ``seed`` … ``seed + starts − 1``) and report every end point, best similarity first."""
    starts = whole(starts, "starts", low=1)
    seed = whole(seed, "seed", low=0)
    from threadpoolctl import threadpool_limits

    target = diffractometer.pattern(truth, fwhm=fwhm)
    results = []
    # One BLAS thread: L-BFGS-B's tiny matrix products gain nothing from more, and on a busy
    # machine OpenBLAS's spinning threads made each descent several times slower.
    with threadpool_limits(1, user_api="blas"):
        for offset in range(starts):
            start = perturb(truth, strain=strain, displacement=displacement, seed=seed + offset)
            end = optimize(p1(start), start, target, diffractometer, method="lbfgs", steps=steps, metric=metric, fwhm=fwhm)
            results.append(
                SearchResult(
                    crystal=end.crystal,
                    start=start,
                    loss=float(end.loss),
                    cosine=float(cosine(diffractometer.pattern(end.crystal, fwhm=fwhm), target)[0]),
                    start_cosine=float(cosine(diffractometer.pattern(start, fwhm=fwhm), target)[0]),
                    matched=match(end.crystal, truth).matched,
                    rms_displacement=rms_displacement(end.crystal, truth),
                    lattice_error=lattice_error(end.crystal, truth)[0],
                    accidental_fraction=overlap_report(end.crystal, truth, diffractometer, fwhm=fwhm).accidental_fraction,
                )
            )
    return sorted(results, key=lambda r: -r.cosine)


def median_interval(values, confidence: float = 0.95) -> Estimate:
    """Sample median of ``values`` with a distribution-free ``confidence`` interval from order
    statistics: [x_(j), x_(n+1−j)] of the sorted sample, j the largest rank with
    P(Binomial(n, ½) < j) ≤ (1 − confidence)/2, so the interval covers the population median
    with probability ≥ ``confidence`` whatever the distribution. Below 6 values no such j ≥ 1
    exists at 95 % and the interval is the whole sample range; an empty sample gives NaNs."""
    confidence = real(confidence, "confidence", low=0, low_open=True, high=1)
    values = np.sort(real_array(values, "median_interval's values").ravel())
    if values.size == 0:
        return Estimate(float("nan"), float("nan"), float("nan"))
    n = values.size
    rank = max(1, int(stats.binom.ppf((1 - confidence) / 2, n, 0.5)))  # P(B < rank) ≤ α/2
    return Estimate(float(np.median(values)), float(values[rank - 1]), float(values[n - rank]))


@dataclass(frozen=True)
class SearchSummary:
    """Statistics over the end points of one :func:`spurious_search`."""

    descents: int
    matched: int  # loosely matched to the truth
    spurious: int  # wrong and cosine ≥ SPURIOUS_COSINE
    spurious_rate: Estimate  # spurious / descents with its 95 % Wilson interval
    among: str  # which end points the medians below are over: "spurious" or "wrong"
    count: int  # how many those are
    cosine: Estimate  # medians with 95 % order-statistic intervals (median_interval)
    accidental_fraction: Estimate
    lattice_error: Estimate
    rms_displacement: Estimate


def summarize_search(results, among: str = "spurious") -> SearchSummary:
    """Spurious rate (Wilson interval) of ``results`` and the medians (order-statistic
    intervals) of cosine, accidental fraction, lattice error and RMS displacement over the
    spurious end points (``among="spurious"``) or over all wrong ones (``among="wrong"``)."""
    choice(among, "among", ("spurious", "wrong"))
    results = list(results)
    spurious = sum(r.spurious for r in results)
    low, high = wilson_interval(spurious, len(results))
    chosen = [r for r in results if (r.spurious if among == "spurious" else not r.matched)]
    return SearchSummary(
        descents=len(results),
        matched=sum(r.matched for r in results),
        spurious=spurious,
        spurious_rate=Estimate(spurious / len(results) if results else float("nan"), low, high),
        among=among,
        count=len(chosen),
        **{name: median_interval([getattr(r, name) for r in chosen])
           for name in ("cosine", "accidental_fraction", "lattice_error", "rms_displacement")},
    )


@dataclass(frozen=True)
class PeakCoverage:
    """Which of the truth's strong peaks a candidate reproduces (stick patterns, max 100)."""

    strong: int  # the truth's peaks above the intensity threshold
    hits: int  # of those, how many have a candidate peak within ``tolerance``
    hit_strongest: bool  # the truth's strongest peak is among the hits
    share: float  # the hits' share of Σ I² over the truth's strong peaks
    extra: np.ndarray  # 2θ (°) of the candidate's strong peaks with no truth peak within ``far``


def peak_coverage(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer, strong: float = 5.0,
                  tolerance: float = 0.02, far: float = 0.1) -> PeakCoverage:
    """Compare the stick patterns: the truth's peaks above ``strong`` (% of the strongest) that
    the candidate reproduces within ``tolerance`` degrees 2θ, their share of the squared
    intensity (the cosine of narrow-peak patterns weighs I²), and the candidate's peaks above
    ``strong`` farther than ``far`` degrees from any truth peak."""
    _check_pair(candidate, truth, diffractometer)
    real(strong, "strong", low=0, high=100, unit="%")
    real(tolerance, "tolerance", low=0, low_open=True, unit="degrees")
    real(far, "far", low=0, low_open=True, unit="degrees")
    ours, theirs = diffractometer.peaks(candidate), diffractometer.peaks(truth)
    is_strong = theirs.intensity > strong
    nearest = np.abs(theirs.two_theta[:, None] - ours.two_theta[None, :]).min(axis=1)
    hit = nearest < tolerance
    squared = theirs.intensity[is_strong] ** 2
    isolated = np.abs(ours.two_theta[:, None] - theirs.two_theta[None, :]).min(axis=1) > far
    return PeakCoverage(
        strong=int(is_strong.sum()),
        hits=int((is_strong & hit).sum()),
        hit_strongest=bool(hit[np.argmax(theirs.intensity)]),
        share=float(np.sum(theirs.intensity[is_strong & hit] ** 2) / np.sum(squared)),
        extra=ours.two_theta[(ours.intensity > strong) & isolated],
    )
