"""Answer checks for the book's exercises: specific feedback, not just right or wrong.

Every check computes the expected answer with xrdcore itself (never a stored number),
recognises the usual slips (θ instead of 2θ, radians instead of degrees, …) and says
which one it sees. Each returns a :class:`Feedback`, which prints as a sentence and is
truthy when the answer is right, so a solution cell can ``assert`` it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import Diffractometer
from xrdcore.physics.scattering import bragg_two_theta, lorentz_polarization
from xrdcore.structure.crystal import Crystal

#: Intensity below this fraction of the strongest reflection counts as systematically absent.
ABSENT_FRACTION = 1e-8


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str

    def __bool__(self) -> bool:
        return self.correct

    def __str__(self) -> str:
        return ("✔ " if self.correct else "✘ ") + self.message

    def _repr_markdown_(self) -> str:
        return f"**{'Correct' if self.correct else 'Not yet'}:** {self.message}"


def _unanswered(answer: Any) -> Feedback | None:
    """Feedback for an answer still left as the ``...`` of a handed-out notebook, else None."""
    if answer is Ellipsis:
        return Feedback(False,
                        "no answer yet: replace the ... with your answer and run the cell again.")
    return None


def _number(answer: Any, what: str,
            nonfinite_hint: str) -> tuple[float, None] | tuple[None, Feedback]:
    """``(value, None)`` for a finite number, else ``(None, Feedback)`` saying what is wrong."""
    if (missing := _unanswered(answer)) is not None:
        return None, missing
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return None, Feedback(False, f"expected {what}, got {answer!r}")
    if not np.isfinite(value):
        return None, Feedback(False, f"the answer is {value}; {nonfinite_hint}")
    return value, None


def check_value(answer: Any, expected: float, rel: float = 1e-3, unit: str = "",
                slips: Mapping[str, float] | None = None) -> Feedback:
    """Compare a number with the expected one (relative tolerance ``rel``).

    ``slips`` maps a description of a common mistake to the value that mistake produces;
    if the answer matches one, the feedback names it.
    """
    value, problem = _number(answer, f"a number{f' in {unit}' if unit else ''}",
                             "check for a division by zero or arcsin of a number > 1")
    if problem is not None:
        return problem
    assert value is not None  # _number gives a value whenever it finds no problem
    unit_text = f" {unit}" if unit else ""
    if np.isclose(value, expected, rtol=rel, atol=0):
        return Feedback(True, f"{value:.6g}{unit_text} agrees with {expected:.6g}{unit_text}.")
    for mistake, wrong_value in (slips or {}).items():
        if np.isclose(value, wrong_value, rtol=rel, atol=0):
            return Feedback(False, f"{value:.6g}{unit_text} is what you get if you {mistake}.")
    if expected == 0:
        return Feedback(False, f"{value:.6g}{unit_text} should be 0.")
    relation = "too large" if value > expected else "too small"
    return Feedback(False,
                    f"{value:.6g}{unit_text} is {relation} by {abs(value / expected - 1):.2%}.")


def check_bragg_two_theta(answer: Any, d_spacing: float,
                          wavelength: str | float = "CuKa") -> Feedback:
    """Check 2θ (deg) of a reflection with spacing ``d_spacing`` (Å)."""
    expected = float(bragg_two_theta(d_spacing, wavelength))
    theta = np.radians(expected / 2)
    slips = {
        "report θ instead of 2θ": expected / 2,
        "leave the angle in radians": 2 * theta,
        "report θ in radians": theta
    }
    return check_value(answer, expected, rel=1e-4, unit="°", slips=slips)


def check_absent_reflections(answer: Any, crystal: Crystal, candidates: Iterable[Iterable[int]],
                             wavelength: str | float = "CuKa") -> Feedback:
    """Check which of ``candidates`` (list of hkl) are systematically absent for ``crystal``."""
    if (unanswered := _unanswered(answer)) is not None:
        return unanswered
    asked = [tuple(int(i) for i in hkl) for hkl in candidates]
    try:
        given = {tuple(int(i) for i in hkl) for hkl in answer}
    except (TypeError, ValueError):
        return Feedback(False,
                        f"expected a list of (h, k, l) tuples, e.g. [(1, 0, 0)], got {answer!r}")
    unknown = given - set(asked)
    if unknown:
        return Feedback(False,
                        f"{sorted(unknown)} is not among the reflections asked about: {asked}")
    refl = Diffractometer(wavelength, (0.0, 179.9)).reflections(crystal)
    intensity = {tuple(h): i for h, i in zip(refl.hkl, refl.intensity)}
    strongest = refl.intensity.max()

    def absent(hkl):
        value = intensity.get(hkl, intensity.get(tuple(-i for i in hkl)))
        if value is None:
            raise ValueError(f"reflection {hkl} is beyond the limiting sphere for this wavelength")
        return value < ABSENT_FRACTION * strongest

    expected = {hkl for hkl in asked if absent(hkl)}
    if given == expected:
        return Feedback(True, f"absent: {sorted(expected)}; the others scatter.")
    missing, extra = sorted(expected - given), sorted(given - expected)
    parts = []
    if missing:
        parts.append(f"{missing} {'is' if len(missing) == 1 else 'are'} absent too "
                     "(the structure factor sums to zero)")
    if extra:
        parts.append(f"{extra} {'does' if len(extra) == 1 else 'do'} scatter (|F|² > 0)")
    return Feedback(False, "; ".join(parts) + ".")


def check_lorentz_polarization_ratio(answer: Any, two_theta_low: float,
                                     two_theta_high: float) -> Feedback:
    """Check LP(2θ_low) / LP(2θ_high)."""
    low, high = lorentz_polarization([two_theta_low, two_theta_high])
    slips = {
        "invert the ratio": high / low,
        "use θ where the formula wants 2θ": float(
            np.divide(*lorentz_polarization([two_theta_low / 2, two_theta_high / 2])))
    }
    return check_value(answer, low / high, rel=1e-3, slips=slips)


def check_array(answer: Any, expected: ArrayLike, atol: float, what: str = "array") -> Feedback:
    """Compare an array with the expected one within an absolute tolerance; name the components
    that differ."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    try:
        value = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return Feedback(False, f"expected a numeric {what}, got {answer!r}")
    expected = np.asarray(expected, dtype=float)
    if value.shape != expected.shape:
        return Feedback(False, f"the {what} has shape {value.shape}, expected {expected.shape}")
    wrong = np.flatnonzero(~np.isclose(value, expected, rtol=0, atol=atol))
    if len(wrong) == 0:
        return Feedback(True, f"every component of the {what} agrees within {atol:.1e}.")
    index = np.unravel_index(wrong[0], value.shape)
    return Feedback(
        False,
        f"{len(wrong)} component(s) of the {what} differ, e.g. at {tuple(int(i) for i in index)}: "
        f"{value[index]:.6g} instead of {expected[index]:.6g}.")


