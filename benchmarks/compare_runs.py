"""Compare two results tables of the retrieval runner row by row (joined on the task key):
how many verdicts agree and to how many digits the floats do.

    python compare_runs.py A.csv B.csv  # e.g. native vs NUMBA_CPU_NAME=generic, or new vs shipped
"""

from __future__ import annotations

import csv
import sys

import numpy as np

VERDICTS = ("matched", "matched_strict", "recovered", "start_matched", "start_recovered")
FLOATS = ("start_loss", "final_loss", "lattice_error", "rms_displacement")
#: Values below this count as zero (a loss of 1e-16 vs 3e-16 is the same converged run).
FLOOR = 1e-12


def compare(first: str, second: str) -> str:
    a = {r["key"]: r for r in csv.DictReader(open(first, newline=""))}
    b = {r["key"]: r for r in csv.DictReader(open(second, newline=""))}
    keys = sorted(set(a) & set(b))
    lines = [f"{len(keys)} common runs ({first} has {len(a)}, {second} has {len(b)})"]
    for column in VERDICTS:
        same = sum(a[k][column] == b[k][column] for k in keys)
        rate_a = np.mean([a[k][column] == "True" for k in keys])
        rate_b = np.mean([b[k][column] == "True" for k in keys])
        lines.append(f"  {column:16} agree {same}/{len(keys)}; rate {rate_a:.3f} vs {rate_b:.3f}")
    for column in FLOATS:
        x = np.array([float(a[k][column]) for k in keys])
        y = np.array([float(b[k][column]) for k in keys])
        scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), FLOOR)
        relative = np.abs(x - y) / scale
        identical = int(np.sum(x == y))
        digits = -np.log10(np.maximum(relative, 1e-17))
        lines.append(
            f"  {column:16} bit-identical {identical}/{len(keys)}; agreeing digits: median "
            f"{np.median(digits):.1f}, worst {digits.min():.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(compare(sys.argv[1], sys.argv[2]))
