"""Report a class's results: the plain-text table, the timing report, results.csv and results.html.

write_results writes the CSV, the HTML page and the executed notebooks into the
results folder; everything a submission wrote is made safe before it is shown.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import nbformat

from . import templates
from .runner import NOTEBOOKS_DIR, check_out_dir, make_out_dir
from .submissions import PASSED, WRITTEN, Exercise, Submission
from .textsafe import csv_cell, safe_text


def exercise_columns(results: Sequence[Submission]) -> list[int]:
    """The exercise numbers that appear in any row."""
    return sorted({n for r in results for n in r.exercises})


def _cell_text(result: Submission, number: int, width: int | None = None) -> str:
    ex = result.exercises.get(number)
    if ex is None:
        return ""
    if ex.written:
        text = "written: read by the teacher" if ex.status == WRITTEN else "written: not answered"
    else:
        text = safe_text(ex.label())
    if width is not None and _width(text) > width:
        used, kept = 0, 0
        while used + _width(text[kept]) <= width - 1:  # one pass: keep characters while they fit in width - 1 columns
            used += _width(text[kept])
            kept += 1
        text = text[:kept] + "…"
    return text


def table_rows(results: Sequence[Submission], width: int | None = None) -> list[list[str]]:
    """Header and one row per submission: student, lesson, one column per exercise, notes."""
    numbers = exercise_columns(results)
    rows = [["student", "lesson", *[f"exercise {n}" for n in numbers], "notes"]]
    for r in results:
        notes = safe_text(r.problem or "; ".join(r.notes))
        rows.append(
            [safe_text(r.student), safe_text(r.lesson or "-"), *[_cell_text(r, n, width) for n in numbers], notes]
        )
    return rows


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def timing_report(results: Sequence[Submission], wall: float, jobs: int) -> str:
    """Seconds per submission (slowest first) and for the class."""
    lines = ["time per submission (s):"]
    for r in sorted(results, key=lambda r: -r.seconds):
        lines.append(f"  {r.seconds:7.1f}  {safe_text(r.student)} ({safe_text(r.path.name)})")
    seconds = [r.seconds for r in results]
    lines.append(
        f"class: {len(results)} submissions in {wall:.1f} s ({jobs} at a time); "
        f"per submission mean {sum(seconds) / len(seconds):.1f} s, max {max(seconds):.1f} s"
    )
    return "\n".join(lines)


def format_table(results: Sequence[Submission], width: int = 48) -> str:
    """A plain-text table, aligned for Chinese text too; long errors are cut to ``width`` columns."""
    rows = table_rows(results, width)
    widths = [max(_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell + " " * (widths[i] - _width(cell)) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_csv(results: Sequence[Submission]) -> str:
    """The table as CSV text (full error lines; a written answer's text in its column)."""
    numbers = exercise_columns(results)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["student", "lesson", "file", *[f"exercise {n}" for n in numbers], "notes", "seconds"])
    for r in results:
        cells = []
        for n in numbers:
            ex = r.exercises.get(n)
            cells.append(
                "" if ex is None else (f"{_cell_text(r, n)}\n{ex.detail}".strip() if ex.written else ex.label())
            )
        row = [r.student, r.lesson, str(r.path), *cells, r.problem or "; ".join(r.notes)]
        writer.writerow([csv_cell(c) for c in row] + [f"{r.seconds:.1f}"])
    return buffer.getvalue()


def results_html(results: Sequence[Submission], title: str = "练习检查结果 Exercise check") -> str:
    """A self-contained HTML page of the table: inline CSS, no scripts; everything from a submission is escaped.

    The page is templates/results.html; every value handed to it is plain text, which the template escapes.
    """

    def shown(text: object) -> str:
        return safe_text(text, keep_newlines=True)

    def cell(ex: Exercise | None) -> dict[str, object] | None:
        if ex is None:
            return None
        return {
            "written": ex.written,
            "answered": ex.status == WRITTEN,
            "status": shown(ex.status),
            "css_class": shown(ex.status.replace(" ", "-")),
            "detail": shown(ex.detail) if ex.detail else "",
        }

    numbers = exercise_columns(results)
    rows = [
        {
            "student": shown(r.student),
            "file": shown(r.path.name),
            "lesson": shown(r.lesson or "-"),
            "problem": shown(r.problem) if r.problem else "",
            "cells": [cell(r.exercises.get(n)) for n in numbers],
            "notes": shown("; ".join(r.notes)),
        }
        for r in results
    ]
    graded = [r for r in results if not r.problem]
    totals = []
    for n in numbers:
        marked = [r.exercises[n] for r in graded if n in r.exercises]
        written = bool(marked) and marked[0].written
        count = sum(e.status == (WRITTEN if written else PASSED) for e in marked)
        totals.append({"count": count, "of": len(marked), "written": written})
    return templates.render("results.html", title=shown(title), numbers=numbers, rows=rows, totals=totals)


_EXECUTED_NAME = re.compile(r"\d+_[\w.-]+\.ipynb")


def foreign_executed(out_dir: Path) -> list[str]:
    """Names in ``out_dir/executed`` that check does not write there (it only ever replaces its own notebooks)."""
    executed = Path(out_dir) / "executed"
    if executed.is_symlink() or (executed.exists() and not executed.is_dir()):
        return [executed.name]
    if not executed.is_dir():
        return []
    return sorted(
        p.name for p in executed.iterdir() if p.is_symlink() or not p.is_file() or not _EXECUTED_NAME.fullmatch(p.name)
    )


def write_results(results: Sequence[Submission], out_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Write results.csv (UTF-8 with BOM, for Excel), results.html and the executed notebooks; return the files.

    ``executed/NN_student_lesson.ipynb`` is the graded notebook as it ran (the
    teacher's lesson with the student's cells), with every traceback in full.
    """
    from .classroom import write_atomic

    out = make_out_dir(check_out_dir(out_dir, notebooks_dir, example="--out check-results"))
    csv_path, html_path = out / "results.csv", out / "results.html"
    write_atomic(csv_path, "\ufeff" + results_csv(results))
    write_atomic(html_path, results_html(results))
    written = [csv_path, html_path]
    executed = out / "executed"
    foreign = foreign_executed(out)
    if foreign:
        raise ValueError(f"{executed} holds files that check did not write ({', '.join(foreign[:5])}); move them")
    for old in executed.glob("*.ipynb") if executed.is_dir() else []:
        old.unlink()  # the executed notebooks of an earlier run
    for i, r in enumerate(results, 1):
        if r.executed is not None:
            safe = re.sub(r"[^\w.-]+", "_", r.student).strip("._")[:60] or "student"
            path = executed / f"{i:02d}_{safe}_{r.lesson}.ipynb"
            write_atomic(path, nbformat.writes(r.executed) + "\n")
            written.append(path)
    return written
