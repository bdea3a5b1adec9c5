"""Realistic targets in the study: target names, the patterns they make, task keys, the joint
remedy through the runner, resuming files from before targets, and the roughness table."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from xrdcore import Diffractometer, datasets
from xrdcore.measurement import measured_pattern
from xrdcore.physics.instrument import Instrument
from xrdcore.study import cli
from xrdcore.study.config import REALISM, SMALL, StudyConfig, Task
from xrdcore.study.realism import (BACKGROUND_SHAPE, TARGET_DEFAULTS, joint_instrument,
                                   parse_target, realistic_target, target_instrument)
from xrdcore.study.roughness import MODELS, RANDOM_SCANS, roughness_rows
from xrdcore.study.runner import read_rows, run_study, run_unit, work_units

XRD = Diffractometer("CuKa", (10, 90), 0.02, backend="cpu")
TINY = replace(SMALL, structures=("AB_cF8_225_a_b", ), kinds=("coordinates", ),
               displacements=(0.1, ), parametrizations=("p1", "spacegroup"), steps=30,
               remedies=("none", "joint"), targets=("ideal", "zero_shift", "noise:300"))


@pytest.fixture(scope="module")
def rutile():
    return datasets.get_prototype("A2B_tP6_136_f_a").crystal()


def test_target_names_are_checked():
    assert parse_target("ideal") == ("ideal", None)
    assert parse_target("noise") == ("noise", TARGET_DEFAULTS["noise"])
    assert parse_target("zero_shift:-0.02") == ("zero_shift", -0.02)
    with pytest.raises(ValueError, match="kalpha2"):
        parse_target("kalpha")  # the nearest name is suggested
    with pytest.raises(ValueError, match="takes no parameter"):
        parse_target("ideal:3")
    with pytest.raises(ValueError, match="not a number"):
        parse_target("noise:many")
    with pytest.raises(ValueError):
        parse_target("noise:0")  # no counts: no measurement
    with pytest.raises(TypeError):
        parse_target(3)
    with pytest.raises(ValueError, match="targets is empty"):
        replace(SMALL, targets=()).validate()


def test_targets_are_the_truth_through_their_instrument(rutile):
    ideal = XRD.pattern(rutile, fwhm=0.1, normalize=False)
    assert np.array_equal(realistic_target(rutile, XRD, "ideal", 0.1), ideal)
    doublet = realistic_target(rutile, XRD, "kalpha2", 0.1)
    single = [Diffractometer(line, (10, 90), 0.02).pattern(rutile, fwhm=0.1, normalize=False)
              for line in ("CuKa1", "CuKa2")]
    ratio = target_instrument("kalpha2", 0.1, 1.0).lines(XRD.wavelength)[1][1]
    np.testing.assert_allclose(doublet, single[0] + ratio * single[1], rtol=1e-9,
                               atol=1e-12 * ideal.max())
    background = realistic_target(rutile, XRD, "background:0.2", 0.1)
    # the background's constant term: 0.2 × the peak maximum × its first coefficient
    edge = background - ideal
    x = np.linspace(-1, 1, len(XRD.two_theta))
    expected = 0.2 * ideal.max() * np.polynomial.chebyshev.chebval(x, BACKGROUND_SHAPE)
    np.testing.assert_allclose(edge, expected, rtol=1e-9, atol=1e-9 * ideal.max())
    counts = realistic_target(rutile, XRD, "noise:500", 0.1, seed=3)
    assert np.array_equal(counts, realistic_target(rutile, XRD, "noise:500", 0.1, seed=3))
    assert not np.array_equal(counts, realistic_target(rutile, XRD, "noise:500", 0.1, seed=4))
    assert np.all(counts == np.round(counts)) and abs(counts.max() - 500) < 5 * np.sqrt(500)
    everything = target_instrument("realistic", 0.1, 1.0)
    assert (everything.kalpha2 and everything.zero_shift == 0.05 and
            everything.march_dollase == 0.8 and len(everything.background) == 3)
    start = joint_instrument("realistic", 0.1)
    assert start.kalpha2 and start.zero_shift == 0 and start.march_dollase == 1
    assert not joint_instrument("zero_shift", 0.1).kalpha2


def test_task_keys_of_ideal_targets_are_the_old_keys():
    old = Task("x", "lattice", 0.01, "cosine", "p1", "adam", 0)
    assert old.key == "x|lattice|0.01|cosine|p1|adam|0"
    assert Task("x", "lattice", 0.01, "cosine", "p1", "adam", 0, "joint",
                "noise:100").key == "x|lattice|0.01|cosine|p1|adam|0|joint|target=noise:100"
    tasks = REALISM.tasks()
    assert len({t.key for t in tasks}) == len(tasks)
    per_structure = (1 * 2 + 2 * 2) * len(REALISM.seeds) * len(REALISM.targets) * 2
    assert len(tasks) == len(REALISM.structure_names()) * per_structure


def test_joint_remedy_through_the_runner():
    tasks = TINY.tasks()
    rows = [row for unit in work_units(tasks) for row in run_unit(unit, TINY)]
    by_key = {row["key"]: row for row in rows}
    assert set(by_key) == {t.key for t in tasks}
    for task in tasks:
        row = by_key[task.key]
        assert row["target"] == task.target and row["evaluations"] <= TINY.steps
        if task.remedy == "joint":
            assert row["final_loss"] <= row["start_loss"]
    # the batched and the task executor give the same rows for a realistic target
    noisy = [t for t in tasks if t.target == "noise:300" and t.remedy == "none"]
    batched = {r["key"]: r for r in run_unit(noisy, TINY)}
    one_by_one = {r["key"]: r for r in run_unit(noisy, TINY, executor="task")}
    for key, row in batched.items():
        assert row["recovered"] == one_by_one[key]["recovered"]
        assert row["final_loss"] == pytest.approx(one_by_one[key]["final_loss"], rel=1e-6)


def test_a_file_from_before_targets_takes_ideal_tasks_only(tmp_path):
    plain = replace(TINY, targets=("ideal", ), remedies=("none", ), parametrizations=("p1", ),
                    steps=5)
    rows = read_rows(run_study(plain, tmp_path / "new.csv", workers=1, progress=False))
    old = tmp_path / "old.csv"
    with old.open("w", newline="") as handle:
        csv.DictWriter(handle, fieldnames=[n for n in rows[0] if n != "target"]).writeheader()
    assert len(read_rows(run_study(plain, old, workers=1, progress=False))) == 1
    with pytest.raises(ValueError, match="no target column"):
        run_study(replace(plain, targets=("kalpha2", )), old, workers=1, progress=False)


def test_roughness_rows_agree_where_the_models_coincide():
    config = replace(TINY, targets=("ideal", "zero_shift:0.08"))
    rows = list(roughness_rows("AB_cF8_225_a_b", config))
    assert len(rows) == 2 * len(MODELS) * (3 + RANDOM_SCANS)
    ideal = [r for r in rows if r["target"] == "ideal"]
    pairs = {}
    for row in ideal:  # an ideal target: the two models are one
        pairs.setdefault(row["scan"], {})[row["model"]] = row
        assert row["lowest_offset"] == 0
    for pair in pairs.values():
        assert pair["ideal"]["minima"] == pair["matched"]["minima"]
    shifted = [r for r in rows if r["target"] == "zero_shift:0.08"]
    matched = [r for r in shifted if r["model"] == "matched"]
    assert all(r["lowest_offset"] == 0 and abs(r["loss_at_truth"]) < 1e-12 for r in matched)
    assert all(r["loss_at_truth"] > 0.01 for r in shifted if r["model"] == "ideal")


def test_roughness_command_writes_its_table_and_records(tmp_path):
    config = replace(TINY, targets=("ideal", ))
    config.to_json(tmp_path / "config.json")
    output = tmp_path / "minima.csv"
    assert cli.main(["roughness", "--config", str(tmp_path / "config.json"), "--output",
                     str(output), "--no-progress"]) == 0
    with output.open() as handle:
        assert len(list(csv.DictReader(handle))) == len(MODELS) * (3 + RANDOM_SCANS)
    assert StudyConfig.from_json(output.with_suffix(".config.json")) == config
    assert json.loads(output.with_suffix(".env.json").read_text())[0]["runs"] > 0


def test_the_ideal_instrument_model_of_a_target_is_the_book_pattern(rutile):
    """target_instrument("ideal") is Instrument.ideal: the measured and the ideal engine agree."""
    instrument = target_instrument("ideal", 0.1, 1.0)
    assert instrument == Instrument.ideal(0.1, orientation=(0, 0, 1))
    np.testing.assert_allclose(measured_pattern(rutile, XRD, instrument),
                               XRD.pattern(rutile, fwhm=0.1, normalize=False), rtol=1e-9,
                               atol=1e-12)
