"""The static site works offline in a real browser (headless Chromium, no network).

* the whole book (the build shared with test_book.py, see conftest.built_book): every page in
  the toc, the index and the search page load with no console error, no missing asset, no
  request off 127.0.0.1, and every widget / animation / formula renders;
* a tiny book built here with an ipywidgets slider, a Play widget with icons, a button, a
  matplotlib to_jshtml animation and math: the vendored widget JavaScript renders it all;
* the check itself catches what it must (a CDN request, a 404, a widget that cannot render).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_check  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDGETS = ROOT / "book" / "_static" / "widgets"

WIDGET_PAGE = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Widgets offline

Inline math $E = h\\nu$ and a display formula

$$ 2 d \\sin\\theta = n \\lambda $$

```{code-cell} ipython3
import ipywidgets as widgets

widgets.IntSlider(value=3, min=0, max=10, description="n")
```

```{code-cell} ipython3
widgets.HBox([widgets.Play(value=0, min=0, max=4), widgets.Button(description="go", icon="check")])
```

```{code-cell} ipython3
import matplotlib.pyplot as plt
from IPython.display import HTML
from matplotlib.animation import FuncAnimation

fig, ax = plt.subplots(figsize=(2, 2))
(line,) = ax.plot([0, 1], [0, 0])
animation = FuncAnimation(fig, lambda i: line.set_ydata([0, i]), frames=3)
plt.close(fig)
HTML(animation.to_jshtml())
```
"""


def _widget_book(folder: Path) -> Path:
    """A one-page book using the project's _config.yml and local extensions."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["title"] = "widgets offline"
    config.pop("bibtex_bibfiles", None)
    config["exclude_patterns"] = ["_build"]
    config["execute"]["execute_notebooks"] = "force"
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {
        name: str(ROOT / path)
        for name, path in sphinx["local_extensions"].items()
    }
    sphinx["config"] = {
        k: v
        for k, v in sphinx.get("config", {}).items() if not k.startswith("bibtex")
    }
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    (folder / "_toc.yml").write_text("format: jb-book\nroot: widgets\n")
    (folder / "widgets.md").write_text(WIDGET_PAGE)
    return folder


def _jupyter_book() -> str:
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    assert jupyter_book, "jupyter-book is not installed in this environment"
    return jupyter_book


@pytest.fixture(scope="module")
def widget_site(tmp_path_factory):
    book = _widget_book(tmp_path_factory.mktemp("widget_book"))
    result = subprocess.run(
        [_jupyter_book(), "build",
         str(book), "--warningiserror", "--keep-going"], capture_output=True, text=True,
        timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return book / "_build" / "html"


def _check(html, toc, **kwargs):
    """Run the site check; no Chromium or no Playwright is a failure with the reason, never a
    skip."""
    lines: list[str] = []
    try:
        results = site_check.check_site(html, toc, log=lines.append, **kwargs)
    except site_check.SiteCheckError as exc:
        pytest.fail(f"the site check cannot run: {exc}")
    return {(r.page, r.width): r for r in results}, "\n".join(lines)


def test_vendored_widget_files_match_their_provenance():
    provenance = (WIDGETS / "PROVENANCE.md").read_text()
    rows = re.findall(r"^\| (\S+) \| (\S+) \| \S+ \| ([0-9a-f]{64}) \|$", provenance, re.M)
    assert len(rows) >= 3, "PROVENANCE.md lists no vendored files"
    for name, _spec, digest in rows:
        assert hashlib.sha256(
            (WIDGETS /
             name).read_bytes()).hexdigest() == digest, (f"{name} differs from PROVENANCE.md")
    for licence in ("LICENSE-ipywidgets.txt", "LICENSE-requirejs.txt", "LICENSE-fontawesome.txt",
                    "THIRD-PARTY-NOTICES.txt"):
        assert (WIDGETS / licence).is_file(), licence


@pytest.mark.xdist_group("widget_book")
def test_widget_page_renders_offline(widget_site):
    page = (widget_site / "widgets.html").read_text()
    assert not re.search(r"https?://(?!127\.0\.0\.1)[^\"' ]*\.(js|css)\b",
                         page), ("a CDN script or stylesheet is still referenced")
    assert "_static/widgets/embed-amd.js" in page and "_static/widgets/require.js" in page
    results, report = _check(widget_site, widget_site.parent.parent / "_toc.yml",
                             search_query="widgets")
    assert all(r.ok for r in results.values()), report
    for width, _height in site_check.VIEWPORTS:
        notes = "; ".join(results["widgets.html", width].notes)
        assert "2/2 widgets rendered" in notes and "1 animation" in notes, report


@pytest.mark.xdist_group("widget_book")
def test_site_check_catches_breakage(widget_site, tmp_path):
    broken = tmp_path / "html"
    shutil.copytree(widget_site, broken)
    page = (broken / "widgets.html").read_text()
    page = page.replace(
        "</head>", '<script src="https://cdn.example.org/lib.js"></script>'
        '<link rel="stylesheet" href="_static/missing.css"></head>', 1)
    page = re.sub(r'<script type="application/vnd.jupyter.widget-state\+json">.*?</script>', "",
                  page, flags=re.S)
    # Layout: a wide block in the text and the explorer squeezed into a clipping box.
    head, article = page.split("<article", 1)
    page = (head + "<article" +
            article.replace("</h1>", '</h1><div style="width: 1600px">too wide</div>', 1))
    page = page.replace(
        '<div class="animation"', "<style>div.animation { width: 120px; overflow: hidden; } "
        "div.animation img { max-width: none !important; }</style>"
        '<div class="animation"', 1)
    (broken / "widgets.html").write_text(page)
    results, report = _check(broken, widget_site.parent.parent / "_toc.yml", pages=["widgets.html"],
                             viewports=((390, 844), ))
    problems = "\n".join(results["widgets.html", 390].problems)
    assert "stick out of the 390 px window" in problems and "reaches 1" in problems, report
    assert "animation #1: img" in problems and "cut off" in problems, report
    assert "non-local host (blocked): https://cdn.example.org/lib.js" in problems, report
    assert "HTTP 404" in problems and "missing.css" in problems, report
    assert "did not render" in problems, report


@pytest.mark.xdist_group("book")
def test_whole_site_in_a_browser(built_book):
    built_book.require_success()
    results, report = _check(built_book.html, ROOT / "_toc.yml")
    assert all(r.ok for r in results.values()), report
    assert any(page.startswith("search.html") for page, _width in results), report
