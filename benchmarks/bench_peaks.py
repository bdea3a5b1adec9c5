"""Benchmark: xrdcore stick patterns vs pymatgen's XRDCalculator and vs our numpy reference.

All three are timed in one run on the same structures, warm (after numba's JIT and
pymatgen's first call): best of several repeats, each repeat averaging enough calls
to last ≥ 0.2 s. Prints markdown tables; copy them into benchmarks/RESULTS.md.

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
    _kernels = reference


def rattled(structure: Structure, amplitude=0.05, seed=0) -> Structure:
    rng = np.random.default_rng(seed)
    out = structure.copy()
    for i in range(len(out)):
        out.translate_sites([i], rng.normal(0, amplitude / np.sqrt(3), 3), frac_coords=False)
    return out


def structures() -> dict[int, Structure]:
    cscl = Structure(Lattice.cubic(4.209), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return {2: cscl, 8: nacl, 64: rattled(nacl * (2, 2, 2)), 200: rattled(cscl * (5, 5, 4))}


def best_time(call, min_duration=0.2, repeats=5) -> float:
    call()
    best = np.inf
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            call()
            n += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_duration:
                break
        best = min(best, elapsed / n)
    return best


def compare(structure: Structure, two_theta_range) -> dict:
    crystal = Crystal.from_pymatgen(structure)
    ours = Diffractometer("CuKa", two_theta_range)
    numpy_ref = NumpyDiffractometer("CuKa", two_theta_range)
    calc = XRDCalculator("CuKa")
    n_reflections = len(ours.reflections(crystal).g)
    return {
        "reflections": n_reflections,
        "xrdcore": best_time(lambda: ours.peaks(crystal)),
        "numpy": best_time(lambda: numpy_ref.peaks(crystal)),
        "pymatgen": best_time(lambda: calc.get_pattern(structure, two_theta_range=two_theta_range)),
    }


def row(label, result) -> str:
    x, n, p = result["xrdcore"], result["numpy"], result["pymatgen"]
    return (
        f"| {label} | {result['reflections']} | {x * 1e3:.3f} | {n * 1e3:.2f} | {p * 1e3:.2f} "
        f"| {p / x:.0f}× | {n / x:.0f}× |"
    )


HEADER = "| {} | reflections (half-space) | xrdcore (ms) | numpy ref (ms) | pymatgen (ms) | pymatgen / xrdcore | numpy / xrdcore |\n|---|---|---|---|---|---|---|"


def main():
    import pymatgen.core

    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, numba threads {numba.get_num_threads()}")
    print(f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, pymatgen {pymatgen.core.__version__}")
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
