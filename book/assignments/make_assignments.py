"""Build and grade the course assignments with Otter-Grader.

Each ``book/assignments/a*.md`` is an Otter Assign master (MyST Markdown, jupytext) with
questions, reference solutions and tests that call ``xrdcore.teaching.checks``. Building writes, per
assignment, ``<output>/<name>/student/<name>.ipynb`` (solutions replaced by ``...``, to hand
out) and ``<output>/<name>/autograder/`` (the reference notebook and the autograder zip).
``otter assign`` runs every test, public and hidden, against the reference solution while
building, so a master whose solution fails its own tests does not build.

The student notebook checks itself: its first cell starts Otter (``grader =
otter.Notebook(...)``), its public tests travel in its metadata, and the
``grader.check("q…")`` cell after each question prints what the check found: the
:class:`xrdcore.teaching.checks.Feedback` message, which names the slip it recognises. A *choice*
question has a public check that the answer is one of the options and a hidden test, run
only when grading, of which option is right. A *justify* question (``manual: true``) is
answered in words and graded by hand: it is not autograded, so it adds nothing to the
autograded total or maximum; the grading report prints each manual answer with its points,
and the gradebook leaves a column for it to fill in.

Build every assignment (``make assignments``)::

    python book/assignments/make_assignments.py --output _build/assignments

Grade one submission locally (``otter run``, no Docker), printing each question's score and,
for a question not fully right, its checks' messages::

    python book/assignments/make_assignments.py --grade AUTOGRADER_ZIP SUBMISSION.ipynb

Grade every ``*.ipynb`` in a folder into a CSV gradebook (one row per submission: file, the
score of every autograded question, total, max, an empty column per manual question, and a
note for a submission that could not be graded)::

    python book/assignments/make_assignments.py --grade-folder AUTOGRADER_ZIP FOLDER \\
        --gradebook grades.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import yaml

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
    subprocess.run([BIN / "jupytext", "--quiet", "--to", "ipynb", "--output", notebook, master],
                   check=True)
    assigned = subprocess.run([BIN / "otter", "assign", notebook.name, "dist"], cwd=target,
                              capture_output=True, text=True)
    if assigned.returncode != 0:
        raise RuntimeError(
            f"otter assign failed for {master.name}:\n{assigned.stdout}\n{assigned.stderr}")
    notebook.unlink()
    for version in ("student", "autograder"):
        skip_check_all_when_grading(target / "dist" / version / notebook.name)
    (target / "dist" / "student").rename(target / "student")
    (target / "dist" / "autograder").rename(target / "autograder")
    (target / "dist").rmdir()
    return target


def skip_check_all_when_grading(notebook: Path) -> None:
    """Tag the ``grader.check_all()`` cell ``otter_ignore``: students run it, ``otter run`` skips
    it (every question's check has run already and the rest run at the end), which saves
    running every test twice."""
    nb = nbformat.read(notebook, as_version=nbformat.NO_CONVERT)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() == "grader.check_all()":
            cell.metadata.setdefault("tags", []).append("otter_ignore")
    nbformat.write(nb, notebook)


def autograder_zip(built: Path) -> Path:
    (found, ) = (built / "autograder").glob("*-autograder_*.zip")
    return found


@dataclass(frozen=True)
class Question:
    name: str
    points: float
    manual: bool


def questions(master: Path) -> list[Question]:
    """The questions of a master, in order, from their ``# BEGIN QUESTION`` configurations."""
    found = []
    for block in re.findall(r"```\{raw-cell\}\n# BEGIN QUESTION\n(.*?)```", master.read_text(),
                            flags=re.S):
        config = yaml.safe_load(block)
        points = config.get("points", 1)
        found.append(
            Question(config["name"], float(sum(points) if isinstance(points, list) else points),
                     bool(config.get("manual", False))))
    return found


def master_of(zip_path: Path) -> Path:
    """The master an autograder zip was built from (its ``otter_config.json`` names it)."""
    with zipfile.ZipFile(zip_path) as archive:
        name = json.loads(archive.read("otter_config.json"))["assignment_name"]
    return HERE / f"{name}.md"


@dataclass(frozen=True)
class QuestionResult:
    name: str
    score: float
    possible: float
    messages: tuple[str, ...]  # what the failing checks said (empty when fully right)


@dataclass(frozen=True)
class ManualAnswer:
    name: str
    points: float
    answer: str  # the submission's text, to grade by hand


@dataclass(frozen=True)
class Report:
    submission: Path
    results: tuple[QuestionResult, ...]
    manual: tuple[ManualAnswer, ...]
    error: str = ""  # why the submission could not be graded (then there are no results)

    @property
    def score(self) -> float:
        return sum(result.score for result in self.results)

    @property
    def possible(self) -> float:
        return sum(result.possible for result in self.results)

    def text(self) -> str:
        if self.error:
            return f"{self.submission.name}: not graded: {self.error}"
        width = max((len(q.name) for q in (*self.results, *self.manual)), default=0)
        manual_points = sum(answer.points for answer in self.manual)
        lines = [
            f"{self.submission.name}: {self.score:g} / {self.possible:g} autograded" +
            (f" (+ {manual_points:g} points graded by hand)" if self.manual else "")
        ]
        for result in self.results:
            lines.append(f"  {result.name:{width}}  {result.score:g} / {result.possible:g}")
            lines.extend(f"  {'':{width}}    {message}" for message in result.messages)
        for answer in self.manual:
            lines.append(
                f"  {answer.name:{width}}  graded by hand, {answer.points:g} points; the answer:")
            lines.extend(f"  {'':{width}}    {line}"
                         for line in (answer.answer or "(no answer)").splitlines())
        return "\n".join(lines)


_CASE_HEADER = re.compile(r"^\S+ - \d+ result:$")


def failure_messages(output: str) -> tuple[str, ...]:
    """What each failed example in an OK-format (doctest) test output raised: for ``assert
    feedback, str(feedback)`` the check's Feedback message, otherwise the error itself
    (``NameError: …``). A ``feedback`` left undefined by a failure just before is dropped."""
    messages: list[str] = []
    for raised in output.split("Exception raised:")[1:]:
        traceback = []
        for line in raised.splitlines()[1:]:
            text = line.strip()
            if (text.startswith(("Trying:", "*****", "❌", "✅")) or text.endswith(" results:") or
                    _CASE_HEADER.match(text)):
                break
            if text:
                traceback.append(text)
        if not traceback:
            continue
        message = traceback[-1].removeprefix("AssertionError: ")
        consequence = message == "NameError: name 'feedback' is not defined" and messages
        if not consequence and message not in messages:
            messages.append(message)
    return tuple(messages)


ANSWER_PLACEHOLDER = "_Type your answer here, replacing this text._"  # Otter's empty answer cell


def manual_answers(submission: Path, manual: list[Question]) -> tuple[ManualAnswer, ...]:
    """The text of each manual question's answer cells (between Otter's question tags)."""
    blocks, current = [], None
    for cell in nbformat.read(submission, as_version=4).cells:
        if cell.cell_type != "markdown":
            continue
        if current is not None and "<!-- END QUESTION -->" in cell.source:
            blocks.append("\n\n".join(current).strip())
            current = None
        elif current is not None and cell.source.strip() != ANSWER_PLACEHOLDER:
            current.append(cell.source)
        if "<!-- BEGIN QUESTION -->" in cell.source:  # the prompt; the answer cells follow
            current = []
    blocks += [""] * (len(manual) - len(blocks))
    return tuple(ManualAnswer(q.name, q.points, text) for q, text in zip(manual, blocks))


def grade(zip_path: Path, submission: Path) -> Report:
    """Grade one submission locally with ``otter run`` (no Docker)."""
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([
            BIN / "otter", "run", "-a",
            Path(zip_path).resolve(), "-o", scratch,
            Path(submission).resolve()
        ], check=True, capture_output=True, text=True)
        tests = {
            t["name"]: t
            for t in json.loads((Path(scratch) / "results.json").read_text())["tests"]
            if "max_score" in t
        }
    asked = questions(master_of(zip_path))
    results = []
    for question in (q for q in asked if not q.manual):
        test = tests[question.name]
        score, possible = float(test["score"]), float(test["max_score"])
        results.append(
            QuestionResult(question.name, score, possible,
                           () if score >= possible else failure_messages(test.get("output", ""))))
    return Report(Path(submission), tuple(results),
                  manual_answers(submission, [q for q in asked if q.manual]))


def grade_folder(zip_path: Path, folder: Path, gradebook: Path) -> list[Report]:
    """Grade every ``*.ipynb`` in ``folder`` and write the gradebook CSV: one row each, with the
    file, every autograded question's score, total and max (autograded points only), an empty
    column per manual question to fill in by hand, and a note saying why a submission that
    could not be graded (not a notebook, …) has no scores."""
    asked = questions(master_of(zip_path))
    autograded, manual = [q for q in asked if not q.manual], [q for q in asked if q.manual]
    header = (["file"] + [q.name for q in autograded] + ["total", "max"] +
              [f"{q.name} (manual, max {q.points:g})" for q in manual] + ["note"])
    reports = []
    for submission in sorted(Path(folder).glob("*.ipynb")):
        try:
            reports.append(grade(zip_path, submission))
        except (subprocess.CalledProcessError, ValueError) as error:
            reason = (getattr(error, "stderr", "") or
                      str(error)).strip().splitlines() or [type(error).__name__]
            reports.append(Report(submission, (), (), error=reason[-1]))
    with Path(gradebook).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for report in reports:
            if report.error:
                writer.writerow([report.submission.name] + [""] *
                                (len(autograded) + 2 + len(manual)) + [report.error])
                continue
            writer.writerow([report.submission.name] + [f"{r.score:g}" for r in report.results] +
                            [f"{report.score:g}", f"{report.possible:g}"] + [""] * len(manual) +
                            [""])
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("_build/assignments"))
    parser.add_argument("--grade", nargs=2, type=Path, metavar=("AUTOGRADER_ZIP", "SUBMISSION"))
    parser.add_argument("--grade-folder", nargs=2, type=Path, metavar=("AUTOGRADER_ZIP", "FOLDER"))
    parser.add_argument("--gradebook", type=Path, default=Path("grades.csv"),
                        help="CSV written by --grade-folder")
    args = parser.parse_args()
    if args.grade:
        print(grade(*args.grade).text())
        return
    if args.grade_folder:
        for report in grade_folder(*args.grade_folder, args.gradebook):
            print(report.text())
        print(f"gradebook: {args.gradebook}")
        return
    for master in masters():
        built = build(master, args.output.resolve())
        print(f"{master.name}: {built / 'student'} (hand out), {autograder_zip(built)} (grading)")


if __name__ == "__main__":
    main()
