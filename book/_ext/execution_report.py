"""A chapter whose cell fails must fail the build loudly, and its page must say so.

With ``nb_execution_raise_on_error: false`` myst-nb warns about a failing notebook and the
build goes on (``--keep-going``), so every other page is still built; ``-W`` makes the
build exit non-zero. This extension then

* prints, at the end of the build, one line per failed chapter naming the source file, the
  failing code cell (its number among the chapter's code cells and its first line) and the
  error, and logs it as an error (so the build fails even where the warning was filtered);
* puts a warning box at the top of the failed page, so that a locally built site never shows
  a half-executed chapter as if it were complete.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAILED_CELL = re.compile(r"An error occurred while executing the following cell:\n-+\n(.*?)\n-+\n",
                         re.S)


def _failures(env) -> dict[str, dict]:
    metadata = getattr(env, "nb_metadata", {})
    return {
        doc: data["exec_data"]
        for doc, data in metadata.items()
        if data.get("exec_data") and data["exec_data"].get("succeeded") is False
    }


def describe(source_path: Path, traceback: str) -> str:
    """'cell N (`first line`): Error: message' for a myst-nb traceback of ``source_path``."""
    text = ANSI.sub("", traceback or "")
    found = FAILED_CELL.search(text)
    source = found.group(1).strip() if found else ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    error = next((line.strip() for line in reversed(lines)
                  if re.match(r"^\w*(Error|Exception|Interrupt|Exit)\b", line.strip())),
                 lines[-1].strip() if lines else "unknown error")
    where = "a cell"
    if source:
        import jupytext

        cells = [c for c in jupytext.read(source_path).cells if c.cell_type == "code"]
        number = next((i for i, c in enumerate(cells, 1) if c.source.strip() == source), None)
        first = source.splitlines()[0]
        where = f"code cell {number} (`{first}`)" if number else f"the cell starting `{first}`"
    return f"{where}: {error}"


def _report(app, exception):
    if exception is not None:
        return
    failures = _failures(app.env)
    for docname, data in sorted(failures.items()):
        path = Path(app.env.doc2path(docname))
        LOGGER.error(f"chapter {path.relative_to(app.srcdir)} did not execute: "
                     f"{describe(path, data.get('traceback'))}")


def _banner(app, doctree, docname):
    data = _failures(app.env).get(docname)
    if not data:
        return
    path = Path(app.env.doc2path(docname))
    box = nodes.warning()
    box += nodes.paragraph(text="This page failed to execute when the site was built, at "
                           f"{describe(path, data.get('traceback'))}. "
                           "Its outputs stop there; fix the chapter and rebuild (make book).")
    section = next(iter(doctree.findall(nodes.section)), None)
    parent = section if section is not None else doctree
    index = 1 if section is not None and len(section) and isinstance(section[0], nodes.title) else 0
    parent.insert(index, box)


def setup(app):
    app.connect("doctree-resolved", _banner)
    app.connect("build-finished", _report)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
