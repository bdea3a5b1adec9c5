"""Searches that run many optimisations outside the study grid: for spurious matches, wrong
structures whose pattern matches the truth's well (:func:`spurious_search`, summarised by
:func:`summarize_search` with intervals), and for the barriers along one symmetry axis
(:func:`barrier_sweep`: starts on either side of the nearest wrong minimum, and whether each
recovers the truth).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from xrdcore.diffraction import Diffractometer
from xrdcore.landscape.dependence import Estimate
from xrdcore.landscape.overlap import overlap_report
from xrdcore.landscape.scans import nearest_barrier
from xrdcore.optimize.core import optimize
from xrdcore.similarity import cosine
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.matching import (RECOVERY_TOLERANCES, lattice_error, match, rms_displacement)
from xrdcore.structure.parametrize import Parametrization, p1
from xrdcore.structure.perturb import perturb
from xrdcore.study.summary import RateRow, wilson_interval
from xrdcore.validation import choice, real, real_array, whole


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


def spurious_search(truth: Crystal, diffractometer: Diffractometer, starts: int = 20,
                    strain: float = 0.05, displacement: float = 0.5, metric: str = "cosine",
                    fwhm: float = 0.1, steps: int = 100, seed: int = 0) -> list[SearchResult]:
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
            end = optimize(p1(start), start, target, diffractometer, method="lbfgs", steps=steps,
                           metric=metric, fwhm=fwhm)
            # None only when not even the start was valid; the calls below then raise, as before
            found = cast(Crystal, end.crystal)
            results.append(
                SearchResult(
                    crystal=found, start=start, loss=float(end.loss), cosine=float(
                        cosine(diffractometer.pattern(found, fwhm=fwhm), target)[0]),
                    start_cosine=float(cosine(diffractometer.pattern(start, fwhm=fwhm),
                                              target)[0]), matched=match(found, truth).matched,
                    rms_displacement=rms_displacement(found, truth), lattice_error=lattice_error(
                        found, truth)[0], accidental_fraction=overlap_report(
                            found, truth, diffractometer, fwhm=fwhm).accidental_fraction))
    return sorted(results, key=lambda r: -r.cosine)


def median_interval(values: ArrayLike, confidence: float = 0.95) -> Estimate:
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


def summarize_search(results: Iterable[SearchResult], among: str = "spurious") -> SearchSummary:
    """Spurious rate (Wilson interval) of ``results`` and the medians (order-statistic
    intervals) of cosine, accidental fraction, lattice error and RMS displacement over the
    spurious end points (``among="spurious"``) or over all wrong ones (``among="wrong"``)."""
    choice(among, "among", ("spurious", "wrong"))
    results = list(results)
    spurious = sum(r.spurious for r in results)
    low, high = wilson_interval(spurious, len(results))
    chosen = [r for r in results if (r.spurious if among == "spurious" else not r.matched)]
    return SearchSummary(
        descents=len(results), matched=sum(r.matched for r in results), spurious=spurious,
        spurious_rate=Estimate(spurious / len(results) if results else float("nan"), low, high),
        among=among, count=len(chosen), **{
            name: median_interval([getattr(r, name) for r in chosen])
            for name in ("cosine", "accidental_fraction", "lattice_error", "rms_displacement")
        })


# ------------------------------------------------------------------ barrier sweep
@dataclass(frozen=True)
class BarrierSweep:
    """Starts on both sides of a barrier along one symmetry axis, each descended with every
    parameter of the parametrisation free. Arrays have one entry per start (S,)."""

    axis: str
    wrong_minimum: float  # axis offset of the nearest wrong minimum on the scan
    barrier: float  # axis offset of the barrier between it and the truth
    starts: list  # axis offsets of the starts
    sides: list  # "truth" (between the truth and the barrier) or "far" (beyond the barrier)
    recovered: list  # RECOVERY_TOLERANCES verdict of each final structure
    final_offsets: list  # the final structure's coordinate along the axis

    def trapped(self, side: str) -> RateRow:
        """Fraction of the starts on ``side`` that do not recover the truth, with a 95 %
        interval."""
        outcomes = [not r for r, s in zip(self.recovered, self.sides) if s == side]
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        return RateRow((side, ), len(outcomes), sum(outcomes), low, high)


def barrier_sweep(parametrization: Parametrization, truth: Crystal, target: ArrayLike | Crystal,
                  diffractometer: Diffractometer, axis: int, offsets: ArrayLike, values: ArrayLike,
                  starts_per_side: int = 12, seeds: int = 3, jitter: float = 0.005,
                  steps: int = 200, **options: Any) -> BarrierSweep:
    """Find the barrier on a scan (``offsets``, ``values``) along symmetry axis ``axis`` of a
    space-group ``parametrization`` and descend from starts on both sides of it.

    Starts sit at the same distances d from the barrier on either side, ``starts_per_side``
    values of d spread evenly up to the barrier's distance from the truth (so the truth side
    covers all of the way back to the truth), each repeated for ``seeds`` random jitters of
    the *other* parameters (normal, ``jitter`` in parameter units: strain coefficients and axis
    offsets). Every start gets ``steps`` evaluations of Adam (``options``: metric, fwhm, …).
    """
    found = nearest_barrier(offsets, values)
    if found is None:
        raise ValueError(
            f"the scan along axis {parametrization.axis_names[axis]!r} has no second minimum")
    index = parametrization.n_lattice + axis
    towards = 1.0 if found.wrong_minimum > 0 else -1.0
    distances = abs(found.barrier) * np.arange(1, starts_per_side + 1) / (starts_per_side + 1)
    starts, sides, recovered, finals = [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        noise = jitter * rng.standard_normal(parametrization.size)
        noise[index] = 0.0
        for side, sign in (("truth", -1.0), ("far", 1.0)):
            for d in distances:
                params = noise.copy()
                params[index] = found.barrier + sign * towards * d
                run = optimize(parametrization, parametrization.crystal(params), target,
                               diffractometer, steps=steps, **options)
                # None only when not even the start was valid; match then raises, as before
                end = cast(Crystal, run.crystal)
                starts.append(float(params[index]))
                sides.append(side)
                recovered.append(match(end, truth, first=False, **RECOVERY_TOLERANCES).matched)
                finals.append(float(parametrization.parameters(end)[index]))
    return BarrierSweep(parametrization.axis_names[axis], found.wrong_minimum, found.barrier,
                        starts, sides, recovered, finals)
