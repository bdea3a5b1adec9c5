"""Read xrdcore's plain-text docstrings as reStructuredText without false markup (book/api.md).

The docstrings write norms and absolute values the way one reads them in a terminal, ``|g|``,
``|F|²``, ``|P_k − Q_k|``; reStructuredText takes ``|name|`` for a substitution reference and
fails the ``-W`` build. Before autodoc renders a docstring, every ``|`` outside inline literals
and roles is escaped, except on lines that look like a line block or a grid table (starting
with "| ", "+-" or "+="), which the docstrings do not use today but may.
"""

from __future__ import annotations

import re

_LITERAL = re.compile(r"(``.+?``|`[^`]*`)")


def escape_pipes(line: str) -> str:
    stripped = line.lstrip()
    if "|" not in line or stripped == "|" or stripped.startswith(("| ", "+-", "+=")):
        return line
    parts = _LITERAL.split(line)
    # even indices: outside literals/roles; odd: the literal or role text itself
    return "".join(part if i % 2 else part.replace("|", r"\|") for i, part in enumerate(parts))


def _process(app, what, name, obj, options, lines):
    lines[:] = [escape_pipes(line) for line in lines]


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _process)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
