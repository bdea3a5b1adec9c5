"""Similarity metrics: values on known cases, exact gradients against central finite differences."""

import numpy as np
import pytest

from xrdcore import similarity
from xrdcore.similarity import METRICS, loss

GRID = np.linspace(10, 30, 401)


def peaks_pattern(centres, heights, width=0.3, grid=GRID):
    return (sum(h * np.exp(-0.5 * ((grid - c) / width)**2)
                for c, h in zip(centres, heights)) + 1e-3)


@pytest.fixture
def pair():
    return peaks_pattern([14, 20, 25.5], [1, 0.6, 0.3]), peaks_pattern([14.2, 20, 25],
                                                                       [0.8, 0.7, 0.3])


def central_difference(function, x, step=1e-6):
    gradient = np.empty_like(x)
    for i in range(len(x)):
        up, down = x.copy(), x.copy()
        up[i] += step
        down[i] -= step
        gradient[i] = (function(up) - function(down)) / (2 * step)
    return gradient


@pytest.mark.parametrize("name", sorted(METRICS))
def test_gradient_matches_finite_differences(name, pair):
    y, t = pair
    value, gradient = loss(name, y, t, GRID)
    numeric = central_difference(lambda v: loss(name, v, t, GRID)[0], y, step=1e-6 * y.max())
    scale = np.abs(numeric).max()
    assert np.max(np.abs(gradient - numeric)) < 1e-6 * scale, name


@pytest.mark.parametrize("name", sorted(METRICS))
def test_identical_patterns_are_perfect(name, pair):
    y, _ = pair
    value, gradient = loss(name, y, y, GRID)
    assert value == pytest.approx(0, abs=1e-12)
    if name != "wasserstein":  # W1 is not differentiable at its minimum (|·|)
        assert np.max(
            np.abs(gradient)) < 1e-9 * np.max(np.abs(loss(name, y, 2 * y + GRID, GRID)[1]))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_scale_invariance(name, pair):
    y, t = pair
    assert loss(name, 7.5 * y, t, GRID)[0] == pytest.approx(loss(name, y, t, GRID)[0], rel=1e-9)


def test_known_values():
    a = np.array([1.0, 0, 0, 0])
    b = np.array([0, 1.0, 0, 0])
    assert similarity.cosine(a, b)[0] == 0
    assert similarity.spectral_entropy(a, b)[0] == pytest.approx(
        0, abs=1e-9)  # disjoint: no shared entropy
    grid = np.arange(4.0)
    assert similarity.wasserstein(a, b, grid)[0] == pytest.approx(1.0)  # shift by one step of 1°
    c = np.array([0, 0, 0, 1.0])
    assert similarity.wasserstein(a, c, grid)[0] == pytest.approx(3.0)
    assert similarity.pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 6]))[0] == pytest.approx(1)


def test_wcc_rewards_near_misses_that_cosine_ignores():
    """A peak shifted by less than the triangle width still partly matches under WCC."""
    t = peaks_pattern([20], [1], width=0.05)
    shifted = peaks_pattern([20.4], [1], width=0.05)
    far = peaks_pattern([22.0], [1], width=0.05)
    assert similarity.cosine(shifted, t)[0] < 0.01
    wcc_near = similarity.weighted_cross_correlation(shifted, t, GRID, width=1.0)[0]
    wcc_far = similarity.weighted_cross_correlation(far, t, GRID, width=1.0)[0]
    assert wcc_near > 0.5 > wcc_far


@pytest.mark.parametrize("pattern, target, grid, message",
                         [(np.ones(3), np.ones(4), None, "same grid"),
                          (np.zeros(4), np.ones(4), None, "all zero"),
                          (np.ones(4), np.zeros(4), None, "all zero"),
                          (np.array([1, np.nan, 1, 1.0]), np.ones(4), None, "NaN"),
                          (np.array([1, np.inf, 1, 1.0]), np.ones(4), None, "NaN or inf"),
                          (np.ones((2, 2)), np.ones((2, 2)), None, "1-D"), ])
@pytest.mark.parametrize("name", ["cosine", "mse", "spectral_entropy"])
def test_bad_input(name, pattern, target, grid, message):
    with pytest.raises(ValueError, match=message):
        loss(name, pattern, target, grid)


def test_metric_specific_errors():
    with pytest.raises(ValueError, match="negative"):
        similarity.spectral_entropy(np.array([1.0, -1, 2]), np.ones(3))
    with pytest.raises(ValueError, match="constant"):
        similarity.pearson(np.ones(3), np.array([1.0, 2, 3]))
    with pytest.raises(ValueError, match="uniform"):
        similarity.weighted_cross_correlation(np.ones(3), np.ones(3), np.array([0, 1, 3.0]))
    with pytest.raises(ValueError, match="needs the 2θ grid"):
        similarity.wasserstein(np.ones(3), np.ones(3), None)
    with pytest.raises(ValueError, match="unknown metric"):
        loss("l2", np.ones(3), np.ones(3))
