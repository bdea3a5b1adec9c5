"""Course assignments (Otter-Grader): every master builds (which runs its tests against the
reference solution), the reference solution earns full marks and the untouched student
notebook does not."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_assignments", ROOT / "book" / "assignments" / "make_assignments.py")
make_assignments = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_assignments)


def test_there_are_at_least_three_assignments():
    assert len(make_assignments.masters()) >= 3


@pytest.mark.parametrize("master", make_assignments.masters(), ids=lambda p: p.stem)
def test_reference_gets_full_marks_and_an_empty_submission_does_not(master, tmp_path):
    built = make_assignments.build(master, tmp_path)
    student = built / "student" / f"{master.stem}.ipynb"
    assert "# SOLUTION" not in student.read_text() and "..." in student.read_text()
    zip_path = make_assignments.autograder_zip(built)
    score, possible = make_assignments.grade(zip_path, built / "autograder" / f"{master.stem}.ipynb")
    assert possible >= 6 and score == possible
    empty_score, empty_possible = make_assignments.grade(zip_path, student)
    assert empty_possible == possible and empty_score == 0
