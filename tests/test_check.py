"""Tests for helpers/commands/check.py: a class of fake submissions, each marked exercise by exercise."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.commands import check
from helpers.commands.check import (
    FAILED,
    KERNEL_DIED,
    MISSING,
    NOT_ANSWERED,
    NOT_ATTEMPTED,
    NOT_RUN,
    PASSED,
    TIMED_OUT,
    WRITTEN,
    check_submissions,
    exercise_number,
    lesson_of,
)
from helpers.commands.classroom import SERIES_METADATA, WRITTEN_ANSWER, student_notebook, write_student_edition
from helpers.commands.runner import list_notebooks

CELL_TIMEOUT = 4  # seconds: the endless loop is stopped after this


def fixture_lesson() -> nbformat.NotebookNode:
    """A tiny lesson that follows the exercise convention: two code exercises with checks, one written one."""
    cells = [
        new_markdown_cell("# 01 小练习 Tiny lesson\n\n一句话简介。", id="md00"),
        new_code_cell('device = "auto"  # 设备\nbase = 10', id="c01", metadata={"tags": ["parameters"]}),
        new_code_cell(
            "import os\nassert device == 'cpu' and os.environ['HELPERS_AUTO_DEVICE'] == 'cpu'\n"
            "values = [1, 2, 3]\nopen('scratch.txt', 'w').write('the lesson writes into its working folder')",
            id="c02",
        ),
        new_markdown_cell("## 练习 Exercises\n\n**练习 1.** 算出 `total`：`values` 的和加上 `base`。", id="md03"),
        new_code_cell(
            "# 提示: 用 sum()\ntotal = sum(values) + base", id="c04", metadata={"tags": ["solution", "exercise-1"]}
        ),
        new_code_cell(
            'assert total == 16, "total 不对 wrong total"\nprint("练习 1 通过 passed")',
            id="c05",
            metadata={"tags": ["check", "exercise-1"]},
        ),
        new_markdown_cell("**练习 2.** 写一个函数 `double(x)`，返回 `x` 的两倍。", id="md06"),
        new_code_cell("def double(x):\n    return 2 * x", id="c07", metadata={"tags": ["solution", "exercise-2"]}),
        new_code_cell(
            'assert double(4) == 8 and double(-1) == -2, "double 不对"\nprint("练习 2 通过 passed")',
            id="c08",
            metadata={"tags": ["check", "exercise-2"]},
        ),
        new_markdown_cell("**练习 3.** 用一句话解释广播。", id="md09"),
        new_markdown_cell(
            "参考答案：形状不同的张量按规则自动扩展。",
            id="md10",
            metadata={"tags": ["solution", "exercise-3", "written"]},
        ),
        new_markdown_cell("## 延伸阅读 Further reading", id="md11"),
        new_code_cell("raise RuntimeError('cells after the last exercise are not run')", id="c12"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nbformat.validate(nb)
    return nb


def answer_cell(nb: nbformat.NotebookNode, number: int) -> nbformat.NotebookNode:
    """The student's code cell of exercise ``number``."""
    return next(
        c
        for c in nb.cells
        if c.cell_type == "code" and exercise_number(c) == number and "check" not in c.metadata.get("tags", [])
    )


def with_answers(student: nbformat.NotebookNode, answers: dict[int, str]) -> nbformat.NotebookNode:
    """A copy of ``student`` with some exercise cells filled in (as a student types into them)."""
    nb = copy.deepcopy(student)
    for number, text in answers.items():
        cell = next(c for c in nb.cells if exercise_number(c) == number and "check" not in c.metadata.get("tags", []))
        cell.source = text
    return nb


