"""Benchmark: what numba's fastmath flags buy in the structure-factor kernels, and what they cost
in digits.

The two O(M·N) kernels (``structure_factor_sums`` and ``reflection_intensities_adjoint``) are
compiled three ways
from the same Python source — fastmath {"reassoc", "contract"} (shipped until 2026-12-01),
{"contract"} only (shipped now, ``xrdcore.kernels.cpu.FASTMATH``), and none — and timed
interleaved on the same structures (warm, best of repeats, one run),
single-threaded so the kernel, not the thread pool, is measured; the whole ``loss_and_grad``
call is timed the same way. The last columns give the largest relative difference of the
intensities and of the gradient of the shipped build from the fastmath-free one.
"""

from __future__ import annotations

import platform

import numba
import numpy as np
from bench_peaks import best_times, structures
from numba import njit

from xrdcore import Crystal, Diffractometer
from xrdcore.gradients import loss_and_grad
from xrdcore.kernels import cpu

VARIANTS = {"reassoc+contract": {"reassoc", "contract"}, "contract": {"contract"}, "none": False}
KERNELS = ("structure_factor_sums", "reflection_intensities_adjoint")


def compiled(flags) -> dict:
    """The kernels built with ``flags``, and a fresh ``structure_intensities`` that calls them
    (numba binds the callee when it first compiles a caller, i.e. after :func:`use`)."""
    kernels = {
        name: njit(parallel=True, fastmath=flags)(getattr(cpu, name).py_func)
        for name in KERNELS
    }
    kernels["structure_intensities"] = njit(cpu.structure_intensities.py_func)
    return kernels


def use(kernels: dict):
    for name, kernel in kernels.items():
        setattr(cpu, name, kernel)


def main():
    numba.set_num_threads(1)
    shipped = {name: getattr(cpu, name) for name in (*KERNELS, "structure_intensities")}
    builds = {label: compiled(flags) for label, flags in VARIANTS.items()}
    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    print(f"numba {numba.__version__}, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, 1 thread")
    print("| atoms | loss_and_grad reassoc+contract (ms) | contract only, shipped (ms) | none (ms) "
          "| reassoc+contract / contract | none / contract | max rel. diff. intensities "
          "| max rel. diff. gradient |")
    print("|---|---|---|---|---|---|---|---|")
    for atoms, structure in structures().items():
        crystal = Crystal.from_pymatgen(structure)
        moved = crystal.replace(lattice=crystal.lattice * 1.003)
        target = xrd.pattern(crystal, fwhm=0.1)
        calls, results = {}, {}
        for label, kernels in builds.items():

            def call(kernels=kernels):
                use(kernels)
                return loss_and_grad(moved, target, xrd, metric="cosine", fwhm=0.1)

            calls[label] = call
            use(kernels)
            results[label] = (xrd.peaks(moved).intensity, call())
        times = best_times(calls, repeats=5)
        base_i, base_g = results["none"][0], results["none"][1]
        shipped_i, shipped_g = results["contract"]
        di = np.max(np.abs(shipped_i - base_i) / np.maximum(np.abs(base_i), 1e-300))
        gradient = np.concatenate([shipped_g.d_lattice.ravel(), shipped_g.d_frac.ravel()])
        gradient0 = np.concatenate([base_g.d_lattice.ravel(), base_g.d_frac.ravel()])
        dg = np.max(np.abs(gradient - gradient0)) / np.max(np.abs(gradient0))
        print(f"| {atoms} | {1e3 * times['reassoc+contract']:.3f} | {1e3 * times['contract']:.3f} "
              f"| {1e3 * times['none']:.3f} "
              f"| {times['reassoc+contract'] / times['contract']:.2f} "
              f"| {times['none'] / times['contract']:.2f} "
              f"| {di:.1e} | {dg:.1e} |")
    use(shipped)


if __name__ == "__main__":
    main()
