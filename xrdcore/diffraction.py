"""Powder X-ray diffraction: stick patterns and broadened profiles of a :class:`Crystal`.

Algorithm (the same conventions as pymatgen's ``XRDCalculator``, so the two can be
cross-checked peak by peak):

1. Enumerate reciprocal-lattice points h (one Friedel half-space) with
   2 sin(θ_lo)/λ ≤ |g| ≤ 2 sin(θ_hi)/λ, g = h·B, B = (A⁻¹)ᵀ, d = 1/|g|.
2. For each, s = |g|/2, sin θ = λ s, form factors f_j(s) (pymatgen's table),
   F(h) = Σ_j occ_j f_j exp(−B_j s²) exp(2πi h·x_j).
3. I(h) = |F|² · (1 + cos² 2θ)/(sin² θ cos θ), doubled for the Friedel mate −h.
4. Sort by (|g|, −h, −k, −l); reflections whose 2θ round to the same multiple of
   ``TWO_THETA_TOL`` merge (intensities add, position of the first).
5. Scale the largest peak to 100 and drop peaks at or below ``SCALED_INTENSITY_TOL``.

Deliberately left out, as in pymatgen: absorption, preferred orientation, anomalous
dispersion, Kα2, background, anisotropic displacement (:mod:`xrdcore.measurement` adds the
Kα doublet, 2θ corrections, Caglioti widths, preferred orientation, background and scale).
Broadened profiles (:meth:`Diffractometer.pattern`) sum unit-area peak shapes over *all*
reflections in range (unmerged, unthresholded: merging does not change a sum, and the threshold
would make the profile jump as structures move).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import cast

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.kernels import cpu, select_backend
from xrdcore.physics import scattering
from xrdcore.physics.profiles import Profile, as_profile, peak_widths, uniform_step
from xrdcore.physics.scattering import TWO_THETA_TOL, form_factor_coefficients, resolve_wavelength
from xrdcore.structure.crystal import MIN_CELL_VOLUME, Crystal, check_crystal, element_symbol
from xrdcore.validation import (StructureError, describe, guard, guard_memory, instance, real,
                                real_array)

#: Peaks whose scaled intensity (max = 100) is not above this are dropped (pymatgen's value).
SCALED_INTENSITY_TOL = 1e-3
#: Largest 2θ a range may reach (deg): at 180° the Lorentz factor diverges.
MAX_TWO_THETA = 179.9
#: Default 2θ grid step of broadened patterns (deg).
DEFAULT_STEP = 0.02
#: Working memory (bytes) of the enumeration per point of its index box (hkl and |g| in float64),
#: of the forward pass per reflection (sorted copies, sort keys, 2θ, intensity, runs) and per
#: reflection and scatterer type (form factors, their slopes, structure-factor sums): the
#: estimate :func:`check_reflection_work` guards.
BOX_BYTES, REFLECTION_BYTES, TYPE_BYTES = 32, 96, 32
#: How many 2θ ranges a Diffractometer keeps the |g| window of (then it starts afresh).
G_WINDOWS_KEPT = 64
#: What to do about too many reflections, for the guards' messages.
REFLECTION_HINT = "narrow the 2θ range or use a longer wavelength"


@dataclass(frozen=True)
class Reflections:
    """All half-space reflections in a 2θ window, sorted by (|g|, −h, −k, −l).

    ``hkl`` (M, 3) int, ``g`` (M,) Å⁻¹, ``two_theta`` (M,) deg, ``intensity`` (M,)
    |F|²·LP counting the Friedel mate (arbitrary absolute units, not scaled).
    """

    hkl: np.ndarray
    g: np.ndarray
    two_theta: np.ndarray
    intensity: np.ndarray

    @property
    def d_spacing(self) -> np.ndarray:
        """Interplanar spacing d = 1/|g| in Å."""
        return 1.0 / self.g


class PeakList:
    """A stick pattern: merged peaks with ``two_theta`` (deg), ``intensity`` (max 100),
    ``d_spacing`` (Å).

    ``hkls[i]`` is an (n_i, 3) int array of the reflections merged into peak i, one of each
    Friedel pair (h and −h both contribute; ``multiplicity`` counts both, like pymatgen).
    """

    def __init__(self, two_theta: np.ndarray, intensity: np.ndarray, d_spacing: np.ndarray,
                 member_hkl: np.ndarray, member_start: np.ndarray) -> None:
        self.two_theta = two_theta
        self.intensity = intensity
        self.d_spacing = d_spacing
        self._member_hkl = member_hkl
        self._member_start = member_start

    def __len__(self) -> int:
        return len(self.two_theta)

    @property
    def hkls(self) -> list[np.ndarray]:
        if len(self) == 0:
            return []
        return np.split(self._member_hkl, self._member_start[1:-1])

    @property
    def multiplicity(self) -> np.ndarray:
        """Number of reflections (h and −h counted separately) in each peak."""
        return 2 * np.diff(self._member_start)

    def __repr__(self) -> str:
        if len(self) == 0:
            return "PeakList(0 peaks)"
        return (f"PeakList({len(self)} peaks, "
                f"2θ {self.two_theta.min():.3f}–{self.two_theta.max():.3f}°)")


@lru_cache(maxsize=None)
def _coefficients_of(atomic_number: int) -> np.ndarray:
    return form_factor_coefficients(element_symbol(atomic_number))


def scatterer_types(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Atoms grouped by (element, B), memoised on the crystal.

    Returns ``scatterer_type`` (N,) int64 and, per type, Z (T,), form-factor
    coefficients (T, 4, 2) and B (T,) Å².
    """
    if "scatterer_types" not in crystal.derived:
        # a complex key Z + iB sorts and groups by (Z, B) with a fast 1-D unique
        pairs, scatterer_type = np.unique(crystal.atomic_numbers + 1j * crystal.b_iso,
                                          return_inverse=True)
        crystal.derived["scatterer_types"] = (scatterer_type.reshape(-1).astype(
            np.int64), pairs.real.copy(), np.stack(
                [_coefficients_of(int(z)) for z in pairs.real]), pairs.imag.copy())
    return crystal.derived["scatterer_types"]


