"""Explorers: live ipywidgets with a kernel, kernel-free animations on the static site; both
draw what the physics says."""

import matplotlib
import numpy as np
import pytest

from xrdcore import Diffractometer, datasets, widgets
from xrdcore.perturb import perturb
from xrdcore.structsim import structural_distance

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
    """From 1 % strain (seed 0) the crystal-family run reaches the truth; P1 does not."""
    explorer = widgets.constrained_retrieval(rutile, perturb(rutile, strain=0.01, seed=0), XRD, steps=100)
    final = {}
    for choice in explorer.choices:
        fig = explorer.figure(99, choice)
        final[choice] = fig.axes[0].lines[2].get_ydata()[0]  # the marker: loss at that evaluation
    assert final["crystal family"] < 1e-3 < final["P1"]


def test_energy_vs_xrd_checks_its_arrays():
    offsets = np.linspace(-1, 1, 5)
    explorer = widgets.energy_vs_xrd(offsets, offsets**2, -offsets**2, "t (Å)")
    fig = explorer.figure(0.5)
    assert fig.axes[1].lines[1].get_ydata()[0] == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="same length"):
        widgets.energy_vs_xrd(offsets, offsets[:3], offsets, "t")
