"""Bad study configs, runner arguments, results files and command lines. Each is refused before
any task runs, with our error in our words (see tests/bad_input.py); from the command line, as
one line on stderr with exit status 2."""

import json
import re
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from bad_input import TIME_LIMIT, rejects

from xrdcore.structure.datasets import UnknownPrototypeError
from xrdcore.study import runner
from xrdcore.study.cli import main
from xrdcore.study.config import SMALL, StudyConfig
from xrdcore.study.runner import RESULT_FIELDS, run_study
from xrdcore.study.summary import binned_rates, match_rates, rate_where, repair_rate
from xrdcore.validation import ResourceLimitError

#: A valid one-structure grid; each case changes one thing.
BASE = replace(SMALL, structures=("AB_cF8_225_a_b", ), steps=10)
JSON = {
    name: list(value) if isinstance(value, tuple) else value
    for name, value in asdict(BASE).items()
}


@pytest.fixture(autouse=True)
def no_task(monkeypatch):
    """Every case must be refused before its first task."""

    def refused(*args, **kwargs):
        raise AssertionError("a task ran")

    monkeypatch.setattr(runner, "run_unit", refused)


def grid(**changes):
    """The grid of BASE with ``changes`` (Python values)."""
    return lambda folder: lambda: replace(BASE, **changes).tasks()


def from_json(**changes):
    """BASE with ``changes`` as a JSON config file (NaN and Infinity as JSON writes them)."""
    return text(json.dumps({**JSON, **changes}))


def text(content: str):
    return data(content.encode())


def data(content: bytes, name: str = "config.json"):

    def make(folder):
        (folder / name).write_bytes(content)
        return lambda: StudyConfig.from_json(folder / name)

    return make


def path_of(make_path):
    """A config read from the path ``make_path(folder)`` returns."""
    return lambda folder: lambda: StudyConfig.from_json(make_path(folder))


def sparse(folder):
    path = folder / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(100 * 2**20)  # 100 MiB, no disk used
    return path


def study(output="runs.csv", config=BASE, setup=None, **options):
    """run_study of ``config`` into ``folder / output`` (after ``setup(folder)``) with
    ``options``."""

    options = {"workers": 1, **options}

    def make(folder):
        if setup is not None:
            setup(folder)
        return lambda: run_study(config, folder / output, progress=False, **options)

    return make


def results_file(content: bytes, name="runs.csv", config: bool = True):
    """A file ``name`` holding ``content``, with BASE stored beside it when ``config``."""

    def setup(folder):
        (folder / name).write_bytes(content)
        if config:
            BASE.to_json(folder / (Path(name).stem + ".config.json"))

    return setup


def fake_rows(count: int = 1) -> bytes:
    """A results CSV with ``count`` rows of BASE's first task (its other columns empty)."""
    header = ",".join(RESULT_FIELDS)
    key = BASE.tasks()[0].key
    row = ",".join(key if name == "key" else "x" for name in RESULT_FIELDS)
    return ("\r\n".join([header] + [row] * count) + "\r\n").encode()


def table(call, content: bytes | None, name="runs.csv"):
    """``call(path)`` on a results file holding ``content`` (None: no file)."""

    def make(folder):
        if content is not None:
            (folder / name).write_bytes(content)
        return lambda: call(folder / name)

    return make


NOT_RESULTS = b"name,value\r\nx,1\r\n"
BINARY = bytes(range(256)) * 4

