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