def check_similarity(answer: Any, pattern: ArrayLike, target: ArrayLike, metric: str,
                     two_theta: ArrayLike | None = None) -> Feedback:
    """Check a metric value (as the metric defines it, not as a loss) between two patterns."""
    from xrdcore.similarity import get_metric

    function = get_metric(metric).function
    expected, _ = function(pattern, target, two_theta)
    slips: dict[str, float] = {}
    if metric != "wasserstein":
        swapped, _ = function(target, pattern, two_theta)
        if not np.isclose(swapped, expected, rtol=1e-9):
            slips["swap the simulated and the target pattern"] = swapped
    slips["report the loss 1 − S instead of S"] = 1 - expected
    return check_value(answer, expected, rel=1e-6, slips=slips)


def similarity_basin(crystal: Crystal, diffractometer: Diffractometer, fwhm: float, metric: str,
                     level: float) -> float:
    """Smallest isotropic strain (%) > 0 at which the metric against the unstrained pattern first
    falls below ``level``."""
    from xrdcore.similarity import get_metric

    function = get_metric(metric).function
    grid = diffractometer.two_theta
    target = diffractometer.pattern(crystal, fwhm=fwhm)

    def similarity_at(percent):
        strained = crystal.replace(lattice=crystal.lattice * (1 + percent / 100))
        return function(diffractometer.pattern(strained, fwhm=fwhm), target, grid)[0]

    strains = np.linspace(0, 10, 2001)
    below = next((s for s in strains if similarity_at(s) < level), None)
    if below is None:
        return np.inf
    low, high = below - strains[1], below
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if similarity_at(middle) >= level else (low, middle)
    return 0.5 * (low + high)


def check_similarity_basin(answer: Any, crystal: Crystal, diffractometer: Diffractometer,
                           fwhm: float, metric: str = "cosine", level: float = 0.5) -> Feedback:
    """Check the strain (%) at which the similarity first drops below ``level`` (to 0.02 %
    absolute)."""
    expected = similarity_basin(crystal, diffractometer, fwhm, metric, level)
    value, problem = _number(answer, "a strain in %", "check for a division by zero")
    if problem is not None:
        return problem
    assert value is not None  # _number gives a value whenever it finds no problem
    if abs(value - expected) <= 0.02:
        return Feedback(True, f"{value:.3f} % agrees with {expected:.3f} %.")
    if abs(value - expected / 100) <= 2e-4:
        return Feedback(
            False, f"{value} looks like a fraction; give the strain in percent ({expected:.3f} %).")
    side = ("past the first drop: look for the *first* strain below the level"
            if value > expected else "too early")
    return Feedback(
        False,
        f"{value:.3f} % is {side}; the similarity first falls below {level} at another strain.")


