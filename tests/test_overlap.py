"""Peak-pair decomposition of pattern overlap: sums to the grid inner product, no accidents for
a perfect match, and a constructed accidental coincidence is found."""

import numpy as np
import pytest

from xrdcore import Crystal, Diffractometer, datasets
from xrdcore.overlap import overlap_report

XRD = Diffractometer("CuKa", (15, 80), step=0.002)


def test_total_equals_the_inner_product_of_the_patterns():
    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    candidate = truth.replace(lattice=truth.lattice * 1.004)
    report = overlap_report(candidate, truth, XRD, fwhm=0.2)
    # the decomposition covers the whole line; compare on a grid with room beyond both ends
    wide = Diffractometer("CuKa", (12, 83), step=0.002)
    inner = wide.pattern(candidate, fwhm=0.2, normalize=False) @ wide.pattern(truth, fwhm=0.2, normalize=False) * 0.002
    assert report.total == pytest.approx(inner, rel=1e-3)
    assert report.from_partners + report.from_accidents == pytest.approx(report.total)


def test_a_perfect_match_owes_nothing_to_accidents():
    truth = datasets.load_prototype("AB_cF8_225_a_b")  # rock salt: no two peaks within a few FWHM
    report = overlap_report(truth, truth, XRD, fwhm=0.1)
    assert report.accidental_fraction < 1e-6


def test_a_constructed_coincidence_is_reported():
    """Simple cubic, a = 4 Å, against a candidate with a' = 4√2 Å: the candidate's (110) has
    d = 4 Å and lands exactly on the truth's (100)."""
    truth = Crystal(np.eye(3) * 4.0, [[0, 0, 0]], ["Po"])
    candidate = truth.replace(lattice=np.eye(3) * 4.0 * np.sqrt(2))
    report = overlap_report(candidate, truth, XRD, fwhm=0.1)
    assert report.accidental_fraction > 0.99  # nothing else is shared: every match is accidental
    first = report.largest_accidents[0]
    assert sorted(np.abs(first.candidate_hkl)) == [0, 1, 1] and sorted(np.abs(first.truth_hkl)) == [0, 0, 1]
    assert first.candidate_two_theta == pytest.approx(first.truth_two_theta, abs=1e-9)


def test_errors():
    truth = datasets.load_prototype("AB_cF8_225_a_b")
    with pytest.raises(ValueError, match="fwhm"):
        overlap_report(truth, truth, XRD, fwhm=0)
    with pytest.raises(ValueError, match="same atoms"):
        overlap_report(datasets.load_prototype("A2B_tP6_136_f_a"), truth, XRD)


def test_spurious_search_reports_consistent_end_points():
    from xrdcore import similarity
    from xrdcore.gradients import loss_value
    from xrdcore.overlap import spurious_search
    from xrdcore.structsim import match

    truth = datasets.load_prototype("AB_cF8_225_a_b")
    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    target = xrd.pattern(truth, fwhm=0.1)
    results = spurious_search(truth, xrd, starts=4, seed=3)
    assert [r.cosine for r in results] == sorted((r.cosine for r in results), reverse=True)
    for r in results:
        assert r.cosine == pytest.approx(similarity.cosine(xrd.pattern(r.crystal, fwhm=0.1), target)[0], abs=1e-12)
        assert r.loss == pytest.approx(loss_value(r.crystal, target, xrd, metric="cosine", fwhm=0.1), abs=1e-12)
        assert r.loss <= loss_value(r.start, target, xrd, metric="cosine", fwhm=0.1)  # descent never ends worse
        assert r.matched == match(r.crystal, truth).matched
        assert 0 <= r.accidental_fraction <= 1


def test_spurious_search_near_the_truth_finds_nothing_spurious():
    from xrdcore.overlap import spurious_search

    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    results = spurious_search(truth, xrd, starts=3, strain=0.001, displacement=0.002)
    assert all(r.matched and not r.spurious and r.cosine > 0.99 for r in results)
    assert max(r.accidental_fraction for r in results) < 0.01


def test_spurious_search_finds_a_coincidence_in_rock_salt():
    """From 30 strong distortions of rock salt (5 % strain, 0.5 Å) one descent ends in a wrong
    structure scoring > 0.8 whose agreement is mostly accidental peak pairs."""
    from xrdcore.overlap import spurious_search

    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    results = spurious_search(datasets.load_prototype("AB_cF8_225_a_b"), xrd, starts=30)
    spurious = [r for r in results if r.spurious]
    assert spurious and max(r.accidental_fraction for r in spurious) > 0.5
    with pytest.raises(ValueError, match="starts"):
        spurious_search(datasets.load_prototype("AB_cF8_225_a_b"), xrd, starts=0)


def test_cosine_split_adds_up_to_the_cosine_similarity():
    from xrdcore import similarity
    from xrdcore.overlap import cosine_split

    truth = datasets.load_prototype("A2B_tP6_136_f_a")
    wide = Diffractometer("CuKa", (12, 83), step=0.002)  # XRD's range plus the pairs' reach
    for strain in (0.0, 0.004, -0.104):
        candidate = truth.replace(lattice=truth.lattice * [[1 + strain], [1], [1]])
        partners, accidents = cosine_split(candidate, truth, XRD, fwhm=0.2)
        grid = similarity.cosine(wide.pattern(candidate, fwhm=0.2), wide.pattern(truth, fwhm=0.2))[0]
        assert partners + accidents == pytest.approx(grid, abs=2e-3)
    assert cosine_split(truth, truth, XRD, fwhm=0.2) == pytest.approx((1.0, 0.0), abs=1e-9)
