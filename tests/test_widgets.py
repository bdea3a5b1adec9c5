"""Explorers: live ipywidgets with a kernel, kernel-free animations on the static site; both
draw what the physics says."""

import re
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from xrdcore import Diffractometer, datasets
from xrdcore.landscape.directions import displaced, lattice_direction
from xrdcore.optimize.core import optimize
from xrdcore.similarity import loss
from xrdcore.structure.matching import lattice_error, structural_distance
from xrdcore.structure.parametrize import crystal_family, p1
from xrdcore.structure.perturb import perturb
from xrdcore.teaching import widgets

matplotlib.use("Agg")
XRD = Diffractometer("CuKa", (10, 90), backend="cpu")
STYLESHEET = Path(__file__).resolve().parents[1] / "book" / "_static" / "css" / "book.css"


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype("A2B_tP6_136_f_a")


def _title(fig, panel=0):
    return fig.axes[panel].get_title()


def _assert_text_fits(fig):
    """Every panel, with its title, labels, tick labels and legend, lies inside the figure,
    and no two panels (or a panel and the figure's title) overlap: nothing is clipped."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    boxes += [
        text.get_window_extent(renderer) for text in (fig._suptitle, fig._supxlabel)
        if text is not None
    ]
    for i, box in enumerate(boxes):
        assert (box.x0 >= -0.5 and box.y0 >= -0.5 and box.x1 <= fig.bbox.x1 + 0.5 and
                box.y1 <= fig.bbox.y1 + 0.5), i
        assert not any(box.overlaps(other) for other in boxes[:i]), i


def _denser_near(values, point):
    """The gap next to ``point`` is the narrowest, and gaps grow away from it."""
    gaps, middles = np.diff(values), (values[1:] + values[:-1]) / 2
    order = np.argsort(np.abs(middles - point))
    return gaps[order[0]] == pytest.approx(gaps.min()) and gaps[order[-1]] > 3 * gaps.min()


def _assert_denser_at_both_ends(values):
    gaps = np.diff(values)
    assert gaps[0] == pytest.approx(gaps.min()) and gaps[-1] == pytest.approx(gaps.min())
    assert gaps[len(gaps) // 2] > 3 * gaps.min()


def test_dense_near_crowds_the_values_around_the_points_of_interest():
    values = widgets.dense_near(-1.0, 1.0, 15, near=0.0)
    assert values[0] == -1.0 and values[-1] == 1.0 and 0.0 in values and len(values) == 15
    assert np.all(np.diff(values) > 0)
    np.testing.assert_allclose(values, -values[::-1], atol=1e-12)  # symmetric about the point
    gaps = np.diff(values)[7:]  # from the point outwards: a geometric-like progression
    assert np.all(np.diff(gaps) > 0) and gaps[-1] / gaps[0] == pytest.approx(
        widgets.DENSITY_RATIO, rel=0.35)
    ends = widgets.dense_near(0.0, 1.0, 15, near=(0.0, 1.0))
    _assert_denser_at_both_ends(ends)
    with pytest.raises(ValueError, match="between"):
        widgets.dense_near(0.0, 1.0, 5, near=2.0)
    with pytest.raises(ValueError, match="frames"):
        widgets.dense_near(0.0, 1.0, 1, near=0.0)


def test_static_mode_follows_the_environment(monkeypatch):
    monkeypatch.delenv(widgets.STATIC_ENVIRONMENT, raising=False)
    assert not widgets.static_mode()
    monkeypatch.setenv(widgets.STATIC_ENVIRONMENT, "1")
    assert widgets.static_mode()


def test_peak_overlap_draws_the_split_similarity(rutile):
    explorer = widgets.peak_overlap(rutile, XRD, frames=5)
    stretch, move = explorer.choices
    assert "1.000 = partners 1.000 + accidents 0.000" in _title(explorer.figure(0.0, stretch))
    stretched = _title(explorer.figure(1.0, stretch))
    assert float(stretched.split()[1]) < 0.9  # 5 % strain: the similarity collapses
    assert float(_title(explorer.figure(1.0, move)).split()[1]) < 1.0


def test_peak_overlap_frames_crowd_near_the_truth_and_zoom_where_peaks_merge(rutile):
    explorer = widgets.peak_overlap(rutile, XRD)
    assert (len(explorer.values) == 15 and 0.0 in explorer.values and
            np.all(np.diff(explorer.values) > 0))
    assert _denser_near(explorer.values, 0.0)
    # the zoom holds the strongest peak that the stretch moves, over its whole path
    stretch = lattice_direction(rutile, 0)
    window = widgets.merging_window(rutile, XRD, stretch, 0.05)
    peaks = XRD.peaks(rutile)
    strained = [displaced(rutile, [stretch], [s]) for s in (-0.05, 0.05)]

    def two_theta_of(crystal, hkl):  # the same reflection (or its Friedel mate) in another cell
        reflections = XRD.reflections(crystal, (1, 179))
        row = np.flatnonzero((reflections.hkl == hkl).all(1) | (reflections.hkl == -hkl).all(1))[0]
        return reflections.two_theta[row]

    paths = [[two_theta_of(c, members[0]) for c in strained] for members in peaks.hkls]
    moving = [
        i for i, path in enumerate(paths)
        if np.abs(np.subtract(path, peaks.two_theta[i])).max() > 0.2
    ]
    strongest = max(moving, key=lambda i: peaks.intensity[i])
    for two_theta in [peaks.two_theta[strongest], *paths[strongest]]:
        assert (window[0] + widgets.WINDOW_MARGIN - 1e-6 <= two_theta <=
                window[1] - widgets.WINDOW_MARGIN + 1e-6)
    assert window[1] - window[0] < 20  # a zoom, not the whole 80° range
    fig = explorer.figure(0.0, explorer.choices[0])
    assert fig.axes[0].get_xlim() == pytest.approx(window)
    assert widgets.peak_overlap(
        rutile, XRD, frames=3, two_theta_window=(30, 40)).figure(0.5).axes[0].get_xlim() == (30, 40)
    legend = (explorer.figure(0.5,
                              explorer.choices[0]).axes[0].get_legend().get_texts()[1].get_text())
    assert "strain +2.50 %" in legend  # the legend names the move in its own unit
    plt.close("all")


def test_static_rendering_is_an_animation_with_one_frame_per_value(rutile, monkeypatch):
    explorer = widgets.peak_overlap(rutile, XRD, frames=4)
    html = explorer.static().data
    assert (html.count("data:image/png;base64") == 4 and "anim" in html and
            "<input" in html)  # slider and buttons
    # the hooks the book's stylesheet fits to the page: image, slider, buttons, repetition choice
    for hook in ('class="animation"', 'class="anim-controls"', 'class="anim-slider"',
                 'class="anim-buttons"', 'class="anim-state"'):
        assert hook in html, hook
    stylesheet = STYLESHEET.read_text()
    assert re.search(r"div\.animation img \{[^}]*max-width: 100%;[^}]*height: auto;", stylesheet)
    assert re.search(r"div\.animation input\[type=range\]\.anim-slider \{[^}]*width: 100%;",
                     stylesheet)
    for wrapping in ("anim-buttons", "anim-state"):
        assert re.search(rf"div\.animation \.{wrapping} \{{[^}}]*flex-wrap: wrap;",
                         stylesheet), (wrapping)
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setenv(widgets.STATIC_ENVIRONMENT, "1")
    explorer._ipython_display_()
    assert shown and "data:image/png;base64" in shown[0].data


def test_live_rendering_is_a_slider_and_a_toggle(rutile, monkeypatch):
    import ipywidgets

    monkeypatch.delenv(widgets.STATIC_ENVIRONMENT, raising=False)
    explorer = widgets.peak_overlap(rutile, XRD, frames=5)
    box = explorer.live()
    slider, toggle = box.children[:2]
    assert isinstance(slider, ipywidgets.FloatSlider) and (slider.min, slider.max) == (-1.0, 1.0)
    assert slider.value == 0.0 and slider.layout.width == "100%"
    # equal steps, none wider than the narrowest gap between frames, with the truth (0) on the grid
    assert slider.step <= np.diff(explorer.values).min() + 1e-12
    assert (0.0 - slider.min) / slider.step == pytest.approx(round(
        (0.0 - slider.min) / slider.step))
    assert list(toggle.options) == list(explorer.choices)
    plt.close("all")


def test_ill_posed_pair_walks_from_truth_to_wrong(rutile):
    wrong = perturb(rutile, strain=0.02, displacement=0.3, seed=2)
    explorer = widgets.ill_posed_pair(rutile, wrong, XRD, frames=3)
    walk = widgets.ill_posed_pair(rutile, wrong, XRD).values  # frames crowd near both ends
    assert (walk[0], walk[-1], len(walk)) == (0.0, 1.0, 15) and np.all(np.diff(walk) > 0)
    _assert_denser_at_both_ends(walk)
    assert "distance 0.00 Å" in _title(explorer.figure(0.0))
    assert f"distance {structural_distance(wrong, rutile):.2f} Å" in _title(explorer.figure(1.0))
    with pytest.raises(ValueError, match="same atoms"):
        widgets.ill_posed_pair(rutile, datasets.load_prototype("AB_cF8_225_a_b"), XRD)


def test_constrained_retrieval_records_both_runs(rutile):
    """The explorer shows the two optimisations it ran, evaluation by evaluation: each curve is
    that run's recorded trajectory, the marker sits on the curve at the slider's evaluation and
    the pattern panel draws that evaluation's structure. Bookkeeping only: whether a run
    reaches the truth depends on the descent, and the study's rates (chapter 7) answer that."""
    start, steps, frames = perturb(rutile, strain=0.01, seed=0), 12, 4
    explorer = widgets.constrained_retrieval(rutile, start, XRD, steps=steps, frames=frames)
    assert explorer.choices == ("P1", "crystal family")
    assert explorer.values.dtype.kind == "i" and len(explorer.values) == frames
    assert (explorer.values[0] == 1 and explorer.values[-1] == steps and
            np.all(np.diff(explorer.values) > 0))
    target = XRD.pattern(rutile, fwhm=0.1)
    runs = {"P1": p1(start), "crystal family": crystal_family(start, rutile)}
    for choice, parametrization in runs.items():
        run = optimize(parametrization, start, target, XRD, steps=steps, metric="cosine", fwhm=0.1,
                       truth=rutile)
        recorded = run.trajectory
        first = parametrization.project(
            start)  # evaluation 1: the start, projected onto the constraint
        for value in [*explorer.values, steps + 5]:  # past the last evaluation: the last one
            fig = explorer.figure(value, choice)
            loss_curve, error_curve, marker = fig.axes[0].lines[:3]
            index = min(int(value), len(recorded.loss)) - 1  # evaluations count from 1
            # the same run repeated here: equal up to the rounding of parallel sums
            np.testing.assert_allclose(loss_curve.get_ydata(), recorded.loss, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(error_curve.get_ydata(), recorded.lattice_error, rtol=1e-9,
                                       atol=1e-12)
            assert (
                marker.get_xdata()[0] == index + 1)  # the marker sits on the curve it is drawn over
            assert marker.get_ydata()[0] == loss_curve.get_ydata()[index]
            drawn = -fig.axes[1].lines[1].get_ydata()
            np.testing.assert_allclose(
                drawn, XRD.pattern(parametrization.crystal(recorded.params[index]), fwhm=0.1),
                rtol=0, atol=1e-6)
            assert f"evaluation {index + 1}" in fig.axes[1].get_legend().get_texts()[1].get_text()
            plt.close(fig)
        assert 1 <= len(recorded.loss) <= steps
        assert recorded.loss[0] == pytest.approx(
            loss("cosine", XRD.pattern(first, fwhm=0.1), target)[0], abs=1e-12)
        assert recorded.lattice_error[0] == pytest.approx(
            lattice_error(first, rutile)[0], abs=1e-12)
    p1_start = explorer.figure(1, "P1").axes[1].lines[1].get_ydata()
    np.testing.assert_allclose(-p1_start, XRD.pattern(start, fwhm=0.1), rtol=0,
                               atol=1e-9)  # P1 starts at the start itself
    plt.close("all")
    assert explorer.static().data.count("data:image/png;base64") == frames


def test_energy_vs_xrd_checks_its_arrays():
    offsets = np.linspace(-1, 1, 5)
    explorer = widgets.energy_vs_xrd(offsets, offsets**2, -(offsets**2), "t (Å)")
    fig = explorer.figure(0.5)
    assert fig.axes[1].lines[1].get_ydata()[0] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="same length"):
        widgets.energy_vs_xrd(offsets, offsets[:3], offsets, "t")