def check_bragg_slope(answer: Any, a: float, hkl: ArrayLike = (1, 0, 0),
                      wavelength: str | float = "CuKa") -> Feedback:
    """Check d(2θ)/da in degrees per Å for reflection ``hkl`` of a cubic cell with edge ``a``
    (Å)."""
    d_of = lambda edge: edge / np.sqrt(np.sum(np.square(hkl)))  # noqa: E731
    step = 1e-6 * a
    expected = float(
        (bragg_two_theta(d_of(a + step), wavelength) - bragg_two_theta(d_of(a - step), wavelength))
        / (2 * step))
    slips = {
        "leave the derivative in radians": np.radians(expected),
        "drop the minus sign": -expected,
        "differentiate θ instead of 2θ": expected / 2
    }
    return check_value(answer, expected, rel=1e-5, unit="°/Å", slips=slips)


def check_lattice_retrieval(answer: Any, crystal: Crystal, strain: float, seed: int, method: str,
                            steps: int = 200) -> Feedback:
    """Check the final cosine loss of a lattice-only retrieval of ``crystal`` from a seeded strain
    (Cu Kα 10–90°, FWHM 0.1°); names the slip of running another optimiser."""
    from xrdcore.optimize.core import METHODS, optimize
    from xrdcore.structure.parametrize import lattice_only
    from xrdcore.structure.perturb import perturb

    _, problem = _number(answer, "a number",
                         "check for a division by zero or arcsin of a number > 1")
    if problem is not None:  # the same feedback check_value gives, without running the retrievals
        return problem
    diffractometer = Diffractometer("CuKa", (10, 90))
    target = diffractometer.pattern(crystal, fwhm=0.1)
    start = perturb(crystal, strain=strain, seed=seed)

    def final_loss(name):
        return optimize(lattice_only(start), start, target, diffractometer, method=name,
                        steps=steps, metric="cosine", fwhm=0.1).loss

    slips = {
        f"run {other!r} instead of {method!r}": final_loss(other)
        for other in METHODS if other != method
    }
    return check_value(answer, final_loss(method), rel=1e-6, slips=slips)


def coincidence_scale(crystal: Crystal, moving_hkl: ArrayLike, fixed_hkl: ArrayLike) -> float:
    """The isotropic scale factor s of ``crystal``'s lattice that puts the scaled cell's
    ``moving_hkl`` reflection exactly on the unscaled cell's ``fixed_hkl`` reflection."""
    reciprocal = np.linalg.inv(np.asarray(crystal.lattice, dtype=float)).T
    d_moving, d_fixed = (1 / np.linalg.norm(np.asarray(hkl, dtype=float) @ reciprocal)
                         for hkl in (moving_hkl, fixed_hkl))
    return float(d_fixed / d_moving)  # d scales with the cell: s · d_moving = d_fixed


def check_coincidence_scale(answer: Any, crystal: Crystal, moving_hkl: ArrayLike,
                            fixed_hkl: ArrayLike) -> Feedback:
    """Check the isotropic scale factor s of ``crystal``'s lattice that puts the scaled cell's
    ``moving_hkl`` reflection exactly on the unscaled cell's ``fixed_hkl`` reflection."""
    expected = coincidence_scale(crystal, moving_hkl, fixed_hkl)
    slips = {
        "invert the ratio (scale the fixed reflection instead)": 1 / expected,
        "compare squared d-spacings": expected**2,
        "give the strain s − 1 instead of the scale factor s": expected - 1
    }
    return check_value(answer, expected, rel=1e-5, slips=slips)


def energy_minimum_strain(crystal: Crystal, vector: int, calc: Any = None) -> float:
    """Stretch (%) of lattice vector ``vector`` at which the energy is lowest, by a bounded
    Brent search within ±10 % (a different route from a sampled scan)."""
    from scipy.optimize import minimize_scalar

    from xrdcore.energy import calculator, energy
    from xrdcore.landscape.directions import lattice_direction

    key = ("energy_minimum_strain", vector, calc) if calc is None or isinstance(calc, str) else None
    if key in crystal.derived:
        return crystal.derived[key]
    calc = calculator(calc)
    step = lattice_direction(crystal, vector).d_lattice
    found = minimize_scalar(
        lambda t: energy(crystal.replace(lattice=crystal.lattice + t * step), calc),
        bounds=(-0.1, 0.1), method="bounded", options={"xatol": 1e-4})
    if key is not None:  # named calculators are fixed, so the answer can be remembered
        crystal.derived[key] = 100 * float(found.x)
    return 100 * float(found.x)


