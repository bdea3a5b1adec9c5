"""numba CPU kernels: forward model and its adjoints (see ``reference`` for their numpy twins).

Inputs are plain arrays (float64 unless noted) prepared by :mod:`xrdcore.diffraction`:

* reflections: ``hkl`` (M, 3) Miller indices as floats, ``g`` (M,) |g| = 1/d in Å⁻¹;
* scatterers: ``frac_coords`` (N, 3), ``occupancies`` (N,), ``scatterer_type`` (N,) int64
  index into ``type_form_factor`` (M, T): f_t(s_m) · exp(−B_t s_m²) of each scatterer type
  t = (element, B) at each reflection (from :func:`form_factor_tables`).

Each forward kernel ``name`` that the gradients need has an adjoint ``name_adjoint`` that
pulls dL/d(outputs) back to dL/d(inputs) (reverse mode, written by hand). A call of
:meth:`~xrdcore.diffraction.Diffractometer.peaks` is three kernels (:func:`reflection_list`,
:func:`structure_intensities`, :func:`merge_peaks`), so little of it is Python.
:func:`reflection_pairs` and :func:`pair_tables` build tables that :mod:`.batched` shares;
they are tested through the kernels that use them.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from xrdcore.kernels.elements import CPU

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
_peak_window_full_adjoint = CPU["peak_window_full_adjoint"]
_gaussian_window = CPU["gaussian_window"]
_gaussian_window_adjoint = CPU["gaussian_window_adjoint"]
_reciprocal_metric = CPU["reciprocal_metric"]
_lattice_gradient = CPU["lattice_gradient"]


class threads_for:
    """Context manager: the enclosed numba calls run on one thread when ``work`` is below
    ``PARALLEL_MIN_WORK`` (a plain class, not a generator: it costs ~1 µs, not ~5)."""

    __slots__ = ("serial", "previous")

    def __init__(self, work: int) -> None:
        self.serial = work < PARALLEL_MIN_WORK

    def __enter__(self) -> None:
        if self.serial:
            self.previous = numba.get_num_threads()
            self.serial = self.previous != 1
            if self.serial:
                numba.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        if self.serial:
            numba.set_num_threads(self.previous)


@njit(cache=True)
def half_space_reflections(reciprocal: np.ndarray, index_bounds: np.ndarray, g_min: float,
                           g_max: float) -> tuple[np.ndarray, np.ndarray]:
    """All hkl ≠ 0 of one Friedel half-space with g_min ≤ |g| ≤ g_max, sorted by (|g|, −h, −k, −l).

    ``reciprocal`` (3, 3): crystallographic reciprocal vectors as rows (no 2π), Å⁻¹;
    ``index_bounds`` (3,) int64: |h|, |k|, |l| limits. The half-space keeps h > 0, or
    h = 0 and k > 0, or h = k = 0 and l > 0; the other half are the Friedel mates −h.
    Returns ``hkl`` (M, 3) float64 and ``g`` (M,). The sort order is pymatgen's: the
    loops visit (h, k, l) in ascending order, so a stable sort by |g| of the reversed
    list breaks ties by descending (h, k, l) (:func:`_sort_by_length`).
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
    order = _sort_by_length(g[:count], g_min, g_max)
    sorted_hkl = np.empty((count, 3))
    sorted_g = np.empty(count)
    for i in range(count):
        source = order[i]
        sorted_hkl[i, 0] = hkl[source, 0]
        sorted_hkl[i, 1] = hkl[source, 1]
        sorted_hkl[i, 2] = hkl[source, 2]
        sorted_g[i] = g[source]
    return sorted_hkl, sorted_g


@njit(cache=True)
def _sort_by_length(g, g_min, g_max):
    """Indices that sort ``g`` (in g_min … g_max) ascending, equal values in *descending* index
    order (the loops' reversed order: pymatgen's tie-break by descending (h, k, l)).

    A bucket sort, O(M) for reflections: buckets of equal width in g³ (reflections fill
    reciprocal space uniformly, so each holds about one), filled from the last index down,
    then an insertion sort within each bucket that moves an entry only past strictly larger ones."""
    n = g.shape[0]
    low, span = g_min**3, max(g_max**3 - g_min**3, 1e-300)
    bucket_of = np.empty(n, dtype=np.int64)
    start = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        bucket = min(max(int((g[i]**3 - low) / span * n), 0), n - 1)
        bucket_of[i] = bucket
        start[bucket + 1] += 1
    for bucket in range(n):
        start[bucket + 1] += start[bucket]
    fill = start[:n].copy()
    order = np.empty(n, dtype=np.int64)
    for i in range(n - 1, -1, -1):  # descending index: a stable placement keeps ties that way
        order[fill[bucket_of[i]]] = i
        fill[bucket_of[i]] += 1
    for bucket in range(n):
        for position in range(start[bucket] + 1, start[bucket + 1]):
            current = order[position]
            j = position - 1
            while j >= start[bucket] and g[order[j]] > g[current]:
                order[j + 1] = order[j]
                j -= 1
            order[j + 1] = current
    return order


