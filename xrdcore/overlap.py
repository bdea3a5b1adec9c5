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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crystal import Crystal
from .diffraction import Diffractometer, starts_peak

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
    if not (np.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm must be a positive number of degrees, got {fwhm}")
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
    largest = [AccidentalPair(h, k, float(a), float(b), float(v / total)) for v, h, k, a, b in accidental[:top]]
    return OverlapReport(float(total), float(partners), float(accidents), largest)