def check_energy_minimum(answer: Any, crystal: Crystal, vector: int = 0, calc: Any = None,
                         tolerance: float = 0.15) -> Feedback:
    """Check the stretch (%) of lattice vector ``vector`` at which the energy (default CHGNet)
    is lowest, to ``tolerance`` percentage points."""
    expected = energy_minimum_strain(crystal, vector, calc)
    value, problem = _number(answer, "a strain in %", "check the parabola's denominator")
    if problem is not None:
        return problem
    assert value is not None  # _number gives a value whenever it finds no problem
    if abs(value - expected) <= tolerance:
        return Feedback(
            True,
            f"{value:+.3f} % agrees with {expected:+.3f} % (a bounded line search on the energy).")
    if abs(100 * value - expected) <= tolerance:
        return Feedback(
            False,
            f"{value:+.4f} looks like a fraction; give the strain in percent ({expected:+.3f} %).")
    if abs(value + expected) <= tolerance:
        return Feedback(
            False, f"{value:+.3f} % has the wrong sign: the energy is lowest at {expected:+.3f} %.")
    if abs(value) <= tolerance:
        return Feedback(
            False, "0 % is the experimental cell, where the XRD loss is lowest; "
            "the potential's minimum lies elsewhere.")
    if abs(value - round(value)) < 1e-6:
        return Feedback(
            False, f"{value:+.0f} % looks like the lowest sample of a 1 % grid; "
            "refine it with the parabola through it and its neighbours.")
    side = "too large" if value > expected else "too small"
    return Feedback(False,
                    f"{value:+.3f} % is {side} by {abs(value - expected):.2f} percentage points.")


def bulk_modulus(crystal: Crystal, calc: Any = None, relax: bool = True) -> float:
    """Bulk modulus (GPa) at the energy minimum (``relax=True``) or at ``crystal`` itself:
    B = N E''(ε) / (9 V) for an isotropic strain ε (each lattice vector scaled by 1 + ε,
    E in eV per atom, V in Å³), from a quadratic fit over ε in ±1 % (7 points)."""
    from xrdcore.energy import calculator, gigapascal
    from xrdcore.energy import relax as relax_cell
    from xrdcore.landscape.directions import Direction
    from xrdcore.landscape.scans import energy_scan

    calc = calculator(calc)
    if relax:
        crystal = relax_cell(crystal, calc).crystal
    strains = np.linspace(-0.01, 0.01, 7)
    isotropic = Direction(crystal.lattice, np.zeros_like(crystal.frac_coords), "isotropic strain")
    values = energy_scan(crystal, isotropic, strains, calc, slopes=False).loss
    second = 2 * np.polyfit(strains, values, 2)[0]  # eV per atom per strain²
    return float(len(crystal) * second / (9 * crystal.volume) / gigapascal())


def check_bulk_modulus(answer: Any, crystal: Crystal, calc: Any = None,
                       rel: float = 0.02) -> Feedback:
    """Check a bulk modulus (GPa) at the energy minimum of ``crystal`` (default CHGNet)."""
    from xrdcore.energy import gigapascal

    relaxed = bulk_modulus(crystal, calc)
    at_the_cell = ("evaluate the curvature at the experimental cell "
                   "instead of the potential's minimum")
    slips = {
        at_the_cell: bulk_modulus(crystal, calc, relax=False),
        "leave B in eV/Å³ (multiply by 160.2 for GPa)": relaxed * gigapascal(),
        "drop the 1/9 (the volume strain of an isotropic strain ε is 3ε)": 9 * relaxed,
        "take 1/3 instead of 1/9": 3 * relaxed,
        ("divide the energy per atom by the cell's volume "
         "(use the total energy, or the volume per atom)"): relaxed / len(crystal)
    }
    if np.isclose(slips[at_the_cell], relaxed, rtol=rel):
        del slips[at_the_cell]
    return check_value(answer, relaxed, rel=rel, unit="GPa", slips=slips)


