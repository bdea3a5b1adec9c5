"""Benchmark: how close the kernels come to this CPU's limit, and where a call's time goes.

1. The ceiling: an L1-resident microbenchmark of the structure-factor loop's work, one complex
   multiply-accumulate (a + ib)(c + is) per term, on one thread. Two ceilings: "vectorised"
   (numba's fastmath, reassociation allowed, so the compiler splits each sum across SIMD
   lanes: the machine's limit for this loop) and "in order" (the shipped inner loop itself,
   ``xrdcore.kernels.cpu._run_sums``: four reflections' sums side by side, each added strictly
   in order, since the kernels never reassociate, see xrdcore.kernels.cpu.FASTMATH).
2. What the engine reaches, one thread, in terms (reflections × atoms) per second: the
   structure-factor kernel alone (``structure_factor_sums``), and whole ``peaks``, ``pattern``
   and ``loss_and_grad`` calls (the last counts 2 terms per reflection and atom: forward and
   adjoint), at 2, 8, 64 and 200 atoms (the bench_peaks structures).
3. Where a call's time goes: each kernel of ``peaks`` and ``loss_and_grad`` timed on its own
   with the call's inputs; the rest of the call is Python and numpy glue.

Prints markdown tables and writes the figure benchmarks/roofline.png (RESULTS.md shows it).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numba  # noqa: E402
import numpy as np  # noqa: E402
from bench_gradients import perturbed  # noqa: E402
from bench_peaks import best_times, structures  # noqa: E402
from numba import njit  # noqa: E402

from xrdcore import Crystal, Diffractometer  # noqa: E402
from xrdcore.diffraction import SCALED_INTENSITY_TOL, scatterer_types
from xrdcore.gradients import loss_and_grad  # noqa: E402
from xrdcore.kernels import cpu  # noqa: E402
from xrdcore.physics.scattering import TWO_THETA_TOL
from xrdcore.similarity import loss as metric_loss  # noqa: E402

FWHM = 0.1
FIGURE = Path(__file__).with_name("roofline.png")


@njit(fastmath=True)
def _vectorised(a, b, c, s, repeats):
    real = imag = 0.0
    for _ in range(repeats):
        for j in range(a.shape[0]):
            real += a[j] * c[j] - b[j] * s[j]
            imag += a[j] * s[j] + b[j] * c[j]
    return real, imag


_run_sums = cpu._run_sums  # the shipped inner loop: four reflections' sums side by side, in order


@njit(fastmath=cpu.FASTMATH)
def _in_order(a, b, c, s, repeats):
    """The shipped loop (four reflections of a run, eight in-order sums) on L1-resident tables:
    ``c``, ``s`` hold exp(2πi l z_j) of four consecutive l per atom."""
    z_cos, z_sin = c.reshape(-1, 4), s.reshape(-1, 4)
    n = z_cos.shape[0]
    sums_real, sums_imag = np.zeros((4, 1)), np.zeros((4, 1))
    rows = np.arange(4)
    for _ in range(repeats):
        _run_sums(a[:n], b[:n], z_cos, z_sin, 0, 4, sums_real, sums_imag, rows, 0, 0)
    return sums_real, sums_imag


def ceilings(n=256, repeats=20000) -> dict:
    """Terms per second of the two microbenchmarks (best of 9), arrays of ``n`` (L1-resident)."""
    rng = np.random.default_rng(0)
    arrays = [rng.random(n) for _ in range(4)]
    rates = {}
    for name, kernel in (("vectorised", _vectorised), ("in order", _in_order)):
        kernel(*arrays, 1)
        best = np.inf
        for _ in range(9):
            begin = time.perf_counter()
            kernel(*arrays, repeats)
            best = min(best, time.perf_counter() - begin)
        rates[name] = n * repeats / best  # the in-order loop: n/4 atoms × 4 reflections per repeat
    return rates


def breakdown(crystal, target, diffractometer) -> tuple[dict, dict, int]:
    """Best time (s) of each kernel of peaks and of loss_and_grad, with the calls' own inputs,
    and of the whole calls; and the reflection count of the gradient's list."""
    scatterer_type, *tables = scatterer_types(crystal)
    lattice, wavelength = crystal.lattice, diffractometer.wavelength
    atoms = (crystal.frac_coords, crystal.occupancies, scatterer_type)
    hkl, g = cpu.reflection_list(lattice, *diffractometer.g_window(diffractometer.two_theta_range))
    forward = cpu.structure_intensities(hkl, g, wavelength, *atoms, *tables)
    peaks = best_times(
        {
            "whole call": lambda: diffractometer.peaks(crystal),
            "reflection_list": lambda: cpu.reflection_list(
                lattice, *diffractometer.g_window(diffractometer.two_theta_range)),
            "structure_intensities": lambda: cpu.structure_intensities(
                hkl, g, wavelength, *atoms, *tables),
            "merge_peaks": lambda: cpu.merge_peaks(forward[0], forward[1], TWO_THETA_TOL,
                                                   SCALED_INTENSITY_TOL)
        }, repeats=5)
    setup = diffractometer.profile_setup(fwhm=FWHM)
    hkl, g = cpu.reflection_list(lattice, *diffractometer.g_window(setup.two_theta_range))
    two_theta, intensity, *saved = cpu.structure_intensities(hkl, g, wavelength, *atoms, *tables)
    widths = np.full(len(g), FWHM)
    profile_args = (setup.grid, two_theta, intensity, widths, setup.eta, setup.window)
    pattern = cpu.broadened_profile(*profile_args, setup.step)
    _, d_pattern = metric_loss("cosine", pattern, target, setup.grid)
    d_intensity, d_two_theta = cpu.broadened_profile_adjoint(*profile_args, d_pattern, setup.step)
    _, d_g = cpu.reflection_intensities_adjoint(hkl, g, wavelength, *atoms, *saved, d_intensity,
                                                d_two_theta)
    gradient = best_times(
        {
            "whole call": lambda: loss_and_grad(crystal, target, diffractometer, fwhm=FWHM),
            "reflection_list": lambda: cpu.reflection_list(
                lattice, *diffractometer.g_window(setup.two_theta_range)),
            "structure_intensities": lambda: cpu.structure_intensities(
                hkl, g, wavelength, *atoms, *tables),
            "broadened_profile": lambda: cpu.broadened_profile(*profile_args, setup.step),
            "cosine metric (numpy)": lambda: metric_loss("cosine", pattern, target, setup.grid),
            "broadened_profile_adjoint": lambda: cpu.broadened_profile_adjoint(
                *profile_args, d_pattern, setup.step),
            "reflection_intensities_adjoint": lambda: cpu.reflection_intensities_adjoint(
                hkl, g, wavelength, *atoms, *saved, d_intensity, d_two_theta),
            "lattice_gradient": lambda: cpu.lattice_gradient(lattice, hkl, g, d_g)
        }, repeats=5)
    return peaks, gradient, len(g)


