"""Exact gradients of a pattern-similarity loss with respect to the lattice and the atoms.

The forward chain, for lattice rows A (Å) and fractional coordinates x (N, 3):

    A → G* = (A Aᵀ)⁻¹ → |g_h| = sqrt(hᵀ G* h) → (2θ_h, s_h, LP_h)
    x → F(h) = Σ_j occ_j f_j(s_h) exp(2πi h·x_j) → I_h = 2|F(h)|² LP_h
    (2θ_h, I_h) → y(2θ_k) = Σ_h I_h P(2θ_k − 2θ_h; w) → loss L(y, target)

is reversed by hand-written adjoint kernels (``*_adjoint`` in :mod:`xrdcore.kernels.cpu`),
no autodiff framework: dL/dy from the metric (:mod:`xrdcore.similarity`), then
dL/dI_h and dL/d2θ_h (profile adjoint), then dL/dx and dL/d|g_h| (intensity adjoint),
and finally, with S = Σ_h (dL/d|g_h|)/(2|g_h|) h hᵀ,

    dL/dG* = S,   dL/d(A Aᵀ) = −G* S G*,   dL/dA = −2 G* S G* A.

Cost O(N_hkl · N_atoms + N_hkl · window points), like the forward pass. Gradients are taken
with the fractional coordinates held fixed while the lattice moves, and with a fixed peak
width (Caglioti widths are differentiated by :mod:`xrdcore.measurement`, with the rest of the
instrument).

For many structures of one composition at once (CPU in parallel, or a GPU) use
:class:`xrdcore.batch.BatchLoss`.

Reflection sets and a moving lattice: each call enumerates the reflections that can touch
the grid at the *current* lattice, so none is missed. A fixed set reused across steps
(:class:`ReflectionSet`) is enumerated with a relative margin m and is complete for every
lattice A' whose transformation T = A'⁻¹A has singular values in [1/(1+m), 1/(1−m)]
(then |g'| = |g Tᵀ| cannot cross the margin); :meth:`ReflectionSet.covers` checks this, and a
call with a set that no longer covers the lattice is a ValueError (not a
:class:`~xrdcore.validation.StructureError`: the structure is fine, the set is stale).

Every argument is checked before a kernel runs (:func:`check_target`, the profile settings of
:meth:`~xrdcore.diffraction.Diffractometer.profile_setup`, the reflection guards of
:func:`~xrdcore.diffraction.check_reflection_work`); an unknown keyword is a TypeError that
lists the accepted ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.diffraction import (Diffractometer, ProfileSetup, check_diffractometer,
                                 scatterer_types)
from xrdcore.kernels import cpu
from xrdcore.physics.profiles import Profile, as_profile
from xrdcore.similarity import ALL_ZERO, check_options, get_metric, metric_options
from xrdcore.similarity import loss as metric_loss
from xrdcore.structure.crystal import Crystal, check_crystal, refuse_pymatgen
from xrdcore.validation import instance, real, real_array

#: Default relative margin of a reusable reflection set (5 % change of any |g|).
DEFAULT_MARGIN = 0.05


class LossGradient(NamedTuple):
    """Loss and its gradients: ``d_lattice`` (3, 3) per Å of each lattice-vector component,
    ``d_frac`` (N, 3)."""

    loss: float
    d_lattice: np.ndarray
    d_frac: np.ndarray


@dataclass(frozen=True)
class ReflectionSet:
    """Half-space hkl enumerated for ``lattice`` over ``g_range`` widened by a relative
    ``margin``."""

    hkl: np.ndarray  # (M, 3) floats
    lattice: np.ndarray
    margin: float
    g_window: tuple[float, float]  # |g| limits the set must cover (Å⁻¹)

    def covers(self, lattice: ArrayLike) -> bool:
        """True when no reflection of ``lattice`` inside ``g_window`` can be missing from the
        set."""
        return bool(required_margin(self.lattice, lattice)[0] <= self.margin)


def required_margin(reference: ArrayLike, lattices: ArrayLike) -> np.ndarray:
    """(B,) smallest relative margin of a reflection set enumerated at ``reference`` (3, 3) that
    is complete for each of ``lattices`` (B, 3, 3): with s the singular values of A_b⁻¹ A_ref,
    max(1/s_min − 1, 1 − 1/s_max) (the condition of :class:`ReflectionSet`)."""
    lattices = np.ascontiguousarray(lattices, dtype=float)
    return cpu.required_margins(np.ascontiguousarray(reference, dtype=float),
                                lattices.reshape(-1, 3, 3))


def reflection_set(diffractometer: Diffractometer, lattice: ArrayLike,
                   two_theta_range: Sequence[float] | np.ndarray, margin: float = DEFAULT_MARGIN,
                   n_atoms: int = 1, n_types: int = 1) -> ReflectionSet:
    """A :class:`ReflectionSet` for ``two_theta_range`` (deg), complete while the lattice stays
    within ``margin``; guarded (:func:`~xrdcore.diffraction.check_reflection_work`) for
    ``n_atoms`` atoms."""
    check_diffractometer(diffractometer)
    margin = check_margin(margin)
    g_min, g_max = diffractometer.g_window(two_theta_range)
    hkl, _ = diffractometer.enumerate_hkl(lattice, g_min * (1 - margin), g_max * (1 + margin),
                                          n_atoms, n_types)
    return ReflectionSet(hkl, np.array(lattice, dtype=float), margin, (g_min, g_max))


def check_margin(margin: float) -> float:
    """A reflection set's relative margin: a number in [0, 1)."""
    margin = real(margin, "margin")
    if not 0 <= margin < 1:
        raise ValueError(
            f"margin must lie in [0, 1) (a relative change of |g|, e.g. 0.05), got {margin:g}")
    return margin


