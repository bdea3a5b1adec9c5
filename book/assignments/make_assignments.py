"""Build the course assignments with Otter-Grader.

Each ``book/assignments/a*.md`` is an Otter Assign master (MyST Markdown, jupytext) with
questions, reference solutions and tests that call ``xrdcore.checks``. ``make assignments``
writes, per assignment, ``<output>/<name>/student/<name>.ipynb`` (solutions replaced by
``...``, to hand out) and ``<output>/<name>/autograder/`` (the reference notebook and the
autograder zip). ``otter assign`` runs the tests against the reference solution while
building, so a master whose solution fails its own tests does not build.

Grade a submission locally (no Docker): ``python book/assignments/make_assignments.py
--grade <autograder zip> <submission.ipynb>``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def masters() -> list[Path]:
    return sorted(HERE.glob("a*.md"))


def build(master: Path, output: Path) -> Path:
    """Student and autograder versions of one master under ``output / master.stem``."""
    target = output / master.stem
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    notebook = target / f"{master.stem}.ipynb"
    subprocess.run([BIN / "jupytext", "--quiet", "--to", "ipynb", "--output", notebook, master], check=True)
    subprocess.run([BIN / "otter", "assign", notebook.name, "dist"], check=True, cwd=target, capture_output=True, text=True)
    notebook.unlink()
    (target / "dist" / "student").rename(target / "student")
    (target / "dist" / "autograder").rename(target / "autograder")
    (target / "dist").rmdir()
    return target


def autograder_zip(built: Path) -> Path:
    (found,) = (built / "autograder").glob("*-autograder_*.zip")
    return found


def grade(zip_path: Path, submission: Path) -> tuple[float, float]:
    """Score and maximum of one submission, graded locally by ``otter run``."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([BIN / "otter", "run", "-a", zip_path, "-o", scratch, submission], check=True, capture_output=True, text=True)
        tests = json.loads((Path(scratch) / "results.json").read_text())["tests"]
    graded = [t for t in tests if "max_score" in t]
    return sum(t["score"] for t in graded), sum(t["max_score"] for t in graded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("_build/assignments"))
    parser.add_argument("--grade", nargs=2, type=Path, metavar=("AUTOGRADER_ZIP", "SUBMISSION"))
    args = parser.parse_args()
    if args.grade:
        score, possible = grade(*args.grade)
        print(f"{args.grade[1]}: {score:g} / {possible:g}")
        return
    for master in masters():
        built = build(master, args.output.resolve())
        print(f"{master.name}: {built / 'student'} (hand out), {autograder_zip(built)} (grading)")


if __name__ == "__main__":
    main()
