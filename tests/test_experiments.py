"""The retrieval runner: a tiny grid end to end, resume after a kill, dask, summary, CLI."""

import csv
from dataclasses import replace

import numpy as np
import pytest

from xrdcore import Diffractometer, datasets
from xrdcore.study.cli import main
from xrdcore.study.config import SMALL, StudyConfig
from xrdcore.study.runner import run_study
from xrdcore.study.summary import match_rates, wilson_interval

TINY = replace(SMALL, structures=("AB_cF8_225_a_b", ), steps=15)


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_size_and_keys_are_unique():
    tasks = SMALL.tasks()
    # structures × (lattice: p1, family; coordinates: p1, spacegroup) × magnitudes
    assert len(tasks) == 2 * 4 * 2
    assert len({t.key for t in tasks}) == len(tasks)
    default = StudyConfig(per_family=1)
    assert len(default.structure_names()) == 6


def test_tiny_study_end_to_end(tmp_path):
    output = run_study(TINY, tmp_path / "runs.csv", workers=1, progress=False)
    rows = read_rows(output)
    assert {row["key"] for row in rows} == {t.key for t in TINY.tasks()}
    assert all(row["crystal_family"] == "cubic" and row["space_group"] == "225" for row in rows)
    assert all(float(row["final_loss"]) <= float(row["start_loss"]) for row in rows)
    assert (tmp_path / "runs.config.json").exists()
    assert StudyConfig.from_json(tmp_path / "runs.config.json") == TINY


def test_resume_after_a_kill_redoes_nothing(tmp_path):
    complete = read_rows(run_study(TINY, tmp_path / "complete.csv", workers=1, progress=False))
    partial = tmp_path / "partial.csv"
    TINY.to_json(tmp_path / "partial.config.json")  # what the killed run had stored beside its rows
    with partial.open("w", newline="") as handle:  # as if the run had been killed after 3 tasks
        writer = csv.DictWriter(handle, fieldnames=list(complete[0]))
        writer.writeheader()
        writer.writerows(complete[:3])
    rows = read_rows(run_study(TINY, partial, workers=2, progress=False))
    assert len(rows) == len(complete)
    assert len({row["key"] for row in rows}) == len(rows)
    assert rows[:3] == complete[:3]  # finished rows are kept as they were
    assert (read_rows(run_study(TINY, partial, workers=2,
                                progress=False)) == rows)  # nothing left to do


def test_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            rows = read_rows(
                run_study(TINY, tmp_path / "dask.csv", scheduler=client, progress=False))
    assert {row["key"] for row in rows} == {t.key for t in TINY.tasks()}


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # textbook values for 8/10
    assert wilson_interval(0, 5)[0] == 0 and wilson_interval(5, 5)[1] == 1


def test_summary_and_cli(tmp_path, capsys):
    output = tmp_path / "cli.csv"
    config = tmp_path / "tiny.json"
    config.write_text(
        '{"structures": ["AB_cF8_225_a_b"], "kinds": ["lattice"], "strains": [0.01], '
        '"metrics": ["cosine"], "parametrizations": ["p1"], "seeds": [0, 1], "steps": 10}')
    assert (main([
        "retrieve", "--config",
        str(config), "--output",
        str(output), "--workers", "1", "--no-progress"
    ]) == 0)
    table = match_rates(output, by=("kind", "parametrization"))
    assert len(table) == 1 and table[0].trials == 2
    assert main(["summary", str(output), "--by", "kind,parametrization"]) == 0
    assert "lattice | p1 | 2 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown study settings"):
        config.write_text('{"structure": ["x"]}')
        StudyConfig.from_json(config)


def test_rate_where_pools_the_matching_runs(tmp_path):
    import csv

    from xrdcore.study.summary import rate_where, wilson_interval

    path = tmp_path / "runs.csv"
    rows = [
        dict(kind=k, magnitude=m, recovered=str(r))
        for k, m, r in [("lattice", "0.02", True), ("lattice", "0.02",
                                                    False), ("lattice", "0.05",
                                                             True), ("both", "0.02", True), ]
    ]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    row = rate_where(path, kind="lattice", magnitude=0.02)  # a number finds "0.02"
    assert (row.matches, row.trials) == (1, 2) and (row.low, row.high) == wilson_interval(1, 2)
    assert rate_where(path, kind="lattice").rate == pytest.approx(2 / 3)
    assert rate_where(path, kind="coordinates") is None


def test_barrier_sweep_places_starts_on_both_sides_at_equal_distances():
    from xrdcore.landscape.directions import symmetry_axis_direction
    from xrdcore.landscape.scans import nearest_barrier, scan
    from xrdcore.structure.parametrize import space_group
    from xrdcore.study.search import barrier_sweep

    quartz = datasets.load_prototype("A2B_hP9_152_c_a")
    constrained = space_group(quartz, quartz)
    xrd = Diffractometer("CuKa", (10, 90), backend="cpu")
    target = xrd.pattern(quartz, fwhm=0.1)
    offsets = np.linspace(-0.6, 0.6, 241)
    axis = constrained.axis_names.index("O 6c z")
    values = scan(quartz, symmetry_axis_direction(constrained, axis), offsets, target, xrd,
                  fwhm=0.1).loss
    sweep = barrier_sweep(constrained, quartz, target, xrd, axis, offsets, values,
                          starts_per_side=2, seeds=2, steps=20, fwhm=0.1)
    barrier = nearest_barrier(offsets, values)
    assert (sweep.barrier, sweep.wrong_minimum) == (barrier.barrier, barrier.wrong_minimum)
    assert (sweep.sides == ["truth", "truth", "far", "far"] * 2 and
            len(sweep.recovered) == len(sweep.final_offsets) == 8)
    distances = np.array(sweep.starts) - sweep.barrier
    towards = np.sign(barrier.wrong_minimum)
    assert np.all(towards * distances[np.array(sweep.sides) == "truth"] < 0) and np.all(
        towards * distances[np.array(sweep.sides) == "far"] > 0)
    np.testing.assert_allclose(np.abs(distances[:2]), np.abs(distances[2:4]),
                               atol=1e-12)  # mirror images
    row = sweep.trapped("far")
    assert row.trials == 4 and row.matches == sum(
        not r for r, s in zip(sweep.recovered, sweep.sides) if s == "far")
    with pytest.raises(ValueError, match="no second minimum"):
        rutile = datasets.load_prototype("A2B_tP6_136_f_a")
        one = space_group(rutile, rutile)
        barrier_sweep(one, rutile, xrd.pattern(rutile, fwhm=0.1), xrd, 0, offsets, offsets**2,
                      fwhm=0.1)


def test_a_study_writes_an_environment_record(tmp_path):
    import json

    from xrdcore.study.runner import run_study

    config = replace(SMALL, structures=("AB_cF8_225_a_b", ), kinds=("lattice", ), strains=(0.01, ),
                     parametrizations=("p1", ), steps=5)
    output = run_study(config, tmp_path / "runs.csv", workers=1, progress=False)
    records = json.loads(output.with_suffix(".env.json").read_text())
    assert (len(records) == 1 and records[0]["runs"] == 1 and
            records[0]["structures"] == ["AB_cF8_225_a_b"])
    assert (len(records[0]["lock_sha256"]) == 64 and records[0]["versions"]["numba"] and
            records[0]["cpu"])
    run_study(config, output, workers=1, progress=False)  # nothing left to run: no new record
    assert len(json.loads(output.with_suffix(".env.json").read_text())) == 1