def reference_pasted(source: nbformat.NotebookNode, student: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student edition with every reference solution pasted into its exercise cell."""
    solutions = {exercise_number(c): c.source for c in source.cells if "solution" in c.metadata.get("tags", [])}
    return with_answers(student, solutions)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The fixture lesson, its student edition, a class of submissions, and the checker's results."""
    root = tmp_path_factory.mktemp("class")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (root / "data").mkdir()
    source = fixture_lesson()
    nbformat.write(source, notebooks / "01_tiny.ipynb")
    student_path = write_student_edition(root / "student", notebooks_dir=notebooks)[0]
    student = nbformat.read(student_path, as_version=4)

    correct = reference_pasted(source, student)
    written = next(c for c in correct.cells if exercise_number(c) == 3)
    written.source = "广播 broadcasting <script>alert('x')</script> & 自动扩展"
    no_check = with_answers(student, {1: "total = 0", 2: "def double(x):\n    return x + x"})
    for cell in no_check.cells:
        if "check" in cell.metadata.get("tags", []):
            cell.source = "pass  # 检查被学生改掉了"
    deleted = with_answers(student, {2: "def double(x):\n    return x * 2"})
    deleted.cells = [
        c
        for c in deleted.cells
        if not (exercise_number(c) == 1 and c.cell_type == "code" and "check" not in c.metadata.get("tags", []))
    ]
    split = with_answers(student, {1: "total = 16", 2: "def helper(x):\n    return 2 * x"})
    at = split.cells.index(answer_cell(split, 2))
    split.cells.insert(at + 1, new_code_cell("def double(x):\n    return helper(x)", id="student-added"))
    at = split.cells.index(next(c for c in split.cells if exercise_number(c) == 3))
    split.cells.insert(at + 1, new_markdown_cell("我在下面另起一个单元格回答。", id="student-md"))
    double = "def double(x):\n    return 2 * x"
    lesson_edit = with_answers(student, {1: "total = sum(values) + base", 2: double})
    lesson_edit.cells[2].source = "values = []  # the student broke the lesson's own cell"
    submissions = {
        "correct": correct,
        "empty": student,
        "wrong": with_answers(student, {1: "total = sum(values)", 2: double}),
        "raises": with_answers(student, {1: "raise ValueError('出错了 oops')", 2: double}),
        "loops": with_answers(student, {1: "while True:\n    pass", 2: double}),
        "deleted": deleted,
        "sysexit": with_answers(student, {1: "import sys\nsys.exit(3)", 2: double}),
        "osexit": with_answers(student, {1: "import os\nos._exit(1)", 2: double}),
        "no_check": no_check,
        "split": split,
        "lesson_edit": lesson_edit,
        "writes_home": with_answers(
            student, {1: "import os\nopen(os.path.expanduser('~/x.txt'), 'w').write('x')\ntotal = 16", 2: double}
        ),
    }
    above = copy.deepcopy(student)  # answer typed into a new cell inserted ABOVE the untouched TODO cell
    above.cells.insert(above.cells.index(answer_cell(above, 2)), new_code_cell(double, id="added-above"))
    submissions["above"] = above
    submissions["floods"] = with_answers(student, {1: "while True:\n    print('x' * 100_000)", 2: double})
    folder = root / "submissions"
    for name, nb in submissions.items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / student_path.name)  # one folder per student, the file as handed out
    plain = new_notebook(cells=[new_code_cell("print('hello')")])
    nbformat.write(plain, folder / "stranger.ipynb")
    nbformat.write(source, folder / "teacher_copy.ipynb")
    (folder / "broken.ipynb").write_text("{not json", encoding="utf-8")
    bad_tags = reference_pasted(source, student)
    bad_tags.cells[3].metadata["tags"] = 5
    (folder / "bad_tags").mkdir()
    (folder / "bad_tags" / student_path.name).write_text(json.dumps(bad_tags), encoding="utf-8")
    surrogate = reference_pasted(source, student)
    answer_cell(surrogate, 2).source += "\n# \ud800"
    (folder / "surrogate").mkdir()
    (folder / "surrogate" / student_path.name).write_text(json.dumps(surrogate), encoding="utf-8")  # as \\ud800
    (folder / "zhang" / ".ipynb_checkpoints").mkdir(parents=True)  # JupyterLab's autosaves are not submissions
    nbformat.write(correct, folder / "zhang" / ".ipynb_checkpoints" / "01_tiny-checkpoint.ipynb")
    nbformat.write(correct, folder / "zhang" / "01_tiny.ipynb")

    before = snapshot(root)
    progress = []
    results = check_submissions(
        [folder],
        notebooks_dir=notebooks,
        jobs=2,
        progress=lambda done, total, r: progress.append((done, total)),
        cell_timeout=CELL_TIMEOUT,
        notebook_timeout=120,
    )
    assert snapshot(root) == before, "checking must not change the submissions, the sources or the data folder"
    return root, {r.student: r for r in results}, progress