def _check_range(two_theta_range: object, name: str = "two_theta_range") -> tuple[float, float]:
    if isinstance(two_theta_range, numbers.Real) and not isinstance(two_theta_range,
                                                                    (bool, np.bool_)):
        raise ValueError(
            f"{name} must be (low, high) in degrees, got the single number {two_theta_range!r}")
    if not isinstance(two_theta_range, (tuple, list, np.ndarray)):
        raise TypeError(f"{name} must be (low, high) in degrees, got {describe(two_theta_range)}")
    if len(two_theta_range) != 2:
        raise ValueError(
            f"{name} must be (low, high) in degrees, got {len(two_theta_range)} values")
    lo, hi = (real(t, f"{name}[{i}]", unit="degrees") for i, t in enumerate(two_theta_range))
    if not 0 <= lo < hi <= MAX_TWO_THETA:
        raise ValueError(
            f"{name} must satisfy 0 ≤ low < high ≤ {MAX_TWO_THETA}°, got ({lo:g}, {hi:g})")
    return lo, hi


def reflection_count(lattice: ArrayLike, g_min: float, g_max: float) -> float:
    """Estimated number of half-space reflections with g_min ≤ |g| ≤ g_max (Å⁻¹) of a lattice
    (rows, Å): one reciprocal-lattice point per 1/V of reciprocal space,
    M ≈ (4π/3)(g_max³ − g_min³) V / 2."""
    return _shell_count(_cell_measures(lattice)[0], g_min, g_max)


def _shell_count(volume: float, g_min: float, g_max: float) -> float:
    """:func:`reflection_count` from the cell volume (Å³, any sign)."""
    return 2 * math.pi / 3 * (g_max**3 - g_min**3) * abs(volume)


def _cell_measures(lattice: ArrayLike) -> tuple[float, list[float]]:
    """Signed volume (Å³) and the three row lengths (Å) of a (3, 3) lattice, in plain floats
    (fast)."""
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = np.asarray(lattice, dtype=float).tolist()
    volume = a0 * (b1 * c2 - b2 * c1) - a1 * (b0 * c2 - b2 * c0) + a2 * (b0 * c1 - b1 * c0)
    return volume, [
        math.sqrt(x * x + y * y + z * z) for x, y, z in ((a0, a1, a2), (b0, b1, b2), (c0, c1, c2))
    ]


