"""Interactive explorers for the book's chapters.

Each explorer is a figure driven by one slider and, optionally, a choice between a few
variants. With a live Jupyter kernel it is an ipywidgets control that recomputes on every
move. On the static site there is no kernel, so the same explorer renders as a matplotlib
animation (``to_jshtml``) of precomputed frames: a working slider in plain HTML and
JavaScript, with one row of panels per variant. The book build sets the environment
variable ``XRDCORE_STATIC_WIDGETS=1`` (see ``book/_ext/static_widgets.py``); anything else
gets the live widget.

A static page carries every frame, so frames are spent where the physics happens: the
slider's values crowd around the points of interest (the truth, the two ends of a walk, the
first evaluations of a descent) and thin out away from them (:func:`dense_near`). The
book's stylesheet (``book/_static/css/book.css``) scales the animation's image to the page
width and wraps its controls, so that it fits a phone as well as a desk; each frame's text
stays inside the frame.

Explorers (chapters only call these):

* :func:`peak_overlap` — stretch a lattice vector or move an atom; peaks slide and merge and
  the cosine similarity splits into partner and accidental parts;
* :func:`ill_posed_pair` — walk from the truth to a wrong structure with a near-identical
  pattern;
* :func:`constrained_retrieval` — step an optimisation, with and without the crystal-family
  constraint;
* :func:`energy_vs_xrd` — move along one direction and watch the XRD loss and the energy;
* :func:`measured_landscape` — add a background, a zero shift or noise to the target and watch
  the ideal model's landscape.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.landscape.directions import (Direction, atom_direction, displaced, lattice_direction,
                                          path_direction)
from xrdcore.landscape.overlap import cosine_split
from xrdcore.physics.scattering import bragg_two_theta
from xrdcore.similarity import cosine
from xrdcore.structure.crystal import Crystal

if TYPE_CHECKING:
    import ipywidgets
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation
    from matplotlib.figure import Figure

#: Set to "1" (by the book build) to render explorers as kernel-free animations.
STATIC_ENVIRONMENT = "XRDCORE_STATIC_WIDGETS"
#: The static animations' frames: figures shrunk by STATIC_SCALE and drawn at STATIC_DPI, so
#: that text is larger for the same pixels (a page's frames stay ~1 MB).
STATIC_SCALE = 0.72
STATIC_DPI = 88
#: Frame spacing: the widest step between neighbouring slider values is about this many
#: times the narrowest, the one next to a point of interest (see :func:`dense_near`).
DENSITY_RATIO = 12.0
#: :func:`energy_vs_xrd` crowds its frames more: the XRD loss's well is a few scan points wide.
WELL_RATIO = 30.0
#: Degrees of pattern shown on either side of the merging peak's path (:func:`merging_window`).
WINDOW_MARGIN = 2.0


def static_mode() -> bool:
    """True when explorers should render as precomputed animations (the static site)."""
    return os.environ.get(STATIC_ENVIRONMENT) == "1"


def dense_near(low: float, high: float, frames: int, near: ArrayLike,
               ratio: float = DENSITY_RATIO) -> np.ndarray:
    """``frames`` sorted slider values from ``low`` to ``high`` (both included), densest at
    the points ``near``.

    The step between neighbouring values grows in proportion to the distance from the
    nearest of those points, plus a floor, so that the values form a geometric progression
    on either side of each point and the widest step is about ``ratio`` times the narrowest.
    Each point of interest is itself one of the values.
    """
    near = np.atleast_1d(np.asarray(near, dtype=float))
    if frames < 2 or not low < high or ratio <= 1:
        raise ValueError("dense_near needs frames ≥ 2, low < high and ratio > 1")
    if np.any((near < low) | (near > high)):
        raise ValueError(f"the points of interest {near} must lie between {low} and {high}")
    grid = np.linspace(low, high, 20001)
    distance = np.min(np.abs(grid[:, None] - near[None, :]), axis=1)
    density = 1.0 / (distance + distance.max() / (ratio - 1))  # values per unit length
    count = np.concatenate([[0.0], np.cumsum(np.diff(grid) * (density[1:] + density[:-1]) / 2)])
    values = np.interp(np.linspace(0.0, count[-1], frames), count, grid)
    for point in near:
        values[np.argmin(np.abs(values - point))] = point
    return values


def _at_most(frames: int, values_for: Callable) -> np.ndarray:
    """The most distinct values, up to ``frames`` of them, that ``values_for(n)`` gives for
    some n ≥ frames (rounding or snapping to a grid merges neighbours, so n may need to grow)."""
    best = np.unique(values_for(frames))
    for n in range(frames + 1, 20 * frames):
        more = np.unique(values_for(n))
        if len(more) > frames:
            break
        best = more
    return best


def merging_window(truth: Crystal, diffractometer: Diffractometer, direction: Direction,
                   max_offset: float, fwhm: float = 0.1,
                   margin: float = WINDOW_MARGIN) -> tuple[float, float]:
    """The 2θ window (degrees) where peaks slide off their partners along ``direction``: the
    strongest peak of ``truth`` that moves by more than two FWHM at offset ±``max_offset``,
    over its whole path, with ``margin`` degrees either side (inside the instrument's range).
    The whole range when no peak moves that far."""
    peaks = diffractometer.peaks(truth)
    hkl = np.array([members[0] for members in peaks.hkls], dtype=float)

    def two_theta(offset):
        lattice = displaced(truth, [direction], [offset]).lattice
        return bragg_two_theta(1 / np.linalg.norm(hkl @ np.linalg.inv(lattice).T, axis=1),
                               diffractometer.wavelength)

    path = np.stack([two_theta(-max_offset), peaks.two_theta, two_theta(max_offset)])
    moving = np.nanmax(np.abs(path - peaks.two_theta), axis=0) > 2 * fwhm
    low, high = diffractometer.two_theta_range
    if not moving.any():
        return low, high
    strongest = np.flatnonzero(moving)[np.argmax(peaks.intensity[moving])]
    return max(low,
               np.nanmin(path[:, strongest]) - margin), min(high,
                                                            np.nanmax(path[:, strongest]) + margin)


@dataclass
class Explorer:
    """A figure of ``columns`` panels per choice, redrawn by ``draw(axes, value, choice)``.

    ``values`` are the slider's positions (the animation's frames on the static site; an
    integer array makes an integer slider); ``label`` names the slider, with its unit.
    """

    draw: Callable
    values: np.ndarray
    label: str
    choices: tuple = ("", )
    columns: int = 1
    panel_size: tuple = (4.2, 3.0)

    def _figure(self, rows: int, dpi: float = 100, scale: float = 1.0) -> tuple[Figure, np.ndarray]:
        import matplotlib.pyplot as plt

        width, height = self.panel_size
        size = (scale * width * self.columns, scale * height * rows)
        fig, axes = plt.subplots(rows, self.columns, figsize=size, dpi=dpi, squeeze=False,
                                 layout="constrained")
        return fig, axes

    def figure(self, value: float, choice: str | None = None) -> Figure:
        """The figure (one row of panels) at one slider value and choice."""
        fig, axes = self._figure(1)
        self.draw(list(axes[0]), value, self.choices[0] if choice is None else choice)
        return fig

    def _draw_frame(self, fig: Figure, axes: np.ndarray, frame: int) -> None:
        value = self.values[frame]
        for row, choice in zip(axes, self.choices):
            for ax in row:
                ax.clear()
            self.draw(list(row), value, choice)
            if choice:  # the variant's name leads the first panel's title
                title = row[0].get_title()
                row[0].set_title(f"{choice}\n{title}" if title else choice, fontsize=9)
        shown = f"{value}" if np.issubdtype(self.values.dtype, np.integer) else f"{value:.3g}"
        fig.suptitle(f"{self.label} = {shown}", fontsize=10)

    def static_frame(self, frame: int) -> Figure:
        """One frame of the static animation, as the site shows it (every choice, one row each)."""
        fig, axes = self._figure(len(self.choices), dpi=STATIC_DPI, scale=STATIC_SCALE)
        self._draw_frame(fig, axes, frame)
        return fig

    def animation(self) -> FuncAnimation:
        """A matplotlib animation: one frame per value, one row of panels per choice."""
        import matplotlib.pyplot as plt
        from matplotlib.animation import FuncAnimation

        fig, axes = self._figure(len(self.choices), dpi=STATIC_DPI, scale=STATIC_SCALE)

        def update(frame):
            self._draw_frame(fig, axes, frame)
            return []

        animation = FuncAnimation(fig, update, frames=len(self.values), blit=False)
        plt.close(fig)
        return animation

    def static(self) -> HTML:
        """Kernel-free HTML: the animation with its own slider and buttons (matplotlib's
        player, ``<div class="animation">``, which the book's stylesheet fits to the page)."""
        from IPython.display import HTML

        return HTML(self.animation().to_jshtml(fps=4, default_mode="once"))

    def live(self) -> ipywidgets.VBox:
        """ipywidgets: a full-width slider over the values' range (integer for integer
        values), starting at the middle frame, and a choice between the variants, that
        redraw the figure."""
        import ipywidgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        values = self.values
        number: type[int] | type[float]
        step: float
        if np.issubdtype(values.dtype, np.integer):
            kind, number, step = ipywidgets.IntSlider, int, 1
        else:
            # equal steps, none wider than the narrowest gap between frames, through the middle
            # frame
            kind, number = ipywidgets.FloatSlider, float
            below = float(values[len(values) // 2] - values[0])
            gap = float(np.min(np.diff(values))) if len(values) > 1 else 1.0
            step = below / np.ceil(below / gap - 1e-9) if below > 0 else gap
        slider = kind(value=number(values[len(values) // 2]), min=number(values[0]), max=number(
            values[-1]), step=step, description=self.label, style={"description_width": "initial"},
                      continuous_update=False, layout=ipywidgets.Layout(width="100%"))
        choice = ipywidgets.RadioButtons(options=list(self.choices), value=self.choices[0],
                                         layout=ipywidgets.Layout(width="100%"))
        output = ipywidgets.Output(layout=ipywidgets.Layout(width="100%"))

        def redraw(_=None):
            with output:
                output.clear_output(wait=True)
                fig = self.figure(slider.value, choice.value)
                display(fig)
                plt.close(fig)

        slider.observe(redraw, names="value")
        choice.observe(redraw, names="value")
        redraw()
        controls = [slider] + ([choice] if len(self.choices) > 1 else [])
        return ipywidgets.VBox(controls + [output], layout=ipywidgets.Layout(width="100%"))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.static() if static_mode() else self.live())


def _pattern_panel(ax, diffractometer, truth_pattern, pattern, label, window=None):
    ax.plot(diffractometer.two_theta, truth_pattern, color="C0", lw=0.8, label="truth (up)")
    ax.plot(diffractometer.two_theta, -pattern, color="C3", lw=0.8, label=f"{label} (down)")
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity (max 100)")
    ax.set_ylim(-105, 105)
    low, high = diffractometer.two_theta_range if window is None else window
    ax.set_xlim(low, high)
    # the legend goes above the line, on the side where the truth's (fixed) peaks are weaker
    shown = (diffractometer.two_theta >= low) & (diffractometer.two_theta <= high)
    left, _, right = np.array_split(truth_pattern[shown], 3)
    ax.legend(fontsize=9, loc="upper left" if left.max() < right.max() else "upper right")


def peak_overlap(truth: Crystal, diffractometer: Diffractometer, vector: int = 0, atom: int = 0,
                 max_strain: float = 0.05, max_shift: float = 0.5, fwhm: float = 0.1,
                 frames: int = 15, two_theta_window: tuple[float, float] | None = None) -> Explorer:
    """Stretch lattice vector ``vector`` by up to ±``max_strain`` or move atom ``atom`` along x
    by up to ±``max_shift`` Å (slider from −1 to 1 = the whole range, its values densest near
    0, the truth); shows both patterns and the cosine similarity of the whole patterns split
    into partner and accidental parts.

    The panels show the 2θ window ``two_theta_window`` (degrees); by default the one where
    the stretch slides the strongest moving peak off its partner (:func:`merging_window`).
    """
    stretch = lattice_direction(truth, vector)
    moves = {
        f"stretch lattice vector {'abc'[vector]} (±{100 * max_strain:g} %)": (
            stretch, max_strain, lambda offset: f"strain {100 * offset:+.2f} %"),
        f"move atom {truth.species[atom]}{atom} along x (±{max_shift:g} Å)": (atom_direction(
            truth, atom, 0), max_shift, lambda offset: f"shift {offset:+.3f} Å")
    }
    if two_theta_window is None:
        two_theta_window = merging_window(truth, diffractometer, stretch, max_strain, fwhm)
    truth_pattern = diffractometer.pattern(truth, fwhm=fwhm)

    def draw(axes, value, choice):
        direction, scale, amount = moves[choice]
        candidate = displaced(truth, [direction], [value * scale])
        partners, accidents = cosine_split(candidate, truth, diffractometer, fwhm=fwhm)
        pattern = diffractometer.pattern(candidate, fwhm=fwhm)
        _pattern_panel(axes[0], diffractometer, truth_pattern, pattern, amount(value * scale),
                       two_theta_window)
        axes[0].set_title(
            f"cosine {partners + accidents:.3f} = "
            f"partners {partners:.3f} + accidents {accidents:.3f}", fontsize=9)

    values = dense_near(-1.0, 1.0, frames, near=0.0)
    return Explorer(draw, values, "move (fraction of its range)", tuple(moves),
                    panel_size=(7.0, 3.2))


def ill_posed_pair(truth: Crystal, wrong: Crystal, diffractometer: Diffractometer,
                   fwhm: float = 0.1, frames: int = 15) -> Explorer:
    """Walk in a straight line (lattice and fractional coordinates, nearest images) from the
    truth (0) to a wrong structure (1), with frames densest near both ends: its pattern
    against the truth's, and the cosine similarity along the whole walk."""
    from xrdcore.structure.matching import structural_distance

    direction = path_direction(truth, wrong)
    truth_pattern = diffractometer.pattern(truth, fwhm=fwhm)
    values = dense_near(0.0, 1.0, frames, near=(0.0, 1.0))
    walk = np.union1d(np.linspace(0, 1, 101), values)
    walk_cosine = [
        cosine(diffractometer.pattern(displaced(truth, [direction], [t]), fwhm=fwhm),
               truth_pattern)[0] for t in walk
    ]

    def draw(axes, value, choice):
        candidate = displaced(truth, [direction], [value])
        pattern = diffractometer.pattern(candidate, fwhm=fwhm)
        _pattern_panel(axes[0], diffractometer, truth_pattern, pattern, f"t = {value:.3g}")
        axes[0].set_title(f"structural distance {structural_distance(candidate, truth):.2f} Å",
                          fontsize=9)
        axes[1].plot(walk, walk_cosine, color="k", lw=1)
        axes[1].plot([value], [cosine(pattern, truth_pattern)[0]], "o", color="C3")
        axes[1].set_xlabel("t (0 = truth, 1 = wrong)")
        axes[1].set_ylabel("cosine to the truth")
        axes[1].set_ylim(0, 1.02)

    return Explorer(draw, values, "t (0 = truth, 1 = wrong)", columns=2)


def constrained_retrieval(truth: Crystal, start: Crystal, diffractometer: Diffractometer,
                          steps: int = 100, metric: str = "cosine", fwhm: float = 0.1,
                          frames: int = 13) -> Explorer:
    """Adam from ``start`` towards ``truth``'s pattern, unconstrained (P1) and constrained to
    the truth's crystal family; the integer slider steps through the evaluations (1 to
    ``steps``), its frames densest over the first ones, where the loss changes fastest."""
    from xrdcore.optimize.core import optimize
    from xrdcore.structure.parametrize import crystal_family, p1

    target = diffractometer.pattern(truth, fwhm=fwhm)
    runs = {}
    for name, parametrization in [("P1", p1(start)), ("crystal family", crystal_family(
            start, truth)), ]:
        result = optimize(parametrization, start, target, diffractometer, steps=steps,
                          metric=metric, fwhm=fwhm, truth=truth)
        runs[name] = (parametrization, result.trajectory)

    def draw(axes, value, choice):
        parametrization, trajectory = runs[choice]
        index = min(int(value), len(trajectory.loss)) - 1
        evaluations = np.arange(1, len(trajectory.loss) + 1)
        axes[0].semilogy(evaluations, trajectory.loss, color="k", lw=1, label=f"{metric} loss")
        axes[0].semilogy(evaluations, trajectory.lattice_error, color="C2", lw=1,
                         label="lattice error (relative)")
        axes[0].semilogy([index + 1], [trajectory.loss[index]], "o", color="C3")
        axes[0].set_xlabel("evaluation")
        axes[0].set_ylabel("loss; lattice error")
        axes[0].legend(fontsize=9, loc="best")
        crystal = parametrization.crystal(trajectory.params[index])
        _pattern_panel(axes[1], diffractometer, target, diffractometer.pattern(crystal, fwhm=fwhm),
                       f"evaluation {index + 1}")

    # ratio = steps: the step grows in proportion to the evaluation number (geometric spacing)
    values = _at_most(frames,
                      lambda n: np.round(dense_near(1, steps, n, near=1, ratio=steps)).astype(int))
    return Explorer(draw, values, "evaluation", ("P1", "crystal family"), columns=2)


def energy_vs_xrd(offsets: ArrayLike, xrd_loss: ArrayLike, energy: ArrayLike, label: str,
                  metric: str = "cosine", truth: float = 0.0, frames: int = 21) -> Explorer:
    """Move along one direction (``offsets``, named by ``label`` with its unit) and compare
    the XRD loss with the energy (eV/atom) computed at the same points. The slider visits up
    to ``frames`` of the offsets, densest near ``truth`` (the offset of the true structure),
    where the XRD loss's narrow well is."""
    offsets, xrd_loss, energy = (np.asarray(a, dtype=float) for a in (offsets, xrd_loss, energy))
    if not (offsets.shape == xrd_loss.shape == energy.shape and offsets.ndim == 1):
        raise ValueError("offsets, xrd_loss and energy must be 1-D arrays of the same length")

    def draw(axes, value, choice):
        index = int(np.argmin(np.abs(offsets - value)))
        for ax, values, name in [(axes[0], xrd_loss, f"XRD {metric} loss"),
                                 (axes[1], energy, "energy (eV/atom)"), ]:
            ax.plot(offsets, values, color="k", lw=1)
            ax.plot([offsets[index]], [values[index]], "o", color="C3")
            ax.set_ylabel(name)
        axes[0].figure.supxlabel(label, fontsize=10)  # one label under both panels: it is long

    def nearest_offsets(n):
        wanted = dense_near(offsets.min(), offsets.max(), n, near=truth, ratio=WELL_RATIO)
        return offsets[np.argmin(np.abs(offsets[None, :] - wanted[:, None]), axis=1)]

    return Explorer(draw, _at_most(frames, nearest_offsets), label, columns=2)


def measured_landscape(truth: Crystal, diffractometer: Diffractometer, fwhm: float = 0.1,
                       max_strain: float = 0.05, frames: int = 9, seed: int = 0) -> Explorer:
    """Make the target more realistic — a background, a zero shift or counting noise, the
    slider from none (0) to much (1) — and watch the ideal model's loss along a stretch of the
    first lattice vector (±``max_strain``), with its local minima: the pattern the model meets
    (left) and the landscape it descends (right)."""
    from xrdcore.landscape.scans import local_minima, scan
    from xrdcore.study.realism import realistic_target

    nuisances = {  # slider 1 = this target
        "background (≤ 0.5 × peak max)": lambda v: f"background:{0.5 * v:g}",
        "zero shift (≤ 0.1°)": lambda v: f"zero_shift:{0.1 * v:g}",
        "noise (10⁵ → 10 peak counts)": lambda v: f"noise:{10**(5 - 4 * v):g}",
    }
    strains = np.linspace(-max_strain, max_strain, 101)
    direction = lattice_direction(truth, 0)
    ideal = diffractometer.pattern(truth, fwhm=fwhm)

    def draw(axes, value, choice):
        target = realistic_target(truth, diffractometer, nuisances[choice](value), fwhm, seed)
        axes[0].plot(diffractometer.two_theta, 100 * target / target.max(), color="C3", lw=0.7,
                     label="target")
        axes[0].plot(diffractometer.two_theta, ideal, color="C0", lw=0.7, alpha=0.7,
                     label="ideal pattern")
        axes[0].set_xlabel("2θ (degrees)")
        axes[0].set_ylabel("intensity (max 100)")
        axes[0].legend(fontsize=8, loc="upper right")
        loss = scan(truth, direction, strains, target, diffractometer, fwhm=fwhm).loss
        minima = local_minima(loss, tolerance=1e-12)
        axes[1].plot(100 * strains, loss, color="k", lw=1)
        axes[1].plot(100 * strains[minima], loss[minima], "o", mfc="none", color="C3")
        axes[1].set_xlabel("strain of lattice vector a (%)")
        axes[1].set_ylabel("cosine loss, ideal model")
        axes[1].set_title(f"{len(minima)} local minima", fontsize=9)

    return Explorer(draw, np.linspace(0.0, 1.0, frames), "how much (0 = ideal target)",
                    tuple(nuisances), columns=2, panel_size=(5.0, 3.2))
