"""Serve MathJax 3 from the built site itself, never from a CDN: the book must read offline.

MathJax comes from the ``django-static-mathjax`` wheel (MathJax 3.2.2, Apache-2.0; it has
no dependencies and ships only static files). Only what ``tex-chtml.js`` loads is copied:
the combined TeX→CommonHTML component, its WOFF fonts, TeX extensions loaded on demand,
and the menu / accessibility components.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

ENTRY = "tex-chtml.js"
NEEDED = [ENTRY, "input/tex/extensions", "output/chtml/fonts/woff-v2", "ui", "a11y"]
TARGET = "mathjax"  # folder under the site's _static/


def mathjax_es5() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MathJax files not found: install the book extra (pip install -e '.[book]')")
    root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if not (root / ENTRY).is_file():
        raise RuntimeError(f"{root / ENTRY} is missing; reinstall django-static-mathjax")
    return root


def _use_local_mathjax(app, config):
    mathjax_es5()  # fail early, with a clear message, if the files are absent
    config.mathjax_path = f"{TARGET}/{ENTRY}"  # relative paths are taken from _static/


def _copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_es5()
    target = Path(app.outdir) / "_static" / TARGET
    for item in NEEDED:
        if (source / item).is_dir():
            shutil.copytree(source / item, target / item, dirs_exist_ok=True)
        else:
            (target / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / item, target / item)


def setup(app):
    app.connect("config-inited", _use_local_mathjax)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