def check_target(target: Crystal | ArrayLike, grid: np.ndarray) -> Crystal | np.ndarray:
    """``target`` for a loss on ``grid``: a :class:`Crystal` (returned as is), or its pattern as a
    finite, not all-zero 1-D float array with one value per grid point."""
    if isinstance(target, Crystal):
        return target
    refuse_pymatgen(target, "target", "an xrdcore Crystal or its pattern")
    try:
        pattern = real_array(target, "target pattern", ndim=1)
    except TypeError as error:
        raise TypeError(
            f"{error}; the target is a Crystal or its pattern (intensities on the 2θ grid)"
        ) from None
    if len(pattern) != len(grid):
        raise ValueError(
            f"target pattern has {len(pattern)} points, the 2θ grid {len(grid)}: not the same grid "
            "(give the pattern on the diffractometer's grid, or that grid as two_theta=)")
    if not np.any(pattern):
        raise ValueError(ALL_ZERO["target pattern"])
    return pattern


def target_pattern(target: Crystal | ArrayLike, diffractometer: Diffractometer,
                   setup: ProfileSetup) -> np.ndarray:
    target = check_target(target, setup.grid)
    if isinstance(target, Crystal):
        refl = diffractometer.reflections(target, setup.two_theta_range)
        return setup.profile(diffractometer.kernels, refl.two_theta, refl.intensity)
    return target


def loss_and_grad(crystal: Crystal, target: Crystal | ArrayLike, diffractometer: Diffractometer,
                  metric: str = "cosine", fwhm: float | tuple[float, float, float] | Profile = 0.1,
                  two_theta: ArrayLike | None = None, reflections: ReflectionSet | None = None,
                  **options: Any) -> LossGradient:
    """Loss of ``crystal``'s pattern against ``target`` and its exact gradient.

    Parameters
    ----------
    target : a pattern on the grid (any scale), or a Crystal whose pattern is the target.
    metric : a name from :data:`xrdcore.similarity.METRICS`; the loss is 1 − similarity or
        the distance (see :func:`xrdcore.similarity.loss`).
    fwhm, two_theta : the peak profile and grid as in :meth:`Diffractometer.pattern` (the
        width a fixed number of degrees: Caglioti widths have no gradient here).
    reflections : optional :class:`ReflectionSet` to reuse; ValueError if the lattice has
        moved beyond its margin.
    options : the metric's own options (e.g. ``width`` of "wcc"); any other keyword is a TypeError.

    Returns
    -------
    LossGradient(loss, d_lattice, d_frac)
    """
    forward = _forward(crystal, target, diffractometer, metric, fwhm, two_theta, reflections,
                       **options)
    kernels, setup = diffractometer.kernels, forward.setup
    widths = np.full(len(forward.g), setup.fwhm)
    with cpu.threads_for(setup.work(len(forward.g))):
        d_intensity, d_two_theta = kernels.broadened_profile_adjoint(
            setup.grid, forward.two_theta, forward.intensity, widths, setup.eta, setup.window,
            forward.d_pattern, setup.step)
    scatterer_type, *_ = scatterer_types(crystal)
    with cpu.threads_for(len(forward.g) * len(crystal)):
        d_frac, d_g = kernels.reflection_intensities_adjoint(
            forward.hkl, forward.g, diffractometer.wavelength, crystal.frac_coords,
            crystal.occupancies, scatterer_type, *forward.saved, d_intensity, d_two_theta)
    return LossGradient(forward.loss,
                        kernels.lattice_gradient(crystal.lattice, forward.hkl, forward.g, d_g),
                        d_frac)