def check_reflection_work(lattice: ArrayLike, g_min: float, g_max: float, n_atoms: int = 1,
                          n_types: int = 1) -> None:
    """ResourceLimitError, before anything is enumerated, when the reflections of ``lattice`` with
    g_min ≤ |g| ≤ g_max, their structure-factor terms (reflections × atoms) or the estimated memory
    of enumerating and evaluating them exceed :data:`xrdcore.validation.LIMITS`."""
    volume, lengths = _cell_measures(lattice)
    count = _shell_count(volume, g_min, g_max)

    def where():
        return f"a cell of {abs(volume):.4g} Å³ for {g_min:.3g} ≤ |g| ≤ {g_max:.3g} Å⁻¹"

    guard(count, "max_reflections", lambda: f"about {count:,.0f} reflections ({where()})",
          REFLECTION_HINT)
    guard(
        count * n_atoms, "max_terms", lambda: (f"about {count:,.0f} reflections × {n_atoms} atoms "
                                               f"= {count * n_atoms:,.0f} structure-factor terms"),
        REFLECTION_HINT + ", or use a smaller cell")
    bounds = [math.floor(g_max * length)
              for length in lengths]  # the enumeration's |h|, |k|, |l| limits
    box = (bounds[0] + 1) * (2 * bounds[1] + 1) * (2 * bounds[2] + 1)
    pairs = min(count, (bounds[0] + 1) * (2 * bounds[1] + 1))  # (h, k) pairs of the phase tables
    memory = (BOX_BYTES * box + count * (REFLECTION_BYTES + TYPE_BYTES * n_types) + 16 * n_atoms *
              (pairs + 3 * (2 * max(bounds) + 1)))
    oblique = (("; this oblique cell makes the index box far larger than its reflections: "
                "reduce it first "
                "(Niggli, e.g. pymatgen's Structure.get_reduced_structure)") if box > 100 *
               max(count, 1) else "")
    guard_memory(
        memory, lambda: (f"enumerating about {count:,.0f} reflections ({where()}, an index box of "
                         f"{box:,.0f} points)"), REFLECTION_HINT + oblique)


#: Functions that moved to :mod:`xrdcore.physics.scattering`; still importable from here, with a
#: DeprecationWarning.
MOVED_TO_PHYSICS = ("bragg_two_theta", "lorentz_polarization", "starts_peak")


