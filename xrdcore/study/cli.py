"""Command line: ``xrdcore retrieve`` runs the retrieval study, ``xrdcore summary`` reports it,
``xrdcore roughness`` counts local minima on realistic targets (:mod:`xrdcore.study.roughness`).

A wrong argument, study config or results file is one line on stderr, ``xrdcore: error: …``,
with exit status 2; so is a results file that cannot be written (a full disk: rerun to resume)
and a missing GPU or package. A failure inside a study task is a bug and keeps its traceback; a
worker process that dies (killed, out of memory) is one line with status 1. Ctrl-C ends the run
with one line and status 130; rerunning the same command resumes it.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn, TextIO

from xrdcore.study.config import (EXECUTORS, PAPER, REALISM, REMEDIES, REMEDIES_ENERGY, SHIPPED,
                                  SMALL, WORKSHOP, StudyConfig)
from xrdcore.study.roughness import write_roughness
from xrdcore.study.runner import ResumeWarning, run_study
from xrdcore.study.summary import format_rates, match_rates
from xrdcore.validation import did_you_mean

PRESETS = {
    "small": SMALL,
    "shipped": SHIPPED,
    "default": StudyConfig(),
    "paper": PAPER,
    "workshop": WORKSHOP,
    "remedies": REMEDIES,
    "remedies-energy": REMEDIES_ENERGY,
    "realism": REALISM
}
SUCCESS_COLUMNS = ["recovered", "matched", "matched_strict", "start_matched", "start_recovered"]


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="xrdcore", description="Powder-XRD structure retrieval study")
    commands = parser.add_subparsers(dest="command", required=True)
    retrieve = commands.add_parser("retrieve", help="run (or resume) the retrieval study")
    retrieve.add_argument(
        "--config", default="small",
        help="a preset (" + ", ".join(PRESETS) + ") or a JSON file of StudyConfig fields")
    retrieve.add_argument("--output", default="retrieval.csv",
                          help="results file, .csv or .parquet (a rerun resumes)")
    retrieve.add_argument(
        "--executor", default="batched", choices=EXECUTORS,
        help=("batched: each group of seeds × magnitudes descends as one batch (default); "
              "task: one run at a time (the reference)"))
    retrieve.add_argument(
        "--backend", default="cpu", choices=["cpu", "cuda", "auto"],
        help="where the batched executor evaluates its batches (auto: CUDA when a GPU is present)")
    retrieve.add_argument("--workers", type=int, default=None,
                          help="local processes, one numba thread each (default: all cores)")
    retrieve.add_argument("--scheduler", default=None,
                          help="dask.distributed scheduler address, e.g. tcp://host:8786")
    retrieve.add_argument("--no-progress", action="store_true", help="no progress bar")
    roughness = commands.add_parser(
        "roughness", help="local minima along fixed scans, ideal against realistic targets")
    roughness.add_argument("--config", default="realism",
                           help="a preset or a JSON file of StudyConfig fields (its structures, "
                           "targets and instrument)")
    roughness.add_argument("--output", default="realism_minima.csv", help="CSV file to write")
    roughness.add_argument("--workers", type=int, default=1, help="local processes")
    roughness.add_argument("--no-progress", action="store_true", help="no progress bar")
    summary = commands.add_parser("summary", help="match rates with 95 %% confidence intervals")
    summary.add_argument("results",
                         help="results file (CSV or Parquet) written by 'xrdcore retrieve'")
    summary.add_argument("--by", default="kind,parametrization,magnitude",
                         help="comma-separated columns to group by (e.g. remedy,kind)")
    summary.add_argument("--column", default="recovered", choices=SUCCESS_COLUMNS,
                         help="success column (default: recovered, tight tolerances)")
    return parser


def load_config(name: str) -> StudyConfig:
    """A preset by name, else a JSON file of settings (validated)."""
    if name in PRESETS:
        return PRESETS[name]
    if not Path(name).exists():
        raise FileNotFoundError(
            f"--config {name!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
            f"{did_you_mean(name, PRESETS)}")
    return StudyConfig.from_json(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ResumeWarning)
            warnings.showwarning = _one_line_warning(warnings.showwarning)
            return _run(args)
    except KeyboardInterrupt:
        resume = "; rerun the same command to resume" if args.command == "retrieve" else ""
        print(f"xrdcore: interrupted{resume}", file=sys.stderr)
        return 130
    except BrokenProcessPool:
        print(
            "xrdcore: error: a worker process died (killed, or out of memory?); the finished "
            "units' rows are kept: rerun the same command to resume", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as error:
        if hasattr(error, "study_unit"):  # raised inside a task: a bug, with its traceback
            raise
        print(f"xrdcore: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "retrieve":
        config = load_config(args.config)
        print(f"{len(config.tasks())} tasks; configuration: {asdict(config)}", file=sys.stderr)
        path = run_study(config, args.output, workers=args.workers, scheduler=args.scheduler,
                         progress=not args.no_progress, executor=args.executor,
                         backend=args.backend)
        print(f"results in {path}")
        return 0
    if args.command == "roughness":
        path = write_roughness(load_config(args.config), args.output, workers=args.workers,
                               progress=not args.no_progress)
        print(f"results in {path}")
        return 0
    by = tuple(column.strip() for column in args.by.split(","))
    table = match_rates(args.results, by=by, column=args.column)
    print(format_rates(table, by))
    return 0


def _one_line_warning(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints the runner's own warnings as one line."""

    def shown(message: Warning | str, category: type[Warning], filename: str, lineno: int,
              file: TextIO | None = None, line: str | None = None) -> None:
        if issubclass(category, ResumeWarning):
            print(f"xrdcore: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return shown


if __name__ == "__main__":
    sys.exit(main())
