"""The book is part of the test suite: it builds offline with warnings as errors, executing
every chapter."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def _chapters():
    """The notebook chapters (MyST Markdown with a jupytext header)."""
    return [f for f in _toc_files() if (ROOT / f"{f}.md").read_text().startswith("---\njupytext")]


def jupyter_book(*arguments: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """``jupyter-book build ARGUMENTS`` with warnings as errors, as make book runs it."""
    executable = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    return subprocess.run([executable, "build", *arguments, "--warningiserror", "--keep-going"],
                          capture_output=True, text=True, timeout=timeout)


def test_every_toc_entry_exists():
    for entry in _toc_files():
        assert (ROOT / f"{entry}.md").is_file(), entry


def test_every_chapter_ends_with_checked_exercises():
    chapters = _chapters()
    assert chapters, "no notebook chapters found in _toc.yml"
    for chapter in chapters:
        text = (ROOT / f"{chapter}.md").read_text()
        assert "## Exercises" in text, f"{chapter} has no Exercises section"
        for section in ("## Key takeaways", "## Try it yourself"):
            assert section in text.split(
                "## Exercises", 1)[0], (f"{chapter} has no {section[3:]} before its exercises")
        exercises = text.split("## Exercises", 1)[1]
        assert exercises.count("```{exercise}") >= 2, f"{chapter}: fewer than two exercises"
        assert exercises.count("```{solution-start}") == exercises.count("```{exercise}")
        assert exercises.count("checks.check_") >= exercises.count("```{exercise}"), (
            f"{chapter}: an answer is not auto-checked")


@pytest.mark.xdist_group("book")
def test_book_builds_with_warnings_as_errors(built_book):
    """Clean build (fresh execution cache) into a temporary folder; any warning or raising cell
    fails.

    The build itself is the session fixture ``built_book`` (conftest.py), shared with test_site.py.
    """
    built_book.require_success()
    html = built_book.html
    for entry in _toc_files():
        page = html / f"{entry}.html"
        assert page.is_file(), f"{page} missing"
        assert "Traceback" not in page.read_text(), f"{entry} shows a traceback"


def test_a_failing_cell_fails_the_build_naming_chapter_and_cell(tmp_path):
    """A mini-book with one failing chapter: the build exits non-zero, names the file, the cell
    and the error, still writes the other pages, and the failed page carries a warning box."""

    (tmp_path / "_config.yml").write_text(
        "title: mini\nonly_build_toc_files: true\n"
        "execute: {execute_notebooks: cache, timeout: 100, allow_errors: false}\n"
        f"sphinx:\n  local_extensions: {{execution_report: {ROOT / 'book' / '_ext'}}}\n"
        "  config: {nb_execution_raise_on_error: false}\n")
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: bad\n")
    (tmp_path / "intro.md").write_text("# Intro\n\nAll fine here.\n")
    header = (ROOT / "book" / "01_powder_diffraction.md").read_text().split("---\n")[1]
    (tmp_path / "bad.md").write_text(
        f"---\n{header}---\n# Bad\n\n```{{code-cell}} ipython3\nx = 1\n```\n\n"
        "```{code-cell} ipython3\nassert x == 2, 'x is not two'\n```\n")
    result = jupyter_book(str(tmp_path))
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert ("chapter bad.md did not execute: code cell 2 (`assert x == 2, 'x is not two'`): "
            "AssertionError: x is not two" in log)
    html = tmp_path / "_build" / "html"
    assert "All fine here" in (html / "intro.html").read_text()
    assert "This page failed to execute when the site was built" in (html / "bad.html").read_text()


def test_chapters_execute_in_a_temporary_folder():
    """The book build runs every chapter in a fresh temporary folder (as after a download)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["run_in_temp"] is True
    for chapter in _chapters():
        text = (ROOT / f"{chapter}.md").read_text()
        assert 'Path("data")' not in text and "../" not in text, (
            f"{chapter} reads a path relative to the working directory")


def test_a_page_runs_outside_the_repository_and_offers_its_downloads(tmp_path):
    """A mini-book built with the project's configuration: its page runs in a folder outside
    the book and the repository, reads a shipped table through the package, and the page's
    "Run this chapter" box links the executed notebook, the source, the table and its records
    and the repository, every local link pointing at a file of the site."""
    import re

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config.pop("bibtex_bibfiles", None)
    config["exclude_patterns"] = ["_build"]
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {
        name: str(ROOT / path)
        for name, path in sphinx["local_extensions"].items()
    }
    sphinx["config"] = {k: v for k, v in sphinx["config"].items() if not k.startswith("bibtex")}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    header = (ROOT / "book" / "01_powder_diffraction.md").read_text().split("---\n")[1]
    (tmp_path / "page.md").write_text(
        f"---\n{header}---\n# A page\n\n```{{code-cell}} ipython3\nfrom pathlib import Path\n"
        "from xrdcore.structure.datasets import book_data\n\n"
        "here = Path.cwd().resolve()\n"
        f"for folder in (Path({str(tmp_path)!r}), Path({str(ROOT)!r})):\n"
        "    assert not here.is_relative_to(folder), here\n"
        "rows = book_data('remedies_energy.csv').read_text().splitlines()\n"
        "print(len(rows) > 1)\n```\n")
    result = jupyter_book(str(tmp_path))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    page = (html / "page.html").read_text()
    assert "Run this chapter" in page and config["repository"]["url"] in page
    links = re.findall(r'class="reference download" href="([^"]+)"', page)
    assert {Path(link).name
            for link in links} == {
                "page.ipynb", "page.md", "remedies_energy.csv", "remedies_energy.config.json",
                "remedies_energy.env.json"
            }
    for link in links:
        assert (html / link).is_file(), link


