"""Read xrdcore's plain-text docstrings as reStructuredText without false markup (book/api.md).

The docstrings write norms and absolute values the way one reads them in a terminal, ``|g|``,
``|F|²``, ``|P_k − Q_k|``; reStructuredText takes ``|name|`` for a substitution reference and
fails the ``-W`` build. Before autodoc renders a docstring, every ``|`` outside inline literals
and roles is escaped, except on lines that look like a line block or a grid table (starting
with "| ", "+-" or "+="), which the docstrings do not use today but may.

Napoleon reads the text before the first colon of a constant's or attribute's docstring as its
type ("``#: Window sizes (CSS px): a phone``" would render as "Type: Window sizes (CSS px)").
Our docstrings never state a type that way (annotations do), so after napoleon has run, such a
``:type:`` line is put back into the sentence it came from.
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


def restore_inline_type(lines: list[str]) -> list[str]:
    """Undo napoleon's "type: description" split of an attribute docstring (lines after
    napoleon)."""
    typed = [i for i, line in enumerate(lines) if line.startswith(":type: ")]
    if not typed:
        return lines
    i = typed[-1]
    kind = lines[i][len(":type: "):]
    rest = [line for k, line in enumerate(lines) if k != i]
    while rest and not rest[-1].strip():
        rest.pop()
    first = next((k for k, line in enumerate(rest) if line.strip()), None)
    if first is None:
        return [kind]
    rest[first] = f"{kind}: {rest[first].lstrip()}"
    return rest


def _restore(app, what, name, obj, options, lines):
    if what in ("attribute", "data", "property"):
        lines[:] = restore_inline_type(lines)


def setup(app):
    app.setup_extension("sphinx.ext.autodoc")
    app.connect("autodoc-process-docstring", _process)
    app.connect("autodoc-process-docstring", _restore, priority=600)  # after napoleon (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