def check_recovery_rate(answer: Any, path: Path | str, **where: Any) -> Feedback:
    """Check a recovery rate (a fraction) read from a results CSV for the rows matching
    ``where`` (column name = value as written in the file)."""
    from xrdcore.study.summary import rate_where

    def rate_of(column: str, **selection: Any) -> float:
        row = rate_where(path, column, **selection)
        if row is None:
            raise ValueError(f"no run in {path} has {selection}: nothing to check the rate against")
        return row.rate

    expected = rate_of("recovered", **where)
    slips = {
        "count the loose 'matched' column instead of 'recovered'": rate_of("matched", **where),
        "give a percentage instead of a fraction": 100 * expected
    }
    pooled = {key: value for key, value in where.items() if key != "magnitude"}
    if pooled != where:
        slips["pool all magnitudes instead of the one asked for"] = rate_of("recovered", **pooled)
    return check_value(answer, expected, rel=1e-9, slips=slips)


def check_width_schedule(answer: Any, start_fwhm: float, fwhm: float, stages: int) -> Feedback:
    """Check the peak widths (deg, broadest first) of a continuation from ``start_fwhm`` to
    ``fwhm`` in ``stages`` stages (:func:`xrdcore.optimize.remedies.width_schedule`)."""
    from xrdcore.optimize.remedies import width_schedule

    if (missing := _unanswered(answer)) is not None:
        return missing
    expected = np.array([width for width, _ in width_schedule(start_fwhm, fwhm, stages, stages)])
    try:
        value = np.asarray(answer, dtype=float).ravel()
    except (TypeError, ValueError):
        return Feedback(False, f"expected a list of {stages} widths in degrees, got {answer!r}")
    if len(value) != stages:
        hint = (" (the start and the target are the first and the last stage, not extra ones)"
                if len(value) == stages + 1 else "")
        return Feedback(False,
                        f"expected one width per stage, {stages} in all, got {len(value)}{hint}.")
    if np.allclose(value, expected, rtol=1e-4, atol=0):
        return Feedback(
            True, f"widths {np.round(expected, 4).tolist()}° agree: "
            f"each is the previous one times {expected[1] / expected[0]:.4g}."
            if stages > 1 else "one stage, at the target width.")
    slips = {
        "space the widths evenly (linearly) instead of geometrically": np.linspace(
            start_fwhm, fwhm, stages),
        "list the widths narrowest first: continuation starts broad": expected[::-1],
        ("leave out the target width (geomspace with endpoint=False): "
         "the last stage must be the target"): np.geomspace(start_fwhm, fwhm, stages,
                                                            endpoint=False)
    }
    for mistake, wrong in slips.items():
        if np.allclose(value, wrong, rtol=1e-4, atol=0):
            return Feedback(False, f"that is what you get if you {mistake}.")
    first = int(np.flatnonzero(~np.isclose(value, expected, rtol=1e-4, atol=0))[0])
    return Feedback(
        False, f"stage {first + 1} has width {value[first]:.4g}°, expected {expected[first]:.4g}°.")


def check_broadening_kernel(answer: Any, from_fwhm: float, to_fwhm: float) -> Feedback:
    """Check the FWHM (deg) of the Gaussian that broadens Gaussian peaks of FWHM ``from_fwhm`` to
    ``to_fwhm`` by convolution (:func:`xrdcore.optimize.remedies.broadening_kernel_fwhm`)."""
    from xrdcore.optimize.remedies import broadening_kernel_fwhm

    expected = broadening_kernel_fwhm(from_fwhm, to_fwhm)
    slips = {
        "subtract the widths instead of their squares (Gaussian widths add in quadrature)": to_fwhm
        - from_fwhm,
        "add the squares instead of subtracting them": float(np.hypot(to_fwhm, from_fwhm)),
        "take the target width itself: the measured peaks already have a width": to_fwhm
    }
    return check_value(answer, expected, rel=1e-4, unit="°", slips=slips)


def check_remedy_rate(answer: Any, path: Path | str, remedy: str, kind: str, parametrization: str,
                      magnitude: float) -> Feedback:
    """Check a recovery rate (fraction of runs with ``recovered``) read from a remedies results
    file for one remedy, kind, parametrisation and magnitude; names the usual slips of reading
    the table (another column, pooled groups, another remedy)."""
    from xrdcore.study.summary import rate_where

    def rate(by, column="recovered", **wanted):
        wanted = {
            "remedy": remedy,
            "kind": kind,
            "parametrization": parametrization,
            "magnitude": magnitude,
            **wanted
        }
        found = rate_where(path, column, **{name: wanted[name] for name in by})
        return None if found is None else found.rate

    full = ("remedy", "kind", "parametrization", "magnitude")
    expected = rate(full)
    if expected is None:
        return Feedback(
            False, f"{path} has no runs with remedy {remedy!r}, kind {kind!r}, "
            f"{parametrization!r} at {magnitude:g}.")
    slips = {
        ("count 'matched' (lenient tolerances, which most distorted starts pass) "
         "instead of 'recovered'"): rate(full, "matched"),
        "pool both parametrisations": rate(("remedy", "kind", "magnitude")),
        "pool every magnitude": rate(("remedy", "kind", "parametrization")),
        "read the plain-descent rows (remedy 'none')": rate(full, remedy="none")
    }
    slips = {
        mistake: value
        for mistake, value in slips.items()
        if value is not None and not np.isclose(value, expected)
    }
    return check_value(answer, expected, rel=1e-9, slips=slips)


