"""Write the environment record of a shipped table that predates the runner's own records.

    python book/data/retrospective_record.py book/data/remedies_study.csv [...]

Tables written by ``xrdcore retrieve`` since the lock carry ``<name>.env.json`` from the runner
(commit, lock hash, CPU, BLAS, versions, resolved prototypes). For an older table this script
records what can still be established — the commit that last changed it, its rows, its SHA-256,
the prototypes it holds (read from the table), its configuration — and says plainly what was not
recorded at the time (lock, CPU, versions) and which code differences matter.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

NOT_RECORDED = "not recorded when the table was made"
DIFFERENCES = (
    "made before requirements.lock, the canonical symmetry bases and the fastmath change of issue 12: "
    "crystal-family and space-group rows used SVD bases (their rotation depends on the LAPACK kernel), "
    "so a rerun of the documented command with today's code reproduces the rates within their intervals, "
    "not every row; P1 rows differ only in the last bits of the kernels' sums"
)


def record(path: Path) -> dict:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    structures = list(dict.fromkeys(row["structure"] for row in rows))
    commit = subprocess.run(["git", "log", "-1", "--format=%H", "--", str(path.resolve())], capture_output=True, text=True,
                            check=True, cwd=path.parent).stdout.strip()
    config = path.with_suffix(".config.json")
    return {
        "retrospective": True,
        "rows": len(rows),
        "csv_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "git_commit": commit or None,
        "lock_sha256": None,
        "cpu": NOT_RECORDED,
        "versions": NOT_RECORDED,
        "structures": structures,
        "config": json.loads(config.read_text()) if config.exists() else None,
        "note": DIFFERENCES,
    }


if __name__ == "__main__":
    for name in sys.argv[1:]:
        path = Path(name)
        target = path.with_suffix(".env.json")
        target.write_text(json.dumps([record(path)], indent=2) + "\n")
        print(f"{target}: {len(record(path)['structures'])} prototypes")
