"""Benchmark: study runs per second, batched executor vs task executor, on one small grid.

Grid: rutile (6 atoms) and A_cP8_205_c (8 atoms), every kind, magnitude and
parametrisation, cosine loss, seeds 0–2, 200 evaluations: 168 runs. Each measurement is a
fresh process (imports, numba's cached kernels and the pool's start-up included, as a user
pays them), with 1 and 2 workers; min of ``REPEATS``. Results:
benchmarks/results/study_throughput.csv. With ``--backend cuda`` (benchmarks/gpu_check.sh) the
batched executor runs its batches on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_batch import write_results

GRID = dict(structures=["A2B_tP6_136_f_a", "A_cP8_205_c"], metrics=["cosine"], seeds=[0, 1, 2])
REPEATS = 2
RESULTS_CSV = Path(__file__).parent / "results" / "study_throughput.csv"
FIELDS = ("date", "machine", "executor", "backend", "workers", "runs", "seconds", "runs_per_second")
#: One measurement: run_study in a fresh interpreter, timed inside it.
SCRIPT = """
import json, sys, time
from xrdcore.study.config import StudyConfig
from xrdcore.study.runner import run_study
config = StudyConfig(**{k: tuple(v) for k, v in json.loads(sys.argv[1]).items()})
begin = time.perf_counter()
run_study(config, sys.argv[2], workers=int(sys.argv[3]), progress=False, \
executor=sys.argv[4], backend=sys.argv[5])
print(json.dumps(dict(runs=len(config.tasks()), seconds=time.perf_counter() - begin)))
"""


def measure(executor: str, workers: int, backend: str) -> dict:
    best = None
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as folder:
            output = subprocess.run([
                sys.executable, "-c", SCRIPT,
                json.dumps(GRID),
                str(Path(folder) / "runs.csv"),
                str(workers), executor, backend
            ], capture_output=True, text=True, check=True).stdout
        result = json.loads(output.strip().splitlines()[-1])
        best = result if best is None or result["seconds"] < best["seconds"] else best
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    cases = [("task", 1, "cpu"), ("task", 2, "cpu"), ("batched", 1, "cpu"), ("batched", 2, "cpu")]
    if args.backend == "cuda":
        cases = [("batched", 1, "cpu"), ("batched", 1, "cuda")]
    rows = []
    print(f"Date: {time.strftime('%Y-%m-%d')}; {machine}; min of {REPEATS} fresh processes\n")
    print("| executor | backend | workers | runs | seconds | runs/s |\n|---|---|---|---|---|---|")
    for executor, workers, backend in cases:
        result = measure(executor, workers, backend)
        rate = result["runs"] / result["seconds"]
        rows.append(
            dict(date=time.strftime("%Y-%m-%d"), machine=machine, executor=executor,
                 backend=backend, workers=workers, runs=result["runs"], seconds=round(
                     result["seconds"], 2), runs_per_second=round(rate, 2)))
        print(f"| {executor} | {backend} | {workers} | {result['runs']} "
              f"| {result['seconds']:.1f} | {rate:.2f} |")
    rate = {(r["executor"], r["backend"], r["workers"]): r["runs_per_second"] for r in rows}
    if args.backend == "cpu":
        best_task = max(rate[("task", "cpu", 1)], rate[("task", "cpu", 2)])
        print("\nbatched (2 workers) / best task executor: "
              f"{rate[('batched', 'cpu', 2)] / best_task:.1f}×; "
              "task executor 2 workers / 1 worker: "
              f"{rate[('task', 'cpu', 2)] / rate[('task', 'cpu', 1)]:.2f}×")
    else:
        print("\nGPU / CPU (batched, one worker): "
              f"{rate[('batched', 'cuda', 1)] / rate[('batched', 'cpu', 1)]:.2f}×")
    write_results(rows, RESULTS_CSV, FIELDS, key=("machine", "executor", "backend", "workers"))


if __name__ == "__main__":
    main()
