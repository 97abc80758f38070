"""Find, read and validate students' submissions for ``python -m helpers check``.

What a submission is (a student edition of one lesson), how its exercises are
numbered and tagged, the reasons one cannot be graded (NotASubmission), the marks
an exercise can get, and the data classes a result is made of (Exercise, Submission).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .classroom import CHECK_TAG, SERIES_METADATA, WRITTEN_TAG, is_solution
from .runner import NOTEBOOKS_DIR, list_notebooks

HANDOUT_HINT = "hand out notebooks made with `python -m helpers student`"

PASSED, FAILED, MISSING, NOT_ATTEMPTED, TIMED_OUT, KERNEL_DIED, NOT_RUN = (
    "passed",
    "failed",
    "missing",
    "not attempted",
    "timed out",
    "kernel died",
    "not run",
)
WRITTEN, NOT_ANSWERED = "written", "not answered"

_EXERCISE = re.compile(r"^exercise-(\d+)$")
_LESSON_FILE = re.compile(r"^(\d\d)_")


class NotASubmission(ValueError):
    """The file is not a student edition of this series (or cannot be read as one)."""


# ------------------------------------------------------------------ results


@dataclass
class Exercise:
    """One exercise of a lesson and what became of it for one student."""

    number: int
    written: bool = False
    status: str = ""  # PASSED, FAILED, ... (see the constants above)
    detail: str = ""  # the first line of the error, the written answer, ...

    def label(self) -> str:
        """What the table shows: status and detail on one line."""
        return f"{self.status}: {self.detail}" if self.detail else self.status


@dataclass
class Submission:
    """One row of the results: a student's notebook of one lesson."""

    path: Path
    student: str
    lesson: str = ""
    exercises: dict[int, Exercise] = field(default_factory=dict)
    problem: str = ""  # why the notebook could not be graded at all (not a student edition, ...)
    notes: list[str] = field(default_factory=list)  # e.g. a lesson cell that failed
    seconds: float = 0.0
    executed: nbformat.NotebookNode | None = None
    ran: bool = False  # whether a kernel was started for it (not when nothing was attempted)

    def summary(self) -> str:
        """A short line for progress output: passed/total or the problem."""
        if self.problem:
            return self.problem
        code = [e for e in self.exercises.values() if not e.written]
        passed = sum(e.status == PASSED for e in code)
        return f"{passed}/{len(code)} passed" + (
            f", {len(self.exercises) - len(code)} written" if len(code) < len(self.exercises) else ""
        )


def _first_line(text: object, limit: int = 200) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


# ------------------------------------------------------------------ reading notebooks


def exercise_number(cell: nbformat.NotebookNode) -> int | None:
    """N for a cell tagged ``exercise-N``, else None."""
    for tag in cell.get("metadata", {}).get("tags", []):
        match = _EXERCISE.match(str(tag))
        if match:
            return int(match.group(1))
    return None


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _is_answer_cell(cell: nbformat.NotebookNode) -> bool:
    """A student's code exercise cell: tagged exercise-N, not a check."""
    tags = _tags(cell)
    return cell.cell_type == "code" and exercise_number(cell) is not None and CHECK_TAG not in tags


def _is_written_cell(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "markdown" and exercise_number(cell) is not None and WRITTEN_TAG in _tags(cell)


def lesson_of(path: Path, nb: nbformat.NotebookNode) -> str:
    """The lesson number ("03") of a student edition; raise NotASubmission for any other notebook."""
    meta = nb.metadata.get(SERIES_METADATA)
    meta = meta if isinstance(meta, dict) else {}
    if any(is_solution(c) for c in nb.cells):
        raise NotASubmission(
            f"{path.name} contains reference solutions (cells tagged solution): it is a teacher's notebook, "
            f"not a student's submission; {HANDOUT_HINT}"
        )
    has_exercises = any(_is_answer_cell(c) or _is_written_cell(c) for c in nb.cells)
    if meta.get("edition") != "student" and not has_exercises:
        raise NotASubmission(
            f"{path.name} is not a student edition of this series (no lesson metadata and no exercise cells); "
            f"{HANDOUT_HINT}"
        )
    lesson = str(meta.get("lesson") or "")
    if not re.fullmatch(r"\d\d", lesson):
        match = _LESSON_FILE.match(path.name)
        if not match:
            raise NotASubmission(
                f"cannot tell which lesson {path.name} belongs to (no lesson in its metadata and the file name "
                "does not start with the lesson number, e.g. 03_...); give it its original name"
            )
        lesson = match.group(1)
    return lesson


def damaged(path: Path, nb: Any) -> None:
    """Raise NotASubmission when the student's file is not a valid notebook (``tags: 5``, a lone surrogate, ...)."""
    import nbformat.validator

    def strings(value: Any) -> Any:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from strings(k)
                yield from strings(v)
        elif isinstance(value, list):
            for v in value:
                yield from strings(v)

    if any(any("\ud800" <= ch <= "\udfff" for ch in text) for text in strings(nb)):
        raise NotASubmission(
            f"{path.name} is damaged: it contains text that is not valid Unicode (a lone surrogate); "
            "ask the student to open it in JupyterLab, fix the cell and save it again"
        )
    try:
        nbformat.validate(nb)
    except nbformat.validator.ValidationError as exc:
        where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
        raise NotASubmission(
            f"{path.name} is damaged: it is not a valid notebook ({_first_line(exc.message)}"
            f"{' at ' + where if where else ''}); ask the student to open it in JupyterLab and save it again"
        ) from None


def source_notebook(lesson: str, notebooks_dir: Path = NOTEBOOKS_DIR) -> Path:
    """The teacher's notebook of ``lesson`` ("03") in ``notebooks_dir``."""
    matches = [p for p in list_notebooks(Path(notebooks_dir)) if p.name[:2] == lesson]
    if not matches:
        raise NotASubmission(f"lesson {lesson} is not in {notebooks_dir} (is --notebooks the right folder?)")
    return matches[0]


def student_name(path: Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """Who handed ``path`` in: its folder's name when the file keeps the name it was handed out with, else its stem."""
    handed_out = {p.name for p in list_notebooks(Path(notebooks_dir))}
    if path.name in handed_out and path.parent.name:
        return path.parent.name  # class/zhang_san/03_build_model.ipynb
    return path.stem  # class/zhang_san.ipynb, class/03_zhang_san.ipynb


def find_submissions(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> list[Path]:
    """The notebooks among ``paths`` (files, or folders searched recursively), in a stable order.

    JupyterLab's ``.ipynb_checkpoints`` and other hidden folders are skipped, and so is
    anything under ``exclude`` (the results folder, whose executed notebooks are no submissions).
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*.ipynb")
                if p.is_file()
                and ".ipynb_checkpoints" not in p.parts
                and not any(s.startswith(".") for s in p.relative_to(path).parts)
            )
        elif path.is_file():
            found.append(path)
        else:
            raise ValueError(f"{path} does not exist; give the files or folders of the students' notebooks")
    skip = [Path(p).resolve() for p in exclude]
    unique = dict.fromkeys(p.resolve() for p in found)
    return [p for p in unique if not any(p == s or s in p.parents for s in skip)]