def __getattr__(name: str) -> object:
    if name in MOVED_TO_PHYSICS:
        warnings.warn(
            f"xrdcore.diffraction.{name} moved to xrdcore.physics.scattering; import it "
            "from there", DeprecationWarning, stacklevel=2)
        return getattr(scattering, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Diffractometer:
    """A powder diffractometer: wavelength and 2θ window (Bragg–Brentano, kinematic theory).

    Parameters
    ----------
    wavelength : line name such as "CuKa" (1.54184 Å, pymatgen's table) or a number in Å.
    two_theta_range : (low, high) in degrees, 0 ≤ low < high ≤ 179.9.
    step : grid step in degrees for :meth:`pattern` when no grid is given.
    backend : where batched work runs (:class:`xrdcore.batch.BatchLoss`): "cpu", "cuda", or
        "auto" (CUDA when a physical GPU is present). Single-structure methods run on the CPU.
    """

    #: Kernel module (numba CPU); a subclass may swap in ``kernels.reference`` for checks and
    #: benchmarks.
    kernels = cpu

    def __init__(self, wavelength: str | float = "CuKa",
                 two_theta_range: Sequence[float] | np.ndarray = (10.0, 90.0),
                 step: float = DEFAULT_STEP, backend: str = "auto") -> None:
        self.backend = select_backend(backend)
        self.wavelength = resolve_wavelength(wavelength)
        self.two_theta_range = lo, hi = _check_range(two_theta_range)
        self.step = real(step, "step", low=0, low_open=True, unit="degrees")
        if self.step > hi - lo:
            raise ValueError(
                f"step {self.step:g}° is wider than the 2θ range {lo:g}–{hi:g}°; give a step of a "
                f"fraction of a peak width (default {DEFAULT_STEP}°)")
        points = round((hi - lo) / self.step) + 1
        guard(points, "max_grid_points",
              f"the 2θ grid {lo:g}–{hi:g}° in steps of {self.step:g}° ({points:,} points)",
              "use a larger step (a few points per peak width suffice)")
        # profile_setup's results on the default grid, by settings
        self._setups: dict[float | Profile, ProfileSetup] = {}
        # g_window's results, by the identity of the 2θ range tuple asked for
        self._g_windows: dict[int, tuple[object, tuple[float, float]]] = {}

    def __repr__(self) -> str:
        lo, hi = self.two_theta_range
        return f"Diffractometer(λ = {self.wavelength} Å, 2θ {lo}–{hi}°, backend {self.backend})"

    @property
    def two_theta(self) -> np.ndarray:
        """Default 2θ grid (deg): ``two_theta_range`` in steps of ``step``, both ends included."""
        lo, hi = self.two_theta_range
        return np.linspace(lo, hi, int(round((hi - lo) / self.step)) + 1)

    # ---------------------------------------------------------------- reflections
    def g_window(self, two_theta_range: Sequence[float] | np.ndarray) -> tuple[float, float]:
        """|g| limits (Å⁻¹) of a 2θ range (deg): |g| = 2 sin θ / λ (kept per range)."""
        seen = self._g_windows.get(
            id(two_theta_range))  # a descent asks with the same tuple every step
        if seen is not None and seen[0] is two_theta_range:
            return seen[1]
        lo, hi = _check_range(two_theta_range)
        window = cast(
            "tuple[float, float]",  # of (lo, hi)
            tuple(2 * math.sin(math.radians(t / 2)) / self.wavelength for t in (lo, hi)))
        if isinstance(two_theta_range,
                      tuple):  # immutable: safe to know again by identity (it is kept alive here)
            if len(self._g_windows) >= G_WINDOWS_KEPT:
                self._g_windows.clear()
            self._g_windows[id(two_theta_range)] = (two_theta_range, window)
        return window

    def enumerate_hkl(self, lattice: ArrayLike, g_min: float, g_max: float, n_atoms: int = 1,
                      n_types: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Half-space hkl (M, 3) as floats and |g| (M,) with g_min ≤ |g| ≤ g_max, pymatgen's order.

        Guarded first (:func:`check_reflection_work`) for a structure of ``n_atoms`` atoms of
        ``n_types`` scatterer types: a ResourceLimitError, not an exhausted memory."""
        lattice = real_array(lattice, "lattice", shape=(3, 3))
        volume, _ = _cell_measures(lattice)
        if not volume >= MIN_CELL_VOLUME:
            raise StructureError(
                f"lattice must be right-handed with a volume ≥ {MIN_CELL_VOLUME} Å³, "
                f"got {volume:.3g} Å³")
        g_min = real(g_min, "g_min", low=0, unit="Å⁻¹")
        g_max = real(g_max, "g_max", low=g_min, unit="Å⁻¹")
        check_reflection_work(lattice, g_min, g_max, n_atoms, n_types)
        return self.kernels.reflection_list(lattice, g_min, g_max)

    def enumerate_for(self, crystal: Crystal, g_min: float,
                      g_max: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`enumerate_hkl` for ``crystal``'s lattice (valid already), guarded for its atoms
        and scatterer types."""
        check_reflection_work(crystal.lattice, g_min, g_max, len(crystal),
                              len(scatterer_types(crystal)[1]))
        return self.kernels.reflection_list(crystal.lattice, g_min, g_max)

    def reflections(self, crystal: Crystal,
                    two_theta_range: Sequence[float] | np.ndarray | None = None) -> Reflections:
        """Every half-space reflection with 2θ in the range (default: the instrument's)."""
        check_crystal(crystal)
        window = self.two_theta_range if two_theta_range is None else two_theta_range
        hkl, g = self.enumerate_for(crystal, *self.g_window(window))
        two_theta, intensity = self.intensities(crystal, hkl, g)
        return Reflections(hkl.astype(np.int64), g, two_theta, intensity)

    def intensities(self, crystal: Crystal, hkl: np.ndarray,
                    g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """2θ (deg) and intensity 2|F|²·LP of the given reflections (hkl as floats, |g| in Å⁻¹)."""
        two_theta, intensity, _ = self.intensities_and_form_factors(crystal, hkl, g)
        return two_theta, intensity

    def intensities_and_form_factors(
            self, crystal: Crystal, hkl: np.ndarray,
            g: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """:meth:`intensities`, plus what the gradient's backward pass reuses: the per-type
        form-factor tables (values and d/ds) and structure-factor sums (real, imaginary), each
        (M, T)."""
        scatterer_type, *type_tables = scatterer_types(crystal)
        with cpu.threads_for(len(g) * len(crystal)):
            two_theta, intensity, *saved = self.kernels.structure_intensities(
                hkl, g, self.wavelength, crystal.frac_coords, crystal.occupancies, scatterer_type,
                *type_tables)
        return two_theta, intensity, tuple(saved)

    # ---------------------------------------------------------------- stick pattern
    def peaks(self, crystal: Crystal) -> PeakList:
        """Merged, scaled stick pattern, peak for peak what pymatgen's ``get_pattern`` returns."""
        refl = self.reflections(crystal)
        first, scaled, member_start, members = self.kernels.merge_peaks(
            refl.two_theta, refl.intensity, TWO_THETA_TOL, SCALED_INTENSITY_TOL)
        return PeakList(refl.two_theta[first], scaled, 1.0 / refl.g[first], refl.hkl[members],
                        member_start)

    # ---------------------------------------------------------------- profile
    def pattern(self, crystal: Crystal, two_theta: ArrayLike | None = None,
                fwhm: float | tuple[float, float, float] | Profile = 0.1,
                normalize: bool = True) -> np.ndarray:
        """Broadened powder pattern y(2θ) on a grid.

        Parameters
        ----------
        two_theta : ascending grid in degrees (default: :attr:`two_theta`).
        fwhm : the peak profile, a width or a Profile.
            A FWHM in degrees or Caglioti (U, V, W) in deg² gives Gaussian peaks; a
            :class:`~xrdcore.physics.profiles.Profile` sets the width, the shape ("gaussian",
            "lorentzian" or "pseudo-voigt"), the mixing eta and the evaluation window.
        normalize : scale the maximum to 100; otherwise absolute |F|²·LP units per degree.
        """
        check_crystal(crystal)
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True or False, got {describe(normalize)}")
        setup = self.profile_setup(two_theta, fwhm)
        refl = self.reflections(crystal, setup.two_theta_range)
        profile = setup.profile(self.kernels, refl.two_theta, refl.intensity)
        if normalize and profile.max() > 0:
            profile *= 100.0 / profile.max()
        return profile

    def profile_setup(self, two_theta: ArrayLike | None = None,
                      fwhm: float | tuple[float, float, float] | Profile = 0.1) -> ProfileSetup:
        """Validated profile settings (see :meth:`pattern`) and the 2θ range whose reflections
        reach the grid.

        The grid must lie in 0–179.9°, ascend strictly, and be fine enough for the peaks: a grid
        spacing wider than the FWHM would let peaks fall between grid points. On the default
        grid the result is kept per profile (and per plain float width), so that repeated calls
        (a descent's every step) check nothing again."""
        # settings seen before; a float exactly, since True (== 1.0) must still be refused
        if two_theta is None and (type(fwhm) is float or isinstance(fwhm, Profile)):
            known = self._setups.get(fwhm)
            if known is not None:
                return known
        profile = as_profile(fwhm)
        if two_theta is None and profile in self._setups:
            return self._setups[profile]
        window = cast(float, profile.window)  # a float once the Profile is made
        grid = self.two_theta if two_theta is None else check_grid(two_theta)
        widths = peak_widths(profile.fwhm, grid)
        spacing = np.diff(grid)
        # what of a peak the grid must resolve, in FWHMs: itself or its window
        extent = min(1.0, 2 * window)
        coarse = np.flatnonzero(spacing > np.maximum(widths[:-1], widths[1:]) * extent * (1 + 1e-6))
        if len(coarse):
            k = coarse[0]
            what = (f"peak FWHM {widths[k]:.4g}°"
                    if extent == 1 else f"evaluation window ±{window:g} FWHM")
            remedy = ("a finer step or a wider fwhm"
                      if extent == 1 else "a wider window (default: 5 FWHMs)")
            raise ValueError(
                f"the 2θ grid spacing {spacing[k]:.4g}° at {grid[k]:.4g}° is wider than the "
                f"{what}: peaks would "
                f"fall between grid points (the pattern would miss them); use {remedy}")
        reach = window * widths.max()
        lo = max(grid[0] - reach, 0.0)
        hi = min(grid[-1] + reach, MAX_TWO_THETA)
        setup = ProfileSetup(grid, profile, reach, (lo, hi), uniform_step(grid))
        if two_theta is None:
            grid.flags.writeable = False  # shared by every later call with these settings
            self._setups[profile] = setup
            if type(fwhm) is float:
                self._setups[fwhm] = setup
        return setup


def check_grid(two_theta: ArrayLike) -> np.ndarray:
    """A 2θ grid (deg) given by the caller: 1-D, finite, non-empty, within the guard, strictly
    ascending and inside 0–179.9°."""
    grid = real_array(two_theta, "two_theta grid", ndim=1)  # no copy of a float64 array
    guard(grid.size, "max_grid_points", f"a two_theta grid of {grid.size:,} points",
          "use a coarser grid")
    if grid.size == 0:
        raise ValueError(
            "two_theta grid must be a non-empty 1-D array of angles in degrees, got an empty one")
    if np.any(np.diff(grid) <= 0):
        raise ValueError(
            "two_theta grid must be strictly ascending (no repeated or decreasing angles)")
    if grid[0] < 0 or grid[-1] > MAX_TWO_THETA:
        raise ValueError(
            f"two_theta grid {grid[0]:g}–{grid[-1]:g}° reaches outside 0–{MAX_TWO_THETA}°")
    return grid


@dataclass(frozen=True)
class ProfileSetup:
    """Profile settings shared by patterns and their gradients.

    ``grid`` (deg), the checked :class:`~xrdcore.physics.profiles.Profile` ``settings``,
    ``reach`` = window × largest FWHM (deg), and ``two_theta_range``: the grid widened by
    ``reach``, i.e. every reflection that can touch the grid.
    """

    grid: np.ndarray
    settings: Profile
    reach: float
    two_theta_range: tuple[float, float]
    step: float = 0.0  # the grid's uniform spacing (deg), 0 if it is not uniform

    @property
    def fwhm(self) -> float | tuple[float, float, float]:
        """FWHM (deg), or Caglioti (U, V, W) in deg²."""
        return self.settings.fwhm

    @property
    def eta(self) -> float:
        """Pseudo-Voigt mixing η of the kernels (0 Gaussian, 1 Lorentzian)."""
        return self.settings.mixing

    @property
    def window(self) -> float:
        """Half-width of each peak's evaluation window, in FWHMs."""
        return cast(float, self.settings.window)  # a float once the Profile is made

    def profile(self, kernels: ModuleType, centres: np.ndarray,
                intensities: np.ndarray) -> np.ndarray:
        """Σ_h I_h P(2θ − 2θ_h) on the grid, unnormalised (``centres`` sorted ascending)."""
        widths = peak_widths(self.fwhm, centres)
        work = self.work(len(centres))
        guard(
            work, "max_terms",
            f"the profile's {work:,} peak-shape evaluations ({len(centres):,} reflections × "
            f"grid points within {self.window:g} FWHMs)", "use a smaller window or a coarser grid")
        with cpu.threads_for(work):
            return kernels.broadened_profile(self.grid, centres, intensities, widths, self.eta,
                                             self.window, self.step)

    def work(self, n_peaks: int) -> int:
        """Peak-shape evaluations of one profile: peaks × grid points per window (at most the
        grid)."""
        step = (self.grid[-1] - self.grid[0]) / max(len(self.grid) - 1, 1)
        return int(n_peaks * min(2 * self.reach / max(step, 1e-12), len(self.grid)))


def check_diffractometer(diffractometer: object) -> Diffractometer:
    return instance(diffractometer, "diffractometer", Diffractometer,
                    "make one with Diffractometer('CuKa', (10, 90))")