def loss_value(crystal: Crystal, target: Crystal | ArrayLike, diffractometer: Diffractometer,
               **options: Any) -> float:
    """The loss of :func:`loss_and_grad` alone (same keyword options), without the backward pass."""
    return _forward(crystal, target, diffractometer, **options).loss


class _Forward(NamedTuple):
    setup: ProfileSetup
    hkl: np.ndarray
    g: np.ndarray
    # form-factor tables and structure-factor sums (Diffractometer.intensities_and_form_factors)
    saved: tuple[np.ndarray, ...]
    two_theta: np.ndarray
    intensity: np.ndarray
    loss: float
    d_pattern: np.ndarray


#: Keywords of :func:`loss_value` (those of :func:`loss_and_grad`) besides the metric's own options.
LOSS_OPTIONS = ("metric", "fwhm", "two_theta", "reflections")
#: Settings of the peak profile, given together as ``fwhm=Profile(...)``.
PROFILE_FIELDS = ("shape", "eta", "window")


def loss_setup(target: Crystal | ArrayLike, diffractometer: Diffractometer, metric: str = "cosine",
               fwhm: float | tuple[float, float, float] | Profile = 0.1,
               two_theta: ArrayLike | None = None, reflections: ReflectionSet | None = None,
               **options: Any) -> tuple[ProfileSetup, np.ndarray]:
    """The checked settings of a :func:`loss_and_grad` call that do not depend on the structure:
    its :class:`~xrdcore.diffraction.ProfileSetup` and the target pattern on its grid (a Crystal
    target rendered); TypeError/ValueError for any that no structure could make work."""
    check_diffractometer(diffractometer)
    check_profile_keywords(options, "loss_and_grad")
    check_options(options, LOSS_OPTIONS + metric_options(get_metric(metric)), "loss_and_grad")
    profile = check_fixed_width(fwhm)
    if reflections is not None:
        instance(reflections, "reflections", ReflectionSet,
                 "make one with xrdcore.gradients.reflection_set")
    setup = diffractometer.profile_setup(two_theta, profile)
    return setup, target_pattern(target, diffractometer, setup)


def check_profile_keywords(options: dict, function: str) -> None:
    """TypeError for a peak-shape keyword given on its own (``shape=``, ``eta=``, ``window=``):
    they travel together as ``fwhm=Profile(...)``."""
    loose = [name for name in PROFILE_FIELDS if name in options]
    if loose:
        raise TypeError(
            f"{function}() takes the peak shape as "
            "fwhm=Profile(fwhm, shape=..., eta=..., window=...) "
            f"(xrdcore.physics.profiles), not as {', '.join(f'{name}=' for name in loose)}")


def check_fixed_width(fwhm: float | tuple[float, float, float] | Profile) -> float | Profile:
    """``fwhm`` if it is one fixed width (deg), a plain float (checked by
    :meth:`~xrdcore.diffraction.Diffractometer.profile_setup`) or a Profile, else a ValueError:
    the gradients differentiate the positions and intensities, not Caglioti widths."""
    if type(fwhm) is float:
        return fwhm
    profile = as_profile(fwhm)
    if profile.caglioti:
        raise ValueError("gradients need a fixed FWHM in degrees; "
                         "Caglioti (U, V, W) widths are not differentiated")
    return profile


def _forward(crystal: Crystal, target: Crystal | ArrayLike, diffractometer: Diffractometer,
             metric: str = "cosine", fwhm: float | tuple[float, float, float] | Profile = 0.1,
             two_theta: ArrayLike | None = None, reflections: ReflectionSet | None = None,
             **options: Any) -> _Forward:
    """Forward pass of the loss, keeping what the backward pass needs."""
    check_crystal(crystal)
    setup, target_pattern = loss_setup(target, diffractometer, metric, fwhm, two_theta, reflections,
                                       **options)
    lattice = crystal.lattice
    if reflections is None:
        hkl, g = diffractometer.enumerate_for(crystal,
                                              *diffractometer.g_window(setup.two_theta_range))
    else:
        if not reflections.covers(lattice):
            raise ValueError(
                "the lattice has moved beyond the reflection set's margin; enumerate a new set")
        # λ|g|/2 > 1 cannot diffract at any angle; the profile kernels want ascending 2θ
        hkl, g = diffractometer.kernels.reflection_lengths(lattice, reflections.hkl,
                                                           2 / diffractometer.wavelength)
    two_theta_h, intensity, saved = diffractometer.intensities_and_form_factors(crystal, hkl, g)
    pattern = setup.profile(diffractometer.kernels, two_theta_h, intensity)
    loss, d_pattern = metric_loss(metric, pattern, target_pattern, setup.grid, **options)
    return _Forward(setup, hkl, g, saved, two_theta_h, intensity, loss, d_pattern)
