"""numba CPU kernels: forward model and its adjoints (see ``reference`` for their numpy twins).

Inputs are plain arrays (float64 unless noted) prepared by :mod:`xrdcore.diffraction`:

* reflections: ``hkl`` (M, 3) Miller indices as floats, ``g`` (M,) |g| = 1/d in Å⁻¹;
* scatterers: ``frac_coords`` (N, 3), ``occupancies`` (N,), ``scatterer_type`` (N,) int64
  index into ``type_form_factor`` (M, T): f_t(s_m) · exp(−B_t s_m²) of each scatterer type
  t = (element, B) at each reflection (from :func:`form_factor_tables`).

Each forward kernel ``name`` that the gradients need has an adjoint ``name_adjoint`` that
pulls dL/d(outputs) back to dL/d(inputs) (reverse mode, written by hand).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from .elements import CPU

#: Below this much work (e.g. reflections × atoms) a parallel kernel runs on the calling
#: thread alone: waking worker threads costs more than it saves (measured in benchmarks/).
PARALLEL_MIN_WORK = 500_000
#: fastmath of the two O(M·N) structure-factor kernels: FMA contraction only. Reassociation
#: ("reassoc") made every sum depend on the CPU's vector width; dropping it costs nothing at
#: the study's sizes (2–8 atoms) and 7–17 % of a loss_and_grad at 64–200 atoms (single thread,
#: benchmarks/bench_fastmath.py, RESULTS.md). Contraction is worth 0–5 % and changes results
#: only at the 1e-16 relative level between CPUs with and without FMA.
FASTMATH = {"contract"}


_form_factor_and_slope = CPU["form_factor_and_slope"]
_reflection_factors = CPU["reflection_factors"]
_reflection_adjoint = CPU["reflection_adjoint"]
_peak_shape = CPU["peak_shape"]
_peak_window_adjoint = CPU["peak_window_adjoint"]


@contextmanager
def threads_for(work: int):
    """Run the enclosed numba calls on one thread when ``work`` is below ``PARALLEL_MIN_WORK``."""
    if work >= PARALLEL_MIN_WORK:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)



@njit(cache=True)
def half_space_reflections(reciprocal, index_bounds, g_min, g_max):
    """All hkl ≠ 0 of one Friedel half-space with g_min ≤ |g| ≤ g_max, sorted by (|g|, −h, −k, −l).

    ``reciprocal`` (3, 3): crystallographic reciprocal vectors as rows (no 2π), Å⁻¹;
    ``index_bounds`` (3,) int64: |h|, |k|, |l| limits. The half-space keeps h > 0, or
    h = 0 and k > 0, or h = k = 0 and l > 0; the other half are the Friedel mates −h.
    Returns ``hkl`` (M, 3) float64 and ``g`` (M,). The sort order is pymatgen's: the
    loops visit (h, k, l) in ascending order, so a stable sort by |g| of the reversed
    list breaks ties by descending (h, k, l).
    """
    hmax, kmax, lmax = index_bounds[0], index_bounds[1], index_bounds[2]
    capacity = (hmax + 1) * (2 * kmax + 1) * (2 * lmax + 1)
    hkl = np.empty((capacity, 3))
    g = np.empty(capacity)
    g_min2 = g_min * g_min
    g_max2 = g_max * g_max
    count = 0
    for h in range(0, hmax + 1):
        for k in range(-kmax, kmax + 1):
            if h == 0 and k < 0:
                continue
            for l in range(-lmax, lmax + 1):
                if h == 0 and k == 0 and l <= 0:
                    continue
                gx = h * reciprocal[0, 0] + k * reciprocal[1, 0] + l * reciprocal[2, 0]
                gy = h * reciprocal[0, 1] + k * reciprocal[1, 1] + l * reciprocal[2, 1]
                gz = h * reciprocal[0, 2] + k * reciprocal[1, 2] + l * reciprocal[2, 2]
                g2 = gx * gx + gy * gy + gz * gz
                if g_min2 <= g2 <= g_max2:
                    hkl[count, 0] = h
                    hkl[count, 1] = k
                    hkl[count, 2] = l
                    g[count] = math.sqrt(g2)
                    count += 1
    # reversed loop order = descending (h, k, l); a stable sort by |g| then gives pymatgen's order
    reversed_g = g[:count][::-1].copy()
    order = np.argsort(reversed_g)
    _stabilise_ties(order, reversed_g)
    sorted_hkl = np.empty((count, 3))
    sorted_g = np.empty(count)
    for i in range(count):
        source = count - 1 - order[i]
        sorted_hkl[i, 0] = hkl[source, 0]
        sorted_hkl[i, 1] = hkl[source, 1]
        sorted_hkl[i, 2] = hkl[source, 2]
        sorted_g[i] = g[source]
    return sorted_hkl, sorted_g


@njit(cache=True)
def _stabilise_ties(order, keys):
    """Within each run of equal keys in an argsort, put indices in ascending order (insertion sort)."""
    for i in range(1, order.shape[0]):
        current = order[i]
        j = i - 1
        while j >= 0 and keys[order[j]] == keys[current] and order[j] > current:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = current


@njit(parallel=True, cache=True)
def form_factor_tables(g, type_z, type_coeffs, type_b):
    """f_t(s)·exp(−B_t s²) and its derivative d/ds, each (M, T), at s = |g|/2.

    Scatterer types have Z (T,), (a_i, b_i) (T, 4, 2) and B (T,) Å²;
    f(s) = Z − 41.78214 s² Σ_i a_i exp(−b_i s²) (pymatgen's fit), so
    f'(s) = −2·41.78214 s Σ_i a_i exp(−b_i s²)(1 − b_i s²).
    """
    n_types = type_z.shape[0]
    value = np.empty((g.shape[0], n_types))
    slope = np.empty((g.shape[0], n_types))
    for m in prange(g.shape[0]):
        for t in range(n_types):
            value[m, t], slope[m, t] = _form_factor_and_slope(type_z[t], type_coeffs[t], type_b[t], 0.5 * g[m])
    return value, slope


@njit(cache=True)
def _phase_tables(frac_coords, max_index):
    """cos and sin of 2π n x_j for n = −max_index … max_index, per axis: (3, 2·max_index + 1, N) each."""
    n_atoms = frac_coords.shape[0]
    cos_table = np.empty((3, 2 * max_index + 1, n_atoms))
    sin_table = np.empty((3, 2 * max_index + 1, n_atoms))
    for axis in range(3):
        for n in range(-max_index, max_index + 1):
            for j in range(n_atoms):
                phase = 2.0 * math.pi * n * frac_coords[j, axis]
                cos_table[axis, n + max_index, j] = math.cos(phase)
                sin_table[axis, n + max_index, j] = math.sin(phase)
    return cos_table, sin_table


@njit(parallel=True, cache=True)
def _structure_factor_tables(hkl, frac_coords, occupancies, scatterer_type, n_types):
    """Everything the structure-factor loops share, so that they need no trigonometry.

    Atoms are sorted by scatterer type (``by_type``; type t is the slice
    ``type_start[t]:type_start[t + 1]``). For every (h, k) pair in use, row ``pair_of[m]`` of
    ``xy_real``/``xy_imag`` holds occ_j exp(2πi(h x_j + k y_j)) (reflections share it across
    l); ``cos_table[2, l + n]``, ``sin_table[2, l + n]`` give exp(2πi l z_j), n = ``max_index``.
    Costs 3(2n+1)N sin/cos plus (pairs × N) products instead of M·N sin/cos.
    """
    n_reflections = hkl.shape[0]
    n_atoms = frac_coords.shape[0]
    max_index = 0
    for m in range(n_reflections):
        for axis in range(3):
            max_index = max(max_index, int(abs(hkl[m, axis])))
    by_type = np.argsort(scatterer_type, kind="mergesort")
    type_start = np.zeros(n_types + 1, dtype=np.int64)
    for j in range(n_atoms):
        type_start[scatterer_type[j] + 1] += 1
    for t in range(n_types):
        type_start[t + 1] += type_start[t]
    sorted_occupancy = occupancies[by_type]
    cos_table, sin_table = _phase_tables(frac_coords[by_type], max_index)
    width = 2 * max_index + 1
    pair_of = np.empty(n_reflections, dtype=np.int64)
    pair_row = np.full(width * width, -1, dtype=np.int64)
    n_pairs = 0
    for m in range(n_reflections):
        pair = (int(hkl[m, 0]) + max_index) * width + int(hkl[m, 1]) + max_index
        if pair_row[pair] < 0:
            pair_row[pair] = n_pairs
            n_pairs += 1
        pair_of[m] = pair_row[pair]
    xy_real = np.empty((n_pairs, n_atoms))
    xy_imag = np.empty((n_pairs, n_atoms))
    for pair in prange(width * width):
        row = pair_row[pair]
        if row >= 0:
            h, k = pair // width, pair % width
            for j in range(n_atoms):
                occupancy = sorted_occupancy[j]
                xy_real[row, j] = occupancy * (cos_table[0, h, j] * cos_table[1, k, j] - sin_table[0, h, j] * sin_table[1, k, j])
                xy_imag[row, j] = occupancy * (cos_table[0, h, j] * sin_table[1, k, j] + sin_table[0, h, j] * cos_table[1, k, j])
    return by_type, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def reflection_intensities(hkl, g, wavelength, frac_coords, occupancies, scatterer_type, type_form_factor):
    """2θ (deg) and intensity 2·|F(h)|²·LP(θ) of each half-space reflection.

    F(h) = Σ_j occ_j f_j(s) exp(−B_j s²) exp(2πi h·x_j) (the product f·exp(−B s²) is
    ``type_form_factor[m, scatterer_type[j]]``), s = |g|/2, sin θ = λ|g|/2,
    LP = (1 + cos² 2θ) / (sin² θ cos θ). The factor 2 adds the Friedel mate −h.
    ``hkl`` must hold integers (as floats). No trigonometry in the O(M·N) loop (see
    ``_structure_factor_tables``). Sums run in source order (no "reassoc", see ``FASTMATH``).
    """
    n_reflections = g.shape[0]
    n_atoms = frac_coords.shape[0]
    n_types = type_form_factor.shape[1]
    by_type, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table = _structure_factor_tables(
        hkl, frac_coords, occupancies, scatterer_type, n_types
    )
    two_theta = np.empty(n_reflections)
    intensity = np.empty(n_reflections)
    n_chunks = min(n_reflections, 64)  # parallel over chunks; each chunk reuses one form-factor buffer
    for chunk in prange(n_chunks):
        form_factor = np.empty(n_atoms)
        for m in range(chunk * n_reflections // n_chunks, (chunk + 1) * n_reflections // n_chunks):
            for t in range(n_types):
                form_factor[type_start[t] : type_start[t + 1]] = type_form_factor[m, t]
            pair_real, pair_imag = xy_real[pair_of[m]], xy_imag[pair_of[m]]
            l = int(hkl[m, 2]) + max_index
            cos_z, sin_z = cos_table[2, l], sin_table[2, l]
            real = 0.0
            imag = 0.0
            for j in range(n_atoms):
                real += form_factor[j] * (pair_real[j] * cos_z[j] - pair_imag[j] * sin_z[j])
                imag += form_factor[j] * (pair_real[j] * sin_z[j] + pair_imag[j] * cos_z[j])
            two_theta[m], lorentz_polarization, _, _ = _reflection_factors(g[m], wavelength)
            intensity[m] = 2.0 * (real * real + imag * imag) * lorentz_polarization
    return two_theta, intensity


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def reflection_intensities_adjoint(
    hkl, g, wavelength, frac_coords, occupancies, scatterer_type, type_form_factor, type_form_factor_slope,
    d_intensity, d_two_theta,
):
    """Pull dL/dI_h and dL/d(2θ_h) back to dL/dx (N, 3) and dL/d|g_h| (M,).

    With I = 2|F|²·LP, W_j = occ_j f_j(s), φ_j = 2π h·x_j:
      dI/dx_j  = 8π LP W_j (Im F cos φ_j − Re F sin φ_j) h,
      dI/d|g|  = 2 LP Re(F* dF/ds) + 2|F|² dLP/du · λ²|g|/2      (s = |g|/2, u = sin²θ),
      d2θ/d|g| = (360/π)(λ/2)/cos θ   (2θ in degrees).
    Inputs as :func:`reflection_intensities`, plus ``type_form_factor_slope`` = d/ds of the
    form-factor table. Cost O(M·N), the same loops as the forward kernel.
    """
    n_reflections = g.shape[0]
    n_atoms = frac_coords.shape[0]
    n_types = type_form_factor.shape[1]
    by_type, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table = _structure_factor_tables(
        hkl, frac_coords, occupancies, scatterer_type, n_types
    )
    d_g = np.empty(n_reflections)
    n_chunks = min(n_reflections, 64)
    partial_d_frac = np.zeros((n_chunks, n_atoms, 3))  # one accumulator per chunk: no write races
    for chunk in prange(n_chunks):
        form_factor = np.empty(n_atoms)
        form_factor_slope = np.empty(n_atoms)
        phase_real = np.empty(n_atoms)
        phase_imag = np.empty(n_atoms)
        for m in range(chunk * n_reflections // n_chunks, (chunk + 1) * n_reflections // n_chunks):
            for t in range(n_types):
                form_factor[type_start[t] : type_start[t + 1]] = type_form_factor[m, t]
                form_factor_slope[type_start[t] : type_start[t + 1]] = type_form_factor_slope[m, t]
            pair_real, pair_imag = xy_real[pair_of[m]], xy_imag[pair_of[m]]
            l = int(hkl[m, 2]) + max_index
            cos_z, sin_z = cos_table[2, l], sin_table[2, l]
            real = 0.0
            imag = 0.0
            slope_real = 0.0
            slope_imag = 0.0
            for j in range(n_atoms):  # phase_* = occ_j exp(iφ_j)
                phase_real[j] = pair_real[j] * cos_z[j] - pair_imag[j] * sin_z[j]
                phase_imag[j] = pair_real[j] * sin_z[j] + pair_imag[j] * cos_z[j]
                real += form_factor[j] * phase_real[j]
                imag += form_factor[j] * phase_imag[j]
                slope_real += form_factor_slope[j] * phase_real[j]
                slope_imag += form_factor_slope[j] * phase_imag[j]
            _, lorentz_polarization, d_lp_d_u, d_two_theta_d_g = _reflection_factors(g[m], wavelength)
            d_g[m], coefficient = _reflection_adjoint(
                d_intensity[m], d_two_theta[m], g[m], wavelength, lorentz_polarization, d_lp_d_u, d_two_theta_d_g,
                real, imag, slope_real, slope_imag,
            )
            for j in range(n_atoms):
                along_h = coefficient * form_factor[j] * (imag * phase_real[j] - real * phase_imag[j])
                atom = by_type[j]
                for axis in range(3):
                    partial_d_frac[chunk, atom, axis] += along_h * hkl[m, axis]
    return partial_d_frac.sum(axis=0), d_g


@njit(parallel=True, cache=True)
def broadened_profile(two_theta_grid, centres, intensities, fwhm, eta, window):
    """y(2θ_k) = Σ_h I_h P(2θ_k − 2θ_h; w_h, η), each peak cut at |2θ_k − 2θ_h| > window·w_h.

    ``centres`` (deg) must be sorted ascending; ``fwhm`` (deg) is per peak. Each grid point
    only visits the peaks whose window covers it (binary search), so the cost is
    O(grid + peaks · window points), never grid × peaks.
    """
    profile = np.zeros(two_theta_grid.shape[0])
    if centres.shape[0] == 0:
        return profile
    reach = window * fwhm.max()
    for k in prange(two_theta_grid.shape[0]):
        x = two_theta_grid[k]
        first = np.searchsorted(centres, x - reach)
        last = np.searchsorted(centres, x + reach, side="right")
        acc = 0.0
        for p in range(first, last):
            offset = x - centres[p]
            if abs(offset) <= window * fwhm[p]:
                acc += intensities[p] * _peak_shape(offset, fwhm[p], eta)
        profile[k] = acc
    return profile


@njit(parallel=True, cache=True)
def broadened_profile_adjoint(two_theta_grid, centres, intensities, fwhm, eta, window, d_profile):
    """Pull dL/dy (grid) back to dL/dI_h and dL/d(2θ_h) for :func:`broadened_profile` (fixed widths).

    dL/dI_h = Σ_k dL/dy_k P(2θ_k − 2θ_h), dL/d2θ_h = −I_h Σ_k dL/dy_k P'(2θ_k − 2θ_h), over
    the same windows as the forward pass; parallel over peaks, O(peaks · window points).
    """
    n_peaks = centres.shape[0]
    d_intensity = np.zeros(n_peaks)
    d_centre = np.zeros(n_peaks)
    for p in prange(n_peaks):
        d_intensity[p], d_centre[p] = _peak_window_adjoint(
            d_profile, two_theta_grid, centres[p], intensities[p], fwhm[p], eta, window
        )
    return d_intensity, d_centre
