"""Benchmark: batched value + gradient throughput (structures per second), CPU and, when a
GPU is present, CUDA, with the CUDA/CPU ratio. One run, warm, best of repeats.

Workload: rutile (6 atoms) and its 2 × 2 × 2 supercell (48 atoms), each copy randomly
strained (0.5 %) and displaced (0.01 fractional), cosine loss on Cu Kα 10–90° in 0.02°
steps, FWHM 0.1°, float64.
"""

from __future__ import annotations

import csv
import os
import platform
import time
from pathlib import Path

import numpy as np
from bench_peaks import best_times

from xrdcore import Diffractometer, datasets
from xrdcore.batch import BatchLoss
from xrdcore.kernels import real_gpu_available

BATCH_SIZES = (1, 64, 1024)
#: Measured rates, one row per (backend, structure, batch); the book's chapter 3 reads this file.
RESULTS_CSV = Path(__file__).parent / "results" / "batch_throughput.csv"
FIELDS = ("date", "machine", "backend", "device", "structure", "atoms", "batch", "structures_per_second")


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
    rows = []
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
                rows.append(dict(
                    date=time.strftime("%Y-%m-%d"), machine=f"{platform.machine()}, {os.cpu_count()} cores",
                    backend=backend, device=device_name(backend), structure=name, atoms=len(crystal),
                    batch=n_batch, structures_per_second=round(rates[-1], 1),
                ))
            ratio = f" {rates[1] / rates[0]:.1f}× |" if len(rates) > 1 else ""
            print(f"| {name} | {len(crystal)} | {n_batch} | " + " | ".join(f"{r:,.0f}" for r in rates) + f" |{ratio}")
    if len(backends) == 1:
        print("\nNo CUDA GPU on this machine: CUDA throughput not measured (benchmarks/gpu_check.sh measures it on one).")
    write_results(rows)


def device_name(backend: str) -> str:
    if backend == "cpu":
        return platform.processor() or platform.machine()
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def write_results(rows):
    """Replace this machine's rows for the measured backends in RESULTS_CSV, keep the others."""
    RESULTS_CSV.parent.mkdir(exist_ok=True)
    measured = {(row["backend"], row["machine"]) for row in rows}
    kept = []
    if RESULTS_CSV.exists():
        with RESULTS_CSV.open() as handle:
            kept = [row for row in csv.DictReader(handle) if (row["backend"], row["machine"]) not in measured]
    with RESULTS_CSV.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(kept + rows)
    print(f"\nwrote {RESULTS_CSV}")


if __name__ == "__main__":
    main()