# ------------------------------------------------------------ course assignments
def check_choice(answer: Any, options: str | Iterable[str] | Mapping[str, str],
                 correct: str | None = None, reasons: Mapping[str, str] | None = None) -> Feedback:
    """Check a multiple-choice answer, a letter given as a string, against ``options`` (the
    letters, e.g. ``"ABCD"``, or a dict letter → statement). Without ``correct`` it only says
    whether the answer is one of the options (the public check of a choice whose right option
    is graded after submission); ``reasons`` maps a wrong option to what it overlooks."""
    if (missing := _unanswered(answer)) is not None:
        return missing
    letters = list(options)
    choice = answer.strip().upper() if isinstance(answer, str) else None
    if choice not in letters:
        return Feedback(
            False, f"expected one of the letters {', '.join(letters)} as a string, "
            f'e.g. "{letters[0]}"; got {answer!r}.')
    if correct is None:
        return Feedback(
            True, f"({choice}) is one of the options; "
            "whether it is the right one is graded after you submit.")
    if choice == correct:
        statement = f" {options[choice]}" if isinstance(options, dict) else ""
        return Feedback(True, f"({choice}) is right.{statement}")
    reason = (reasons or {}).get(choice, "compare it with the values you computed")
    return Feedback(False, f"({choice}) is not what the results show: {reason}.")


def _plotted_lines(figure):
    """``[(axes, x, y), …]`` for every line (``Axes.plot``, ``Axes.errorbar``) and point set
    (``Axes.scatter``) of a Figure, an Axes or a sequence of Axes; None for anything else."""
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure

    if isinstance(figure, Figure):
        axes = list(figure.axes)
    elif isinstance(figure, Axes):
        axes = [figure]
    elif isinstance(figure, (list, tuple, np.ndarray)) and all(
            isinstance(a, Axes) for a in np.ravel(figure)):
        axes = list(np.ravel(figure))
    else:
        return None
    found = []
    for ax in axes:
        data = [(line.get_xdata(), line.get_ydata()) for line in ax.lines]
        data += [
            tuple(np.asarray(c.get_offsets()).T) for c in ax.collections
            if isinstance(c, PathCollection) and len(cast(np.ndarray, c.get_offsets()))
        ]
        for x, y in data:
            try:
                found.append(
                    (ax, np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()))
            except (TypeError, ValueError):
                continue  # dates or categories: not a numeric line
    return found


#: Scale slips of a plotted axis: values 100 × or 0.01 × what is wanted, and what that means.
PER_CENT_SLIPS = ((100, "per cent where fractions are wanted"),
                  (0.01, "fractions where per cent is wanted"))


def _per_cent_slip(drawn: np.ndarray, wanted: np.ndarray,
                   same: Callable[[np.ndarray, np.ndarray], bool]) -> str | None:
    """What the drawn values are in when they are the wanted ones times 100 or 0.01, else None."""
    for factor, unit in PER_CENT_SLIPS:
        if same(drawn, factor * wanted):
            return unit
    return None