def marks(result) -> dict[int, str]:
    return {n: e.status for n, e in result.exercises.items()}


def test_the_student_edition_carries_what_the_checker_needs():
    student = student_notebook(fixture_lesson(), lesson="01")
    assert student.metadata[SERIES_METADATA] == {"lesson": "01", "edition": "student"}
    tags = [c.metadata.get("tags", []) for c in student.cells]
    assert ["parameters"] in tags and ["check", "exercise-1"] in tags and ["exercise-2", "exercise"] in tags
    written = next(c for c in student.cells if exercise_number(c) == 3)
    assert written.cell_type == "markdown" and written.source == WRITTEN_ANSWER
    assert written.metadata["tags"] == ["exercise-3", "written"]
    assert lesson_of(Path("anything.ipynb"), student) == "01"


def test_a_class_is_marked_exercise_by_exercise(graded_class):
    _, rows, progress = graded_class
    assert len(rows) == 20 and progress[-1] == (20, 20)  # the checkpoint copy is not a submission
    assert marks(rows["correct"]) == {1: PASSED, 2: PASSED, 3: WRITTEN}
    assert marks(rows["zhang"]) == {1: PASSED, 2: PASSED, 3: WRITTEN}
    assert marks(rows["empty"]) == {1: NOT_ATTEMPTED, 2: NOT_ATTEMPTED, 3: NOT_ANSWERED}
    assert marks(rows["wrong"]) == {1: FAILED, 2: PASSED, 3: NOT_ANSWERED}
    assert rows["wrong"].exercises[1].detail == "check: AssertionError: total 不对 wrong total"
    assert marks(rows["raises"]) == {1: FAILED, 2: PASSED, 3: NOT_ANSWERED}
    assert rows["raises"].exercises[1].detail == "your code: ValueError: 出错了 oops"
    assert marks(rows["loops"]) == {1: TIMED_OUT, 2: PASSED, 3: NOT_ANSWERED}
    assert marks(rows["deleted"]) == {1: MISSING, 2: PASSED, 3: NOT_ANSWERED}
    assert "exercise-1" in rows["deleted"].exercises[1].detail
    assert marks(rows["sysexit"]) == {1: FAILED, 2: PASSED, 3: NOT_ANSWERED}
    assert "SystemExit" in rows["sysexit"].exercises[1].detail
    assert marks(rows["osexit"]) == {1: KERNEL_DIED, 2: NOT_RUN, 3: NOT_ANSWERED}
    assert marks(rows["no_check"]) == {1: FAILED, 2: PASSED, 3: NOT_ANSWERED}  # graded by the teacher's check
    assert marks(rows["split"]) == {1: PASSED, 2: PASSED, 3: WRITTEN}  # cells added below the exercise count
    assert rows["split"].exercises[3].detail == "我在下面另起一个单元格回答。"
    assert marks(rows["lesson_edit"]) == {1: PASSED, 2: PASSED, 3: NOT_ANSWERED}  # lesson edits are ignored
    assert marks(rows["writes_home"])[1] == PASSED  # ~ is a temporary folder
    assert marks(rows["above"]) == {1: NOT_ATTEMPTED, 2: PASSED, 3: NOT_ANSWERED}  # a cell added above the TODO counts
    assert marks(rows["floods"]) == {1: FAILED, 2: PASSED, 3: NOT_ANSWERED}
    assert rows["floods"].exercises[1].detail.startswith("your code: output too large")
    assert sum(len(o.get("text", "")) for c in rows["floods"].executed.cells for o in c.get("outputs", [])) < 6_000_000
    for name in ("correct", "wrong", "loops", "osexit"):
        assert not rows[name].notes and not rows[name].problem, rows[name].notes