CASES = [
    # names, with the nearest valid one suggested
    ("metric typo", grid(metrics=("cosin", )), ValueError,
     "unknown metric 'cosin'; did you mean 'cosine'"),
    ("kind typo", grid(kinds=("lattices", )), ValueError, "did you mean 'lattice'"),
    ("parametrisation in capitals", grid(parametrizations=("P1", )), ValueError,
     "unknown parametrization 'P1'"),
    ("method typo", grid(methods=("bfgs", )), ValueError, "did you mean 'lbfgs'"),
    ("lattice noise typo", grid(lattice_noise="matrx"), ValueError, "did you mean 'matrix'"),
    ("start design", grid(starts="fair"), ValueError, "unknown start design 'fair'"),
    ("prototype cut short", grid(structures=("AB_cF8_225", )), UnknownPrototypeError,
     "did you mean 'AB_cF8_225_a_b'"),
    ("prototype by formula", grid(structures=("NaCl", )), ValueError,
     "unknown prototype 'NaCl'; see list_prototypes"),
    ("prototype as a number", grid(structures=(225, )), TypeError,
     "prototype name must be a string"),
    ("remedy typo", grid(remedies=("continuaton", )), ValueError, "did you mean 'continuation'"),
    ("remedy parameter not a number", grid(remedies=("continuation:x", )), ValueError,
     "'x' is not a number"),
    ("remedy parameter NaN", grid(remedies=("continuation:nan", )), ValueError, "must be finite"),
    ("remedy without weight", grid(remedies=("energy", )), ValueError, "needs its weight"),
    ("no starts", grid(remedies=("multistart:0", )), ValueError, "must be > 0"),
    ("half a start", grid(remedies=("multistart:2.5", )), ValueError, "whole number of starts"),
    ("more hops than steps", grid(remedies=("basin:11", )), ValueError, "between 1 and 10"),
    ("none with a parameter", grid(remedies=("none:3", )), ValueError, "'none' takes no parameter"),
    ("remedy as a number", grid(remedies=(4, )), TypeError, "remedy must be a name"),
    # numbers: types and ranges
    ("seed true", from_json(seeds=[True]), TypeError, r"seeds\[0\] must be a whole number"),
    ("half a seed", from_json(seeds=[0.5]), ValueError,
     r"seeds\[0\] must be a whole number, got 0.5"),
    ("negative seed", from_json(seeds=[-1]), ValueError, r"seeds\[0\] must be ≥ 0"),
    ("negative strain", from_json(strains=[-0.1]), ValueError, r"strains\[0\] must be > 0"),
    ("strain NaN", from_json(strains=[0.01, float("nan")]), ValueError,
     r"strains\[1\] must be finite"),
    ("displacement infinite", from_json(displacements=[float("inf")]), ValueError,
     r"displacements\[0\] must be finite"),
    ("strain as text", from_json(strains=["0.01"]), TypeError,
     r"strains\[0\] must be a real number"),
    ("zero steps", from_json(steps=0), ValueError, "steps must be ≥ 1"),
    ("steps as text", from_json(steps="200"), TypeError, "steps must be a whole number"),
    ("fractional steps", from_json(steps=20.5), ValueError, "steps must be a whole number"),
    ("wavelength true", from_json(wavelength=True), TypeError, "wavelength must be a real number"),
    ("unknown line", from_json(wavelength="CuKalpha"), ValueError, "CuKalpha"),
    ("negative wavelength", from_json(wavelength=-1.0), ValueError, "wavelength"),
    ("range reversed", from_json(two_theta_range=[90, 10]), ValueError, "two_theta_range"),
    ("range of one angle", from_json(two_theta_range=[10]), ValueError,
     r"two_theta_range must be \[low, high\]"),
    ("range angle as text", from_json(two_theta_range=[10, "90"]), TypeError,
     r"two_theta_range\[1\] must be a real"),
    ("zero grid step", from_json(grid_step=0), ValueError, "grid_step must be > 0"),
    ("grid of 8e8 points", from_json(grid_step=1e-7), ResourceLimitError, "max_grid_points"),
    ("zero fwhm", from_json(fwhm=0), ValueError, "fwhm must be > 0"),
    ("caglioti fwhm", from_json(fwhm=[0.01, 0, 0.01]), TypeError, "fwhm must be a real number"),
    # the grid's shape
    ("string for a list", from_json(metrics="cosine"), TypeError, "metrics must be a list, got str"
     ),
    ("no kinds", from_json(kinds=[]), ValueError, "kinds is empty"),
    ("no seeds", from_json(seeds=[]), ValueError, "seeds is empty"),
    ("no remedies", from_json(remedies=[]), ValueError, "remedies is empty"),
    ("no displacements", from_json(kinds=["coordinates"],
                                   displacements=[]), ValueError, "displacements is empty"),
    ("only repeats", from_json(kinds=["lattice"],
                               parametrizations=["spacegroup"]), ValueError, "the grid is empty"),
    ("per family zero", from_json(structures=[],
                                  per_family=0), ValueError, "per_family must be ≥ 1"),
    ("per family with structures", from_json(per_family=2), ValueError,
     "give it or structures, not both"),
    ("strains alike in a key", from_json(strains=[0.01, 0.0100000001]), ValueError,
     "both 0.01 in a task's key"),
    ("displacements alike in a key", grid(displacements=(0.2, 0.2 + 1e-9)), ValueError,
     "both 0.2 in a task's key"),
    # the file
    ("unknown setting", from_json(structure=["x"]), ValueError,
     "unknown study settings.*did you mean 'structures'"),
    ("array at the top", text("[1, 2]"), ValueError, "must hold a JSON object.*got a JSON list"),
    ("truncated JSON", text(
        json.dumps(JSON)[:50]), ValueError, r"not valid JSON: .*\(line 1, column"),
    ("error on line 3", text('{\n"steps": 10,\n"seeds": [0,, 1]}'), ValueError,
     r"not valid JSON.*line 3"),
    ("empty file", text(""), ValueError, "not valid JSON"),
    ("binary file", data(BINARY), ValueError, "not a text file"),
    ("/dev/zero", path_of(lambda folder: Path("/dev/zero")), ResourceLimitError,
     "more than 64 MiB.*max_file_mb"),
    ("100 MiB file", path_of(sparse), ResourceLimitError,
     r"\(100 MiB\) exceeds the limit max_file_mb"),
    ("missing file", path_of(lambda folder: folder / "nowhere.json"), FileNotFoundError,
     "no study config file .*nowhere"),
    ("a folder", path_of(lambda folder: folder), IsADirectoryError, "is a folder, not a file"),
    # run_study's arguments and outputs
    ("no workers", study(workers=0), ValueError, "workers must be ≥ 1"),
    ("workers true", study(workers=True), TypeError, "workers must be a whole number"),
    ("executor typo", study(executor="batch"), ValueError, "did you mean 'batched'"),
    ("backend gpu", study(backend="gpu"), ValueError, "did you mean 'cuda'"),
    ("output inside a file", study("file/runs.csv", setup=lambda f: (f / "file").write_text("x")),
     OSError, "cannot create the output folder"),
    ("output is a folder", study("runs.csv", setup=lambda f: (f / "runs.csv").mkdir()),
     IsADirectoryError, "cannot write the results file"),
    ("output not a results file", study(setup=results_file(NOT_RESULTS)), ValueError,
     "not a results file of this version"),
    ("output binary", study(setup=results_file(BINARY)), ValueError,
     r"not a results file .*columns missing: all"),
    ("rows without their configuration", study(setup=results_file(fake_rows(), config=False)),
     ValueError, "results exist .* but not their configuration"),
    ("rows of other steps", study(config=replace(BASE, steps=20),
                                  setup=results_file(fake_rows())), ValueError, "steps 10 → 20"),
    ("parquet output not parquet",
     study("runs.parquet", setup=results_file(
         b"PAR1 nope", "runs.parquet")), ValueError, "not a Parquet results file"),
    # results files read for rates
    ("rates of a missing file", table(match_rates, None), FileNotFoundError, "no results file"),
    ("rates of a folder", table(match_rates, None, name=""), FileNotFoundError, "it is a folder"),
    ("rates of a binary file", table(match_rates, BINARY), ValueError, "not a CSV results file"),
    ("rates of another table", table(match_rates, NOT_RESULTS), ValueError, "has no column 'kind'"),
    ("rates of an empty file", table(match_rates,
                                     b""), ValueError, "has no column 'kind'.*no header"),
    ("rates of a bad parquet", table(match_rates, b"not parquet",
                                     "runs.parquet"), ValueError, "not a Parquet"),
    ("group by a typo", table(lambda p: match_rates(p, by=("kindd", )),
                              fake_rows()), ValueError, "did you mean 'kind'"),
    ("rate of a typo", table(lambda p: rate_where(p, column="recoverd"),
                             fake_rows()), ValueError, "did you mean 'recovered'"),
    ("where a typo", table(lambda p: repair_rate(p, parametrisation="p1"),
                           fake_rows()), ValueError, "did you mean 'parametrization'"),
    ("bins of a typo", table(lambda p: binned_rates(p, [0, 1], measure="start_error"),
                             fake_rows()), ValueError, "no column 'start_error'"),
    ("column not a name", table(lambda p: match_rates(p, by=(1, )),
                                fake_rows()), TypeError, "column name must be a string")
]