def check_line_plot(figure: Any, expected: Mapping[str, tuple[ArrayLike, ArrayLike]],
                    rtol: float = 1e-6, atol: float = 1e-9, labels: bool = True) -> Feedback:
    """Check that a matplotlib figure (or Axes) draws every expected line: ``expected`` maps a
    description to the ``(x, y)`` data its line must have, in any order and any style (a
    marker-only line or a scatter counts). With ``labels`` the Axes drawing them must have an
    x and a y label. Names the usual slips: per cent against fractions, x and y swapped, a line
    with the right positions but other values."""
    if (missing := _unanswered(figure)) is not None:
        return missing
    lines = _plotted_lines(figure)
    if lines is None:
        return Feedback(
            False, "expected a matplotlib Figure (fig, ax = plt.subplots()), "
            f"got {type(figure).__name__}.")
    if not lines:
        return Feedback(False,
                        "the figure draws no lines: plot the data with ax.plot (or ax.scatter).")

    def same(a, b):
        return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol)

    drawn_on = []
    for name, (x, y) in expected.items():
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
        match = next((ax for ax, lx, ly in lines if same(lx, x) and same(ly, y)), None)
        if match is not None:
            drawn_on.append(match)
            continue
        for _, lx, ly in lines:
            if same(lx, y) and same(ly, x):
                return Feedback(False, f"the line for {name} has x and y swapped.")
            if same(ly, y):
                unit = _per_cent_slip(lx, x, same)
                if unit is not None:
                    return Feedback(False, f"the line for {name} has its x values in {unit}.")
                return Feedback(False, f"a line has the y values of {name}, but not its x values.")
            if same(lx, x):
                unit = _per_cent_slip(ly, y, same)
                if unit is not None:
                    return Feedback(False, f"the line for {name} has its y values in {unit}.")
                index = int(np.flatnonzero(~np.isclose(ly, y, rtol=rtol, atol=atol))[0])
                return Feedback(
                    False, f"a line has the x values of {name} but other y values, e.g. "
                    f"{ly[index]:.6g} instead of {y[index]:.6g} at x = {x[index]:.6g}.")
        lengths = sorted({len(lx) for _, lx, _ in lines})
        return Feedback(
            False,
            f"no line draws {name} ({len(x)} points; the figure's lines have {lengths} points).")
    if labels:
        for ax in drawn_on:
            if not ax.get_xlabel().strip() or not ax.get_ylabel().strip():
                return Feedback(
                    False, "the lines are right; now label both axes, with units "
                    "(ax.set_xlabel, ax.set_ylabel).")
    return Feedback(
        True,
        f"the figure draws {', '.join(expected)}" + (", on labelled axes." if labels else "."))


def check_peak_ratio(answer: Any, crystal: Crystal, hkl: ArrayLike, reference_hkl: ArrayLike,
                     diffractometer: Diffractometer) -> Feedback:
    """Check the intensity ratio of the peak holding reflection ``hkl`` to the peak holding
    ``reference_hkl`` in ``crystal``'s stick pattern (symmetry-equivalent reflections merged,
    :meth:`~xrdcore.Diffractometer.peaks`); names the slips of leaving out the multiplicity or the
    Lorentz-polarisation factor, and of inverting the ratio."""
    peaks = diffractometer.peaks(crystal)

    def peak_of(wanted):
        wanted = np.asarray(wanted)
        for index, members in enumerate(peaks.hkls):
            if np.any(np.all(members == wanted, axis=1) | np.all(members == -wanted, axis=1)):
                return index
        raise ValueError(f"no peak of the pattern holds reflection {tuple(wanted)}")

    i, j = peak_of(hkl), peak_of(reference_hkl)
    expected = float(peaks.intensity[i] / peaks.intensity[j])
    lp_i, lp_j = lorentz_polarization(peaks.two_theta[[i, j]])
    single = expected * peaks.multiplicity[j] / peaks.multiplicity[i]
    slips = {
        ("leave out the multiplicity "
         "(how many symmetry-equivalent reflections add up in each peak)"): single,
        "leave out the Lorentz-polarisation factor": expected * lp_j / lp_i,
        "leave out both the multiplicity and the Lorentz-polarisation factor": single * lp_j / lp_i,
        "invert the ratio": 1 / expected
    }
    return check_value(answer, expected, rel=1e-4, slips=slips)


def check_expansion_slope(answer: Any, crystal: Crystal, target: Crystal | ArrayLike,
                          diffractometer: Diffractometer, metric: str = "cosine",
                          fwhm: float = 0.1) -> Feedback:
    """Check dL/dε at ε = 0 for the isotropic expansion A → (1 + ε)A of ``crystal``'s lattice
    rows A, from the adjoint lattice gradient: dL/dε = Σ (∂L/∂A) ⊙ A."""
    from xrdcore.gradients import loss_and_grad

    d_lattice = loss_and_grad(crystal, target, diffractometer, metric=metric, fwhm=fwhm).d_lattice
    lattice = np.asarray(crystal.lattice, dtype=float)
    expected = float(np.sum(d_lattice * lattice))
    slips = {
        "add up ∂L/∂A without weighting each component by the lattice A": float(d_lattice.sum()),
        ("take the trace of (∂L/∂A)·A: the sum runs over matching components, "
         "the trace of (∂L/∂A)·Aᵀ"): float(np.trace(d_lattice @ lattice)),
        "flip the sign": -expected,
        "give the slope per per cent of strain instead of per unit strain": expected / 100
    }
    return check_value(answer, expected, rel=1e-4, slips=slips)


