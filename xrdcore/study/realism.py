"""Realistic synthetic targets for the retrieval study, the joint-refinement remedy, and the
roughness of the landscape on them.

A *target* (the grid dimension :attr:`~xrdcore.study.config.StudyConfig.targets`) is what the
truth's pattern goes through before a run sees it (:func:`realistic_target`):

===============  ==========================================================================
``ideal``        the ideal pattern of the rest of the book (Kα mean, no background, no noise)
``kalpha2``      the Kα1 + Kα2 doublet (pymatgen's wavelengths, ratio ≈ 0.5)
``background``   a smooth Chebyshev background, :data:`BACKGROUND_SHAPE` × ``level`` × peak max
``zero_shift``   every peak moved by a zero error of ``value`` deg (default 0.05°, half a FWHM)
``orientation``  March–Dollase preferred orientation along [001], ratio r (default 0.8, plates)
``noise``        Poisson counts, the largest peak expecting ``value`` counts (default 1000)
``realistic``    all of them: Kα2, background, zero shift, orientation, then ``value`` counts
===============  ==========================================================================

A parameter follows a colon (``"noise:100"``, ``"zero_shift:0.02"``); noise draws use the
task's seed. Two models meet these targets: the ideal one of every other run (remedy
``"none"``: a user who ignores the instrument) and joint refinement (remedy ``"joint"``,
:func:`joint_instrument`): the measurement model of :mod:`xrdcore.measurement`, told what is known
of the instrument (the lines, the peak width, the preferred direction) and refining the rest
(scale, zero shift, a three-term background, the March–Dollase ratio) together with the
structure, within the same budget and from the same start.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xrdcore.diffraction import Diffractometer
from xrdcore.measurement import measured_pattern
from xrdcore.physics.instrument import Instrument, poisson_counts
from xrdcore.structure.crystal import Crystal
from xrdcore.validation import choice, describe, real

#: Target names and the default of their one parameter (None: none).
TARGET_DEFAULTS: dict[str, float | None] = {
    "ideal": None,
    "kalpha2": None,
    "background": 0.1,
    "zero_shift": 0.05,
    "orientation": 0.8,
    "noise": 1000.0,
    "realistic": 1000.0
}
#: Chebyshev coefficients of the background, per unit of ``level`` × the peaks' maximum: highest
#: at low angle, as air scattering and fluorescence are.
BACKGROUND_SHAPE = (1.0, -0.6, 0.2)
#: The nuisances of the "realistic" target besides the noise (and Kα2).
REALISTIC = dict(background=0.1, zero_shift=0.05, orientation=0.8)
#: The preferred direction of the orientation targets (plates normal to c*).
ORIENTATION = (0, 0, 1)
#: Targets measured with the Kα doublet, and targets drawn as counts (their pattern depends on
#: the seed).
DOUBLET = ("kalpha2", "realistic")
NOISY = ("noise", "realistic")
#: What joint refinement varies besides the structure.
JOINT_FREE = ("scale", "zero_shift", "background", "march_dollase")
#: Chebyshev terms of the joint model's background.
JOINT_BACKGROUND_TERMS = 3


def parse_target(target: str) -> tuple[str, float | None]:
    """(name, parameter) of a target such as ``"noise:100"``; ValueError for an unknown name or
    a bad parameter."""
    if not isinstance(target, str):
        raise TypeError(f"a target must be a name such as 'noise:100', got {describe(target)}")
    name, colon, value = target.partition(":")
    choice(name, "target", TARGET_DEFAULTS)
    if TARGET_DEFAULTS[name] is None:
        if colon:
            raise ValueError(f"target {target!r}: {name!r} takes no parameter")
        return name, None
    try:
        parameter = float(value) if value else TARGET_DEFAULTS[name]
    except ValueError:
        raise ValueError(f"target {target!r}: {value!r} is not a number") from None
    # a shift of either sign; no background is a background of level 0; counts and r are > 0
    return name, real(parameter, f"the parameter of target {target!r}",
                      low=None if name == "zero_shift" else 0, low_open=name != "background")


def noisy(target: str) -> bool:
    """Whether a target's pattern depends on the seed (a noise draw)."""
    return parse_target(target)[0] in NOISY


def target_instrument(target: str, fwhm: float, peak_max: float) -> Instrument:
    """The instrument that makes ``target`` from the truth (noise aside), Gaussian peaks of
    ``fwhm`` deg; ``peak_max`` (the ideal pattern's maximum) sets the background's level."""
    name, value = parse_target(target)
    settings = dict(REALISTIC) if name == "realistic" else {}
    if value is not None and name in ("background", "zero_shift", "orientation"):
        settings[name] = value
    instrument = Instrument.ideal(fwhm, kalpha2=name in DOUBLET, orientation=ORIENTATION)
    if "background" in settings:
        level = settings["background"] * peak_max
        instrument = replace(instrument, background=tuple(level * c for c in BACKGROUND_SHAPE))
    return replace(instrument, zero_shift=settings.get("zero_shift", 0.0),
                   march_dollase=settings.get("orientation", 1.0))


def realistic_target(truth: Crystal, diffractometer: Diffractometer, target: str, fwhm: float,
                     seed: int = 0) -> np.ndarray:
    """The pattern a run is given for ``target``: the truth measured with
    :func:`target_instrument`, as Poisson counts for "noise" and "realistic" (seeded)."""
    name, value = parse_target(target)
    ideal = diffractometer.pattern(truth, fwhm=fwhm, normalize=False)
    if name == "ideal":
        return ideal
    instrument = target_instrument(target, fwhm, float(ideal.max()))
    pattern = measured_pattern(truth, diffractometer, instrument)
    if name in NOISY:
        assert value is not None  # both have a default count
        return poisson_counts(pattern, value, seed)
    return pattern


def joint_instrument(target: str, fwhm: float) -> Instrument:
    """The joint model's start: what is known of the instrument for ``target`` (its lines, the
    peak width, the preferred direction), every refined setting at its neutral value."""
    name, _ = parse_target(target)
    return Instrument.ideal(fwhm, kalpha2=name in DOUBLET, orientation=ORIENTATION,
                            background=(0.0, ) * JOINT_BACKGROUND_TERMS)
