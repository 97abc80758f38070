"""The student edition: the ``solution`` tags, and notebooks with each solution turned into an empty exercise."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path

import nbformat

from ..files import atomic_write
from .folders import read_notebook
from .runner import NOTEBOOKS_DIR, check_out_dir, make_out_dir, select_notebooks

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
EXERCISE_TODO = "# TODO：按上面的练习说明，在这里写你的代码 (write your code for the exercise above)"
CHECK_INTRO = "# 写完后运行本单元格: 下面的检查通过, 说明结果对了 (the check below passes when your result is right)"
CHECK_TAG = "check"  # a check cell: kept in the student edition; `python -m helpers check` runs the teacher's copy
WRITTEN_TAG = "written"  # a Markdown reference answer to a written exercise (read by the teacher)
WRITTEN_ANSWER = "**你的回答 Your answer:** （在这里写下你的回答 write your answer here）"
# notebook metadata of a student edition: {"pytorch_basics": {"lesson": "03", "edition": "student"}}
SERIES_METADATA = "pytorch_basics"

_HINT_LINE = re.compile(r"^\s*#\s*(提示|hint)\b.*?[:：]", re.IGNORECASE)
_CHECK_MARKER = re.compile(r"^\s*#\s*(检查(\s*check)?|check)\s*[:：]?\s*$", re.IGNORECASE)


def exercise_source(solution: str) -> str:
    """The student's version of a solution cell: a TODO line, the author's hints, the author's check."""
    lines = solution.splitlines()
    check_at = next((i for i, line in enumerate(lines) if _CHECK_MARKER.match(line)), len(lines))
    hints, in_hint = [], False
    for line in lines[:check_at]:
        # a hint is a "# 提示：" line and the comment lines right after it (a hint may wrap)
        in_hint = bool(_HINT_LINE.match(line)) or (in_hint and line.lstrip().startswith("#"))
        if in_hint:
            hints.append(line.strip())
    check = "\n".join(lines[check_at + 1 :]).strip("\n")
    parts = [EXERCISE_TODO, *hints]
    if check:
        parts += ["", "", CHECK_INTRO, check]
    return "\n".join(parts) + "\n"


def _is_solution_tag(tag: object) -> bool:
    return str(tag).strip().lower() == SOLUTION_TAG  # `Solution`, `SOLUTION ` count too


def is_solution(cell: nbformat.NotebookNode) -> bool:
    """True for a cell tagged ``solution`` (any case, any cell type): a reference solution or a written answer."""
    tags = cell.get("metadata", {}).get("tags", [])
    return isinstance(tags, list) and any(_is_solution_tag(t) for t in tags)


def student_notebook(nb: nbformat.NotebookNode, lesson: str | None = None) -> nbformat.NotebookNode:
    """A copy of ``nb`` in which every solution cell is an empty exercise (or written-answer) cell.

    Code solutions become a TODO cell (tags kept, ``exercise`` added) and check cells lose
    their stored outputs (they showed the reference solution passing); a written
    exercise's Markdown answer becomes an empty answer cell (tags kept but
    ``solution``). The notebook metadata says it is a student edition (of ``lesson``).
    """
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", []):
            cell.outputs = []  # the stored "passed" belongs to the reference solution, not to the student
            cell.execution_count = None
        if not is_solution(cell):
            continue
        tags = [t for t in cell.metadata.get("tags", []) if not _is_solution_tag(t)]
        if cell.cell_type == "raw":  # a raw cell tagged solution: nothing of it reaches the student
            cell.source = ""
            cell.metadata["tags"] = tags
            continue
        if cell.cell_type == "markdown":
            cell.source = WRITTEN_ANSWER
            cell.pop("attachments", None)
            cell.metadata["tags"] = tags
            continue
        cell.source = exercise_source(cell.source)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata["tags"] = tags + ([EXERCISE_TAG] if EXERCISE_TAG not in tags else [])
    edition = {"lesson": lesson, "edition": "student"} if lesson else {"edition": "student"}
    nb.metadata[SERIES_METADATA] = edition
    return nb


def without_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the solution cells removed."""
    nb = copy.deepcopy(nb)
    nb.cells = [cell for cell in nb.cells if not is_solution(cell)]
    return nb


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_student_edition(
    out_dir: Path, only: Sequence[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR
) -> list[Path]:
    """Write the student edition of the selected notebooks into ``out_dir``; return the files written."""
    notebooks = select_notebooks(only, notebooks_dir)
    folder = check_out_dir(out_dir, notebooks_dir, example="--out student")
    texts = {}  # every notebook is read and converted before anything is written: a damaged one leaves no half set
    for path in notebooks:
        nb = student_notebook(read_notebook(path), lesson=path.name[:2])
        nbformat.validate(nb)
        texts[path.name] = nbformat.writes(nb) + "\n"  # as nbformat.write ends a file
    out = make_out_dir(folder)
    written = []
    for name, text in texts.items():
        write_atomic(out / name, text)
        written.append(out / name)
    return written
