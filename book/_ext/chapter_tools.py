"""A "Run this chapter" box on every notebook page, and the book's stylesheet.

The box, under the chapter's title, offers what a reader needs to run the chapter away from
the site: the executed notebook (``.ipynb``, as the build ran it), its MyST Markdown source
(``.md``), the shipped tables it reads (every ``book_data("…")`` in the source, with their
configuration records) and the page's source in the repository named in ``_config.yml``
(``repository.url``, ``repository.branch``). Files are copied into ``_downloads/`` of the
site when the build finishes, so every link is local and works offline.

The stylesheet ``book/_static/css/book.css`` (explorers, tables, this box) is added to
every page.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from xrdcore.structure.datasets import book_data, book_data_names

CSS = Path(__file__).resolve().parents[1] / "_static" / "css"
#: ``book_data("retrieval_full.parquet")`` in a chapter's source names a table it reads.
BOOK_DATA_CALL = re.compile(r"""book_data\(\s*["']([^"']+)["']\s*\)""")


def _notebook_source(app, docname: str) -> Path | None:
    """The page's source file when it is a notebook (MyST Markdown with a jupytext header)."""
    path = Path(app.env.doc2path(docname))
    if path.suffix != ".md" or not path.is_file():
        return None
    return path if path.read_text(encoding="utf8").startswith("---\njupytext") else None


def tables_read(source: str) -> list[str]:
    """Shipped tables a chapter reads, with the records beside them, in order of first use."""
    shipped = set(book_data_names())
    files: list[str] = []
    for name in dict.fromkeys(BOOK_DATA_CALL.findall(source)):
        stem = name.rsplit(".", 1)[0]
        files += [name] + [
            f"{stem}{suffix}"
            for suffix in (".config.json", ".env.json") if f"{stem}{suffix}" in shipped
        ]
    return files


def _box(app, pagename: str, source: Path, pathto) -> str:
    stem = pagename.rsplit("/", 1)[-1]

    def link(target, text):
        return f'<a class="reference download" href="{html.escape(target)}">{text}</a>'

    items = [
        link(pathto(f"_downloads/notebooks/{stem}.ipynb", 1), f"<code>{stem}.ipynb</code>") +
        " — the notebook as executed for this page",
        link(pathto(f"_sources/{pagename}.md", 1), f"<code>{stem}.md</code>") +
        " — its MyST Markdown source (opens as a notebook with jupytext)"
    ]
    files = tables_read(source.read_text(encoding="utf8"))
    tables = [name for name in files if not name.endswith(".json")]
    if tables:

        def entry(name: str) -> str:
            stem = name.rsplit(".", 1)[0]
            records = [
                link(pathto(f"_downloads/data/{stem}{suffix}", 1), text)
                for suffix, text in ((".config.json", "config"), (".env.json", "environment"))
                if f"{stem}{suffix}" in files
            ]
            return link(pathto(f"_downloads/data/{name}", 1),
                        f"<code>{name}</code>") + (f" ({', '.join(records)})" if records else "")

        items.append("the data it reads: " + "; ".join(entry(name) for name in tables))
    repository = app.config.html_theme_options.get("repository_url", "")
    branch = app.config.html_theme_options.get("repository_branch", "") or "main"
    if repository:
        relative = source.relative_to(Path(app.srcdir)).as_posix()
        items.append(
            f'<a class="reference external" href="{html.escape(repository)}/blob/{branch}/'
            f'{relative}">the source repository</a>; '
            f"<code>pip install</code> it and the notebook runs in any folder "
            "(tables come with the package, <code>xrdcore.structure.datasets.book_data</code>)")
    entries = "".join(f"<li>{item}</li>" for item in items)
    return (
        '<div class="admonition tip run-chapter"><p class="admonition-title">Run this chapter</p>'
        f"<ul>{entries}</ul></div>")


def _add_box(app, pagename, templatename, context, doctree):
    source = _notebook_source(app, pagename) if doctree is not None else None
    body = context.get("body", "")
    if source is None or "</h1>" not in body:
        return
    box = _box(app, pagename, source, context["pathto"])
    context["body"] = body.replace("</h1>", "</h1>" + box, 1)


def _copy_downloads(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    executed = outdir.parent / "jupyter_execute"
    for docname in app.env.found_docs:
        source = _notebook_source(app, docname)
        if source is None:
            continue
        notebook = executed / f"{docname}.ipynb"
        if notebook.is_file():
            target = outdir / "_downloads" / "notebooks" / notebook.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, target)
        for name in tables_read(source.read_text(encoding="utf8")):
            target = outdir / "_downloads" / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(book_data(name), target)


def _stylesheet(app, config):
    if str(CSS) not in map(str, config.html_static_path):
        config.html_static_path = [*config.html_static_path, str(CSS)]


def setup(app):
    app.connect("config-inited", _stylesheet)
    app.add_css_file("book.css")
    app.connect("html-page-context", _add_box)
    app.connect("build-finished", _copy_downloads)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