def test_notebooks_that_are_not_submissions_get_a_row_saying_so(graded_class):
    _, rows, _ = graded_class
    assert "not a student edition of this series" in rows["stranger"].problem
    assert "python -m helpers student" in rows["stranger"].problem
    assert "teacher's notebook" in rows["teacher_copy"].problem
    assert "cannot be read as a notebook" in rows["broken"].problem
    assert (
        "is damaged" in rows["bad_tags"].problem and "is damaged" in rows["surrogate"].problem
    )  # the file, not the tool
    assert not any(r.problem.startswith(check.COULD_NOT_CHECK) for r in rows.values())
    assert all(not rows[n].exercises for n in ("stranger", "teacher_copy", "broken"))


def test_the_written_answer_is_shown_escaped(graded_class):
    root, rows, _ = graded_class
    written = check.write_results(list(rows.values()), root / "out", root / "notebooks")
    page = (root / "out" / "results.html").read_text(encoding="utf-8")
    assert "<script" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; 自动扩展" in page
    assert not re.search(r"<link\b|@import|https?://", page)
    raw = (root / "out" / "results.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, so Excel shows the Chinese text
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][:5] == ["student", "lesson", "file", "exercise 1", "exercise 2"]
    by_name = {row[0]: row for row in table[1:]}
    assert by_name["wrong"][3] == "failed: check: AssertionError: total 不对 wrong total"
    assert "自动扩展" in by_name["correct"][5]
    executed = [p for p in written if p.parent.name == "executed"]
    assert len(executed) == 15  # every submission that could be graded, with its outputs
    loops = nbformat.read(next(p for p in executed if "loops" in p.name), as_version=4)
    assert any(
        o.get("text", "").startswith("练习 2 通过") for c in loops.cells if c.cell_type == "code" for o in c.outputs
    )


def test_the_table_is_aligned(graded_class):
    _, rows, _ = graded_class
    text = check.format_table([rows["correct"], rows["wrong"], rows["stranger"]])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["student", "lesson", "exercise", "1"]
    assert "written: read by the teacher" in lines[2] and "not a student edition" in lines[4]
    column = [check._width(line[: line.rindex("passed")]) for line in lines[2:4]]  # exercise 2, on screen
    assert column[0] == column[1] and "不对" in lines[3]  # lines up although 不对 is two columns wide per character


