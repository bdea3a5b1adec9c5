"""Element functions shared by every numba kernel: plain Python on scalars and small arrays.

Each is compiled where it is used: ``njit`` for the CPU kernels (:mod:`~xrdcore.kernels.cpu`,
:mod:`~xrdcore.kernels.batched`) and ``cuda.jit(device=True)`` for the GPU
(:mod:`~xrdcore.kernels.cuda`), so all backends evaluate the very same formulas. Calls between
them are rebound to the callee compiled for the same backend by :func:`compile_elements`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

from xrdcore.physics.scattering import FORM_FACTOR_PREFACTOR

DEG_PER_RAD = 180.0 / math.pi


def reciprocal_metric(lattice: np.ndarray, out: np.ndarray) -> None:
    """out (6,) = G* = (A Aᵀ)⁻¹ as (g00, g11, g22, g01, g02, g12), by cofactors (Å⁻²)."""
    a = lattice  # rows a_i; every product indexes afresh (named entries compile to other digits)
    m00 = a[0, 0] * a[0, 0] + a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2]
    m11 = a[1, 0] * a[1, 0] + a[1, 1] * a[1, 1] + a[1, 2] * a[1, 2]
    m22 = a[2, 0] * a[2, 0] + a[2, 1] * a[2, 1] + a[2, 2] * a[2, 2]
    m01 = a[0, 0] * a[1, 0] + a[0, 1] * a[1, 1] + a[0, 2] * a[1, 2]
    m02 = a[0, 0] * a[2, 0] + a[0, 1] * a[2, 1] + a[0, 2] * a[2, 2]
    m12 = a[1, 0] * a[2, 0] + a[1, 1] * a[2, 1] + a[1, 2] * a[2, 2]
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    det = m00 * c00 + m01 * c01 + m02 * c02
    out[0] = c00 / det
    out[1] = (m00 * m22 - m02 * m02) / det
    out[2] = (m00 * m11 - m01 * m01) / det
    out[3] = c01 / det
    out[4] = c02 / det
    out[5] = (m01 * m02 - m00 * m12) / det


def g_length(metric: np.ndarray, h: float, k: float, l: float) -> float:
    """|g| = sqrt(hᵀ G* h) (Å⁻¹) from the packed reciprocal metric of :func:`reciprocal_metric`."""
    g2 = (h * h * metric[0] + k * k * metric[1] + l * l * metric[2] + 2.0 *
          (h * k * metric[3] + h * l * metric[4] + k * l * metric[5]))
    return math.sqrt(g2)


def reflection_factors(g: float, wavelength: float) -> tuple[float, float, float, float]:
    """2θ (deg), LP, dLP/du (u = sin²θ) and d2θ/d|g| (deg·Å) at |g|."""
    sin_theta = 0.5 * wavelength * g
    u = sin_theta * sin_theta
    cos_2theta = 1.0 - 2.0 * u
    numerator = 1.0 + cos_2theta * cos_2theta
    cos_theta = math.sqrt(1.0 - u)
    denominator = u * cos_theta
    lp = numerator / denominator
    d_lp_d_u = (-4.0 * cos_2theta * denominator - numerator *
                (cos_theta - 0.5 * u / cos_theta)) / (denominator * denominator)
    two_theta = 2.0 * math.asin(sin_theta) * DEG_PER_RAD
    d_two_theta_d_g = DEG_PER_RAD * wavelength / cos_theta
    return two_theta, lp, d_lp_d_u, d_two_theta_d_g


def form_factor_and_slope(z: float, coeffs: np.ndarray, b: float, s: float) -> tuple[float, float]:
    """f(s)·exp(−B s²) and its derivative in s for one scatterer type (``coeffs`` (4, 2))."""
    s2 = s * s
    acc = 0.0
    acc_slope = 0.0
    for i in range(coeffs.shape[0]):
        term = coeffs[i, 0] * math.exp(-coeffs[i, 1] * s2)
        acc += term
        acc_slope += term * (1.0 - coeffs[i, 1] * s2)
    f = z - FORM_FACTOR_PREFACTOR * s2 * acc
    f_slope = -2.0 * FORM_FACTOR_PREFACTOR * s * acc_slope
    debye_waller = math.exp(-b * s2) if b != 0.0 else 1.0
    return f * debye_waller, (f_slope - 2.0 * b * s * f) * debye_waller


def structure_factor(hkl_row: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
                     scatterer_type: np.ndarray, type_f: np.ndarray,
                     type_f_slope: np.ndarray) -> tuple[float, float, float, float]:
    """Re F, Im F, Re dF/ds, Im dF/ds of one reflection of one structure."""
    real = 0.0
    imag = 0.0
    slope_real = 0.0
    slope_imag = 0.0
    for j in range(frac_coords.shape[0]):
        phase = (2.0 * math.pi * (hkl_row[0] * frac_coords[j, 0] + hkl_row[1] * frac_coords[j, 1] +
                                  hkl_row[2] * frac_coords[j, 2]))
        c = math.cos(phase) * occupancies[j]
        s = math.sin(phase) * occupancies[j]
        t = scatterer_type[j]
        real += type_f[t] * c
        imag += type_f[t] * s
        slope_real += type_f_slope[t] * c
        slope_imag += type_f_slope[t] * s
    return real, imag, slope_real, slope_imag


def window_bounds(centre: float, half_width: float, grid: np.ndarray) -> tuple[int, int]:
    """First and one-past-last index k of an ascending ``grid`` with |grid_k − centre| ≤ half_width
    (binary search, so any ascending grid works)."""
    low, high = 0, grid.shape[0]
    while low < high:  # first grid point ≥ centre − half_width
        middle = (low + high) // 2
        if grid[middle] < centre - half_width:
            low = middle + 1
        else:
            high = middle
    first = low
    high = grid.shape[0]
    while low < high:  # first grid point > centre + half_width
        middle = (low + high) // 2
        if grid[middle] <= centre + half_width:
            low = middle + 1
        else:
            high = middle
    return first, low


def peak_shape(offset: float, fwhm: float, eta: float) -> float:
    """Unit-area pseudo-Voigt (deg⁻¹) at ``offset`` (deg)."""
    half = 0.5 * fwhm
    lorentzian = half / (math.pi * (offset * offset + half * half))
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gaussian = math.exp(-0.5 * (offset / sigma)**2) / (sigma * math.sqrt(2.0 * math.pi))
    return eta * lorentzian + (1.0 - eta) * gaussian


def peak_slope(offset: float, fwhm: float, eta: float) -> float:
    """d/d(offset) of :func:`peak_shape`."""
    half = 0.5 * fwhm
    denominator = offset * offset + half * half
    lorentzian_slope = -2.0 * offset * half / (math.pi * denominator * denominator)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gaussian = math.exp(-0.5 * (offset / sigma)**2) / (sigma * math.sqrt(2.0 * math.pi))
    return eta * lorentzian_slope - (1.0 - eta) * gaussian * offset / (sigma * sigma)


def peak_window_adjoint(d_profile: np.ndarray, grid: np.ndarray, centre: float, intensity: float,
                        fwhm: float, eta: float, window: float) -> tuple[float, float]:
    """dL/dI and dL/d(2θ) of one peak, from dL/dy on the grid points within its window."""
    half_width = window * fwhm
    first, last = window_bounds(centre, half_width, grid)
    d_intensity = 0.0
    slope_sum = 0.0
    for k in range(first, last):
        offset = grid[k] - centre
        if abs(offset) <= half_width:
            d_intensity += d_profile[k] * peak_shape(offset, fwhm, eta)
            slope_sum += d_profile[k] * peak_slope(offset, fwhm, eta)
    return d_intensity, -intensity * slope_sum


def lorentzian_and_gaussian(offset: float, fwhm: float) -> tuple[float, float]:
    """The unit-area Lorentzian L and Gaussian G (deg⁻¹) of FWHM ``fwhm`` (deg) at ``offset``
    (deg), the two parts of :func:`peak_shape` (the same formulas)."""
    half = 0.5 * fwhm
    lorentzian = half / (math.pi * (offset * offset + half * half))
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    gaussian = math.exp(-0.5 * (offset / sigma)**2) / (sigma * math.sqrt(2.0 * math.pi))
    return lorentzian, gaussian


def peak_width_slope(offset: float, fwhm: float, eta: float) -> float:
    """∂/∂(fwhm) of :func:`peak_shape` (deg⁻²) at ``offset`` o (deg), w = ``fwhm``, h = w/2:
    ∂L/∂w = L (o² − h²)/(w (o² + h²)) and ∂G/∂w = G (8 ln 2 · o²/w² − 1)/w."""
    lorentzian, gaussian = lorentzian_and_gaussian(offset, fwhm)
    half = 0.5 * fwhm
    offset2 = offset * offset
    return (eta * lorentzian * (offset2 - half * half) / (offset2 + half * half) +
            (1.0 - eta) * gaussian * (8.0 * math.log(2.0) * offset2 / (fwhm * fwhm) - 1.0)) / fwhm


def peak_mixing_slope(offset: float, fwhm: float) -> float:
    """∂/∂η of :func:`peak_shape` (deg⁻¹): L − G."""
    lorentzian, gaussian = lorentzian_and_gaussian(offset, fwhm)
    return lorentzian - gaussian


def peak_window_full_adjoint(d_profile: np.ndarray, grid: np.ndarray, centre: float,
                             intensity: float, fwhm: float, eta: float,
                             window: float) -> tuple[float, float, float, float]:
    """dL/dI, dL/d(2θ), dL/d(fwhm) and dL/dη of one peak, from dL/dy on the grid points within
    its window (the window of :func:`peak_window_adjoint`, whose edges are not differentiated);
    the first two have the digits of :func:`peak_window_adjoint`."""
    half_width = window * fwhm
    first, last = window_bounds(centre, half_width, grid)
    d_intensity = 0.0
    slope_sum = 0.0
    width_sum = 0.0
    mixing_sum = 0.0
    for k in range(first, last):
        offset = grid[k] - centre
        if abs(offset) <= half_width:
            d_intensity += d_profile[k] * peak_shape(offset, fwhm, eta)
            slope_sum += d_profile[k] * peak_slope(offset, fwhm, eta)
            width_sum += d_profile[k] * peak_width_slope(offset, fwhm, eta)
            mixing_sum += d_profile[k] * peak_mixing_slope(offset, fwhm)
    return d_intensity, -intensity * slope_sum, intensity * width_sum, intensity * mixing_sum


def first_at_least(value: float, grid: np.ndarray, step: float) -> int:
    """The first index k of a uniform ascending ``grid`` (spacing ``step``) with grid_k ≥ value
    (n if none): estimated from the spacing, then corrected against the grid values."""
    n = grid.shape[0]
    k = min(max(int(math.ceil((value - grid[0]) / step)), 0), n)
    while k > 0 and grid[k - 1] >= value:
        k -= 1
    while k < n and grid[k] < value:
        k += 1
    return k


def first_above(value: float, grid: np.ndarray, step: float) -> int:
    """The first index k of a uniform ascending ``grid`` with grid_k > value (n if none)."""
    n = grid.shape[0]
    k = min(max(int(math.ceil((value - grid[0]) / step)), 0), n)
    while k < n and grid[k] <= value:
        k += 1
    while k > 0 and grid[k - 1] > value:
        k -= 1
    return k


def uniform_window(centre: float, half_width: float, grid: np.ndarray,
                   step: float) -> tuple[int, int, int]:
    """``first``, ``middle``, ``last`` of a peak's window on a uniform grid: the first index with
    grid_k ≥ centre − half_width, the first with grid_k ≥ centre (kept within the window), one
    past the last with grid_k ≤ centre + half_width. The same indices as a binary search
    (:func:`window_bounds`), in O(1)."""
    first = first_at_least(centre - half_width, grid, step)
    last = first_above(centre + half_width, grid, step)
    middle = min(max(first_at_least(centre, grid, step), first), last)
    return first, middle, last


def gaussian_start(grid: np.ndarray, step: float, centre: float, fwhm: float, window: float,
                   scale: float) -> tuple[int, int, int, float, float, float, float, float, float]:
    """The start of a Gaussian window's two walks (:func:`gaussian_window`): ``first``,
    ``middle``, ``last`` (:func:`uniform_window`), σ, Q = exp(−2a step²) (a = 1/2σ²), and for the
    walk right from ``middle`` and left from ``middle`` − 1 the value scale·G at its first point
    (G the unit-area Gaussian) and its first ratio exp(−a((o ± step)² − o²)); zeros for an
    empty side."""
    first, middle, last = uniform_window(centre, window * fwhm, grid, step)
    sigma = fwhm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    a = 0.5 / (sigma * sigma)
    scale = scale / (sigma * math.sqrt(2.0 * math.pi))
    right = left = right_ratio = left_ratio = 0.0
    if middle < last:
        offset = grid[middle] - centre
        right = scale * math.exp(-a * offset * offset)
        right_ratio = math.exp(-a * (2.0 * offset * step + step * step))
    if middle > first:
        offset = grid[middle - 1] - centre
        left = scale * math.exp(-a * offset * offset)
        left_ratio = math.exp(-a * (-2.0 * offset * step + step * step))
    return (first, middle, last, sigma, math.exp(
        -2.0 * a * step * step), right, right_ratio, left, left_ratio)


def gaussian_window(profile: np.ndarray, grid: np.ndarray, step: float, centre: float,
                    intensity: float, fwhm: float, window: float) -> None:
    """profile[k] += I·G(grid_k − centre) over the peak's window, G the unit-area Gaussian of FWHM
    ``fwhm`` (deg), on a uniform ``grid`` of spacing ``step`` (deg): one exp per direction and a
    recurrence G_{k+1} = G_k R_k, R_{k+1} = R_k Q (exact in exact arithmetic; ~1e-12 relative
    here), walking out from the grid point nearest the centre so that nothing under- or overflows;
    the right and left walks advance side by side (two independent chains)."""
    first, middle, last, _, q, right, right_ratio, left, left_ratio = gaussian_start(
        grid, step, centre, fwhm, window, intensity)
    n_right, n_left = last - middle, middle - first
    for i in range(max(n_right, n_left)):
        if i < n_right:
            profile[middle + i] += right
            right *= right_ratio
            right_ratio *= q
        if i < n_left:
            profile[middle - 1 - i] += left
            left *= left_ratio
            left_ratio *= q


def gaussian_window_adjoint(d_profile: np.ndarray, grid: np.ndarray, step: float, centre: float,
                            intensity: float, fwhm: float, window: float) -> tuple[float, float]:
    """dL/dI and dL/d(2θ) of one Gaussian peak (the adjoint of :func:`gaussian_window`):
    Σ_k dL/dy_k G_k and I Σ_k dL/dy_k G_k o_k/σ², with the same recurrence (right and left
    sums kept apart and added at the end)."""
    first, middle, last, sigma, q, right, right_ratio, left, left_ratio = gaussian_start(
        grid, step, centre, fwhm, window, 1.0)
    right_sum = left_sum = right_moment = left_moment = 0.0  # Σ dL/dy_k G_k and Σ dL/dy_k G_k o_k
    n_right, n_left = last - middle, middle - first
    for i in range(max(n_right, n_left)):
        if i < n_right:
            k = middle + i
            weighted = d_profile[k] * right
            right_sum += weighted
            right_moment += weighted * (grid[k] - centre)
            right *= right_ratio
            right_ratio *= q
        if i < n_left:
            k = middle - 1 - i
            weighted = d_profile[k] * left
            left_sum += weighted
            left_moment += weighted * (grid[k] - centre)
            left *= left_ratio
            left_ratio *= q
    # dP/d(offset) = −P·o/σ² and d(offset)/d(centre) = −1
    return right_sum + left_sum, intensity * (right_moment + left_moment) / (sigma * sigma)


def reflection_adjoint(d_intensity: float, d_centre: float, g: float, wavelength: float, lp: float,
                       d_lp: float, d_two_theta_d_g: float, real: float, imag: float,
                       slope_real: float, slope_imag: float) -> tuple[float, float]:
    """dL/d|g| and the coordinate coefficient dL/dI·8π·LP of one reflection (I = 2|F|² LP),
    from dL/dI, dL/d(2θ) and the reflection's stored forward quantities.

    dI/d|g| = 2 LP Re(F* dF/ds) + 2|F|² dLP/du · λ²|g|/2 (s = |g|/2, u = sin²θ).
    """
    d_intensity_d_g = 2.0 * lp * (real * slope_real + imag * slope_imag) + (
        2.0 * (real * real + imag * imag) * d_lp * 0.5 * wavelength * wavelength * g)
    return (d_intensity * d_intensity_d_g + d_centre * d_two_theta_d_g,
            d_intensity * 8.0 * math.pi * lp)


def atom_gradient(hkl: np.ndarray, frac_row: np.ndarray, occupancy: float, atom_type: int,
                  type_f: np.ndarray, coefficient: np.ndarray, real: np.ndarray, imag: np.ndarray,
                  out_row: np.ndarray) -> None:
    """out_row (3,) = Σ_m coefficient_m·occ·f_m(type)·(Im F_m cos φ_m − Re F_m sin φ_m)·h_m for
    one atom."""
    out_row[0] = 0.0
    out_row[1] = 0.0
    out_row[2] = 0.0
    for m in range(hkl.shape[0]):
        phase = (2.0 * math.pi *
                 (hkl[m, 0] * frac_row[0] + hkl[m, 1] * frac_row[1] + hkl[m, 2] * frac_row[2]))
        along_h = (coefficient[m] * occupancy * type_f[m, atom_type] *
                   (imag[m] * math.cos(phase) - real[m] * math.sin(phase)))
        out_row[0] += along_h * hkl[m, 0]
        out_row[1] += along_h * hkl[m, 1]
        out_row[2] += along_h * hkl[m, 2]


def lattice_gradient(lattice: np.ndarray, metric: np.ndarray, hkl: np.ndarray, g: np.ndarray,
                     d_g: np.ndarray, out: np.ndarray) -> None:
    """out (3, 3) = dL/dA = −2 G* S G* A with S = Σ_m d_g/(2g) h hᵀ (``metric``: packed G*)."""
    s00 = s11 = s22 = s01 = s02 = s12 = 0.0  # S is symmetric
    for m in range(hkl.shape[0]):
        weight = d_g[m] / (2.0 * g[m])
        h, k, l = hkl[m, 0], hkl[m, 1], hkl[m, 2]
        s00 += weight * h * h
        s11 += weight * k * k
        s22 += weight * l * l
        s01 += weight * h * k
        s02 += weight * h * l
        s12 += weight * k * l
    g00, g11, g22, g01, g02, g12 = metric[0], metric[1], metric[2], metric[3], metric[4], metric[5]
    # T = G* S G*, entry by entry (G* symmetric), then out = −2 T A
    gs00 = g00 * s00 + g01 * s01 + g02 * s02
    gs01 = g00 * s01 + g01 * s11 + g02 * s12
    gs02 = g00 * s02 + g01 * s12 + g02 * s22
    gs10 = g01 * s00 + g11 * s01 + g12 * s02
    gs11 = g01 * s01 + g11 * s11 + g12 * s12
    gs12 = g01 * s02 + g11 * s12 + g12 * s22
    gs20 = g02 * s00 + g12 * s01 + g22 * s02
    gs21 = g02 * s01 + g12 * s11 + g22 * s12
    gs22 = g02 * s02 + g12 * s12 + g22 * s22
    t00 = gs00 * g00 + gs01 * g01 + gs02 * g02
    t01 = gs00 * g01 + gs01 * g11 + gs02 * g12
    t02 = gs00 * g02 + gs01 * g12 + gs02 * g22
    t10 = gs10 * g00 + gs11 * g01 + gs12 * g02
    t11 = gs10 * g01 + gs11 * g11 + gs12 * g12
    t12 = gs10 * g02 + gs11 * g12 + gs12 * g22
    t20 = gs20 * g00 + gs21 * g01 + gs22 * g02
    t21 = gs20 * g01 + gs21 * g11 + gs22 * g12
    t22 = gs20 * g02 + gs21 * g12 + gs22 * g22
    for c in range(3):
        out[0, c] = -2.0 * (t00 * lattice[0, c] + t01 * lattice[1, c] + t02 * lattice[2, c])
        out[1, c] = -2.0 * (t10 * lattice[0, c] + t11 * lattice[1, c] + t12 * lattice[2, c])
        out[2, c] = -2.0 * (t20 * lattice[0, c] + t21 * lattice[1, c] + t22 * lattice[2, c])


#: Element functions in an order where every callee precedes its callers.
ELEMENTS = ("reciprocal_metric", "g_length", "reflection_factors", "form_factor_and_slope",
            "structure_factor", "window_bounds", "peak_shape", "peak_slope", "peak_window_adjoint",
            "lorentzian_and_gaussian", "peak_width_slope", "peak_mixing_slope",
            "peak_window_full_adjoint", "first_at_least", "first_above", "uniform_window",
            "gaussian_start", "gaussian_window", "gaussian_window_adjoint", "reflection_adjoint",
            "atom_gradient", "lattice_gradient")


def compile_elements(decorator: Callable[[Callable[..., Any]], Any]) -> dict[str, Any]:
    """Every element function compiled with ``decorator`` (e.g. ``njit`` or
    ``cuda.jit(device=True)``).

    Each is re-created over a private copy of this module's globals in which the names of the
    other element functions point to their compiled versions, so that, say, a compiled
    ``peak_window_adjoint`` calls the compiled ``peak_shape`` of the same backend.
    """
    namespace = dict(globals())
    compiled = {}
    for name in ELEMENTS:
        function = globals()[name]
        rebound = types.FunctionType(function.__code__, namespace, name, function.__defaults__,
                                     function.__closure__)
        rebound.__doc__ = function.__doc__
        compiled[name] = namespace[name] = decorator(rebound)
    return compiled


#: The CPU build, shared by :mod:`~xrdcore.kernels.cpu` and :mod:`~xrdcore.kernels.batched`
#: (inlined into their kernels).
CPU = compile_elements(njit(inline="always"))
