"""Peak-pair decomposition of pattern overlap: sums to the grid inner product, no accidents for
a perfect match, and a constructed accidental coincidence is found. The spurious search is
tested on its bookkeeping (every field agrees with an independent evaluation) and with
statistics that do not hang on where one descent ends; the summary helpers on hand-made
results and exact order-statistic facts."""

import numpy as np
import pytest
from scipy import stats

from xrdcore import Crystal, Diffractometer, datasets
from xrdcore.landscape.overlap import overlap_report, peak_coverage
from xrdcore.study.search import (SPURIOUS_COSINE, SearchResult, median_interval, spurious_search,
                                  summarize_search)
from xrdcore.study.summary import wilson_interval

XRD = Diffractometer("CuKa", (15, 80), step=0.002)
SEARCH_XRD = Diffractometer("CuKa", (10, 90), backend="cpu")


def simple_cubic_pair():
    """Simple cubic, a = 4 Å, and a wrong cell with a' = 4√2 Å whose (110) has d = 4 Å and
    lands exactly on the truth's (100)."""
    truth = Crystal(np.eye(3) * 4.0, [[0, 0, 0]], ["Po"])
    return truth, truth.replace(lattice=np.eye(3) * 4.0 * np.sqrt(2))


def test_total_equals_the_inner_product_of_the_patterns():
    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    candidate = truth.replace(lattice=truth.lattice * 1.004)
    report = overlap_report(candidate, truth, XRD, fwhm=0.2)
    # the decomposition covers the whole line; compare on a grid with room beyond both ends
    wide = Diffractometer("CuKa", (12, 83), step=0.002)
    inner = (wide.pattern(candidate, fwhm=0.2, normalize=False) @ wide.pattern(
        truth, fwhm=0.2, normalize=False) * 0.002)
    assert report.total == pytest.approx(inner, rel=1e-3)
    assert report.from_partners + report.from_accidents == pytest.approx(report.total)


def test_a_perfect_match_owes_nothing_to_accidents():
    truth = datasets.load_prototype("AB_cF8_225_a_b")  # rock salt: no two peaks within a few FWHM
    report = overlap_report(truth, truth, XRD, fwhm=0.1)
    assert report.accidental_fraction < 1e-6


def test_a_constructed_coincidence_is_reported():
    truth, candidate = simple_cubic_pair()
    report = overlap_report(candidate, truth, XRD, fwhm=0.1)
    assert report.accidental_fraction > 0.99  # nothing else is shared: every match is accidental
    first = report.largest_accidents[0]
    assert sorted(np.abs(first.candidate_hkl)) == [0, 1, 1] and sorted(np.abs(
        first.truth_hkl)) == [0, 0, 1, ]
    assert first.candidate_two_theta == pytest.approx(first.truth_two_theta, abs=1e-9)


def test_errors():
    truth = datasets.load_prototype("AB_cF8_225_a_b")
    with pytest.raises(ValueError, match="fwhm"):
        overlap_report(truth, truth, XRD, fwhm=0)
    with pytest.raises(ValueError, match="same atoms"):
        overlap_report(datasets.load_prototype("A2B_tP6_136_f_a"), truth, XRD)
    with pytest.raises(ValueError, match="starts"):
        spurious_search(truth, SEARCH_XRD, starts=0)
    with pytest.raises(ValueError, match="among"):
        summarize_search([], among="matched")
    with pytest.raises(ValueError, match="NaN"):
        median_interval([1.0, np.nan])


def test_cosine_split_adds_up_to_the_cosine_similarity():
    from xrdcore import similarity
    from xrdcore.landscape.overlap import cosine_split

    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    wide = Diffractometer("CuKa", (12, 83), step=0.002)  # XRD's range plus the pairs' reach
    for strain in (0.0, 0.004, -0.104):
        candidate = truth.replace(lattice=truth.lattice * [[1 + strain], [1], [1]])
        partners, accidents = cosine_split(candidate, truth, XRD, fwhm=0.2)
        grid = similarity.cosine(wide.pattern(candidate, fwhm=0.2), wide.pattern(truth,
                                                                                 fwhm=0.2))[0]
        assert partners + accidents == pytest.approx(grid, abs=2e-3)
    assert cosine_split(truth, truth, XRD, fwhm=0.2) == pytest.approx((1.0, 0.0), abs=1e-9)
    # the constructed coincidence: all of the cosine is accidental
    truth_po, wrong_po = simple_cubic_pair()
    partners, accidents = cosine_split(wrong_po, truth_po, XRD, fwhm=0.1)
    assert partners == pytest.approx(0.0, abs=1e-12) and accidents > 0.3