def test_command_line(graded_class, tmp_path, capsys):
    root, _, _ = graded_class
    folder = root / "submissions"
    notebooks = str(root / "notebooks")
    out = tmp_path / "results"
    assert (
        check.main(
            [
                str(folder / "correct"),
                str(folder / "empty" / "01_tiny.ipynb"),
                "--notebooks",
                notebooks,
                "--out",
                str(out),
                "--cell-timeout",
                "20",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(r"^correct\s+01\s+passed\s+passed\s+written: read by the teacher", printed, re.MULTILINE)
    assert re.search(r"^empty\s+01\s+not attempted\s+not attempted\s+written: not answered", printed, re.MULTILINE)
    assert (out / "results.csv").is_file() and (out / "results.html").is_file()
    # a lesson parameter reaches the lesson: with base = 5 the reference answer no longer makes total == 16
    assert check.main([str(folder / "correct"), "--notebooks", notebooks, "--out", str(out), "-p", "base", "5"]) == 0
    assert re.search(
        r"^correct\s+01\s+failed: check: AssertionError: total 不对", capsys.readouterr().out, re.MULTILINE
    )
    assert check.main([str(folder), "--notebooks", notebooks, "--out", str(out), "-p", "bsae", "5"]) == 2
    assert "unknown parameter(s) bsae" in capsys.readouterr().err
    assert check.main([str(tmp_path / "nothing-here"), "--notebooks", notebooks, "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty-folder").mkdir()
    assert check.main([str(tmp_path / "empty-folder"), "--notebooks", notebooks, "--out", str(out)]) == 2
    assert "no notebooks" in capsys.readouterr().err
    assert check.main([str(folder), "--notebooks", notebooks, "--out", str(root / "notebooks" / "x")]) == 2
    assert "inside the source folder" in capsys.readouterr().err


# ------------------------------------------------------------------ a real lesson


QUICK_LESSONS = ("01", "02", "03", "04", "05")  # 06 and 07 train for minutes; their answers are checked by hand


@pytest.mark.parametrize("prefix", QUICK_LESSONS)
def test_a_real_lesson(tmp_path, prefix):
    """The reference answers of a real lesson pass every check through the grader; the empty answers do not."""
    by_prefix = {p.name[:2]: p for p in list_notebooks()}
    source_path = by_prefix[prefix]
    source = nbformat.read(source_path, as_version=4)
    student_path = write_student_edition(tmp_path / "student", [source_path.name])[0]
    student = nbformat.read(student_path, as_version=4)
    for name, nb in {"correct": reference_pasted(source, student), "empty": student}.items():
        (tmp_path / "class" / name).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "class" / name / student_path.name)
    rows = {r.student: r for r in check_submissions([tmp_path / "class"], jobs=2)}  # (no writes: see graded_class)
    code = {
        exercise_number(c) for c in source.cells if "solution" in c.metadata.get("tags", []) and c.cell_type == "code"
    }
    assert code, f"{source_path.name} has no code exercise"
    assert {n: e.status for n, e in rows["correct"].exercises.items() if n in code} == {n: PASSED for n in code}, rows[
        "correct"
    ].exercises
    assert not rows["correct"].notes, rows["correct"].notes
    assert all(e.status in (NOT_ATTEMPTED, NOT_ANSWERED) for e in rows["empty"].exercises.values())


def test_find_submissions_skips_checkpoints_hidden_folders_and_the_results(tmp_path):
    for name in (
        "a/03_x.ipynb",
        "b.ipynb",
        "a/.ipynb_checkpoints/03_x-checkpoint.ipynb",
        ".hidden/c.ipynb",
        "check-results/executed/01_a_03.ipynb",
        "notes.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}", encoding="utf-8")
    found = check.find_submissions([tmp_path, tmp_path / "b.ipynb"], exclude=[tmp_path / "check-results"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/03_x.ipynb", "b.ipynb"]
    with pytest.raises(ValueError, match="does not exist"):
        check.find_submissions([tmp_path / "nope"])


def test_stopping_a_check_keeps_the_previous_results(graded_class, tmp_path):
    """SIGTERM (as Ctrl-C) in the middle: no row for the submission in flight, the old results.csv untouched, exit 130."""
    root, _, _ = graded_class
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("the previous run", encoding="utf-8")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helpers",
            "check",
            str(root / "submissions" / "loops"),
            "--notebooks",
            str(root / "notebooks"),
            "--out",
            str(out),
            "--cell-timeout",
            "100",
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout.readline().startswith("checking 1 notebook")
    time.sleep(15)  # the kernel is in the endless loop by now
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "nothing was written" in stderr and "kernel died" not in stdout + stderr
    assert (out / "results.csv").read_text(encoding="utf-8") == "the previous run"


def test_a_solution_tag_in_any_case_is_an_exercise_for_check_as_for_student():
    """`student` turns a cell tagged `Solution` into an exercise; `check` must then mark that exercise, not skip it."""
    from helpers.commands.classroom import student_notebook
    from helpers.commands.plan import graded_notebook

    source = new_notebook(
        cells=[
            new_code_cell("x = 1", id="a1"),
            new_code_cell("def double(x):\n    return 2 * x", id="a2", metadata={"tags": ["Solution", "exercise-1"]}),
            new_code_cell("assert double(2) == 4", id="a3", metadata={"tags": ["check", "exercise-1"]}),
        ]
    )
    student = student_notebook(source, "01")
    _, _, exercises = graded_notebook(source, student, {})
    assert list(exercises) == [1] and exercises[1].status == NOT_ATTEMPTED
