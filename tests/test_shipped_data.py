"""Every shipped results table carries its configuration and an environment record that names
exactly the prototypes in it."""

import json
from pathlib import Path

import pytest

from xrdcore.study.runner import read_rows

DATA = Path(__file__).resolve().parents[1] / "xrdcore" / "data"
#: Benchmark results (benchmarks/bench_batch.py, bench_jax.py; each row names its machine and
#: date), not studies.
BENCHMARK_TABLES = {"batch_throughput.csv", "engine_speed.csv"}
TABLES = [
    path for path in sorted(DATA.glob("*.csv")) + sorted(DATA.glob("*.parquet"))
    if path.name not in BENCHMARK_TABLES
]
#: Landscape tables (xrdcore.study.roughness): rows per scan, not per task.
ROUGHNESS_TABLES = {"realism_minima.csv"}
FULL_FIELDS = ("git_commit", "git_dirty", "lock_sha256", "cpu", "numba_target_cpu", "blas",
               "python", "versions", "structures")


def test_there_are_shipped_tables():
    assert len(TABLES) >= 7


@pytest.mark.parametrize("table", TABLES, ids=lambda p: p.name)
def test_table_has_config_and_environment_record(table):
    assert table.with_suffix(".config.json").is_file(), f"{table.name} has no .config.json"
    record_path = table.with_suffix(".env.json")
    assert record_path.is_file(), f"{table.name} has no environment record"
    records = json.loads(record_path.read_text())
    rows = read_rows(table)
    in_table = set(row["structure"] for row in rows)
    named = set().union(*(record["structures"] for record in records))
    assert in_table <= named, (
        f"{table.name}: prototypes not in its record: {sorted(in_table - named)}")
    for record in records:
        assert all(
            field in record and record[field] is not None for field in FULL_FIELDS), (record.keys())
        assert len(record["lock_sha256"]) == 64 and len(record["git_commit"]) == 40
    assert sum(record["runs"] for record in records) >= len(rows)


@pytest.mark.parametrize("table", [t for t in TABLES if t.name not in ROUGHNESS_TABLES],
                         ids=lambda p: p.name)
def test_table_holds_exactly_the_tasks_of_its_config(table):
    """The saved config is the resolved input: rerunning it gives these tasks, no more, no fewer."""
    from xrdcore.study.config import StudyConfig

    config = StudyConfig.from_json(table.with_suffix(".config.json"))
    assert sorted(row["key"] for row in read_rows(table)) == sorted(
        task.key for task in config.tasks())


@pytest.mark.parametrize("name", sorted(ROUGHNESS_TABLES))
def test_roughness_table_holds_every_scan_of_its_config(name):
    """Every (structure, target, model, scan) of the saved config, once."""
    from xrdcore.study.config import StudyConfig
    from xrdcore.study.roughness import MODELS, RANDOM_SCANS

    table = DATA / name
    config = StudyConfig.from_json(table.with_suffix(".config.json"))
    rows = read_rows(table)
    keys = [(row["structure"], row["target"], row["model"], row["scan"]) for row in rows]
    assert len(set(keys)) == len(keys)
    assert len(keys) == (len(config.structure_names()) * len(config.targets) * len(MODELS) *
                         (3 + RANDOM_SCANS))
    assert {(s, t) for s, t, _, _ in keys} == {(s, t) for s in config.structure_names()
                                               for t in config.targets}
