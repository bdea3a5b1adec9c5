"""The environment is locked: the committed lock satisfies pyproject.toml, pins the CPU torch,
is what make installs (and what is installed), and environment.yml uses the same lock."""

import os
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _make_extras() -> list[str]:
    return (re.search(r"^EXTRAS := (\S+)$", (ROOT / "Makefile").read_text(),
                      re.M).group(1).split(","))


def test_lock_pins_every_requirement_of_pyproject_within_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    for text in requirements:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in the lock: run 'make lock'"
        assert requirement.specifier.contains(
            pins[name],
            prereleases=True), (f"lock has {name}=={pins[name]}, pyproject wants {requirement}")


def test_lock_is_for_this_python_and_the_cpu_torch():
    header = LOCK.read_text()
    assert "pip-compile with Python 3.11" in header
    pins = _pins()
    assert pins["torch"] == "2.13.0+cpu"
    cuda = [
        name for name in pins
        if name.startswith(("nvidia-cu", "nvidia-cudnn", "nvidia-nccl", "triton"))
    ]
    assert not cuda, f"CUDA wheels in the lock: {cuda}"


def test_make_and_conda_install_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e " in line]
    locked = [line for line in installs if "-c $(LOCK)" in line]
    unlocked = [line for line in installs if "-c $(LOCK)" not in line]
    assert len(locked) >= 2 and all(".venv-latest" in line for line in unlocked), installs
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-c requirements.lock" in pip_section
    editable = next(line for line in pip_section if line.startswith("-e"))
    assert sorted(re.search(r"\[(.*)\]", editable).group(1).split(",")) == sorted(_make_extras())
    assert "python=3.11" in environment["dependencies"]


@pytest.mark.skipif(bool(os.environ.get("XRDCORE_UNLOCKED")),
                    reason="make test-latest: installed without the lock")
def test_installed_packages_are_the_locked_versions():
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the lock is for Python 3.11")
    pins = _pins()
    wrong = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and dist.version != pins[name]:
            wrong[name] = (dist.version, pins[name])
    assert not wrong, f"installed (version, locked) differ: {wrong}; rerun 'make install'"