@pytest.mark.parametrize("make, error, phrase", [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_bad_study_input_is_refused(make, error, phrase, tmp_path):
    rejects(make(tmp_path), error, phrase)


def cli(*arguments, setup=None):
    """A command line; ``setup(folder)`` prepares its files, "{}" in an argument is the folder."""

    def make(folder):
        if setup is not None:
            setup(folder)
        return [argument.replace("{}", str(folder)) for argument in arguments]

    return make


def config_file(**changes):
    return lambda folder: (folder / "config.json").write_text(json.dumps({**JSON, **changes}))


RETRIEVE = ("retrieve", "--workers", "1", "--no-progress")
COMMANDS = [("preset typo", cli("retrieve", "--config",
                                "smal"), "neither a preset .* did you mean 'small'"),
            ("config missing", cli("retrieve", "--config",
                                   "{}/none.json"), "none.json' is neither a preset"),
            ("config metric typo",
             cli(*RETRIEVE, "--config", "{}/config.json",
                 setup=config_file(metrics=["cosin"])), "did you mean 'cosine'"),
            ("config seed true",
             cli(*RETRIEVE, "--config", "{}/config.json",
                 setup=config_file(seeds=[True])), r"seeds\[0\] must be a whole number"),
            ("config /dev/zero", cli("retrieve", "--config", "/dev/zero"), "max_file_mb"),
            ("config truncated",
             cli("retrieve", "--config", "{}/config.json", setup=lambda f:
                 (f / "config.json").write_text('{"steps": 1')), "not valid JSON"),
            ("zero workers", cli("retrieve", "--workers", "0", "--output",
                                 "{}/runs.csv"), "workers must be ≥ 1"),
            ("workers not a number", cli("retrieve", "--workers",
                                         "two"), "argument --workers: invalid int value"),
            ("executor typo", cli("retrieve", "--executor",
                                  "fast"), "argument --executor: invalid choice"),
            ("unknown command", cli("retrive"), "invalid choice: 'retrive'"),
            ("output inside a file",
             cli(*RETRIEVE, "--output", "{}/file/runs.csv", setup=lambda f:
                 (f / "file").write_text("x")), "cannot create the output folder"),
            ("output of other settings",
             cli(*RETRIEVE, "--config", "{}/config.json", "--output", "{}/runs.csv", setup=lambda f:
                 (config_file(steps=20)(f), results_file(fake_rows())(f))), "steps 10 → 20"),
            ("summary of a missing file", cli("summary", "{}/none.csv"), "no results file"),
            ("summary of a binary file", cli("summary", "{}/runs.csv",
                                             setup=results_file(BINARY)), "not a CSV results file"),
            ("summary of another table",
             cli("summary", "{}/runs.csv", setup=results_file(NOT_RESULTS)), "has no column"),
            ("summary by a typo",
             cli("summary", "{}/runs.csv", "--by", "kind,parametrisation",
                 setup=results_file(fake_rows())), "did you mean 'parametrization'"),
            ("summary of a folder", cli("summary", "{}"), "it is a folder"),
            ("summary column typo", cli("summary", "{}/runs.csv", "--column",
                                        "recoverd"), "argument --column: invalid choice")]


@pytest.mark.parametrize("make, phrase", [case[1:] for case in COMMANDS],
                         ids=[case[0] for case in COMMANDS])
def test_bad_command_lines_are_one_line_with_status_2(make, phrase, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = make(tmp_path)
    begin = time.perf_counter()
    try:
        status = main(arguments)
    except SystemExit as stop:  # argparse's own errors
        status = stop.code
    assert time.perf_counter() - begin < TIME_LIMIT
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert status == 2 and lines and "Traceback" not in captured.err, captured.err
    assert all(" tasks; configuration: " in line for line in lines[:-1]), (
        captured.err)  # the one line before
    assert lines[-1].startswith(
        ("xrdcore: error: ", "xrdcore retrieve: error: ", "xrdcore summary: error: "))
    assert re.search(phrase, lines[-1]), lines[-1]


def test_repeated_values_give_each_task_once():
    config = replace(BASE, seeds=(0, 0, 0.0), metrics=("cosine", "cosine"),
                     strains=(0.01, 0.01, 0.05), structures=BASE.structures * 2,
                     remedies=("none", "none"))
    keys = [task.key for task in config.tasks()]
    assert len(keys) == len(set(keys)) == len(BASE.tasks())


def test_a_valid_config_file_round_trips(tmp_path):
    BASE.to_json(tmp_path / "config.json")
    assert StudyConfig.from_json(tmp_path / "config.json") == BASE
    assert [path.name for path in tmp_path.iterdir()] == ["config.json"]  # no partial file left
