"""Plan a graded notebook: the teacher's lesson with one student's exercise cells in place of the solutions.

graded_notebook builds that notebook and the role of each of its cells (Planned:
lesson, answer or check), and marks the exercises that need no run (missing, not
attempted, written answers).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import nbformat

from . import grading
from .classroom import CHECK_TAG, WRITTEN_ANSWER, is_solution
from .runner import injected_source
from .submissions import (
    FAILED,
    MISSING,
    NOT_ANSWERED,
    NOT_ATTEMPTED,
    WRITTEN,
    Exercise,
    _is_answer_cell,
    _is_written_cell,
    _tags,
    exercise_number,
)


def is_blank_answer(source: str) -> bool:
    """True when a cell holds nothing but comments and blank lines (the untouched TODO and hints)."""
    return all(not line.strip() or line.strip().startswith("#") for line in source.splitlines())


@dataclass
class Planned:
    """A cell of the graded notebook and its role: lesson, answer (the student's) or check (the teacher's)."""

    cell: nbformat.NotebookNode
    role: str
    exercise: int | None = None
    names: set[str] = field(default_factory=set)  # an answer's: the names the reference solution binds


def graded_notebook(
    source: nbformat.NotebookNode, student: nbformat.NotebookNode, parameters: dict[str, Any] | None = None
) -> tuple[nbformat.NotebookNode, list[Planned], dict[int, Exercise]]:
    """The teacher's lesson with the student's exercise cells in place of the solutions.

    Returns the notebook (only up to the last exercise; later cells cannot change a
    mark), each cell's role, and the exercises, already marked where nothing needs
    to run (missing, not attempted, written answers).
    """
    answers: dict[int, list[nbformat.NotebookNode]] = {}
    written: dict[int, list[str]] = {}
    source_ids = {c.get("id") for c in source.cells}
    # cells the student added right below an exercise cell count as part of the answer:
    # code cells below a code exercise, Markdown cells below a written one
    current: tuple[int, str] | None = None
    above: list[nbformat.NotebookNode] = []  # new code cells between an exercise's text and its TODO cell
    for cell in student.cells:
        number = exercise_number(cell)
        new_untagged = cell.get("id") not in source_ids and not _tags(cell)
        if number is not None and _is_answer_cell(cell):
            answers.setdefault(number, []).extend(above)  # cells inserted above the TODO cell (JupyterLab's A key)
            answers[number].append(cell)
            above, current = [], (number, "code")
        elif number is not None and _is_written_cell(cell):
            written.setdefault(number, []).append(cell.source)
            above, current = [], (number, "markdown")
        elif new_untagged and current is not None:
            if cell.cell_type == current[1] == "code":
                answers[current[0]].append(cell)
            elif cell.cell_type == current[1] == "markdown":
                written[current[0]].append(cell.source)
        elif new_untagged:
            if cell.cell_type == "code":
                above.append(cell)
        else:
            above, current = [], None

    exercises: dict[int, Exercise] = {}
    last = max((i for i, c in enumerate(source.cells) if exercise_number(c) is not None), default=-1)
    cells, plan = [], []

    def add(cell: nbformat.NotebookNode, role: str, exercise: int | None = None, names: set[str] | None = None) -> None:
        cell = copy.deepcopy(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        plan.append(Planned(cell, role, exercise, set(names or ())))

    for cell in source.cells[: last + 1]:
        number, tags = exercise_number(cell), _tags(cell)
        if number is not None and is_solution(cell) and cell.cell_type == "markdown":
            texts = [t for t in written.get(number, []) if t.strip() and t.strip() != WRITTEN_ANSWER.strip()]
            exercises[number] = Exercise(number, True, WRITTEN if texts else NOT_ANSWERED, "\n\n".join(texts))
        elif number is not None and is_solution(cell):
            mine = answers.get(number, [])
            if not mine:
                exercises[number] = Exercise(
                    number, status=MISSING, detail=f"no cell tagged exercise-{number} (deleted?)"
                )
            elif all(is_blank_answer(c.source) for c in mine):
                exercises[number] = Exercise(number, status=NOT_ATTEMPTED)
            else:
                exercises[number] = Exercise(number)
                for answer in mine:
                    add(nbformat.v4.new_code_cell(answer.source), "answer", number, grading.bound_names(cell.source))
        elif number is not None and CHECK_TAG in tags:
            if number in exercises and not exercises[number].status:
                add(cell, "check", number)
        else:
            add(cell, "lesson")
            if cell.cell_type == "code" and "parameters" in tags:
                declared = re.findall(r"^(\w+)\s*=", cell.source, re.MULTILINE)
                values = {"device": "cpu", **{k: v for k, v in (parameters or {}).items() if k in declared}}
                injected = injected_source(values)  # plain data only, as `run` writes parameters
                add(nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]}), "lesson")
    for number, ex in exercises.items():
        if not ex.status and not any(p.role == "check" and p.exercise == number for p in plan):
            ex.status, ex.detail = FAILED, f"lesson error: exercise {number} has no check cell in the source"
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(source.metadata))
    nb.cells = cells  # the very cells in ``plan``: executing them fills in the notebook's outputs
    return nb, plan, dict(sorted(exercises.items()))
