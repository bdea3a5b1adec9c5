"""xrdcore: a fast powder X-ray diffraction engine (numba) for the book "Too rough for gradient
descent".

Main entry points: :class:`Crystal` (structure as arrays), :class:`Diffractometer`
(stick patterns and broadened profiles, pymatgen's conventions) and :mod:`xrdcore.datasets`
(the AFLOW prototype library shipped with pymatgen). The layers, bottom to top, are listed in
the README's Architecture section.

The flat module paths of version 0.1 (``xrdcore.crystal``, ``xrdcore.experiments``, …) still
import, with a DeprecationWarning naming the new place (:data:`MOVED`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence

from xrdcore.diffraction import Diffractometer, PeakList, Reflections
from xrdcore.physics.profiles import Profile
from xrdcore.structure import datasets
from xrdcore.structure.crystal import Crystal

__all__ = ["Crystal", "Diffractometer", "PeakList", "Profile", "Reflections", "datasets"]
__version__ = "0.1.0"

#: Old flat module → the module(s) now holding its names (searched in this order).
MOVED = {
    "crystal": ("structure.crystal", ),
    "symmetry": ("structure.symmetry", ),
    "parametrize": ("structure.parametrize", ),
    "perturb": ("structure.perturb", ),
    "structsim": ("structure.matching", ),
    "datasets": ("structure.datasets", ),
    "scattering": ("physics.scattering", ),
    "profiles": ("physics.profiles", ),
    "analysis": ("landscape.dependence", ),
    "overlap": ("landscape.overlap", "study.search"),
    "batch_optimize": ("optimize.batch", ),
    "experiments": ("study.config", "study.runner", "study.summary", "study.search"),
    "cli": ("study.cli", ),
    "checks": ("teaching.checks", ),
    "widgets": ("teaching.widgets", )
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``xrdcore.<old>`` as its new module (or, for a module split in parts, a view
    that looks each name up in the parts), with a DeprecationWarning."""

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package, _, old = name.partition(".")
        if package == __name__ and old in MOVED:
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__name__.partition(".")[2]
        parts = [importlib.import_module(f"{__name__}.{part}") for part in MOVED[old]]
        new = ", ".join(part.__name__ for part in parts)
        warnings.warn(f"{module.__name__} moved to {new}; import it from there", DeprecationWarning,
                      stacklevel=2)
        if len(parts) == 1:
            sys.modules[module.__name__] = parts[0]
            return

        def lookup(attribute: str) -> object:
            for part in parts:
                if hasattr(part, attribute):
                    return getattr(part, attribute)
            raise AttributeError(
                f"module {module.__name__!r} (now {new}) has no attribute {attribute!r}")

        view = types.ModuleType(module.__name__,
                                f"Names of the old {module.__name__}, now in {new}.")
        setattr(view, "__getattr__", lookup)  # a module's __getattr__ (PEP 562)
        sys.modules[module.__name__] = view


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())