def test_constrained_retrieval_steps_are_integers_densest_early(rutile, monkeypatch):
    """The slider walks whole evaluations, geometrically spaced (the loss changes fastest in
    the first ones); live, it is an integer slider over every evaluation."""
    import ipywidgets

    explorer = widgets.constrained_retrieval(rutile, perturb(rutile, strain=0.01, seed=0), XRD,
                                             steps=100)
    values = explorer.values
    assert values.dtype.kind == "i" and len(values) == 13 and (values[0], values[-1]) == (1, 100)
    assert len(np.unique(values)) == len(values) and np.all(np.diff(np.diff(values)) >= 0)
    assert list(values[:4]) == [1, 2, 3, 4]  # every one of the first evaluations
    monkeypatch.delenv(widgets.STATIC_ENVIRONMENT, raising=False)
    slider = explorer.live().children[0]
    assert isinstance(slider,
                      ipywidgets.IntSlider) and (slider.min, slider.max, slider.step) == (1, 100, 1)
    assert slider.layout.width == "100%"
    fig = explorer.static_frame(0)
    assert fig._suptitle.get_text() == "evaluation = 1"
    _assert_text_fits(fig)
    plt.close("all")


def test_energy_vs_xrd_frames_are_scan_points_densest_near_the_truth():
    offsets = 100 * np.linspace(-0.1, 0.1, 81)
    explorer = widgets.energy_vs_xrd(offsets, offsets**2, -(offsets**2), "strain (%)")
    values = explorer.values
    assert len(values) == 21 and np.all(np.diff(values) > 0) and set(values) <= set(offsets)
    assert (0.0 in values and np.isclose(values, -0.25).any() and
            np.isclose(values, 0.25).any())  # the truth's neighbours
    assert _denser_near(values, 0.0) and (values[0], values[-1]) == pytest.approx((-10.0, 10.0))
    shifted = widgets.energy_vs_xrd(offsets, offsets**2, -(offsets**2), "strain (%)", truth=2.0,
                                    frames=9).values
    assert len(shifted) <= 9 and np.isclose(shifted, 2.0).any() and _denser_near(shifted, 2.0)


