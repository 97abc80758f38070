"""A generated class of one real lesson for check's reuse tests and benchmark: right, wrong and untouched answers."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from helpers.commands.classroom import write_student_edition
from helpers.commands.submissions import exercise_number

# per lesson: a wrong answer for each code exercise (runs, but the check must say no)
WRONG = {
    "06": {
        1: "def sgd_step(params, velocities, lr, momentum, weight_decay):\n"
        "    with torch.no_grad():\n"
        "        for p in params:\n"
        "            p -= lr * p.grad  # no momentum, no weight decay\n",
        2: "precision = per_class_accuracy(val_pred, val_true)  # recall, not precision\n",
    },
}


def _solutions(source: nbformat.NotebookNode) -> dict[int, str]:
    return {
        exercise_number(c): c.source
        for c in source.cells
        if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])
    }


def _filled(student: nbformat.NotebookNode, answers: dict[int, str]) -> nbformat.NotebookNode:
    nb = copy.deepcopy(student)
    for cell in nb.cells:
        number = exercise_number(cell)
        if cell.cell_type == "code" and number in answers and "check" not in cell.metadata.get("tags", []):
            cell.source = answers[number]
    return nb


def make_class(source_path: Path, folder: Path, size: int, wrong: dict[int, str] | None = None) -> dict[str, str]:
    """Write ``size`` submissions of the lesson into ``folder`` (one sub-folder each); return name -> kind.

    Kinds cycle: right (the reference solutions), wrong (``wrong``, else a NameError), empty (the student
    edition as handed out), mixed (the first code exercise right, the others wrong).
    """
    source = nbformat.read(source_path, as_version=4)
    student_path = write_student_edition(folder / ".edition", [source_path.name], notebooks_dir=source_path.parent)[0]
    student = nbformat.read(student_path, as_version=4)
    right = _solutions(source)
    bad = {n: (wrong or {}).get(n, "raise NameError('not done')") for n in right}
    first = min(right)
    kinds = {
        "right": _filled(student, right),
        "wrong": _filled(student, bad),
        "empty": student,
        "mixed": _filled(student, {**bad, first: right[first]}),
    }
    names = {}
    for i in range(size):
        kind = list(kinds)[i % len(kinds)]
        name = f"s{i:02d}_{kind}"
        (folder / name).mkdir(parents=True)
        nbformat.write(kinds[kind], folder / name / student_path.name)
        names[name] = kind
    return names
