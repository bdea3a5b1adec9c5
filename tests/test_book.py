"""The book is part of the test suite: it builds offline with warnings as errors, executing every chapter."""

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


def test_every_toc_entry_exists():
    for entry in _toc_files():
        assert (ROOT / f"{entry}.md").is_file(), entry


def test_every_chapter_ends_with_checked_exercises():
    chapters = _chapters()
    assert chapters, "no notebook chapters found in _toc.yml"
    for chapter in chapters:
        text = (ROOT / f"{chapter}.md").read_text()
        assert "## Exercises" in text, f"{chapter} has no Exercises section"
        exercises = text.split("## Exercises", 1)[1]
        assert exercises.count("```{exercise}") >= 2, f"{chapter}: fewer than two exercises"
        assert exercises.count("```{solution-start}") == exercises.count("```{exercise}")
        assert exercises.count("checks.check_") >= exercises.count("```{exercise}"), f"{chapter}: an answer is not auto-checked"


@pytest.mark.xdist_group("book")
def test_book_builds_with_warnings_as_errors(built_book):
    """Clean build (fresh execution cache) into a temporary folder; any warning or raising cell fails.

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
    import shutil
    import subprocess
    import sys

    (tmp_path / "_config.yml").write_text(
        "title: mini\nonly_build_toc_files: true\n"
        "execute: {execute_notebooks: cache, timeout: 100, allow_errors: false}\n"
        f"sphinx:\n  local_extensions: {{execution_report: {ROOT / 'book' / '_ext'}}}\n"
        "  config: {nb_execution_raise_on_error: false}\n"
    )
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: bad\n")
    (tmp_path / "intro.md").write_text("# Intro\n\nAll fine here.\n")
    header = (ROOT / "book" / "01_powder_diffraction.md").read_text().split("---\n")[1]
    (tmp_path / "bad.md").write_text(f"---\n{header}---\n# Bad\n\n```{{code-cell}} ipython3\nx = 1\n```\n\n"
                                     "```{code-cell} ipython3\nassert x == 2, 'x is not two'\n```\n")
    jupyter_book = shutil.which("jupyter-book", path=str(Path(sys.executable).parent))
    result = subprocess.run([jupyter_book, "build", str(tmp_path), "--warningiserror", "--keep-going"],
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "chapter bad.md did not execute: code cell 2 (`assert x == 2, 'x is not two'`): AssertionError: x is not two" in log
    html = tmp_path / "_build" / "html"
    assert "All fine here" in (html / "intro.html").read_text()
    assert "This page failed to execute when the site was built" in (html / "bad.html").read_text()
