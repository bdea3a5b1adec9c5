"""Course assignments (Otter-Grader): every master builds (which runs its tests, public and
hidden, against the reference solution); graded locally, the reference solution earns full
marks, the handed-out notebook zero and a partly wrong one exactly the points of the
questions left right, with the checks' messages naming the slips; the gradebook has a row
per submission (one that is not a notebook gets a note, not a crash); the handed-out
notebook, run top to bottom, checks itself without errors.

Each master is built once (module-scoped fixture) and its three submissions are graded
once, through the gradebook."""

import csv
import importlib.util
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

# One xdist worker builds each master once (module-scoped fixture) instead of every worker.
pytestmark = pytest.mark.xdist_group("assignments")

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_assignments",
                                              ROOT / "book" / "assignments" / "make_assignments.py")
make_assignments = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = make_assignments  # dataclasses look their module up by name
spec.loader.exec_module(make_assignments)

MASTERS = make_assignments.masters()
SOLUTION_TAG = "otter_assign_solution_cell"
STUDENT_ANSWER = "A student's justification, in words."

# question → (a line that opens its answer in the reference solution, the line appended to make
# the answer wrong, a piece of the message the checks must give for it); no later question
# builds on a spoiled answer, so each costs exactly its own points
WRONG = {
    "a1_diffraction": {
        "q4_peak_ratio": ("ratio_220_111 =", "ratio_220_111 = ratio_220_111 * 8 / 12",
                          "multiplicity"),
        "q5_width_plot": ("fig_widths =", "fig_widths = plt.figure()", "draws no lines"),
        "q6_cosine_widths": ("cosine_widths =", "cosine_widths = 1 - cosine_widths",
                             "the loss 1 − S instead of S"),
        "q8_metric_choice": ("choice_metrics =", 'choice_metrics = "A"',
                             "(A) is not what the results show")
    },
    "a2_landscape": {
        "q5_scan_plot": ("fig_scan =", "fig_scan, ax = plt.subplots()\nax.plot(strains, scan_loss)",
                         "fractions where per cent is wanted"),
        "q7_basin": ("basin_percent =", "basin_percent = tuple(end / 100 for end in basin_percent)",
                     "fractions"),
        "q3_expansion_slope": ("expansion_slope =", "expansion_slope = -expansion_slope",
                               "flip the sign")
    },
    "a3_retrieval": {
        "q4_table_rate": ("p1_rate =", "p1_rate = 100 * p1_rate", "percentage"),
        "q6_family_choice": ("choice_family =", 'choice_family = "Q"',
                             "expected one of the letters"),
        "q9_schedule": ("widths =", "widths = widths[::-1]", "narrowest first")
    }
}


def test_three_assignments_of_eight_to_ten_questions_with_a_plot_and_a_justified_choice():
    assert [master.stem for master in MASTERS] == list(WRONG)
    for master in MASTERS:
        asked = make_assignments.questions(master)
        assert 8 <= len(asked) <= 10, master.name
        assert sum(q.manual for q in asked) >= 1  # a justification, graded by hand
        text = master.read_text()
        assert ("checks.check_line_plot(" in text and
                "checks.check_choice(" in text)  # a plot, a choice
        assert "# HIDDEN" in text  # which option is right is graded after submission


def partly_right(reference: Path, destination: Path) -> Path:
    """The reference notebook with the answers named in WRONG spoiled and its manual answers
    replaced by a student's text."""
    nb = nbformat.read(reference, as_version=4)
    for opening, wrong, _ in WRONG[reference.stem].values():
        (cell, ) = [
            c for c in nb.cells
            if c.cell_type == "code" and SOLUTION_TAG in c.metadata.get("tags", []) and any(
                line.startswith(opening) for line in c.source.splitlines())
        ]
        cell.source += "\n" + wrong
    nb.cells = [
        c for c in nb.cells
        if not (c.cell_type == "markdown" and SOLUTION_TAG in c.metadata.get("tags", []))
    ]
    for cell in nb.cells:
        if (cell.cell_type == "markdown" and
                cell.source.strip() == make_assignments.ANSWER_PLACEHOLDER):
            cell.source = STUDENT_ANSWER
    nbformat.write(nb, destination)
    return destination