@njit(parallel=True, cache=True)
def form_factor_tables(g: np.ndarray, type_z: np.ndarray, type_coeffs: np.ndarray,
                       type_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f_t(s)·exp(−B_t s²) and its derivative d/ds, each (M, T), at s = |g|/2.

    Scatterer types have Z (T,), (a_i, b_i) (T, 4, 2) and B (T,) Å²;
    f(s) = Z − 41.78214 s² Σ_i a_i exp(−b_i s²) (pymatgen's fit), so
    f'(s) = −2·41.78214 s Σ_i a_i exp(−b_i s²)(1 − b_i s²). A reflection with the same |g| as
    its predecessor (symmetry-equivalent, in a sorted list) copies its row: the same numbers.
    """
    n_reflections, n_types = g.shape[0], type_z.shape[0]
    value = np.empty((n_reflections, n_types))
    slope = np.empty((n_reflections, n_types))
    n_chunks = min(n_reflections, 64)
    for chunk in prange(n_chunks):
        begin, end = chunk * n_reflections // n_chunks, (chunk + 1) * n_reflections // n_chunks
        for m in range(begin, end):
            if m > begin and g[m] == g[m - 1]:
                value[m] = value[m - 1]
                slope[m] = slope[m - 1]
                continue
            for t in range(n_types):
                value[m, t], slope[m, t] = _form_factor_and_slope(type_z[t], type_coeffs[t],
                                                                  type_b[t], 0.5 * g[m])
    return value, slope


@njit(cache=True)
def _phase_tables(frac_coords, max_index):
    """cos and sin of 2π n x_j for n = −max_index … max_index, per axis: (3, 2·max_index + 1, N)
    each. Negative n by symmetry (cos even, sin odd: the same digits as computing them)."""
    n_atoms = frac_coords.shape[0]
    cos_table = np.empty((3, 2 * max_index + 1, n_atoms))
    sin_table = np.empty((3, 2 * max_index + 1, n_atoms))
    for axis in range(3):
        for n in range(0, max_index + 1):
            for j in range(n_atoms):
                phase = 2.0 * math.pi * n * frac_coords[j, axis]
                c, s = math.cos(phase), math.sin(phase)
                cos_table[axis, max_index + n, j] = c
                sin_table[axis, max_index + n, j] = s
                cos_table[axis, max_index - n, j] = c
                sin_table[axis, max_index - n, j] = -s
    return cos_table, sin_table


@njit(cache=True)
def _l_runs(hkl, pair_of, n_pairs, max_index):
    """Reflections grouped into runs of one (h, k) pair and consecutive l (a counting sort by
    (pair, l), O(M + pairs·(2n+1))): ``run_order`` (M,) reflection indices, run r being
    ``run_order[run_start[r]:run_start[r + 1]]`` with l ascending by one."""
    n_reflections, width = hkl.shape[0], 2 * max_index + 1
    count = np.zeros(n_pairs * width + 1, dtype=np.int64)
    for m in range(n_reflections):
        count[pair_of[m] * width + int(hkl[m, 2]) + max_index + 1] += 1
    for key in range(n_pairs * width):
        count[key + 1] += count[key]
    run_order = np.empty(n_reflections, dtype=np.int64)
    for m in range(n_reflections):
        key = pair_of[m] * width + int(hkl[m, 2]) + max_index
        run_order[count[key]] = m
        count[key] += 1
    run_start = np.empty(n_reflections + 1, dtype=np.int64)
    n_runs = 0
    for i in range(n_reflections):
        m = run_order[i]
        if (i == 0 or pair_of[m] != pair_of[run_order[i - 1]] or
                hkl[m, 2] != hkl[run_order[i - 1], 2] + 1.0):
            run_start[n_runs] = i
            n_runs += 1
    run_start[n_runs] = n_reflections
    return run_order, run_start[:n_runs + 1]


@njit(cache=True)
def _structure_factor_tables(hkl, frac_coords, occupancies, scatterer_type, n_types):
    """Everything the structure-factor loops share, so that they need no trigonometry.

    Atoms are sorted by scatterer type (``by_type``; type t is the slice
    ``type_start[t]:type_start[t + 1]``). For every (h, k) pair in use, row ``pair_of[m]`` of
    ``xy_real``/``xy_imag`` holds occ_j exp(2πi(h x_j + k y_j)) (reflections share it across
    l); ``cos_table[2, l + n]``, ``sin_table[2, l + n]`` give exp(2πi l z_j), n = ``max_index``.
    Costs 3(n+1)N sin/cos plus (pairs × N) products instead of M·N sin/cos.
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
    pair_of, pair_h, pair_k = reflection_pairs(hkl, max_index)
    xy_real = np.empty((pair_h.shape[0], n_atoms))
    xy_imag = np.empty((pair_h.shape[0], n_atoms))
    pair_tables(cos_table, sin_table, sorted_occupancy, pair_h, pair_k, xy_real, xy_imag)
    return by_type, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table


@njit(cache=True)
def reflection_pairs(hkl: np.ndarray, max_index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (h, k) pairs of a reflection list: ``pair_of`` (M,) the pair of each reflection, and
    per pair its table rows h + n and k + n (n = ``max_index``), (P,) each, in order of first
    use."""
    n_reflections, width = hkl.shape[0], 2 * max_index + 1
    pair_of = np.empty(n_reflections, dtype=np.int64)
    pair_row = np.full(width * width, -1, dtype=np.int64)
    pair_h = np.empty(n_reflections, dtype=np.int64)
    pair_k = np.empty(n_reflections, dtype=np.int64)
    n_pairs = 0
    for m in range(n_reflections):
        h, k = int(hkl[m, 0]) + max_index, int(hkl[m, 1]) + max_index
        if pair_row[h * width + k] < 0:
            pair_row[h * width + k] = n_pairs
            pair_h[n_pairs], pair_k[n_pairs] = h, k
            n_pairs += 1
        pair_of[m] = pair_row[h * width + k]
    return pair_of, pair_h[:n_pairs], pair_k[:n_pairs]


@njit(cache=True, inline="always", fastmath=FASTMATH)
def pair_tables(cos_table: np.ndarray, sin_table: np.ndarray, occupancies: np.ndarray,
                pair_h: np.ndarray, pair_k: np.ndarray, xy_real: np.ndarray,
                xy_imag: np.ndarray) -> None:
    """xy_*[p, j] = occ_j exp(2πi(h_p x_j + k_p y_j)) from the per-axis tables (P × N products)."""
    for p in range(pair_h.shape[0]):
        h, k = pair_h[p], pair_k[p]
        for j in range(occupancies.shape[0]):
            xy_real[p, j] = occupancies[j] * (cos_table[0, h, j] * cos_table[1, k, j] -
                                              sin_table[0, h, j] * sin_table[1, k, j])
            xy_imag[p, j] = occupancies[j] * (cos_table[0, h, j] * sin_table[1, k, j] +
                                              sin_table[0, h, j] * cos_table[1, k, j])


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _phases(m, hkl, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table, phase_real,
            phase_imag):
    """phase_*[j] = occ_j exp(2πi h_m·x_j) for every atom (type-sorted order), from the tables:
    one complex product per atom, no reduction, so the loop vectorises."""
    pair_real, pair_imag = xy_real[pair_of[m]], xy_imag[pair_of[m]]
    l = int(hkl[m, 2]) + max_index
    cos_z, sin_z = cos_table[2, l], sin_table[2, l]
    for j in range(phase_real.shape[0]):
        phase_real[j] = pair_real[j] * cos_z[j] - pair_imag[j] * sin_z[j]
        phase_imag[j] = pair_real[j] * sin_z[j] + pair_imag[j] * cos_z[j]


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _run_sums(a, b, z_cos, z_sin, l, count, sums_real, sums_imag, run_order, i, t):
    """S_t of ``count`` (4 or 1) consecutive-l reflections of one (h, k) pair, written to rows
    ``run_order[i:i + count]`` of column t: for c < count, Σ_j (a_j + i b_j) exp(2πi (l + c) z_j)
    over the type's atoms (``a``, ``b`` its pair-table entries, ``z_cos``, ``z_sin`` its
    l-tables with column l + c), the four reflections' eight sums carried side by side
    (independent chains), atoms in index order."""
    r0 = r1 = r2 = r3 = q0 = q1 = q2 = q3 = 0.0
    if count == 4:
        zc = z_cos[:, l:l + 4]
        zs = z_sin[:, l:l + 4]
        for j in range(a.shape[0]):
            r0 += a[j] * zc[j, 0] - b[j] * zs[j, 0]
            q0 += a[j] * zs[j, 0] + b[j] * zc[j, 0]
            r1 += a[j] * zc[j, 1] - b[j] * zs[j, 1]
            q1 += a[j] * zs[j, 1] + b[j] * zc[j, 1]
            r2 += a[j] * zc[j, 2] - b[j] * zs[j, 2]
            q2 += a[j] * zs[j, 2] + b[j] * zc[j, 2]
            r3 += a[j] * zc[j, 3] - b[j] * zs[j, 3]
            q3 += a[j] * zs[j, 3] + b[j] * zc[j, 3]
        sums_real[run_order[i + 1], t], sums_imag[run_order[i + 1], t] = r1, q1
        sums_real[run_order[i + 2], t], sums_imag[run_order[i + 2], t] = r2, q2
        sums_real[run_order[i + 3], t], sums_imag[run_order[i + 3], t] = r3, q3
    else:
        zc1 = z_cos[:, l]
        zs1 = z_sin[:, l]
        for j in range(a.shape[0]):
            r0 += a[j] * zc1[j] - b[j] * zs1[j]
            q0 += a[j] * zs1[j] + b[j] * zc1[j]
    sums_real[run_order[i], t], sums_imag[run_order[i], t] = r0, q0


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def structure_factor_sums(hkl: np.ndarray, frac_coords: np.ndarray, occupancies: np.ndarray,
                          scatterer_type: np.ndarray,
                          n_types: int) -> tuple[np.ndarray, np.ndarray]:
    """S_t(h) = Σ_{j of type t} occ_j exp(2πi h·x_j): real and imaginary parts, each (M, T).

    The O(M·N) kernel of the forward model: F(h) = Σ_t f_t(s) exp(−B_t s²) S_t(h), so the
    form factors enter per type, not per atom. No trigonometry in the loop (see
    ``_structure_factor_tables``). The reflections are walked in runs of one (h, k) pair and
    consecutive l (:func:`_l_runs`), four at a time (:func:`_run_sums`): they share
    occ_j exp(2πi(h x_j + k y_j)) and read exp(2πi l z_j) from one contiguous table row.
    Every S_t(h) adds its atoms in index order: the same digits on every CPU (no
    "reassoc", see ``FASTMATH``).
    """
    n_reflections = hkl.shape[0]
    _, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table = (
        _structure_factor_tables(hkl, frac_coords, occupancies, scatterer_type, n_types))
    run_order, run_start = _l_runs(hkl, pair_of, xy_real.shape[0], max_index)
    z_cos = np.ascontiguousarray(cos_table[2].T)  # (N, 2n + 1): atom-major, l contiguous
    z_sin = np.ascontiguousarray(sin_table[2].T)
    sums_real = np.empty((n_reflections, n_types))
    sums_imag = np.empty((n_reflections, n_types))
    n_runs = run_start.shape[0] - 1
    n_chunks = min(n_runs, 64)
    for chunk in prange(n_chunks):
        for r in range(chunk * n_runs // n_chunks, (chunk + 1) * n_runs // n_chunks):
            first, end = run_start[r], run_start[r + 1]
            pair = pair_of[run_order[first]]
            l0 = (int(hkl[run_order[first], 2]) + max_index - first
                  )  # table column of position i: l0 + i
            for t in range(n_types):
                begin, stop = type_start[t], type_start[t + 1]
                a, b = xy_real[pair, begin:stop], xy_imag[pair, begin:stop]
                zc, zs = z_cos[begin:stop], z_sin[begin:stop]
                i = first
                while i < end:
                    count = 4 if i + 4 <= end else 1
                    _run_sums(a, b, zc, zs, l0 + i, count, sums_real, sums_imag, run_order, i, t)
                    i += count
    return sums_real, sums_imag


@njit(cache=True)
def reflection_intensities(g: np.ndarray, wavelength: float, type_form_factor: np.ndarray,
                           sums_real: np.ndarray,
                           sums_imag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2θ (deg) and intensity 2·|F(h)|²·LP(θ) of each half-space reflection.

    F(h) = Σ_t ``type_form_factor[m, t]`` S_t(h) with the type sums of
    :func:`structure_factor_sums`; s = |g|/2, sin θ = λ|g|/2, LP = (1 + cos² 2θ) / (sin² θ cos θ).
    The factor 2 adds the Friedel mate −h. O(M·T).
    """
    n_reflections, n_types = g.shape[0], type_form_factor.shape[1]
    two_theta = np.empty(n_reflections)
    intensity = np.empty(n_reflections)
    for m in range(n_reflections):
        real = 0.0
        imag = 0.0
        for t in range(n_types):
            real += type_form_factor[m, t] * sums_real[m, t]
            imag += type_form_factor[m, t] * sums_imag[m, t]
        two_theta[m], lorentz_polarization, _, _ = _reflection_factors(g[m], wavelength)
        intensity[m] = 2.0 * (real * real + imag * imag) * lorentz_polarization
    return two_theta, intensity


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def reflection_intensities_adjoint(hkl: np.ndarray, g: np.ndarray, wavelength: float,
                                   frac_coords: np.ndarray, occupancies: np.ndarray,
                                   scatterer_type: np.ndarray, type_form_factor: np.ndarray,
                                   type_form_factor_slope: np.ndarray, sums_real: np.ndarray,
                                   sums_imag: np.ndarray, d_intensity: np.ndarray,
                                   d_two_theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pull dL/dI_h and dL/d(2θ_h) back to dL/dx (N, 3) and dL/d|g_h| (M,).

    With I = 2|F|²·LP, W_j = occ_j f_j(s), φ_j = 2π h·x_j:
      dI/dx_j  = 8π LP W_j (Im F cos φ_j − Re F sin φ_j) h,
      dI/d|g|  = 2 LP Re(F* dF/ds) + 2|F|² dLP/du · λ²|g|/2      (s = |g|/2, u = sin²θ),
      d2θ/d|g| = (360/π)(λ/2)/cos θ   (2θ in degrees).
    Inputs as :func:`reflection_intensities`, plus ``type_form_factor_slope`` = d/ds of the
    form-factor table and the forward pass's type sums (so F and dF/ds cost O(T) per
    reflection here). One O(M·N) pass: the phases again, and three products per atom.
    """
    n_reflections, n_atoms, n_types = g.shape[0], frac_coords.shape[0], type_form_factor.shape[1]
    by_type, type_start, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table = (
        _structure_factor_tables(hkl, frac_coords, occupancies, scatterer_type, n_types))
    d_g = np.empty(n_reflections)
    n_chunks = min(n_reflections, 64)
    partial_d_frac = np.zeros((n_chunks, 3, n_atoms))  # one accumulator per chunk: no write races
    for chunk in prange(n_chunks):
        phase_real = np.empty(n_atoms)
        phase_imag = np.empty(n_atoms)
        d_x, d_y, d_z = partial_d_frac[chunk, 0], partial_d_frac[chunk, 1], partial_d_frac[chunk, 2]
        for m in range(chunk * n_reflections // n_chunks, (chunk + 1) * n_reflections // n_chunks):
            real = imag = slope_real = slope_imag = 0.0
            for t in range(n_types):
                real += type_form_factor[m, t] * sums_real[m, t]
                imag += type_form_factor[m, t] * sums_imag[m, t]
                slope_real += type_form_factor_slope[m, t] * sums_real[m, t]
                slope_imag += type_form_factor_slope[m, t] * sums_imag[m, t]
            _, lorentz_polarization, d_lp_d_u, d_two_theta_d_g = _reflection_factors(
                g[m], wavelength)
            d_g[m], coefficient = _reflection_adjoint(
                d_intensity[m], d_two_theta[m], g[m], wavelength, lorentz_polarization, d_lp_d_u,
                d_two_theta_d_g, real, imag, slope_real, slope_imag)
            if coefficient == 0.0:
                continue
            _phases(m, hkl, max_index, pair_of, xy_real, xy_imag, cos_table, sin_table, phase_real,
                    phase_imag)
            h, k, l = hkl[m, 0], hkl[m, 1], hkl[m, 2]
            for t in range(n_types):
                weight_imag = coefficient * type_form_factor[m, t] * imag
                weight_real = coefficient * type_form_factor[m, t] * real
                for j in range(type_start[t], type_start[t + 1]):
                    along_h = weight_imag * phase_real[j] - weight_real * phase_imag[j]
                    d_x[j] += along_h * h
                    d_y[j] += along_h * k
                    d_z[j] += along_h * l
    d_frac = np.empty((n_atoms, 3))
    summed = partial_d_frac.sum(axis=0)
    for j in range(n_atoms):
        for axis in range(3):
            d_frac[by_type[j], axis] = summed[axis, j]
    return d_frac, d_g


@njit(parallel=True, cache=True)
def broadened_profile(two_theta_grid: np.ndarray, centres: np.ndarray, intensities: np.ndarray,
                      fwhm: np.ndarray, eta: float, window: float, step: float = 0.0) -> np.ndarray:
    """y(2θ_k) = Σ_h I_h P(2θ_k − 2θ_h; w_h, η), each peak cut at |2θ_k − 2θ_h| > window·w_h.

    ``centres`` (deg) must be sorted ascending; ``fwhm`` (deg) is per peak. ``step`` > 0
    declares the grid uniform with that spacing: Gaussian peaks (η = 0) then use the
    recurrence of :func:`~xrdcore.kernels.elements.gaussian_window` (one exp per peak side),
    peak by peak on one thread. Otherwise each grid point visits the peaks whose window covers
    it (binary search). Cost O(grid + peaks · window points), never grid × peaks.
    """
    profile = np.zeros(two_theta_grid.shape[0])
    if centres.shape[0] == 0:
        return profile
    if eta == 0.0 and step > 0.0:
        for p in range(centres.shape[0]):
            _gaussian_window(profile, two_theta_grid, step, centres[p], intensities[p], fwhm[p],
                             window)
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
def broadened_profile_adjoint(two_theta_grid: np.ndarray, centres: np.ndarray,
                              intensities: np.ndarray, fwhm: np.ndarray, eta: float, window: float,
                              d_profile: np.ndarray,
                              step: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pull dL/dy (grid) back to dL/dI_h and dL/d(2θ_h) for :func:`broadened_profile`
    (fixed widths).

    dL/dI_h = Σ_k dL/dy_k P(2θ_k − 2θ_h), dL/d2θ_h = −I_h Σ_k dL/dy_k P'(2θ_k − 2θ_h), over
    the same windows as the forward pass (the Gaussian recurrence where it used it); parallel
    over peaks, O(peaks · window points).
    """
    n_peaks = centres.shape[0]
    d_intensity = np.zeros(n_peaks)
    d_centre = np.zeros(n_peaks)
    gaussian = eta == 0.0 and step > 0.0
    for p in prange(n_peaks):
        if gaussian:
            d_intensity[p], d_centre[p] = _gaussian_window_adjoint(
                d_profile, two_theta_grid, step, centres[p], intensities[p], fwhm[p], window)
        else:
            d_intensity[p], d_centre[p] = _peak_window_adjoint(
                d_profile, two_theta_grid, centres[p], intensities[p], fwhm[p], eta, window)
    return d_intensity, d_centre


@njit(parallel=True, cache=True)
def broadened_profile_parameter_adjoint(
        two_theta_grid: np.ndarray, centres: np.ndarray, intensities: np.ndarray, fwhm: np.ndarray,
        eta: float, window: float,
        d_profile: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Pull dL/dy (K,) on ``two_theta_grid`` (K,) (deg, ascending, uniform or not) back to every
    parameter of :func:`broadened_profile`: dL/dI_h (P,), dL/d2θ_h (P,) (deg⁻¹), dL/dw_h (P,)
    (deg⁻¹) of the per-peak FWHM ``fwhm`` (P,) and dL/dη (float) of the shared mixing η in
    [0, 1].

    dL/dw_h = I_h Σ_k dL/dy_k ∂P/∂w(2θ_k − 2θ_h), dL/dη = Σ_h I_h Σ_k dL/dy_k (L − G)(…), over
    each peak's window (:func:`~xrdcore.kernels.elements.peak_window_full_adjoint`; its edges
    are not differentiated); dL/dI_h and dL/d2θ_h as :func:`broadened_profile_adjoint` with
    ``step`` = 0 (the same digits). It complements that kernel when the widths and η are
    refined too (Caglioti U, V, W and η). Parallel over peaks; η is summed from a per-peak
    array, O(peaks · window points).
    """
    n_peaks = centres.shape[0]
    d_intensity = np.zeros(n_peaks)
    d_centre = np.zeros(n_peaks)
    d_fwhm = np.zeros(n_peaks)
    d_eta = np.zeros(n_peaks)
    for p in prange(n_peaks):
        d_intensity[p], d_centre[p], d_fwhm[p], d_eta[p] = _peak_window_full_adjoint(
            d_profile, two_theta_grid, centres[p], intensities[p], fwhm[p], eta, window)
    return d_intensity, d_centre, d_fwhm, d_eta.sum()


@njit(cache=True)
def reflection_list(lattice: np.ndarray, g_min: float,
                    g_max: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`half_space_reflections` of a lattice (rows, Å): reciprocal vectors (A⁻¹)ᵀ and the
    index bounds floor(g_max |a_i|) computed here, so that one call enumerates."""
    reciprocal = np.ascontiguousarray(np.linalg.inv(lattice).T)
    index_bounds = np.empty(3, dtype=np.int64)
    for axis in range(3):
        length = math.sqrt(lattice[axis, 0]**2 + lattice[axis, 1]**2 + lattice[axis, 2]**2)
        index_bounds[axis] = int(math.floor(g_max * length))
    return half_space_reflections(reciprocal, index_bounds, g_min, g_max)


@njit(cache=True)
def structure_intensities(
    hkl: np.ndarray, g: np.ndarray, wavelength: float, frac_coords: np.ndarray,
    occupancies: np.ndarray, scatterer_type: np.ndarray, type_z: np.ndarray,
    type_coeffs: np.ndarray, type_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The forward model of a reflection list in one call: 2θ (M,), intensity (M,), and what the
    backward pass reuses: form factors and their d/ds, type sums real and imaginary (each (M, T);
    :func:`form_factor_tables`, :func:`structure_factor_sums`, :func:`reflection_intensities`)."""
    form_factor, form_factor_slope = form_factor_tables(g, type_z, type_coeffs, type_b)
    sums_real, sums_imag = structure_factor_sums(hkl, frac_coords, occupancies, scatterer_type,
                                                 type_z.shape[0])
    two_theta, intensity = reflection_intensities(g, wavelength, form_factor, sums_real, sums_imag)
    return two_theta, intensity, form_factor, form_factor_slope, sums_real, sums_imag


@njit(cache=True)
def merge_peaks(two_theta: np.ndarray, intensity: np.ndarray, two_theta_tol: float,
                scaled_tol: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """pymatgen's merge of a 2θ-sorted reflection list: reflections whose 2θ round to the same
    multiple of ``two_theta_tol`` form one peak (intensities add; the first gives the position),
    peaks are scaled to a maximum of 100 and kept where above ``scaled_tol``.

    Returns ``first`` (P,) the index of each kept peak's first reflection, ``scaled`` (P,), and
    ``member_start`` (P + 1,) with ``members`` (Σ,) the reflections of kept peak p in
    ``members[member_start[p]:member_start[p + 1]]``; all empty when nothing diffracts."""
    n = two_theta.shape[0]
    start = np.empty(n + 1, dtype=np.int64)
    merged = np.empty(n)
    n_peaks = 0
    previous = 0.0
    for m in range(n):
        bin_ = np.rint(two_theta[m] / two_theta_tol)
        if m == 0 or bin_ != previous:
            start[n_peaks] = m
            merged[n_peaks] = 0.0
            n_peaks += 1
        merged[n_peaks - 1] += intensity[m]
        previous = bin_
    start[n_peaks] = n
    largest = 0.0
    for p in range(n_peaks):
        largest = max(largest, merged[p])
    if largest <= 0.0:  # nothing in range, or every reflection extinct
        n_peaks = 0
    scale = 100.0 / largest if largest > 0.0 else 0.0
    first = np.empty(n_peaks, dtype=np.int64)
    scaled = np.empty(n_peaks)
    member_start = np.zeros(n_peaks + 1, dtype=np.int64)
    members = np.empty(n, dtype=np.int64)
    kept = 0
    for p in range(n_peaks):
        value = merged[p] * scale
        if value > scaled_tol:
            first[kept] = start[p]
            scaled[kept] = value
            count = start[p + 1] - start[p]
            for i in range(count):
                members[member_start[kept] + i] = start[p] + i
            member_start[kept + 1] = member_start[kept] + count
            kept += 1
    return first[:kept], scaled[:kept], member_start[:kept + 1], members[:member_start[kept]]


@njit(cache=True)
def reflection_lengths(lattice: np.ndarray, hkl: np.ndarray,
                       g_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """A fixed hkl list (M, 3) at a lattice (rows, Å): the reflections with |g| ≤ ``g_limit``
    (Å⁻¹) in ascending |g| (a stable sort), as hkl (M', 3) and |g| (M',)."""
    reciprocal = np.ascontiguousarray(np.linalg.inv(lattice).T)
    n = hkl.shape[0]
    g = np.empty(n)
    for m in range(n):
        gx = (hkl[m, 0] * reciprocal[0, 0] + hkl[m, 1] * reciprocal[1, 0] +
              hkl[m, 2] * reciprocal[2, 0])
        gy = (hkl[m, 0] * reciprocal[0, 1] + hkl[m, 1] * reciprocal[1, 1] +
              hkl[m, 2] * reciprocal[2, 1])
        gz = (hkl[m, 0] * reciprocal[0, 2] + hkl[m, 1] * reciprocal[1, 2] +
              hkl[m, 2] * reciprocal[2, 2])
        g[m] = math.sqrt(gx * gx + gy * gy + gz * gz)
    reachable = np.flatnonzero(g <= g_limit)
    order = reachable[np.argsort(g[reachable], kind="mergesort")]
    out_hkl = np.empty((order.shape[0], 3))
    for i in range(order.shape[0]):
        out_hkl[i] = hkl[order[i]]
    return out_hkl, g[order]


@njit(cache=True)
def required_margins(reference: np.ndarray, lattices: np.ndarray) -> np.ndarray:
    """(B,) smallest relative margin of a reflection list enumerated at ``reference`` (3, 3)
    that is complete for each of ``lattices`` (B, 3, 3): with s the singular values of
    A_b⁻¹ A_ref, max(1/s_min − 1, 1 − 1/s_max)."""
    margins = np.empty(lattices.shape[0])
    for b in range(lattices.shape[0]):
        _, singular_values, _ = np.linalg.svd(np.linalg.solve(lattices[b], reference))
        margins[b] = max(1.0 / singular_values.min() - 1.0, 1.0 - 1.0 / singular_values.max())
    return margins


@njit(cache=True)
def lattice_gradient(lattice: np.ndarray, hkl: np.ndarray, g: np.ndarray,
                     d_g: np.ndarray) -> np.ndarray:
    """dL/dA (3, 3) from dL/d|g_h| (M,): S = Σ (dL/d|g|)/(2|g|) h hᵀ, dL/dA = −2 G* S G* A
    (G* = (A Aᵀ)⁻¹ by cofactors; the element function the batched kernels use)."""
    metric = np.empty(6)
    _reciprocal_metric(lattice, metric)
    out = np.empty((3, 3))
    _lattice_gradient(lattice, metric, hkl, g, d_g, out)
    return out


@njit(parallel=True, cache=True)
def cosine_loss_rows(patterns: np.ndarray,
                     target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 − cos(y_b, t) and its gradient t/(|y||t|) − S y/|y|², negated, for every row y_b of
    ``patterns`` (B, K): losses (B,), gradients (B, K), and ``undefined`` (B,) True where a
    row is not finite or all zero (loss NaN, gradient 0 there). One pass per row, parallel
    over rows, no temporaries."""
    n_rows, n_points = patterns.shape
    norm_t = 0.0
    for k in range(n_points):
        norm_t += target[k] * target[k]
    norm_t = math.sqrt(norm_t)
    losses = np.empty(n_rows)
    gradients = np.zeros((n_rows, n_points))
    undefined = np.zeros(n_rows, dtype=np.bool_)
    for b in prange(n_rows):
        dot = 0.0
        norm_y = 0.0
        for k in range(n_points):
            dot += patterns[b, k] * target[k]
            norm_y += patterns[b, k] * patterns[b, k]
        if not (math.isfinite(dot) and math.isfinite(norm_y)) or norm_y == 0.0:
            undefined[b] = True
            losses[b] = np.nan
            continue
        norm_y = math.sqrt(norm_y)
        value = dot / (norm_y * norm_t)
        losses[b] = 1.0 - value
        for k in range(n_points):
            gradients[
                b, k] = value * patterns[b, k] / (norm_y * norm_y) - target[k] / (norm_y * norm_t)
    return losses, gradients, undefined
