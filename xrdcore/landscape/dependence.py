"""How well does XRD similarity track structural similarity? Correlation and mutual information.

Given paired samples (structural distance d_i, XRD similarity s_i) over many perturbed
copies of a structure, :func:`dependence` reports Pearson's r, Spearman's ρ and the k-NN
estimate of the mutual information I(d; s) in nats (Kraskov et al. 2004, via scikit-learn's
``mutual_info_regression``), each with a 95 % interval from subsamples of 80 % of the pairs
drawn without replacement, their spread rescaled to the full sample size (an ordinary
bootstrap repeats points, which the k-NN estimator reads as perfectly dependent neighbours
and so inflates I). A metric that is a good guide
for optimisation has |ρ| near 1 and a large I.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from xrdcore.diffraction import Diffractometer
from xrdcore.physics.profiles import Profile
from xrdcore.similarity import loss as metric_loss
from xrdcore.structure.crystal import Crystal
from xrdcore.structure.matching import structural_distance
from xrdcore.structure.perturb import perturb
from xrdcore.validation import real, real_array, whole

#: Neighbours of the k-NN mutual-information estimator (scikit-learn's default).
MI_NEIGHBOURS = 3


def paired_samples(x: ArrayLike, y: ArrayLike,
                   names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Two finite 1-D samples of one length (each pair one observation), checked."""
    x, y = real_array(x, names[0], ndim=1), real_array(y, names[1], ndim=1)
    if x.shape != y.shape:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D arrays of the same length, "
                         f"got {len(x)} and {len(y)}")
    return x, y


def mutual_information(x: ArrayLike, y: ArrayLike, seed: int = 0) -> float:
    """k-NN (Kraskov) estimate of I(x; y) in nats for 1-D samples."""
    from sklearn.feature_selection import mutual_info_regression

    x, y = paired_samples(x, y, ("x", "y"))
    x = x.reshape(-1, 1)
    return float(mutual_info_regression(x, y, n_neighbors=MI_NEIGHBOURS, random_state=seed)[0])


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Dependence:
    pearson: Estimate
    spearman: Estimate
    mutual_information: Estimate
    samples: int


#: Fraction of the pairs in each subsample for the intervals.
SUBSAMPLE_FRACTION = 0.8


def dependence(distance: ArrayLike, similarity: ArrayLike, resamples: int = 200,
               seed: int = 0) -> Dependence:
    """Pearson, Spearman and mutual information between paired samples, with 95 % intervals
    from ``resamples`` subsamples (see the module docstring)."""
    distance, similarity = paired_samples(distance, similarity, ("distance", "similarity"))
    if len(distance) < 10:
        raise ValueError(f"need at least 10 paired samples, got {len(distance)}")
    resamples = whole(resamples, "resamples", low=1)

    def statistics(d, s):
        return (stats.pearsonr(d, s)[0], stats.spearmanr(d, s)[0], mutual_information(d, s, seed))

    point = statistics(distance, similarity)
    rng = np.random.default_rng(seed)
    size = int(SUBSAMPLE_FRACTION * len(distance))
    subsets = (rng.choice(len(distance), size=size, replace=False) for _ in range(resamples))
    resampled = np.array([statistics(distance[i], similarity[i]) for i in subsets])
    # subsample deviations have variance σ²(1/m − 1/n); rescale them to the full sample's σ²/n
    stretch = np.sqrt(size / (len(distance) - size))
    low_deviation, high_deviation = np.nanpercentile(resampled - np.array(point), [2.5, 97.5],
                                                     axis=0)
    low, high = (np.array(point) + stretch * low_deviation,
                 np.array(point) + stretch * high_deviation)
    low[2] = max(low[2], 0.0)  # mutual information is never negative
    estimates = [Estimate(float(v), float(lo), float(hi)) for v, lo, hi in zip(point, low, high)]
    pearson, spearman, information = estimates
    return Dependence(pearson, spearman, information, samples=len(distance))


@dataclass(frozen=True)
class PerturbedSample:
    distance: (np.ndarray
               )  # (count,) structural distance to the truth (Å, see structsim.structural_distance)
    loss: dict  # metric name -> (count,) loss of each copy's pattern against the truth's
    symmetric: bool | str


def perturbed_sample(truth: Crystal, diffractometer: Diffractometer,
                     metrics: str | Sequence[str] = ("cosine", ), count: int = 300,
                     max_strain: float = 0.03, max_displacement: float = 0.3,
                     symmetric: bool | str = False, fwhm: float | Profile = 0.1,
                     seed: int = 0) -> PerturbedSample:
    """``count`` perturbed copies of ``truth`` (copy i: seed ``seed + i``, strain and
    displacement drawn uniformly up to ``max_strain`` and ``max_displacement`` Å, ``symmetric``
    as in :func:`xrdcore.structure.perturb.perturb`), each with its structural distance and its loss
    under every metric (FWHM ``fwhm`` degrees, or a :class:`~xrdcore.physics.profiles.Profile`)."""
    count = whole(count, "count", low=1)
    real(max_strain, "max_strain", low=0)
    real(max_displacement, "max_displacement", low=0, unit="Å")
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    target = diffractometer.pattern(truth, fwhm=fwhm)
    distance: list[float] = []
    losses: dict[str, list[float]] = {metric: [] for metric in metrics}
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        strain, displacement = max_strain * rng.uniform(), max_displacement * rng.uniform()
        copy = perturb(truth, strain=strain, displacement=displacement, seed=seed + index,
                       symmetric=symmetric)
        distance.append(structural_distance(copy, truth))
        pattern = diffractometer.pattern(copy, fwhm=fwhm)
        for metric in metrics:
            losses[metric].append(metric_loss(metric, pattern, target, diffractometer.two_theta)[0])
    return PerturbedSample(np.array(distance), {
        m: np.array(v)
        for m, v in losses.items()
    }, symmetric)