@pytest.fixture(scope="module", params=MASTERS, ids=lambda master: master.stem)
def graded(request, tmp_path_factory):
    """One master built, and its reference, blank (handed-out) and partly wrong notebooks
    graded into a gradebook."""
    master = request.param
    built = make_assignments.build(master, tmp_path_factory.mktemp("built"))
    submissions = tmp_path_factory.mktemp("submissions")
    shutil.copy(built / "autograder" / f"{master.stem}.ipynb", submissions / "reference.ipynb")
    shutil.copy(built / "student" / f"{master.stem}.ipynb", submissions / "blank.ipynb")
    partly_right(built / "autograder" / f"{master.stem}.ipynb", submissions / "partly_right.ipynb")
    (submissions / "not_a_notebook.ipynb").write_text("a submission that is not a notebook")
    gradebook = submissions / "grades.csv"
    reports = make_assignments.grade_folder(make_assignments.autograder_zip(built), submissions,
                                            gradebook)
    return master, built, {report.submission.stem: report for report in reports}, gradebook


def test_reference_gets_full_marks_and_the_blank_notebook_zero(graded):
    master, built, reports, _ = graded
    asked = make_assignments.questions(master)
    possible = sum(q.points for q in asked if not q.manual)
    reference, blank = reports["reference"], reports["blank"]
    assert reference.possible == possible and reference.score == possible
    assert all(not result.messages for result in reference.results)
    assert blank.possible == possible and blank.score == 0
    for result in blank.results:  # every check says what is missing
        assert any("no answer yet" in message for message in result.messages), result
    assert [answer.name for answer in blank.manual] == [q.name for q in asked if q.manual]
    assert all(answer.answer == "" for answer in blank.manual)
    student = (built / "student" / f"{master.stem}.ipynb").read_text()
    assert "# SOLUTION" not in student and "Model answer" not in student and "..." in student


def test_partly_right_submission_gets_exactly_the_points_left_right(graded):
    master, _, reports, _ = graded
    report = reports["partly_right"]
    points = {q.name: q.points for q in make_assignments.questions(master)}
    spoiled = WRONG[master.stem]
    assert report.score == report.possible - sum(points[name] for name in spoiled)
    for result in report.results:
        if result.name in spoiled:
            assert result.score == 0
            assert any(spoiled[result.name][2] in message for message in result.messages), result
        else:
            assert result.score == result.possible and not result.messages, result
    assert [answer.answer for answer in report.manual] == [STUDENT_ANSWER] * len(report.manual)
    text = report.text()
    assert all(name in text for name in points) and STUDENT_ANSWER in text


def test_gradebook_has_a_row_per_submission(graded):
    master, _, reports, gradebook = graded
    asked = make_assignments.questions(master)
    with gradebook.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    autograded = [q.name for q in asked if not q.manual]
    manual = [f"{q.name} (manual, max {q.points:g})" for q in asked if q.manual]
    assert list(rows[0]) == ["file", *autograded, "total", "max", *manual, "note"]
    assert sorted(row["file"] for row in rows) == [
        "blank.ipynb", "not_a_notebook.ipynb", "partly_right.ipynb", "reference.ipynb"
    ]
    for row in rows:
        report = reports[Path(row["file"]).stem]
        if (row["file"] == "not_a_notebook.ipynb"
            ):  # not graded, with the reason; the others still are
            assert report.error and row["note"] == report.error and row["total"] == row["max"] == ""
            continue
        assert row["note"] == ""
        assert float(row["total"]) == report.score and float(row["max"]) == report.possible
        assert [float(row[name])
                for name in autograded] == [result.score for result in report.results]
        assert all(row[column] == "" for column in manual)  # left to fill in by hand


def test_handed_out_notebook_checks_itself_top_to_bottom(graded, tmp_path):
    master, built, _, _ = graded
    notebook = tmp_path / f"{master.stem}.ipynb"  # the name its init cell expects
    shutil.copy(built / "student" / notebook.name, notebook)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True, resources={
        "metadata": {
            "path": str(tmp_path)
        }
    }).execute()
    errors = [(cell.source, output.ename, output.evalue) for cell in nb.cells
              if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert errors == []  # no NameError for `grader`, no ImportError: every cell runs
    checks = [
        cell for cell in nb.cells
        if cell.cell_type == "code" and cell.source.startswith("grader.check(")
    ]
    assert len(checks) == sum(not q.manual for q in make_assignments.questions(master))
    for cell in checks:
        shown = "".join(
            output.get("text", "") + output.get("data", {}).get("text/plain", "")
            for output in cell.outputs)
        assert "✘ no answer yet" in shown, cell.source  # the Feedback message reaches the student
