"""The package's shape: every public function and method fully annotated, the old flat module
paths still importing (with a DeprecationWarning), and the layer contracts, ruff and mypy
clean (the linters themselves run in ``make lint``, part of ``make test``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import warnings

import pytest

import xrdcore

MODULES = [
    importlib.import_module(info.name)
    for info in pkgutil.walk_packages(xrdcore.__path__, "xrdcore.")
    if not info.name.endswith("__main__")
]


def public_functions():
    """(qualified name, function) of every public function and method defined in xrdcore."""
    for module in MODULES:
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(value):
                for attribute, member in vars(value).items():
                    function = member.fget if isinstance(member, property) else member
                    if isinstance(function, (staticmethod, classmethod)):
                        function = function.__func__
                    if not inspect.isfunction(function) or function.__module__ != module.__name__:
                        continue  # not a function, or one made by typing (a Protocol's __init__)
                    if not attribute.startswith("_") or attribute == "__init__":
                        yield f"{module.__name__}.{name}.{attribute}", function
            elif inspect.isfunction(value) or hasattr(value, "py_func"):
                yield f"{module.__name__}.{name}", getattr(value, "py_func", value)


def missing_annotations(function) -> list[str]:
    signature = inspect.signature(function)
    missing = [
        name for name, parameter in signature.parameters.items()
        if name not in ("self", "cls") and parameter.annotation is inspect.Parameter.empty
    ]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_function_is_annotated():
    incomplete = {
        name: missing
        for name, function in public_functions() if (missing := missing_annotations(function))
    }
    assert not incomplete, f"{len(incomplete)} public functions lack type hints: {incomplete}"


def test_the_census_sees_the_api():
    names = {name for name, _ in public_functions()}
    assert {
        "xrdcore.diffraction.Diffractometer.pattern", "xrdcore.gradients.loss_and_grad",
        "xrdcore.optimize.core.optimize", "xrdcore.kernels.cpu.reflection_list"
    } <= names
    assert len(names) > 300


@pytest.mark.parametrize("old", sorted(xrdcore.MOVED))
def test_old_module_paths_import_with_a_warning(old):
    sys.modules.pop(f"xrdcore.{old}", None)  # imported before: import it afresh
    with pytest.warns(DeprecationWarning, match=f"xrdcore.{old} moved to"):
        module = importlib.import_module(f"xrdcore.{old}")
    new = [importlib.import_module(f"xrdcore.{part}") for part in xrdcore.MOVED[old]]
    for part in new:
        public = [name for name in vars(part) if not name.startswith("_")]
        assert all(
            getattr(module, name) is getattr(part, name) for name in public[:20]
            if hasattr(module, name))


def test_old_names_resolve_through_the_view():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from xrdcore.experiments import StudyConfig, run_study, wilson_interval
        from xrdcore.study import StudyConfig as new_config
        from xrdcore.study.runner import run_study as new_run
        from xrdcore.study.summary import wilson_interval as new_interval
    assert (StudyConfig, run_study, wilson_interval) == (new_config, new_run, new_interval)
