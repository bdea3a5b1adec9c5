"""Interactive explorers for the book's chapters.

Each explorer is a figure driven by one slider and, optionally, a choice between a few
variants. With a live Jupyter kernel it is an ipywidgets control that recomputes on every
move. On the static site there is no kernel, so the same explorer renders as a matplotlib
animation (``to_jshtml``) of precomputed frames: a working slider in plain HTML and
JavaScript, with one row of panels per variant. The book build sets the environment
variable ``XRDCORE_STATIC_WIDGETS=1`` (see ``book/_ext/static_widgets.py``); anything else
gets the live widget.

Explorers (chapters only call these):

* :func:`peak_overlap` — stretch a lattice vector or move an atom; peaks slide and merge and
  the cosine similarity splits into partner and accidental parts;
* :func:`ill_posed_pair` — walk from the truth to a wrong structure with a near-identical
  pattern;
* :func:`constrained_retrieval` — step an optimisation, with and without the crystal-family
  constraint;
* :func:`energy_vs_xrd` — move along one direction and watch the XRD loss and the energy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .crystal import Crystal
from .diffraction import Diffractometer
from .landscape import atom_direction, displaced, lattice_direction, path_direction
from .overlap import cosine_split
from .similarity import cosine

#: Set to "1" (by the book build) to render explorers as kernel-free animations.
STATIC_ENVIRONMENT = "XRDCORE_STATIC_WIDGETS"
#: The static animations' frames: figures shrunk by STATIC_SCALE and drawn at STATIC_DPI, so
#: that text is larger for the same pixels (a page's frames stay ~1 MB).
STATIC_SCALE = 0.72
STATIC_DPI = 88


def static_mode() -> bool:
    """True when explorers should render as precomputed animations (the static site)."""
    return os.environ.get(STATIC_ENVIRONMENT) == "1"


@dataclass
class Explorer:
    """A figure of ``columns`` panels per choice, redrawn by ``draw(axes, value, choice)``.

    ``values`` are the slider's positions (the animation's frames on the static site);
    ``label`` names the slider, with its unit.
    """

    draw: Callable
    values: np.ndarray
    label: str
    choices: tuple = ("",)
    columns: int = 1
    panel_size: tuple = (4.6, 3.0)

    def _figure(self, rows: int, dpi: float = 100, scale: float = 1.0):
        import matplotlib.pyplot as plt

        width, height = self.panel_size
        size = (scale * width * self.columns, scale * height * rows)
        fig, axes = plt.subplots(rows, self.columns, figsize=size, dpi=dpi, squeeze=False, layout="constrained")
        return fig, axes

    def figure(self, value: float, choice: str | None = None):
        """The figure (one row of panels) at one slider value and choice."""
        fig, axes = self._figure(1)
        self.draw(list(axes[0]), float(value), self.choices[0] if choice is None else choice)
        return fig

    def animation(self):
        """A matplotlib animation: one frame per value, one row of panels per choice."""
        import matplotlib.pyplot as plt
        from matplotlib.animation import FuncAnimation

        fig, axes = self._figure(len(self.choices), dpi=STATIC_DPI, scale=STATIC_SCALE)

        def update(frame):
            for row, choice in zip(axes, self.choices):
                for ax in row:
                    ax.clear()
                self.draw(list(row), float(self.values[frame]), choice)
                if choice:  # the variant's name leads the first panel's title
                    title = row[0].get_title()
                    row[0].set_title(f"{choice}: {title}" if title else choice, fontsize=8)
            fig.suptitle(f"{self.label} = {self.values[frame]:.3g}", fontsize=9)
            return []

        animation = FuncAnimation(fig, update, frames=len(self.values), blit=False)
        plt.close(fig)
        return animation

    def static(self):
        """Kernel-free HTML: the animation with its own slider and buttons."""
        from IPython.display import HTML

        return HTML(self.animation().to_jshtml(fps=4, default_mode="once"))

    def live(self):
        """ipywidgets: a slider (and a toggle between the choices) that redraws the figure."""
        import ipywidgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        step = float(np.min(np.diff(self.values))) if len(self.values) > 1 else 1.0
        slider = ipywidgets.FloatSlider(
            value=float(self.values[len(self.values) // 2]), min=float(self.values[0]), max=float(self.values[-1]),
            step=step, description=self.label, style={"description_width": "initial"}, continuous_update=False,
            layout=ipywidgets.Layout(width="95%"),
        )
        toggle = ipywidgets.ToggleButtons(options=list(self.choices), value=self.choices[0])
        output = ipywidgets.Output()

        def redraw(_=None):
            with output:
                output.clear_output(wait=True)
                fig = self.figure(slider.value, toggle.value)
                display(fig)
                plt.close(fig)

        slider.observe(redraw, names="value")
        toggle.observe(redraw, names="value")
        redraw()
        controls = [slider] + ([toggle] if len(self.choices) > 1 else [])
        return ipywidgets.VBox(controls + [output])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.static() if static_mode() else self.live())


def _pattern_panel(ax, diffractometer, truth_pattern, pattern, label, fwhm):
    ax.plot(diffractometer.two_theta, truth_pattern, color="C0", lw=0.8, label="truth")
    ax.plot(diffractometer.two_theta, -pattern, color="C3", lw=0.8, label=f"{label} (drawn down)")
    ax.set_xlabel("2θ (degrees)")
    ax.set_ylabel("intensity (max 100)")
    ax.set_ylim(-105, 105)
    ax.legend(fontsize=7, loc="lower right")


def peak_overlap(truth: Crystal, diffractometer: Diffractometer, vector: int = 0, atom: int = 0, max_strain: float = 0.05,
                 max_shift: float = 0.5, fwhm: float = 0.1, frames: int = 15) -> Explorer:
    """Stretch lattice vector ``vector`` by up to ±``max_strain`` or move atom ``atom`` along x
    by up to ±``max_shift`` Å (slider from −1 to 1 = the whole range); shows both patterns
    and the cosine similarity split into partner and accidental parts."""
    moves = {
        f"stretch lattice vector {'abc'[vector]} (±{100 * max_strain:g} %)": (lattice_direction(truth, vector), max_strain),
        f"move atom {truth.species[atom]}{atom} along x (±{max_shift:g} Å)": (atom_direction(truth, atom, 0), max_shift),
    }
    truth_pattern = diffractometer.pattern(truth, fwhm=fwhm)

    def draw(axes, value, choice):
        direction, scale = moves[choice]
        candidate = displaced(truth, [direction], [value * scale])
        partners, accidents = cosine_split(candidate, truth, diffractometer, fwhm=fwhm)
        _pattern_panel(axes[0], diffractometer, truth_pattern, diffractometer.pattern(candidate, fwhm=fwhm), "moved", fwhm)
        axes[0].set_title(f"cosine {partners + accidents:.3f} = partners {partners:.3f} + accidents {accidents:.3f}", fontsize=8)

    return Explorer(draw, np.linspace(-1, 1, frames), "move (fraction of its range)", tuple(moves), panel_size=(9.0, 3.0))


def ill_posed_pair(truth: Crystal, wrong: Crystal, diffractometer: Diffractometer, fwhm: float = 0.1, frames: int = 15) -> Explorer:
    """Walk in a straight line (lattice and fractional coordinates, nearest images) from the
    truth (0) to a wrong structure (1): its pattern against the truth's, and the cosine
    similarity along the whole walk."""
    from .structsim import structural_distance

    direction = path_direction(truth, wrong)
    truth_pattern = diffractometer.pattern(truth, fwhm=fwhm)
    walk = np.linspace(0, 1, 101)
    walk_cosine = [cosine(diffractometer.pattern(displaced(truth, [direction], [t]), fwhm=fwhm), truth_pattern)[0] for t in walk]

    def draw(axes, value, choice):
        candidate = displaced(truth, [direction], [value])
        pattern = diffractometer.pattern(candidate, fwhm=fwhm)
        _pattern_panel(axes[0], diffractometer, truth_pattern, pattern, f"t = {value:.2f}", fwhm)
        axes[0].set_title(f"structural distance {structural_distance(candidate, truth):.2f} Å", fontsize=8)
        axes[1].plot(walk, walk_cosine, color="k", lw=1)
        axes[1].plot([value], [cosine(pattern, truth_pattern)[0]], "o", color="C3")
        axes[1].set_xlabel("position on the walk (0 = truth, 1 = wrong structure)")
        axes[1].set_ylabel("cosine similarity to the truth")
        axes[1].set_ylim(0, 1.02)

    return Explorer(draw, np.linspace(0, 1, frames), "t (0 = truth, 1 = wrong)", columns=2)


def constrained_retrieval(truth: Crystal, start: Crystal, diffractometer: Diffractometer, steps: int = 100, metric: str = "cosine",
                          fwhm: float = 0.1, frames: int = 13) -> Explorer:
    """Adam from ``start`` towards ``truth``'s pattern, unconstrained (P1) and constrained to
    the truth's crystal family; the slider steps through the evaluations."""
    from .optimize import optimize
    from .parametrize import crystal_family, p1

    target = diffractometer.pattern(truth, fwhm=fwhm)
    runs = {}
    for name, parametrization in [("P1", p1(start)), ("crystal family", crystal_family(start, truth))]:
        result = optimize(parametrization, start, target, diffractometer, steps=steps, metric=metric, fwhm=fwhm, truth=truth)
        runs[name] = (parametrization, result.trajectory)

    def draw(axes, value, choice):
        parametrization, trajectory = runs[choice]
        index = min(int(round(value)), len(trajectory.loss) - 1)
        evaluations = np.arange(1, len(trajectory.loss) + 1)
        axes[0].semilogy(evaluations, trajectory.loss, color="k", lw=1, label=f"{metric} loss")
        axes[0].semilogy(evaluations, trajectory.lattice_error, color="C2", lw=1, label="lattice error (relative)")
        axes[0].semilogy([index + 1], [trajectory.loss[index]], "o", color="C3")
        axes[0].set_xlabel("evaluation")
        axes[0].set_ylabel("loss; lattice error")
        axes[0].legend(fontsize=7)
        crystal = parametrization.crystal(trajectory.params[index])
        _pattern_panel(axes[1], diffractometer, target, diffractometer.pattern(crystal, fwhm=fwhm), f"evaluation {index + 1}", fwhm)

    return Explorer(draw, np.linspace(0, steps - 1, frames).round(), "evaluation", ("P1", "crystal family"), columns=2)


def energy_vs_xrd(offsets, xrd_loss, energy, label: str, metric: str = "cosine") -> Explorer:
    """Move along one direction (``offsets``, named by ``label`` with its unit) and compare
    the XRD loss with the energy (eV/atom) computed at the same points."""
    offsets, xrd_loss, energy = (np.asarray(a, dtype=float) for a in (offsets, xrd_loss, energy))
    if not (offsets.shape == xrd_loss.shape == energy.shape and offsets.ndim == 1):
        raise ValueError("offsets, xrd_loss and energy must be 1-D arrays of the same length")

    def draw(axes, value, choice):
        index = int(np.argmin(np.abs(offsets - value)))
        for ax, values, name in [(axes[0], xrd_loss, f"XRD {metric} loss"), (axes[1], energy, "energy (eV/atom)")]:
            ax.plot(offsets, values, color="k", lw=1)
            ax.plot([offsets[index]], [values[index]], "o", color="C3")
            ax.set_xlabel(label)
            ax.set_ylabel(name)

    return Explorer(draw, offsets, label, columns=2)
