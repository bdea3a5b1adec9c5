"""Rates from a results table: the fraction of runs that matched or recovered the truth, by
any columns (:func:`match_rates`, :func:`rate_where`, :func:`repair_rate`, :func:`binned_rates`),
each with a 95 % Wilson score interval (:func:`wilson_interval`), and as text
(:func:`format_rates`). The tables are those :func:`xrdcore.study.runner.run_study` writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from xrdcore.study.runner import read_header, read_rows
from xrdcore.validation import describe, did_you_mean


# ------------------------------------------------------------------ summary
def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) /
            (1 + z * z / trials))
    # the interval always contains p; rounding can leave an end a hair inside it at p = 0 or 1
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass
class RateRow:
    group: tuple
    trials: int
    matches: int
    low: float = field(default=math.nan)
    high: float = field(default=math.nan)

    @property
    def rate(self) -> float:
        return self.matches / self.trials if self.trials else math.nan


def match_rates(path: Path | str, by: Sequence[str] = ("kind", "parametrization", "magnitude"),
                column: str = "recovered") -> list[RateRow]:
    """Success rate of ``column`` ("recovered", "matched", …) with a 95 % Wilson interval for
    each combination of the ``by`` columns; ``path`` a CSV or Parquet results file."""
    rows = _table(path, (*by, column))
    groups: dict[tuple, list[bool]] = {}
    for row in rows:
        groups.setdefault(tuple(row[name] for name in by), []).append(row[column] == "True")
    table = []
    for group in sorted(groups, key=lambda g: tuple(_sortable(v) for v in g)):
        outcomes = groups[group]
        low, high = wilson_interval(sum(outcomes), len(outcomes))
        table.append(RateRow(group, len(outcomes), sum(outcomes), low, high))
    return table


def rate_where(path: Path | str, column: str = "recovered", **where: Any) -> RateRow | None:
    """The rate of ``column`` pooled over the runs whose columns equal ``where`` (numbers compared
    as numbers: ``magnitude=0.02`` finds "0.02"); None when no run matches."""
    for row in match_rates(path, by=tuple(where), column=column):
        if all(_same_value(text, wanted) for text, wanted in zip(row.group, where.values())):
            return row
    return None


def repair_rate(path: Path | str, column: str = "matched", **where: Any) -> RateRow:
    """Among the runs whose columns equal ``where`` and whose *start* failed ``column``'s test
    ("matched" or "recovered"), the rate that ends passing it: what descent itself achieved,
    where a loose criterion lets many starts pass before any step (group = ``where``'s values)."""
    if column not in ("matched", "recovered"):
        raise ValueError(f"repair_rate needs 'matched' or 'recovered', got {column!r}")
    outcomes = [
        row[column] == "True" for row in _rows_where(path, where, (column, f"start_{column}"))
        if row[f"start_{column}"] != "True"
    ]
    return RateRow(tuple(where.values()), len(outcomes), sum(outcomes),
                   *wilson_interval(sum(outcomes), len(outcomes)))


def binned_rates(path: Path | str, edges: ArrayLike, measure: str = "start_lattice_error",
                 column: str = "recovered", **where: Any) -> list[RateRow]:
    """The rate of ``column`` among the runs whose columns equal ``where`` (as :func:`rate_where`),
    binned by a measured value, by default the start's largest relative lattice-length error
    after any projection: one row per bin ``edges[i] <= value < edges[i + 1]`` (group = the two
    edges; an empty bin has 0 trials and a NaN rate and interval). For comparisons at matched
    measured start distance."""
    edges = np.asarray(edges, dtype=float)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"bin edges must be increasing, at least two, got {edges}")
    outcomes: list[list[bool]] = [[] for _ in range(len(edges) - 1)]
    for row in _rows_where(path, where, (measure, column)):
        index = int(np.searchsorted(edges, float(row[measure]), side="right")) - 1
        if 0 <= index < len(outcomes):
            outcomes[index].append(row[column] == "True")
    return [
        RateRow((float(low), float(high)), len(hits), sum(hits),
                *wilson_interval(sum(hits), len(hits)))
        for low, high, hits in zip(edges[:-1], edges[1:], outcomes)
    ]


def _rows_where(path: Path | str, where: dict[str, Any], columns: Iterable[str]) -> list[dict]:
    """The rows of a results file whose columns equal ``where`` (numbers compared as numbers);
    ``columns``: the others the caller reads."""
    return [
        row for row in _table(path, (*where, *columns)) if all(
            _same_value(row[name], wanted) for name, wanted in where.items())
    ]


def _table(path: Path | str, columns: Iterable[str]) -> list[dict]:
    """The rows of an existing results file that has every one of ``columns`` (else a clear
    error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results file {path}" +
                                (" (it is a folder)" if path.is_dir() else ""))
    rows = read_rows(path)
    header = read_header(path) or ()
    for name in columns:
        if not isinstance(name, str):
            raise TypeError(f"a column name must be a string, got {describe(name)}")
        if name not in header:
            hint = (did_you_mean(name, header) or
                    f" (it has {', '.join(header[:40]) or 'no header'})")
            raise ValueError(f"{path} has no column {name!r}{hint}")
    return rows


def _same_value(text: str, wanted: Any) -> bool:
    try:
        return float(text) == float(wanted)
    except (TypeError, ValueError):
        return text == str(wanted)


def format_rates(table: list[RateRow], by: Sequence[str]) -> str:
    header = " | ".join(by) + " | runs | matched | rate | 95 % CI"
    lines = [header, "-" * len(header)]
    for row in table:
        lines.append(
            " | ".join(row.group) +
            f" | {row.trials} | {row.matches} | {row.rate:.2f} | [{row.low:.2f}, {row.high:.2f}]")
    return "\n".join(lines)


def _sortable(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
