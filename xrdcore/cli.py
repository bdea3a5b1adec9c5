"""Command line: ``xrdcore retrieve`` runs the retrieval study, ``xrdcore summary`` reports it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from .experiments import (EXECUTORS, PAPER, REMEDIES, REMEDIES_ENERGY, SHIPPED, SMALL, WORKSHOP, StudyConfig, format_rates,
                          match_rates, run_study)

PRESETS = {"small": SMALL, "shipped": SHIPPED, "default": StudyConfig(), "paper": PAPER, "workshop": WORKSHOP,
           "remedies": REMEDIES, "remedies-energy": REMEDIES_ENERGY}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="xrdcore", description="Powder-XRD structure retrieval study")
    commands = parser.add_subparsers(dest="command", required=True)
    retrieve = commands.add_parser("retrieve", help="run (or resume) the retrieval study")
    retrieve.add_argument("--config", default="small", help="a preset (" + ", ".join(PRESETS) + ") or a JSON file of StudyConfig fields")
    retrieve.add_argument("--output", default="retrieval.csv", help="results file, .csv or .parquet (a rerun resumes)")
    retrieve.add_argument("--executor", default="batched", choices=EXECUTORS,
                          help="batched: each group of seeds × magnitudes descends as one batch (default); task: one run at a time (the reference)")
    retrieve.add_argument("--backend", default="cpu", choices=["cpu", "cuda", "auto"],
                          help="where the batched executor evaluates its batches (auto: CUDA when a GPU is present)")
    retrieve.add_argument("--workers", type=int, default=None, help="local processes, one numba thread each (default: all cores)")
    retrieve.add_argument("--scheduler", default=None, help="dask.distributed scheduler address, e.g. tcp://host:8786")
    retrieve.add_argument("--no-progress", action="store_true", help="no progress bar")
    summary = commands.add_parser("summary", help="match rates with 95 %% confidence intervals")
    summary.add_argument("results", help="results file (CSV or Parquet) written by 'xrdcore retrieve'")
    summary.add_argument("--by", default="kind,parametrization,magnitude", help="comma-separated columns to group by (e.g. remedy,kind)")
    summary.add_argument("--column", default="recovered", choices=["recovered", "matched", "matched_strict", "start_matched", "start_recovered"],
                         help="success column (default: recovered, tight tolerances)")
    args = parser.parse_args(argv)

    if args.command == "retrieve":
        config = PRESETS[args.config] if args.config in PRESETS else StudyConfig.from_json(args.config)
        print(f"{len(config.tasks())} tasks; configuration: {asdict(config)}", file=sys.stderr)
        path = run_study(config, args.output, workers=args.workers, scheduler=args.scheduler, progress=not args.no_progress,
                         executor=args.executor, backend=args.backend)
        print(f"results in {path}")
        return 0
    by = tuple(column.strip() for column in args.by.split(","))
    table = match_rates(args.results, by=by, column=args.column)
    print(format_rates(table, by))
    return 0


if __name__ == "__main__":
    sys.exit(main())
