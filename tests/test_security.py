"""The README's security note, checked: the package source never evaluates, executes or
unpickles data, and never runs a shell."""

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xrdcore"
#: Calls that run or unpickle arbitrary data (as code patterns, not words in prose).
FORBIDDEN = {
    "eval": r"(?<![\w.])eval\(",
    "exec": r"(?<![\w.])exec\(",
    "pickle": r"\bimport pickle\b|\bpickle\.loads?\(|\bcloudpickle\b",
    "allow_pickle": r"allow_pickle\s*=\s*True",
    "shell": r"shell\s*=\s*True",
    "yaml.load": r"yaml\.load\(",
    "torch.load": r"torch\.load\("
}


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_the_package_never_runs_or_unpickles_data(name):
    pattern = re.compile(FORBIDDEN[name])
    found = [
        f"{path.name}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)
    ]
    assert not found, f"{name} in {found}"


def test_the_patterns_catch_what_they_are_for():
    samples = {
        "eval": "x = eval(text)",
        "exec": "exec(code)",
        "pickle": "data = pickle.load(handle)",
        "allow_pickle": "np.load(path, allow_pickle=True)",
        "shell": "run(cmd, shell=True)",
        "yaml.load": "yaml.load(text)",
        "torch.load": "torch.load(path)"
    }
    for name, line in samples.items():
        assert re.search(FORBIDDEN[name], line), name
    assert not re.search(FORBIDDEN["eval"], "model.eval()")  # a method named eval is not eval
