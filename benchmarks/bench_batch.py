"""Benchmark: batched value + gradient throughput (structures per second), CPU and, when a
GPU is present, CUDA, with the CUDA/CPU ratio; and BatchLoss against a Python loop of
``loss_and_grad`` over the same structures, both on one thread (backend rows "cpu 1 thread"
and "loop 1 thread"). One run, warm, best of repeats.

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

import numba
import numpy as np
from bench_peaks import best_times

from xrdcore import Diffractometer, datasets
from xrdcore.batch import BatchLoss
from xrdcore.gradients import loss_and_grad
from xrdcore.kernels import real_gpu_available

BATCH_SIZES = (1, 64, 1024)
#: Measured rates, one row per (backend, structure, batch); the book's chapter 3 reads this file.
RESULTS_CSV = (
    Path(__file__).parents[1] / "xrdcore" / "data" / "batch_throughput.csv")  # chapter 3 reads it
FIELDS = ("date", "machine", "backend", "device", "structure", "atoms", "batch",
          "structures_per_second")


def workload(crystal, n_batch, seed=0):
    rng = np.random.default_rng(seed)
    lattices = np.stack([
        crystal.lattice @ (np.eye(3) + 0.005 * rng.standard_normal((3, 3))) for _ in range(n_batch)
    ])
    coords = crystal.frac_coords + 0.01 * rng.standard_normal((n_batch, *crystal.frac_coords.shape))
    return lattices, coords


def doubled(crystal):
    """The 2 × 2 × 2 supercell of a crystal."""
    return crystal.replace(
        lattice=crystal.lattice * 2, frac_coords=np.concatenate(
            [(crystal.frac_coords + shift) / 2 for shift in np.ndindex(2, 2, 2)]), species=np.tile(
                crystal.atomic_numbers, 8), occupancies=np.tile(crystal.occupancies, 8),
        b_iso=np.tile(crystal.b_iso, 8))


def throughput(batch: BatchLoss, n_batch: int, crystal) -> float:
    lattices, coords = workload(crystal, n_batch)
    seconds = best_times({"run": lambda: batch(lattices, coords)}, min_duration=0.2,
                         repeats=3)["run"]
    return n_batch / seconds


def loop_throughput(crystal, target, diffractometer, n_batch: int) -> float:
    """The same structures through loss_and_grad one by one (each builds a Crystal, as a
    user's loop does)."""
    lattices, coords = workload(crystal, n_batch)
    structures = [
        crystal.replace(lattice=lattice, frac_coords=xyz) for lattice, xyz in zip(lattices, coords)
    ]

    def run():
        for structure in structures:
            loss_and_grad(structure, target, diffractometer, fwhm=0.1)

    return n_batch / best_times({"run": run}, min_duration=0.2, repeats=3)["run"]


def single_thread_rows(crystals, machine) -> list[dict]:
    """BatchLoss and a loop of loss_and_grad, both on one numba thread: structures/s and
    their ratio."""
    diffractometer = Diffractometer("CuKa", (10, 90), backend="cpu")
    rows = []
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        print("\nOne thread each: BatchLoss vs a loop of loss_and_grad (structures/s)\n")
        print("| structure | atoms | batch | BatchLoss | loop | BatchLoss / loop |\n"
              "|---|---|---|---|---|---|")
        for name, crystal in crystals:
            target = diffractometer.pattern(crystal, fwhm=0.1)
            for n_batch in BATCH_SIZES:
                batched = throughput(BatchLoss(crystal, target, diffractometer, fwhm=0.1), n_batch,
                                     crystal)
                loop = loop_throughput(crystal, target, diffractometer, n_batch)
                print(f"| {name} | {len(crystal)} | {n_batch} | {batched:,.0f} | {loop:,.0f} "
                      f"| {batched / loop:.1f}× |")
                for backend, rate in (("cpu 1 thread", batched), ("loop 1 thread", loop)):
                    rows.append(
                        dict(date=time.strftime("%Y-%m-%d"), machine=machine, backend=backend,
                             device=device_name("cpu"), structure=name, atoms=len(crystal),
                             batch=n_batch, structures_per_second=round(rate, 1)))
    finally:
        numba.set_num_threads(previous)
    return rows


def main():
    rutile = datasets.load_prototype("A2B_tP6_136_f_a")
    supercell = doubled(rutile)
    backends = ["cpu"] + (["cuda"] if real_gpu_available() else [])
    rows = []
    print(f"Date: {time.strftime('%Y-%m-%d')}; backends measured: {', '.join(backends)}\n")
    print("| structure | atoms | batch | " + " | ".join(f"{b} (structures/s)" for b in backends) +
          (" | CUDA / CPU |" if len(backends) > 1 else " |"))
    print("|---|---|---|" + "---|" * len(backends) + ("---|" if len(backends) > 1 else ""))
    for name, crystal in (("rutile", rutile), ("rutile 2×2×2", supercell)):
        for n_batch in BATCH_SIZES:
            rates = []
            for backend in backends:
                diffractometer = Diffractometer("CuKa", (10, 90), backend=backend)
                target = diffractometer.pattern(crystal, fwhm=0.1)
                rates.append(
                    throughput(BatchLoss(crystal, target, diffractometer, fwhm=0.1), n_batch,
                               crystal))
                rows.append(
                    dict(date=time.strftime("%Y-%m-%d"),
                         machine=f"{platform.machine()}, {os.cpu_count()} cores", backend=backend,
                         device=device_name(backend), structure=name, atoms=len(crystal),
                         batch=n_batch, structures_per_second=round(rates[-1], 1)))
            ratio = f" {rates[1] / rates[0]:.1f}× |" if len(rates) > 1 else ""
            print(f"| {name} | {len(crystal)} | {n_batch} | " +
                  " | ".join(f"{r:,.0f}" for r in rates) + f" |{ratio}")
    if len(backends) == 1:
        print("\nNo CUDA GPU on this machine: CUDA throughput not measured "
              "(benchmarks/gpu_check.sh measures it on one).")
    rows += single_thread_rows((("rutile", rutile), ("rutile 2×2×2", supercell)),
                               f"{platform.machine()}, {os.cpu_count()} cores")
    write_results(rows)


def device_name(backend: str) -> str:
    if backend == "cpu":
        return platform.processor() or platform.machine()
    from numba import cuda

    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)


def write_results(rows, path: Path = RESULTS_CSV, fields=FIELDS, key=("backend", "machine")):
    """Replace the rows of ``path`` that share ``key`` columns with a measured row, keep the
    others."""
    path.parent.mkdir(exist_ok=True)
    measured = {tuple(str(row[name]) for name in key) for row in rows}
    kept = []
    if path.exists():
        with path.open() as handle:
            kept = [
                row for row in csv.DictReader(handle)
                if tuple(row[name] for name in key) not in measured
            ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept + rows)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
