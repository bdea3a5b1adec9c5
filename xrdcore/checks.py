"""Answer checks for the book's exercises: specific feedback, not just right or wrong.

Every check computes the expected answer with xrdcore itself (never a stored number),
recognises the usual slips (θ instead of 2θ, radians instead of degrees, …) and says
which one it sees. Each returns a :class:`Feedback`, which prints as a sentence and is
truthy when the answer is right, so a solution cell can ``assert`` it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crystal import Crystal
from .diffraction import Diffractometer, bragg_two_theta, lorentz_polarization

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


def check_value(answer, expected, rel: float = 1e-3, unit: str = "", slips: dict | None = None) -> Feedback:
    """Compare a number with the expected one (relative tolerance ``rel``).

    ``slips`` maps a description of a common mistake to the value that mistake produces;
    if the answer matches one, the feedback names it.
    """
    try:
        value = float(answer)
    except (TypeError, ValueError):
        return Feedback(False, f"expected a number{f' in {unit}' if unit else ''}, got {answer!r}")
    if not np.isfinite(value):
        return Feedback(False, f"the answer is {value}; check for a division by zero or arcsin of a number > 1")
    unit_text = f" {unit}" if unit else ""
    if np.isclose(value, expected, rtol=rel, atol=0):
        return Feedback(True, f"{value:.6g}{unit_text} agrees with {expected:.6g}{unit_text}.")
    for mistake, wrong_value in (slips or {}).items():
        if np.isclose(value, wrong_value, rtol=rel, atol=0):
            return Feedback(False, f"{value:.6g}{unit_text} is what you get if you {mistake}.")
    relation = "too large" if value > expected else "too small"
    return Feedback(False, f"{value:.6g}{unit_text} is {relation} by {abs(value / expected - 1):.2%}.")


def check_bragg_two_theta(answer, d_spacing: float, wavelength: str | float = "CuKa") -> Feedback:
    """Check 2θ (deg) of a reflection with spacing ``d_spacing`` (Å)."""
    expected = float(bragg_two_theta(d_spacing, wavelength))
    theta = np.radians(expected / 2)
    slips = {
        "report θ instead of 2θ": expected / 2,
        "leave the angle in radians": 2 * theta,
        "report θ in radians": theta,
    }
    return check_value(answer, expected, rel=1e-4, unit="°", slips=slips)


def check_absent_reflections(answer, crystal: Crystal, candidates, wavelength: str | float = "CuKa") -> Feedback:
    """Check which of ``candidates`` (list of hkl) are systematically absent for ``crystal``."""
    candidates = [tuple(int(i) for i in hkl) for hkl in candidates]
    given = {tuple(int(i) for i in hkl) for hkl in answer}
    unknown = given - set(candidates)
    if unknown:
        return Feedback(False, f"{sorted(unknown)} is not among the reflections asked about: {candidates}")
    refl = Diffractometer(wavelength, (0.0, 179.9)).reflections(crystal)
    intensity = {tuple(h): i for h, i in zip(refl.hkl, refl.intensity)}
    strongest = refl.intensity.max()

    def absent(hkl):
        value = intensity.get(hkl, intensity.get(tuple(-i for i in hkl)))
        if value is None:
            raise ValueError(f"reflection {hkl} is beyond the limiting sphere for this wavelength")
        return value < ABSENT_FRACTION * strongest

    expected = {hkl for hkl in candidates if absent(hkl)}
    if given == expected:
        return Feedback(True, f"absent: {sorted(expected)}; the others scatter.")
    missing, extra = sorted(expected - given), sorted(given - expected)
    parts = []
    if missing:
        parts.append(f"{missing} {'is' if len(missing) == 1 else 'are'} absent too (the structure factor sums to zero)")
    if extra:
        parts.append(f"{extra} {'does' if len(extra) == 1 else 'do'} scatter (|F|² > 0)")
    return Feedback(False, "; ".join(parts) + ".")


def check_lorentz_polarization_ratio(answer, two_theta_low: float, two_theta_high: float) -> Feedback:
    """Check LP(2θ_low) / LP(2θ_high)."""
    low, high = lorentz_polarization([two_theta_low, two_theta_high])
    slips = {"invert the ratio": high / low, "use θ where the formula wants 2θ": float(np.divide(*lorentz_polarization([two_theta_low / 2, two_theta_high / 2])))}
    return check_value(answer, low / high, rel=1e-3, slips=slips)