@pytest.mark.parametrize("name", ["peak_overlap", "ill_posed_pair", "energy_vs_xrd"])
def test_static_frames_keep_their_text_inside(rutile, name):
    """At the size the site shows them, no title, label, tick label or legend of a frame is
    cut off by the frame's edge or runs into a neighbouring panel."""
    if name == "peak_overlap":
        explorer = widgets.peak_overlap(rutile, XRD, frames=3)
    elif name == "ill_posed_pair":
        explorer = widgets.ill_posed_pair(rutile,
                                          perturb(rutile, strain=0.05, displacement=0.4, seed=3),
                                          XRD, frames=3)
    else:
        offsets = 100 * np.linspace(-0.1, 0.1, 81)
        explorer = widgets.energy_vs_xrd(offsets, 1 - np.exp(-(offsets**2)),
                                         -3 + 0.002 * offsets**2,
                                         "strain of the first lattice vector (%)", frames=3)
    for frame in range(len(explorer.values)):
        _assert_text_fits(explorer.static_frame(frame))
        plt.close("all")


def test_measured_landscape_draws_the_target_and_the_ideal_models_scan(rutile):
    """Slider 0 is the ideal target (the scan's lowest point is the truth); at slider 1 the
    zero shift moves the target's peaks by 0.1° and the truth's loss is no longer 0."""
    explorer = widgets.measured_landscape(rutile, XRD, frames=3)
    assert len(explorer.choices) == 3 and explorer.values[0] == 0 and explorer.values[-1] == 1
    shift = next(choice for choice in explorer.choices if "zero shift" in choice)
    at_zero = explorer.figure(0.0, shift)
    strains, losses = at_zero.axes[1].lines[0].get_data()
    assert strains[np.argmin(losses)] == 0 and losses[len(losses) // 2] < 1e-12
    assert "local minima" in at_zero.axes[1].get_title()
    at_one = explorer.figure(1.0, shift)
    two_theta, target = at_one.axes[0].lines[0].get_data()
    _, ideal = at_one.axes[0].lines[1].get_data()
    assert abs(two_theta[np.argmax(target)] - two_theta[np.argmax(ideal)] - 0.1) < 0.021
    assert at_one.axes[1].lines[0].get_data()[1][len(strains) // 2] > 0.01
    for frame in range(len(explorer.values)):
        _assert_text_fits(explorer.static_frame(frame))
        plt.close("all")