# ---------------------------------------------------------------------------- spurious search

RUTILE_STARTS = 20


@pytest.fixture(scope="module")
def rutile_search():
    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    return truth, spurious_search(truth, SEARCH_XRD, starts=RUTILE_STARTS, seed=0)


def test_spurious_search_reports_consistent_end_points(rutile_search):
    """Every field of every end point agrees with an independent evaluation, whatever the
    descents found."""
    from xrdcore import similarity
    from xrdcore.gradients import loss_value
    from xrdcore.structure.matching import lattice_error, match, rms_displacement
    from xrdcore.structure.perturb import perturb

    truth, results = rutile_search
    target = SEARCH_XRD.pattern(truth, fwhm=0.1)
    assert len(results) == RUTILE_STARTS
    assert [r.cosine for r in results] == sorted((r.cosine for r in results), reverse=True)
    # the starts are exactly the seeds seed … seed + starts − 1, each used once
    expected = [perturb(truth, strain=0.05, displacement=0.5, seed=s) for s in range(RUTILE_STARTS)]
    used = sorted(
        next(s for s, e in enumerate(expected)
             if np.array_equal(e.frac_coords, r.start.frac_coords) and
             np.array_equal(e.lattice, r.start.lattice)) for r in results)
    assert used == list(range(RUTILE_STARTS))
    for r in results:
        assert r.cosine == pytest.approx(
            similarity.cosine(SEARCH_XRD.pattern(r.crystal, fwhm=0.1), target)[0], abs=1e-12)
        assert r.start_cosine == pytest.approx(
            similarity.cosine(SEARCH_XRD.pattern(r.start, fwhm=0.1), target)[0], abs=1e-12)
        assert r.loss == pytest.approx(
            loss_value(r.crystal, target, SEARCH_XRD, metric="cosine", fwhm=0.1), abs=1e-12)
        assert r.loss <= loss_value(r.start, target, SEARCH_XRD, metric="cosine",
                                    fwhm=0.1)  # descent never ends worse
        assert r.matched == match(r.crystal, truth).matched
        assert r.rms_displacement == rms_displacement(r.crystal, truth)
        assert r.lattice_error == lattice_error(r.crystal, truth)[0]
        assert r.accidental_fraction == pytest.approx(
            overlap_report(r.crystal, truth, SEARCH_XRD).accidental_fraction, abs=1e-12)
        assert 0 <= r.accidental_fraction <= 1
        assert r.spurious == (not r.matched and r.cosine >= SPURIOUS_COSINE)


def test_spurious_search_finds_spurious_rutile_structures(rutile_search):
    """About a third of strongly distorted rutile starts (5 % strain, 0.5 Å) end spurious (the
    chapter measures the rate on 100 descents); none in 20 would have probability ~1e-4. Each
    one found is reported as a wrong structure that scores."""
    from xrdcore.structure.matching import match

    truth, results = rutile_search
    spurious = [r for r in results if r.spurious]
    assert spurious
    for r in spurious:
        assert not r.matched and r.cosine >= SPURIOUS_COSINE and r.rms_displacement > 0
        assert not match(r.crystal, truth).matched


def test_spurious_search_near_the_truth_finds_nothing_spurious():
    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    results = spurious_search(truth, SEARCH_XRD, starts=3, strain=0.001, displacement=0.002)
    assert all(r.matched and not r.spurious and r.cosine > 0.99 for r in results)
    assert max(r.accidental_fraction for r in results) < 0.01


# ---------------------------------------------------------------------------- summaries


def _result(cosine, matched, accidental_fraction=0.0, lattice_error=0.0, rms_displacement=0.0):
    return SearchResult(crystal=None, start=None, loss=1 - cosine, cosine=cosine, start_cosine=0.0,
                        matched=matched, rms_displacement=rms_displacement,
                        lattice_error=lattice_error, accidental_fraction=accidental_fraction)


