"""Explorers: live ipywidgets with a kernel, kernel-free animations on the static site; both
draw what the physics says."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from xrdcore import Diffractometer, datasets, widgets
from xrdcore.optimize import optimize
from xrdcore.parametrize import crystal_family, p1
from xrdcore.perturb import perturb
from xrdcore.similarity import loss
from xrdcore.structsim import lattice_error, structural_distance

matplotlib.use("Agg")
XRD = Diffractometer("CuKa", (10, 90), backend="cpu")


@pytest.fixture(scope="module")
def rutile():
    return datasets.load_prototype("A2B_tP6_136_f_a")


def _title(fig, panel=0):
    return fig.axes[panel].get_title()


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


def test_static_rendering_is_an_animation_with_one_frame_per_value(rutile, monkeypatch):
    explorer = widgets.peak_overlap(rutile, XRD, frames=4)
    html = explorer.static().data
    assert html.count("data:image/png;base64") == 4 and "anim" in html and "<input" in html  # slider and buttons
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.setenv(widgets.STATIC_ENVIRONMENT, "1")
    explorer._ipython_display_()
    assert shown and "data:image/png;base64" in shown[0].data


def test_live_rendering_is_a_slider_and_a_toggle(rutile, monkeypatch):
    monkeypatch.delenv(widgets.STATIC_ENVIRONMENT, raising=False)
    explorer = widgets.peak_overlap(rutile, XRD, frames=5)
    box = explorer.live()
    slider, toggle = box.children[:2]
    assert (slider.min, slider.max) == (-1.0, 1.0) and slider.step == pytest.approx(0.5)
    assert list(toggle.options) == list(explorer.choices)


def test_ill_posed_pair_walks_from_truth_to_wrong(rutile):
    wrong = perturb(rutile, strain=0.02, displacement=0.3, seed=2)
    explorer = widgets.ill_posed_pair(rutile, wrong, XRD, frames=3)
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
    assert list(explorer.values) == list(np.linspace(0, steps - 1, frames).round())
    target = XRD.pattern(rutile, fwhm=0.1)
    runs = {"P1": p1(start), "crystal family": crystal_family(start, rutile)}
    for choice, parametrization in runs.items():
        run = optimize(parametrization, start, target, XRD, steps=steps, metric="cosine", fwhm=0.1, truth=rutile)
        recorded = run.trajectory
        first = parametrization.project(start)  # evaluation 1: the start, projected onto the constraint
        for value in [*explorer.values, steps + 5]:  # past the last evaluation: the last one
            fig = explorer.figure(value, choice)
            loss_curve, error_curve, marker = fig.axes[0].lines[:3]
            index = min(int(value), len(recorded.loss) - 1)
            # the same run repeated here: equal up to the rounding of parallel sums
            np.testing.assert_allclose(loss_curve.get_ydata(), recorded.loss, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(error_curve.get_ydata(), recorded.lattice_error, rtol=1e-9, atol=1e-12)
            assert marker.get_xdata()[0] == index + 1  # the marker sits on the curve it is drawn over
            assert marker.get_ydata()[0] == loss_curve.get_ydata()[index]
            drawn = -fig.axes[1].lines[1].get_ydata()
            np.testing.assert_allclose(drawn, XRD.pattern(parametrization.crystal(recorded.params[index]), fwhm=0.1),
                                       rtol=0, atol=1e-6)
            assert f"evaluation {index + 1}" in fig.axes[1].get_legend().get_texts()[1].get_text()
            plt.close(fig)
        assert 1 <= len(recorded.loss) <= steps
        assert recorded.loss[0] == pytest.approx(loss("cosine", XRD.pattern(first, fwhm=0.1), target)[0], abs=1e-12)
        assert recorded.lattice_error[0] == pytest.approx(lattice_error(first, rutile)[0], abs=1e-12)
    p1_start = explorer.figure(0, "P1").axes[1].lines[1].get_ydata()
    np.testing.assert_allclose(-p1_start, XRD.pattern(start, fwhm=0.1), rtol=0, atol=1e-9)  # P1 starts at the start itself
    plt.close("all")
    assert explorer.static().data.count("data:image/png;base64") == frames


def test_energy_vs_xrd_checks_its_arrays():
    offsets = np.linspace(-1, 1, 5)
    explorer = widgets.energy_vs_xrd(offsets, offsets**2, -offsets**2, "t (Å)")
    fig = explorer.figure(0.5)
    assert fig.axes[1].lines[1].get_ydata()[0] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="same length"):
        widgets.energy_vs_xrd(offsets, offsets[:3], offsets, "t")