def check_accidental_fraction(answer: Any, candidate: Crystal, truth: Crystal,
                              diffractometer: Diffractometer, fwhm: float = 0.1) -> Feedback:
    """Check the share of ``candidate``'s cosine overlap with ``truth`` that comes from
    accidental reflection pairs (:func:`xrdcore.landscape.overlap.overlap_report`)."""
    from xrdcore.landscape.overlap import cosine_split, overlap_report

    expected = overlap_report(candidate, truth, diffractometer, fwhm).accidental_fraction
    partner_part, accidental_part = cosine_split(candidate, truth, diffractometer, fwhm)
    slips = {
        "give the partner share instead of the accidental one": 1 - expected,
        ("give the accidental part of the cosine itself, "
         "not its share of the cosine"): accidental_part,
        "give a percentage instead of a fraction": 100 * expected
    }
    return check_value(answer, expected, rel=1e-3, slips=slips)


def preferred_candidate(metric: str, candidates: Mapping[str, ArrayLike], target: ArrayLike,
                        two_theta: ArrayLike | None = None) -> str:
    """The name of the candidate pattern (``candidates``: name → pattern) with the lowest
    ``metric`` loss (:func:`xrdcore.similarity.loss`) against ``target``."""
    from xrdcore.similarity import loss

    return min(candidates, key=lambda name: loss(metric, candidates[name], target, two_theta)[0])


def scan_descent_end(offsets: ArrayLike, values: ArrayLike, at: float) -> float:
    """Where descent along a sampled 1-D scan started at ``at`` stops: from the sample nearest
    to ``at``, step to the lower neighbour while one is lower (the walk
    :func:`xrdcore.landscape.scans.basin` makes), and return that sample's offset."""
    offsets = np.asarray(offsets, dtype=float)
    values = np.asarray(values, dtype=float)
    i = int(np.argmin(np.abs(offsets - at)))
    while True:
        lower = [k for k in (i - 1, i + 1) if 0 <= k < len(values) and values[k] < values[i]]
        if not lower:
            return float(offsets[i])
        i = min(lower, key=lambda k: values[k])


def check_scan_basin(answer: Any, offsets: ArrayLike, values: ArrayLike, at: float = 0.0,
                     percent: bool = True) -> Feedback:
    """Check the interval (left, right) around ``at`` from which descent along a sampled scan
    reaches the minimum nearest to ``at`` (:func:`xrdcore.landscape.scans.basin`), in per cent of
    the offsets by default."""
    from xrdcore.landscape.scans import basin

    if (missing := _unanswered(answer)) is not None:
        return missing
    scale = 100 if percent else 1
    unit = " %" if percent else ""
    expected = scale * np.array(basin(offsets, values, at))
    try:
        value = np.asarray(answer, dtype=float).ravel()
    except (TypeError, ValueError):
        return Feedback(False, f"expected the two ends (left, right) as numbers, got {answer!r}")
    if value.shape != (2, ):
        return Feedback(
            False,
            f"expected the two ends (left, right) of the interval, got {value.size} number(s).")
    tolerance = 1e-6 * scale
    if np.allclose(value, expected, rtol=0, atol=tolerance):
        return Feedback(
            True, f"the basin runs from {expected[0]:+.4g}{unit} to {expected[1]:+.4g}{unit}.")
    if np.allclose(value, expected[::-1], rtol=0, atol=tolerance):
        return Feedback(False,
                        "the ends are swapped: give (left, right), the smaller offset first.")
    if percent and np.allclose(value, expected / 100, rtol=0, atol=1e-8):
        return Feedback(False, "those are fractions; give the ends in per cent of strain.")
    side, got, wanted = next((side, got, wanted)
                             for side, got, wanted in zip(("left", "right"), value, expected)
                             if not np.isclose(got, wanted, rtol=0, atol=tolerance))
    direction = "outwards" if abs(got - scale * at) > abs(wanted - scale * at) else "inwards"
    return Feedback(
        False, f"the {side} end {got:+.4g}{unit} lies too far {direction}: the basin ends at the "
        "first sample past which the loss stops rising (a local maximum or the scan's end).")


def rate_comparison(path: Path | str, first: Mapping[str, Any], second: Mapping[str, Any],
                    column: str = "recovered") -> str:
    """How the rate of ``column`` among the runs matching ``first`` compares with that among the
    runs matching ``second`` in a results file, judged by their 95 % Wilson intervals:
    "higher" or "lower" (intervals apart), "indistinguishable" (they overlap) or "both zero"."""
    from xrdcore.study.summary import rate_where

    a, b = rate_where(path, column, **first), rate_where(path, column, **second)
    if a is None or b is None:
        raise ValueError(f"{path} has no runs matching {first if a is None else second}")
    if a.matches == 0 and b.matches == 0:
        return "both zero"
    if a.low > b.high:
        return "higher"
    if a.high < b.low:
        return "lower"
    return "indistinguishable"
