"""Benchmark: batched value + gradient throughput (structures per second), CPU and, when a
GPU is present, CUDA, with the CUDA/CPU ratio. One run, warm, best of repeats.

Workload: rutile (6 atoms) and its 2 × 2 × 2 supercell (48 atoms), each copy randomly
strained (0.5 %) and displaced (0.01 fractional), cosine loss on Cu Kα 10–90° in 0.02°
steps, FWHM 0.1°, float64.
"""

from __future__ import annotations

import time

import numpy as np
from bench_peaks import best_times

from xrdcore import Diffractometer, datasets
from xrdcore.batch import BatchLoss
from xrdcore.kernels import real_gpu_available

BATCH_SIZES = (1, 64, 1024)


def workload(crystal, n_batch, seed=0):
    rng = np.random.default_rng(seed)
    lattices = np.stack([crystal.lattice @ (np.eye(3) + 0.005 * rng.standard_normal((3, 3))) for _ in range(n_batch)])
    coords = crystal.frac_coords + 0.01 * rng.standard_normal((n_batch, *crystal.frac_coords.shape))
    return lattices, coords


def throughput(batch: BatchLoss, n_batch: int, crystal) -> float:
    lattices, coords = workload(crystal, n_batch)
    seconds = best_times({"run": lambda: batch(lattices, coords)}, min_duration=0.2, repeats=3)["run"]
    return n_batch / seconds


def main():
    rutile = datasets.load_prototype("A2B_tP6_136_f_a")
    supercell = rutile.replace(
        lattice=rutile.lattice * 2,
        frac_coords=np.concatenate([(rutile.frac_coords + shift) / 2 for shift in np.ndindex(2, 2, 2)]),
        species=np.tile(rutile.atomic_numbers, 8),
        occupancies=np.tile(rutile.occupancies, 8),
        b_iso=np.tile(rutile.b_iso, 8),
    )
    backends = ["cpu"] + (["cuda"] if real_gpu_available() else [])
    print(f"Date: {time.strftime('%Y-%m-%d')}; backends measured: {', '.join(backends)}\n")
    print("| structure | atoms | batch | " + " | ".join(f"{b} (structures/s)" for b in backends) + (" | CUDA / CPU |" if len(backends) > 1 else " |"))
    print("|---|---|---|" + "---|" * len(backends) + ("---|" if len(backends) > 1 else ""))
    for name, crystal in (("rutile", rutile), ("rutile 2×2×2", supercell)):
        for n_batch in BATCH_SIZES:
            rates = []
            for backend in backends:
                diffractometer = Diffractometer("CuKa", (10, 90), backend=backend)
                target = diffractometer.pattern(crystal, fwhm=0.1)
                rates.append(throughput(BatchLoss(crystal, target, diffractometer, fwhm=0.1), n_batch, crystal))
            ratio = f" {rates[1] / rates[0]:.1f}× |" if len(rates) > 1 else ""
            print(f"| {name} | {len(crystal)} | {n_batch} | " + " | ".join(f"{r:,.0f}" for r in rates) + f" |{ratio}")
    if len(backends) == 1:
        print("\nNo CUDA GPU on this machine: CUDA throughput not measured (benchmarks/gpu_check.sh measures it on one).")


if __name__ == "__main__":
    main()