def reached(crystal, target, diffractometer) -> dict:
    """Terms per second of the structure-factor kernel and of whole calls (one thread)."""
    scatterer_type, *tables = scatterer_types(crystal)
    setup = diffractometer.profile_setup(fwhm=FWHM)
    hkl, g = cpu.reflection_list(crystal.lattice,
                                 *diffractometer.g_window(diffractometer.two_theta_range))
    wide_hkl, _ = cpu.reflection_list(crystal.lattice,
                                      *diffractometer.g_window(setup.two_theta_range))
    atoms = (crystal.frac_coords, crystal.occupancies, scatterer_type, len(tables[0]))
    seconds = best_times(
        {
            "structure-factor kernel": lambda: cpu.structure_factor_sums(hkl, *atoms),
            "peaks": lambda: diffractometer.peaks(crystal),
            "pattern": lambda: diffractometer.pattern(crystal, fwhm=FWHM),
            "loss_and_grad": lambda: loss_and_grad(crystal, target, diffractometer, fwhm=FWHM)
        }, repeats=5)
    terms = {
        "structure-factor kernel": len(hkl),
        "peaks": len(hkl),
        "pattern": len(wide_hkl),
        "loss_and_grad": 2 * len(wide_hkl)
    }
    return {name: terms[name] * len(crystal) / seconds[name] for name in seconds}


def main():
    numba.set_num_threads(1)
    print(f"{platform.processor() or platform.machine()}; numba {numba.__version__}, one thread\n")
    limits = ceilings()
    print("### Ceilings (L1-resident microbenchmark of the structure-factor term)\n")
    print("| loop | Gterm/s |\n|---|---|")
    for name, rate in limits.items():
        print(f"| {name} | {rate / 1e9:.2f} |")
    diffractometer = Diffractometer("CuKa", (10, 90), backend="cpu")
    results, breakdowns = {}, {}
    for atoms, structure in structures().items():
        truth = Crystal.from_pymatgen(structure)
        crystal = perturbed(truth)
        target = diffractometer.pattern(truth, fwhm=FWHM)
        results[atoms] = reached(crystal, target, diffractometer)
        breakdowns[atoms] = breakdown(crystal, target, diffractometer)
    names = list(next(iter(results.values())))
    print("\n### Reached (Gterm/s; fraction of the vectorised / in-order ceiling)\n")
    print("| atoms | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for atoms, rates in results.items():
        print(f"| {atoms} | " + " | ".join(f"{rate / 1e9:.2f} ({rate / limits['vectorised']:.0%} "
                                           f"/ {rate / limits['in order']:.0%})"
                                           for rate in rates.values()) + " |")
    for index, call in ((0, "peaks"), (1, "loss_and_grad")):
        print(f"\n### Where a `{call}` call goes (µs, one thread)\n")
        kernels = [name for name in breakdowns[2][index] if name != "whole call"]
        print("| atoms | whole call | " + " | ".join(kernels) +
              " | Python and numpy glue |\n|---|---|" + "---|" * (len(kernels) + 1))
        for atoms, parts in breakdowns.items():
            times = parts[index]
            glue = times["whole call"] - sum(times[name] for name in kernels)
            print(f"| {atoms} | {times['whole call'] * 1e6:.0f} | " +
                  " | ".join(f"{times[name] * 1e6:.0f}" for name in kernels) +
                  f" | {max(glue, 0) * 1e6:.0f} ({max(glue, 0) / times['whole call']:.0%}) |")
    figure(limits, results)


def figure(limits, results):
    atoms = np.array(list(results))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in next(iter(results.values())):
        ax.loglog(atoms, [results[n][name] / 1e9 for n in atoms], "o-", label=name)
    for name, style in (("vectorised", "--"), ("in order", ":")):
        ax.axhline(limits[name] / 1e9, color="k", linestyle=style, label=f"ceiling, {name}")
    ax.set_xlabel("atoms in the cell")
    ax.set_ylabel("terms (reflections × atoms) per second, ×10⁹")
    ax.set_title("Structure-factor work rate, one thread (Cu Kα, 10–90°)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGURE, dpi=120)
    print(f"\nwrote {FIGURE}")


if __name__ == "__main__":
    main()
