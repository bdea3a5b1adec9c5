"""Checks of user input at the public entry points, our error types, and resource guards.

Every public function checks its arguments here *before* any kernel runs, so a wrong call
fails with a :class:`TypeError` or :class:`ValueError` that names the argument, says what
was given and what was probably meant — never a crash deep inside numba or pymatgen.

Error types (all subclasses of :class:`ValueError`, so ``except ValueError`` still works):

* :class:`StructureError`: the arrays do not describe a crystal (singular or inverted cell,
  NaN coordinates, over-full site, …). :func:`xrdcore.optimize.core.optimize` turns one raised
  *during* a run into the status "invalid structure"; everything else a call does wrong is
  raised to the caller.
* :class:`UndefinedMetricError`: the metric is undefined for the pattern a structure gives
  (nothing diffracts in range); like a StructureError, a run status, not a call error.
* :class:`ResourceLimitError`: the work asked for is beyond a guard of :data:`LIMITS`
  (grid points, reflections, reflections × atoms, an estimate of memory), checked before
  anything is allocated. The message names the limit and how to raise it: set the attribute
  (``xrdcore.validation.LIMITS.max_reflections = 10**7``), use :func:`limits` as a context
  manager, or set the environment variable before starting Python.
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, SupportsInt, TypeVar, cast

import numpy as np

_T = TypeVar("_T")


class StructureError(ValueError):
    """The given (or reached) arrays are not a valid crystal."""


class ResourceLimitError(ValueError):
    """A computation would exceed a resource guard of :data:`LIMITS`."""


class UndefinedMetricError(ValueError):
    """A similarity metric is undefined for a *simulated* pattern (all zero: nothing diffracts in
    the 2θ range; constant, for a correlation), a property of the structure, not of the call."""


@dataclass
class Limits:
    """Resource guards (each also read from the environment variable ``XRDCORE_<NAME>``)."""

    max_grid_points: int = 2_000_000  # points of one 2θ grid
    max_reflections: int = 2_000_000  # half-space reflections of one structure in range
    max_terms: int = 2_000_000_000  # reflections × atoms of one structure factor evaluation
    max_memory_gb: float = 8.0  # estimated working memory of one call (GiB)
    max_atoms: int = 100_000  # atoms of one structure
    max_file_mb: float = 64.0  # size of a CIF or study-config file read (MiB)
    max_cif_atoms: int = (
        10_000  # atom sites × symmetry operations of a CIF (pymatgen's parser is quadratic)
    )


def _from_environment() -> Limits:
    values: dict[str, Any] = {}
    for item in fields(Limits):
        text = os.environ.get(f"XRDCORE_{item.name.upper()}")
        if text is not None:
            try:
                values[item.name] = int(float(text)) if item.type == "int" else float(text)
            except ValueError:
                raise ValueError(
                    f"environment variable XRDCORE_{item.name.upper()}={text!r} is not a number"
                ) from None
    return Limits(**values)


#: The guards in force (change an attribute, or use :func:`limits`).
LIMITS = _from_environment()


@contextmanager
def limits(**changes: float) -> Iterator[Limits]:
    """Temporarily change guards of :data:`LIMITS`, e.g.
    ``with limits(max_reflections=10**7): ...``."""
    names = {item.name for item in fields(Limits)}
    unknown = set(changes) - names
    if unknown:
        raise TypeError(f"unknown limit(s) {sorted(unknown)}; choose from {sorted(names)}")
    saved = {name: getattr(LIMITS, name) for name in changes}
    for name, value in changes.items():
        setattr(LIMITS, name, real(value, name, low=0, low_open=True))
    try:
        yield LIMITS
    finally:
        for name, value in saved.items():
            setattr(LIMITS, name, value)


def guard(amount: float, limit: str, what: str | Callable[[], str], hint: str = "") -> None:
    """ResourceLimitError unless ``amount`` ≤ ``LIMITS.<limit>``; ``what`` describes the amount (a
    string, or a function making it: messages of guards that pass cost nothing on hot paths)."""
    allowed = getattr(LIMITS, limit)
    if amount > allowed:
        shown = f"{int(allowed):,}" if float(allowed).is_integer() else f"{allowed:g}"
        what = what() if callable(what) else what
        raise ResourceLimitError(
            f"{what} exceeds the limit {limit} = {shown}{'; ' + hint if hint else ''} "
            f"(raise it with xrdcore.validation.limits({limit}=...) or the environment variable "
            f"XRDCORE_{limit.upper()} if the machine has the memory)")


def guard_memory(n_bytes: float, what: str | Callable[[], str], hint: str = "") -> None:
    """:func:`guard` on an estimate of working memory in bytes (``what`` as for :func:`guard`)."""
    guard(
        n_bytes / 2**30, "max_memory_gb", lambda:
        (f"{what() if callable(what) else what} needs about {n_bytes / 2**30:.3g} GiB, which"),
        hint)


def describe(value: object) -> str:
    """A short description of a value for messages: its type and a clipped repr."""
    text = " ".join(repr(value).split())  # one line, whatever the repr spans
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def real(value: object, name: str, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, unit: str = "") -> float:
    """``value`` as a finite float within [low, high] (``low_open``: > low); TypeError for a bool,
    a complex, a string, None or an array; ValueError for NaN, inf or out of range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        hint = " (True/False is not a number here)" if isinstance(value, (bool, np.bool_)) else ""
        raise TypeError(f"{name} must be a real number{' in ' + unit if unit else ''}, "
                        f"got {describe(value)}{hint}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if low is not None and (number <= low if low_open else number < low):
        raise ValueError(
            f"{name} must be {'>' if low_open else '≥'} {low:g}{' ' + unit if unit else ''}, "
            f"got {number:g}")
    if high is not None and number > high:
        raise ValueError(f"{name} must be ≤ {high:g}{' ' + unit if unit else ''}, got {number:g}")
    return number


def whole(value: object, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int (an integral float is accepted), within [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a whole number, got {describe(value)}")
    if not isinstance(value, numbers.Integral):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    number = int(cast(SupportsInt, value))  # an integral numbers.Real here
    if low is not None and number < low:
        raise ValueError(f"{name} must be ≥ {low}, got {number}")
    if high is not None and number > high:
        raise ValueError(f"{name} must be ≤ {high}, got {number}")
    return number


def real_array(value: object, name: str, *, shape: tuple[int | None, ...] | None = None,
               ndim: int | None = None) -> np.ndarray:
    """``value`` as a finite float64 array; ``shape`` may hold None for any length. TypeError
    for booleans, complex numbers, strings, objects; ValueError for a wrong shape or NaN/inf."""
    if (type(value) is np.ndarray and
            value.dtype == np.float64):  # the hot path: patterns, grids, lattices
        array = value
    else:
        if value is None or isinstance(value, (str, bytes, dict, set)):
            raise TypeError(f"{name} must be an array of numbers, got {describe(value)}")
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):  # ragged nested lists
            raise ValueError(
                f"{name} must be a rectangular array of numbers (rows of equal length)") from None
        if array.dtype == bool or array.dtype.kind not in "iuf":
            kind = {
                "b": "booleans",
                "c": "complex numbers",
                "U": "strings",
                "S": "bytes",
                "O": "objects"
            }.get(array.dtype.kind, str(array.dtype))
            raise TypeError(f"{name} must hold real numbers, got {kind}")
        array = np.asarray(array, dtype=float)
    if (ndim is not None and array.ndim != ndim or shape is not None and
        (array.ndim != len(shape) or any(want is not None and got != want
                                         for got, want in zip(array.shape, shape)))):
        wanted = shape if shape is not None else f"{ndim}-D"
        raise ValueError(f"{name} must have shape {wanted}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf")
    return array


def did_you_mean(value: str, choices: Iterable[object]) -> str:
    """The hint "; did you mean 'X'?" naming the choice equal to ``value`` but for case (else the
    closest in spelling), or "" when none is close."""
    names = [str(known) for known in choices]
    text = str(value).strip()
    close = {known.lower(): known for known in names}.get(text.lower())
    close = close or next(iter(difflib.get_close_matches(text, names, n=1)), None)
    return f"; did you mean {close!r}?" if close else ""


def choice(value: object, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices`` (strings), else an error suggesting the nearest."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {choices}, got {describe(value)}")
    if value not in choices:
        raise ValueError(
            f"unknown {name} {value!r}{did_you_mean(value, choices)} (choose one of {choices})")
    return value


def instance(value: object, name: str, kind: type[_T], hint: str = "") -> _T:
    """``value`` if it is a ``kind``, else a TypeError naming both (and a conversion hint)."""
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be an xrdcore {kind.__name__}, "
                        f"got {describe(value)}{'; ' + hint if hint else ''}")
    return value
