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

from xrdcore.diffraction import Diffractometer
from xrdcore.physics.scattering import starts_peak
from xrdcore.structure.crystal import Crystal
from xrdcore.validation import instance, real, whole

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


def overlap_report(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer,
                   fwhm: float = 0.1, top: int = 10) -> OverlapReport:
    """Decompose ⟨y_candidate, y_truth⟩ into partner and accidental reflection pairs (Gaussian
    peaks)."""
    _check_pair(candidate, truth, diffractometer)
    fwhm = real(fwhm, "fwhm", low=0, low_open=True, unit="degrees")
    top = whole(top, "top", low=0)
    if len(candidate) != len(truth) or np.any(candidate.atomic_numbers != truth.atomic_numbers):
        raise ValueError("candidate and truth must have the same atoms in the same order")
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    lo, hi = diffractometer.two_theta_range
    reach = PAIR_REACH * fwhm
    window = (max(lo - reach, 0.0), min(hi + reach, 179.9))
    ours, theirs = (diffractometer.reflections(candidate,
                                               window), diffractometer.reflections(truth, window))
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
            value = (intensity * theirs.intensity[j] * np.exp(-(separation**2) / (4 * sigma**2)) /
                     (2 * sigma * np.sqrt(np.pi)))
            if truth_peak[j] == own_peak:
                partners += value
            else:
                accidents += value
                accidental.append((value, hkl, tuple(theirs.hkl[j]), centre, theirs.two_theta[j]))
    total = partners + accidents
    accidental.sort(reverse=True)
    largest = [
        AccidentalPair(tuple(map(int, h)), tuple(map(int, k)), float(a), float(b), float(v / total))
        for v, h, k, a, b in accidental[:top]
    ]
    return OverlapReport(float(total), float(partners), float(accidents), largest)


def _check_pair(candidate: object, truth: object, diffractometer: object) -> None:
    for name, crystal in (("candidate", candidate), ("truth", truth)):
        instance(crystal, name, Crystal, "convert a pymatgen Structure with Crystal.from_pymatgen")
    instance(diffractometer, "diffractometer", Diffractometer)


def cosine_split(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer,
                 fwhm: float = 0.1) -> tuple[float, float]:
    """The cosine similarity of the two (continuous, Gaussian) patterns split into its partner
    and accidental parts; they add up to the cosine (to ~1e-3 of the grid value)."""
    report = overlap_report(candidate, truth, diffractometer, fwhm)
    norm = np.sqrt(
        _self_overlap(candidate, diffractometer, fwhm) * _self_overlap(truth, diffractometer, fwhm))
    return report.from_partners / norm, report.from_accidents / norm


def _self_overlap(crystal: Crystal, diffractometer: Diffractometer, fwhm: float) -> float:
    """⟨y, y⟩ of ``crystal``'s pattern, remembered on the crystal (a scan splits against one truth
    many times)."""
    key = ("self_overlap", diffractometer.wavelength, tuple(
        diffractometer.two_theta_range), float(fwhm))
    if key not in crystal.derived:
        crystal.derived[key] = overlap_report(crystal, crystal, diffractometer, fwhm).total
    return crystal.derived[key]


@dataclass(frozen=True)
class PeakCoverage:
    """Which of the truth's strong peaks a candidate reproduces (stick patterns, max 100)."""

    strong: int  # the truth's peaks above the intensity threshold
    hits: int  # of those, how many have a candidate peak within ``tolerance``
    hit_strongest: bool  # the truth's strongest peak is among the hits
    share: float  # the hits' share of Σ I² over the truth's strong peaks
    extra: np.ndarray  # 2θ (°) of the candidate's strong peaks with no truth peak within ``far``


def peak_coverage(candidate: Crystal, truth: Crystal, diffractometer: Diffractometer,
                  strong: float = 5.0, tolerance: float = 0.02, far: float = 0.1) -> PeakCoverage:
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
    squared = theirs.intensity[is_strong]**2
    isolated = np.abs(ours.two_theta[:, None] - theirs.two_theta[None, :]).min(axis=1) > far
    return PeakCoverage(strong=int(is_strong.sum()), hits=int(
        (is_strong & hit).sum()), hit_strongest=bool(hit[np.argmax(theirs.intensity)]), share=float(
            np.sum(theirs.intensity[is_strong & hit]**2) / np.sum(squared)),
                        extra=ours.two_theta[(ours.intensity > strong) & isolated])
