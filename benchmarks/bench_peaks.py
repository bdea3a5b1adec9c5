"""Benchmark: xrdcore stick patterns vs pymatgen's XRDCalculator and vs our numpy reference.

All are timed in one run on the same structures, warm (after numba's JIT and
pymatgen's first call): best of 7 interleaved repeats, each averaging enough calls to
last ≥ 0.1 s. xrdcore runs with all numba threads and with one (pymatgen is
single-threaded). Prints markdown tables; copy them into benchmarks/RESULTS.md.

Structures: CsCl (2 atoms), rock salt conventional cell (8), and rock-salt / CsCl
supercells (64, 200) with 0.05 Å random displacements (so symmetry does not help anyone).
"""

from __future__ import annotations

import os
import platform
import time

import numba
import numpy as np
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from xrdcore import Crystal, Diffractometer
from xrdcore.kernels import reference


class NumpyDiffractometer(Diffractometer):
    kernels = reference


def rattled(structure: Structure, amplitude=0.05, seed=0) -> Structure:
    rng = np.random.default_rng(seed)
    out = structure.copy()
    for i in range(len(out)):
        out.translate_sites([i], rng.normal(0, amplitude / np.sqrt(3), 3), frac_coords=False)
    return out


def structures() -> dict[int, Structure]:
    cscl = Structure(Lattice.cubic(4.209), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    return {2: cscl, 8: nacl, 64: rattled(nacl * (2, 2, 2)), 200: rattled(cscl * (5, 5, 4))}


def best_times(calls: dict, min_duration=0.1, repeats=7) -> dict:
    """Best time per call (s) of each callable; repeats interleave the callables so that
    drift in machine load hits all of them alike."""
    for call in calls.values():
        call()
    best = dict.fromkeys(calls, np.inf)
    for _ in range(repeats):
        for name, call in calls.items():
            n, start = 0, time.perf_counter()
            while True:
                call()
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_duration:
                    break
            best[name] = min(best[name], elapsed / n)
    return best


def one_thread(call):

    def run():
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return call()
        finally:
            numba.set_num_threads(threads)

    return run


def compare(structure: Structure, two_theta_range) -> dict:
    crystal = Crystal.from_pymatgen(structure)
    ours = Diffractometer("CuKa", two_theta_range)
    numpy_ref = NumpyDiffractometer("CuKa", two_theta_range)
    calc = XRDCalculator("CuKa")
    result = best_times({
        "xrdcore": lambda: ours.peaks(crystal),
        "xrdcore_1thread": one_thread(lambda: ours.peaks(crystal)),
        "numpy": lambda: numpy_ref.peaks(crystal),
        "pymatgen": lambda: calc.get_pattern(structure, two_theta_range=two_theta_range)
    })
    result["reflections"] = len(ours.reflections(crystal).g)
    return result


def row(label, result) -> str:
    x, x1, n, p = (result[k] for k in ("xrdcore", "xrdcore_1thread", "numpy", "pymatgen"))
    return (f"| {label} | {result['reflections']} | {x * 1e3:.3f} | {x1 * 1e3:.3f} "
            f"| {n * 1e3:.2f} | {p * 1e3:.2f} "
            f"| {p / x:.0f}× | {p / x1:.0f}× | {n / x:.0f}× |")


HEADER = ("| {} | reflections (half-space) | xrdcore (ms) | xrdcore 1 thread (ms) | numpy ref (ms) "
          "| pymatgen (ms) "
          "| pymatgen / xrdcore | pymatgen / xrdcore 1 thread | numpy / xrdcore |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main():
    import pymatgen.core

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numba threads {numba.get_num_threads()}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {numba.__version__}, pymatgen {pymatgen.core.__version__}")
    print(f"Date: {time.strftime('%Y-%m-%d')}\n")
    cells = structures()
    print("### Cost vs atoms (Cu Kα, 2θ 10–90°)\n")
    print(HEADER.format("atoms"))
    for n_atoms, structure in cells.items():
        print(row(n_atoms, compare(structure, (10, 90))))
    print("\n### Cost vs 2θ range (64 atoms, Cu Kα)\n")
    print(HEADER.format("2θ range (°)"))
    for hi in (30, 60, 90, 120, 150):
        print(row(f"10–{hi}", compare(cells[64], (10, hi))))


if __name__ == "__main__":
    main()