@pytest.mark.xdist_group("book")
def test_every_chapter_page_offers_its_notebook_and_data(built_book):
    import re

    built_book.require_success()
    for chapter in _chapters():
        page = (built_book.html / f"{chapter}.html").read_text()
        assert "Run this chapter" in page, chapter
        links = re.findall(r'class="reference download" href="([^"]+)"', page)
        assert any(link.endswith(".ipynb") for link in links), chapter
        for link in links:
            assert (built_book.html / Path(chapter).parent /
                    link).resolve().is_file(), (f"{chapter}: {link}")


@pytest.mark.xdist_group("book")
def test_api_reference_has_no_misparsed_types(built_book):
    """Napoleon takes the text before a constant's first colon for its type; none is left."""
    built_book.require_success()
    api = (built_book.html / "book" / "api.html").read_text()
    assert ">Type<" not in api


def test_attribute_docstring_colon_is_put_back():
    import importlib.util

    spec = importlib.util.spec_from_file_location("api_docstrings",
                                                  ROOT / "book" / "_ext" / "api_docstrings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    after_napoleon = ["a phone and a desk.", "", ":type: Window sizes (CSS px)"]
    assert module.restore_inline_type(after_napoleon) == [
        "Window sizes (CSS px): a phone and a desk."
    ]
    assert module.restore_inline_type(["No colon here."]) == ["No colon here."]


@pytest.mark.xdist_group("book")
def test_whole_book_prints_to_one_pdf(built_book):
    """``make pdf``'s two steps on the tested build: the single-page HTML (same execution cache,
    warnings as errors) and its offline print to PDF, with every chapter in it."""

    built_book.require_success()
    result = jupyter_book(str(ROOT), "--path-output", str(built_book.folder), "--builder",
                          "singlehtml", timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    import importlib.util

    spec = importlib.util.spec_from_file_location("print_pdf",
                                                  ROOT / "book" / "_ext" / "print_pdf.py")
    print_pdf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(print_pdf)
    single = built_book.folder / "_build" / "singlehtml"
    text = print_pdf.single_page(single).read_text()
    for chapter in _chapters():
        label = (ROOT / f"{chapter}.md").read_text().split("\n(", 1)[1].split(")=", 1)[0]
        assert f'id="{label}"' in text, f"{chapter} ({label}) missing from the single page"
    pdf = built_book.folder / "book.pdf"
    result = subprocess.run([
        sys.executable,
        str(ROOT / "book" / "_ext" / "print_pdf.py"), "--html",
        str(single), "--output",
        str(pdf)
    ], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page") + data.count(b"/Type/Page") > 50


def test_time_table_follows_the_chapters():
    """How to use this book: each chapter's exercise count is the chapter's, its reading time
    is its length at 200 words a minute (±5 min) and its total adds 15 min per exercise
    (±15 min)."""
    import re

    table = (ROOT / "book" / "how_to_use.md").read_text()
    rows = re.findall(r"^\| (\d+) \{ref\}`([\w-]+)` \| (\d+) min \| (\d+) \| ([\d¼½¾]+) h \|$",
                      table, re.M)
    assert len(rows) == len(_chapters())
    fractions = {"¼": 0.25, "½": 0.5, "¾": 0.75}
    for (number, label, reading, exercises, total), chapter in zip(rows, _chapters()):
        text = (ROOT / f"{chapter}.md").read_text()
        assert f"({label})=" in text, (number, label, chapter)
        assert int(exercises) == text.count("```{exercise}"), f"{chapter}: exercise count"
        words = len(text.split())
        assert abs(int(reading) -
                   words / 200) <= 5, (f"{chapter}: {words} words, table says {reading} min")
        hours = sum(fractions.get(c, 0) for c in total) + float(re.sub("[¼½¾]", "", total) or 0)
        assert abs(60 * hours -
                   (int(reading) + 15 * int(exercises))) <= 15, (f"{chapter}: total {total} h")


def _code_cells(chapter):
    """(cell, inside an exercise solution) for every code cell of a chapter."""
    import jupytext

    in_solution = False
    for cell in jupytext.read(ROOT / f"{chapter}.md").cells:
        if cell.cell_type == "markdown":
            start, end = cell.source.rfind("{solution-start}"), cell.source.rfind("{solution-end}")
            if start >= 0 or end >= 0:
                in_solution = start > end
        else:
            yield cell, in_solution


def test_chapter_code_reads_like_a_textbook():
    """Code lines fit 88 characters, and the checks that guard the prose are folded away
    (remove-input) rather than shown: a visible assert appears only in a solution."""
    for chapter in _chapters():
        for cell, in_solution in _code_cells(chapter):
            long = [line for line in cell.source.splitlines() if len(line) > 88]
            assert not long, f"{chapter}: code line over 88 characters: {long[0]!r}"
            hidden = set(cell.metadata.get("tags",
                                           [])) & {"remove-input", "remove-cell", "hide-input", }
            if not hidden and not in_solution:
                shown = [
                    line for line in cell.source.splitlines() if line.lstrip().startswith("assert ")
                ]
                assert not shown, f"{chapter}: a visible assert outside the solutions: {shown[0]!r}"