def test_summarize_search_counts_and_medians():
    results = [
        _result(0.95, True),  # matched: neither wrong nor spurious
        _result(0.90, False, 0.1, 0.05, 1.0),
        _result(0.85, False, 0.3, 0.07, 0.8),
        _result(0.80, False, 0.2, 0.06, 1.2),  # exactly at the threshold counts
        _result(0.50, False, 0.9, 0.20, 0.5)  # wrong, not spurious
    ]
    summary = summarize_search(results)
    assert (summary.descents, summary.matched, summary.spurious, summary.count) == (5, 1, 3, 3)
    assert summary.spurious_rate.value == pytest.approx(0.6)
    assert (summary.spurious_rate.low, summary.spurious_rate.high) == wilson_interval(3, 5)
    assert summary.cosine.value == pytest.approx(0.85)
    assert summary.accidental_fraction.value == pytest.approx(0.2)
    assert summary.lattice_error.value == pytest.approx(0.06)
    assert summary.rms_displacement.value == pytest.approx(1.0)
    # three values: the interval is the sample range
    assert (summary.accidental_fraction.low, summary.accidental_fraction.high) == (0.1, 0.3)
    wrong = summarize_search(results, among="wrong")
    assert wrong.count == 4 and wrong.accidental_fraction.value == pytest.approx(0.25)
    none = summarize_search([_result(0.9, True)])
    assert none.spurious == 0 and none.count == 0 and np.isnan(none.cosine.value)


def test_median_interval_is_the_order_statistic_interval():
    estimate = median_interval(np.arange(100.0)[::-1])  # order does not matter
    # n = 100: the classical 95 % interval is [x_(40), x_(61)]
    assert (estimate.value, estimate.low, estimate.high) == (49.5, 39.0, 60.0)
    small = median_interval([3.0, 1.0, 2.0])  # below 6 values: the whole range
    assert (small.value, small.low, small.high) == (2.0, 1.0, 3.0)
    assert np.isnan(median_interval([]).value)
    # exact coverage P(j ≤ B ≤ n − j), B ~ Binomial(n, ½), is at least 95 % for every n ≥ 6
    for n in range(6, 300):
        estimate = median_interval(np.arange(float(n)))  # value k is the (k + 1)-th order statistic
        j = int(estimate.low) + 1
        assert estimate.high == n - j
        coverage = stats.binom.cdf(n - j, n, 0.5) - stats.binom.cdf(j - 1, n, 0.5)
        assert coverage >= 0.95
        # …and the interval is the narrowest such: one rank further in would fall below 95 %
        tighter = stats.binom.cdf(n - j - 1, n, 0.5) - stats.binom.cdf(j, n, 0.5)
        assert tighter < 0.95


def test_median_interval_covers_a_skewed_median():
    rng = np.random.default_rng(0)
    estimates = [median_interval(rng.exponential(size=25)) for _ in range(2000)]
    covered = [e.low <= np.log(2) <= e.high for e in estimates]
    assert np.mean(covered) > 0.94  # exact coverage for n = 25 is 0.957


def test_peak_coverage_of_the_truth_and_of_the_constructed_coincidence():
    truth, candidate = simple_cubic_pair()
    itself = peak_coverage(truth, truth, XRD)
    assert (itself.hits == itself.strong > 0 and itself.hit_strongest and
            itself.share == pytest.approx(1.0))
    assert len(itself.extra) == 0
    # every d = 4/√N of the truth is also 4√2/√(2N) of the wrong cell: all peaks are hit (by the
    # wrong reflections); the wrong cell's peak with N' = h² + k² + l² is extra unless N'/2 is
    # one of the truth's N
    wrong = peak_coverage(candidate, truth, XRD)
    assert wrong.hits == wrong.strong and wrong.hit_strongest and wrong.share == pytest.approx(1.0)

    def squares(crystal, two_theta):
        d_spacing = XRD.wavelength / (2 * np.sin(np.radians(np.asarray(two_theta) / 2)))
        values = (crystal.lattice[0, 0] / d_spacing)**2
        assert np.allclose(values, np.round(values), atol=1e-6)
        return set(np.round(values).astype(int))

    truth_n = squares(truth, XRD.peaks(truth).two_theta)
    wrong_n = squares(candidate, XRD.peaks(candidate).two_theta)
    assert squares(candidate, wrong.extra) == {n for n in wrong_n if n % 2 or n // 2 not in truth_n}
