"""Check a class's submitted exercises: ``python -m helpers check SUBMISSIONS...``.

Each submission (a student edition of one lesson, as made by ``python -m helpers
student`` and filled in by a student) is graded with the teacher's copy of the
lesson: a fresh notebook is built from the source notebook in ``notebooks/`` in
which every exercise's reference solution is replaced by the student's exercise
cell(s); the teacher's lesson cells and the teacher's check cells stay as they
are (a student who edits a check to ``pass`` gains nothing, and any other edit
the student made to the lesson is ignored). That notebook runs in its own kernel,
from a clean state, on the CPU, in a fresh temporary folder, with a time limit per
exercise cell and per notebook. Cells run one by one and errors do not stop the
run, so an error, an endless loop, ``sys.exit()`` or a crashed kernel costs only
the exercises from that point on, and only that student's.

Cells of a student edition are matched by tags, which JupyterLab keeps when it
saves a notebook: ``exercise-N`` on the exercise cell (plus ``check`` on its check
cell, ``written`` on a written answer), and the notebook metadata
``{"pytorch_basics": {"lesson": "NN", "edition": "student"}}``.

A check's "passed" counts only when the grader confirms it (grading.py: the
pristine state is restored before each check, the check compares plain values,
and the grader verifies afterwards that it ran to its end untampered). Each
kernel has a private connection folder and a minimal environment, and every
process a submission started is killed when it ends (sandbox.py). This is no OS
sandbox: a student's code runs with the teacher's user rights and could still
reach any file on purpose (README, "检查学生交回的练习", says what protects and what not).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import csv
import html
import io
import os
import re
import shutil
import signal
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from . import grading, sandbox
from .classroom import CHECK_TAG, SERIES_METADATA, SOLUTION_TAG, WRITTEN_ANSWER, WRITTEN_TAG
from .runner import (
    NOTEBOOKS_DIR,
    _kernel_manager_class,
    check_out_dir,
    injected_source,
    list_notebooks,
    make_out_dir,
    notebook_parameters,
    parse_value,
)
from .textsafe import csv_cell, safe_text

DEFAULT_OUT = Path("check-results")
CELL_TIMEOUT = 120  # seconds for one of the student's cells or a check cell (07's exercise trains a little)
NOTEBOOK_TIMEOUT = 900  # seconds for a whole submission (lesson 06 takes about 6 minutes on a busy 2-core machine)
OUTPUT_LIMIT = 5_000_000  # characters of output kept per cell; past it the cell is stopped ("output too large")
PROBE_TIMEOUT = 15  # seconds a kernel may take to answer again after an interrupted cell
COULD_NOT_CHECK = "could not be checked"
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
    if any(SOLUTION_TAG in _tags(c) for c in nb.cells):
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


def is_blank_answer(source: str) -> bool:
    """True when a cell holds nothing but comments and blank lines (the untouched TODO and hints)."""
    return all(not line.strip() or line.strip().startswith("#") for line in source.splitlines())


def student_name(path: Path, notebooks_dir: Path = NOTEBOOKS_DIR) -> str:
    """Who handed ``path`` in: its folder's name when the file keeps the name it was handed out with, else its stem."""
    handed_out = {p.name for p in list_notebooks(Path(notebooks_dir))}
    if path.name in handed_out and path.parent.name:
        return path.parent.name  # class/zhang_san/03_build_model.ipynb
    return path.stem  # class/zhang_san.ipynb, class/03_zhang_san.ipynb


# ------------------------------------------------------------------ the graded notebook


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
        if number is not None and SOLUTION_TAG in tags and cell.cell_type == "markdown":
            texts = [t for t in written.get(number, []) if t.strip() and t.strip() != WRITTEN_ANSWER.strip()]
            exercises[number] = Exercise(number, True, WRITTEN if texts else NOT_ANSWERED, "\n\n".join(texts))
        elif number is not None and SOLUTION_TAG in tags:
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


# ------------------------------------------------------------------ running one submission


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


def _error_text(reply: dict[str, Any]) -> str:
    ename, evalue = reply.get("ename", "Error"), _first_line(reply.get("evalue", ""))
    return f"{ename}: {evalue}" if evalue else ename


def _workspace(root: Path, data_dir: Path | None) -> Path:
    """A fresh folder for one submission: ROOT/work is the kernel's working folder, ROOT/data its data."""
    work = root / "work"
    work.mkdir(parents=True)
    if data_dir is not None and Path(data_dir).is_dir():
        (root / "data").symlink_to(Path(data_dir).resolve(), target_is_directory=True)  # notebooks read ../data
    return work


async def run_graded(
    nb: nbformat.NotebookNode,
    plan: list[Planned],
    exercises: dict[int, Exercise],
    workdir: Path,
    env: dict[str, str],
    cell_timeout: float = CELL_TIMEOUT,
    notebook_timeout: float = NOTEBOOK_TIMEOUT,
    log: Any | None = None,
    connection_dir: Path | None = None,
    wrap: list[str] | None = None,
) -> list[str]:
    """Execute the graded notebook cell by cell and mark ``exercises``; return notes on lesson cells that failed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    deadline = time.monotonic() + notebook_timeout
    errors: dict[int, dict[str, Any]] = {}
    roles = {id(p.cell): p for p in plan}

    def timeout_for(cell: nbformat.NotebookNode) -> int:
        left = deadline - time.monotonic()
        role = roles.get(id(cell))
        limit = left if role is None or role.role == "lesson" else min(cell_timeout, left)
        return max(1, int(limit + 0.999))

    def on_cell_error(cell: nbformat.NotebookNode, cell_index: int, execute_reply: dict[str, Any]) -> None:
        errors[cell_index] = execute_reply.get("content", {})

    client = NotebookClient(
        nb,
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout={"ename": "CellTimeoutError", "evalue": "timed out", "traceback": []},
        timeout_func=timeout_for,
        startup_timeout=120,
        shutdown_kernel="immediate",  # the kernel is thrown away; no need to wait for a clean exit
        record_timing=False,
        # the kernel's own messages go to ``log``; its connection file and sockets to a private folder
        kernel_manager_class=(
            sandbox.kernel_manager_class(connection_dir, log, wrap)
            if connection_dir is not None
            else _kernel_manager_class(log)
        ),
        on_cell_error=on_cell_error,
    )
    flood: dict[str, Any] = {"used": 0, "stopped": False, "interrupt": None}
    keep_output = client.output

    def capped_output(outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        content = msg.get("content", {})
        flood["used"] += len(str(content.get("text", ""))) + sum(len(str(v)) for v in content.get("data", {}).values())
        if flood["used"] <= OUTPUT_LIMIT:
            return keep_output(outs, msg, display_id, cell_index)
        if not flood["stopped"]:  # stop the cell that floods; what it prints from now on is dropped
            flood["stopped"] = True
            km: Any = client.km  # started: output only arrives from a running kernel
            flood["interrupt"] = asyncio.ensure_future(km.interrupt_kernel())
        return None

    client.output = capped_output  # type: ignore[method-assign]  # nbclient has no hook for this
    notes: list[str] = []
    pending = {n for n, e in exercises.items() if not e.status}
    failed_answer: set[int] = set()

    def give_up(status: str, detail: str) -> None:
        for number in sorted(pending):
            exercises[number].status, exercises[number].detail = status, detail
        pending.clear()

    client.km = client.create_kernel_manager()
    try:
        await client.async_start_new_kernel(cwd=str(workdir), env=env)
        await client.async_start_new_kernel_client()
        sandbox.forget_connection_file(client.km)  # the kernel has read it; no other process will
        trusted = await _bootstrap(client, errors)  # before any lesson or student code
        remembered: set[int] = set()
        lesson_number = 0
        for index, step in enumerate(plan):
            if not pending:
                break
            cell = step.cell
            if cell.cell_type != "code":
                continue
            if step.role == "lesson" and "injected-parameters" not in _tags(cell):
                lesson_number += 1  # as the teacher counts the lesson's code cells
            if step.exercise is not None and (step.exercise not in pending or step.exercise in failed_answer):
                continue  # a check after a failed answer: the answer's error is the mark
            if time.monotonic() >= deadline:
                give_up(TIMED_OUT, f"the notebook's time limit ({notebook_timeout:.0f} s) ran out")
                break
            limit = timeout_for(cell)
            original, restored, token = cell.source, None, grading.new_token()
            try:
                if step.role == "answer" and step.exercise is not None and step.exercise not in remembered:
                    remembered.add(step.exercise)
                    await _expression(client, grading.remember_expression(step.names))
                if step.role == "check":
                    restored = await _expression(client, grading.restore_expression()) if trusted else None
                    cell.source = grading.harden_check(original, token)
                try:
                    await client.async_execute_cell(cell, index)
                finally:
                    cell.source = original  # the executed notebook shows the teacher's check as written
            except DeadKernelError:
                where = f"in exercise {step.exercise}" if step.exercise is not None else "in a lesson cell"
                if step.exercise is not None:
                    exercises[step.exercise].status = KERNEL_DIED
                    exercises[step.exercise].detail = "the kernel stopped (os._exit, a crash or out of memory?)"
                    pending.discard(step.exercise)
                give_up(NOT_RUN, f"the kernel died earlier ({where})")
                break
            error = errors.get(index)
            timed_out = error is not None and error.get("ename") == "CellTimeoutError"
            flooded, flood["stopped"], flood["used"] = flood["stopped"], False, 0
            if flood["interrupt"] is not None:
                await flood["interrupt"]
                flood["interrupt"] = None
            too_large = f"output too large (over {OUTPUT_LIMIT // 1_000_000} MB printed; the rest was dropped)"
            if step.exercise is not None:
                ex = exercises[step.exercise]
                if flooded:
                    ex.status, ex.detail = (
                        FAILED,
                        f"your code: {too_large}" if step.role == "answer" else f"check: {too_large}",
                    )
                elif timed_out:
                    ex.status, ex.detail = TIMED_OUT, f"stopped after {limit} s (an endless loop?)"
                elif error:
                    where = "your code" if step.role == "answer" else "check"
                    ex.status, ex.detail = FAILED, f"{where}: {_error_text(error)}"
                elif step.role == "check":
                    verdict = await _expression(client, grading.verify_expression(token)) if restored == "ok" else None
                    if verdict == "ok":
                        ex.status = PASSED
                    else:
                        reason = verdict or (
                            "the grader could not set up the kernel"
                            if not trusted
                            else "the kernel's state could not be restored before the check"
                        )
                        ex.status, ex.detail = FAILED, f"check: not accepted by the grader: {reason}"
                if ex.status:
                    pending.discard(step.exercise)
                    if step.role == "answer":
                        failed_answer.add(step.exercise)
            elif error or flooded:
                first = (cell.source.strip().splitlines() or [""])[0][:60]
                what = too_large if flooded else "timed out" if timed_out else _error_text(error or {})
                notes.append(f"lesson code cell {lesson_number} ({first!r}) failed: {what}")
            if timed_out and not await _responds(client, errors):
                give_up(NOT_RUN, "the kernel did not stop after a time-out")
                break
    finally:
        pid = sandbox.kernel_pid(client.km)
        try:
            await client._async_cleanup_kernel()
        finally:
            sandbox.kill_submission(env.get(sandbox.MARKER, ""), pid)  # and everything the submission started
    for number in sorted(pending):  # checks that never ran (cannot happen unless the plan is odd)
        exercises[number].status = NOT_RUN
    return notes


async def _bootstrap(client: Any, errors: dict[int, dict[str, Any]]) -> bool:
    """Run the grader's kernel-side code (see grading.py) first thing in a new kernel; True when it worked."""
    cell = nbformat.v4.new_code_cell(grading.BOOTSTRAP)
    timeout_func = client.timeout_func
    client.timeout_func = lambda cell: CELL_TIMEOUT
    try:
        await client.async_execute_cell(cell, -2, store_history=False)
    finally:
        client.timeout_func = timeout_func
    return errors.pop(-2, None) is None


async def _expression(client: Any, expression: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """Evaluate ``expression`` in the kernel as a user expression (IPython runs no input transformers on it).

    Returns the string it evaluated to, or None when it failed, did not return a string or took too long.
    """
    msg_id = client.kc.execute("", silent=True, store_history=False, user_expressions={"v": expression})
    from nbclient.exceptions import DeadKernelError

    try:
        reply = await asyncio.wait_for(client.async_wait_for_reply(msg_id), timeout)
    except (asyncio.TimeoutError, DeadKernelError):
        return None
    return grading.expression_value(reply, "v")


async def _responds(client: Any, errors: dict[int, dict[str, Any]]) -> bool:
    """True when the kernel answers a trivial request again (after an interrupted cell)."""
    probe = nbformat.v4.new_code_cell("pass")
    timeout_func = client.timeout_func
    client.timeout_func = lambda cell: PROBE_TIMEOUT
    try:
        await client.async_execute_cell(probe, -1, store_history=False)
    except Exception:  # the kernel died
        return False
    finally:
        client.timeout_func = timeout_func
    return errors.pop(-1, None) is None


async def grade_submission(
    path: Path,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    data_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    notebook_timeout: float = NOTEBOOK_TIMEOUT,
    threads: int = 1,
    use_sandbox: bool = False,
) -> Submission:
    """Grade one submitted notebook (see the module docstring); never raises for a bad submission."""
    path = Path(path)
    result = Submission(path, student_name(path, notebooks_dir))
    start = time.perf_counter()
    try:
        try:
            student = nbformat.read(path, as_version=4)
        except Exception as exc:  # not JSON, not a notebook, unreadable
            raise NotASubmission(
                f"{path.name} cannot be read as a notebook ({type(exc).__name__}: {_first_line(exc)})"
            ) from None
        damaged(path, student)
        result.lesson = lesson_of(path, student)
        source = nbformat.read(source_notebook(result.lesson, notebooks_dir), as_version=4)
        if not any(exercise_number(c) is not None and SOLUTION_TAG in _tags(c) for c in source.cells):
            raise NotASubmission(
                f"lesson {result.lesson} in {notebooks_dir} has no exercises tagged exercise-N, so nothing can be checked"
            )
        nb, plan, result.exercises = graded_notebook(source, student, parameters)
        if any(not e.status for e in result.exercises.values()):
            root = sandbox.temporary_root()  # mode 0700
            try:
                workdir = _workspace(
                    root, data_dir if data_dir is not None else Path(notebooks_dir).resolve().parent / "data"
                )
                home, tmp = sandbox.private_dir(root, "home"), sandbox.private_dir(root, "tmp")
                env = sandbox.minimal_env(home, tmp, sandbox.new_marker(), threads)
                with open(root / "kernel.log", "w", encoding="utf-8") as log:
                    result.notes = await run_graded(
                        nb,
                        plan,
                        result.exercises,
                        workdir,
                        env,
                        cell_timeout,
                        notebook_timeout,
                        log,
                        connection_dir=sandbox.private_dir(root, "connection"),
                        wrap=sandbox.bubblewrap_prefix(root) if use_sandbox else None,
                    )
            finally:
                shutil.rmtree(root, ignore_errors=True)
        result.executed = nb
    except NotASubmission as exc:
        result.problem = str(exc)
    except Exception as exc:  # the run itself broke (e.g. no kernel could start): say so in this row
        result.problem = f"{COULD_NOT_CHECK}: {type(exc).__name__}: {_first_line(exc)}"
    result.seconds = time.perf_counter() - start
    return result


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


_STOPPING = {"now": False}  # set by main's Ctrl-C/SIGTERM handler


def _stop(signum: int, frame: Any) -> None:
    _STOPPING["now"] = True
    raise KeyboardInterrupt


async def _check_all(
    paths: list[Path], results: list[Submission | None], jobs: int, progress: Callable, **options
) -> None:
    limit = asyncio.Semaphore(max(1, jobs))
    done = 0

    async def one(i: int, path: Path) -> None:
        nonlocal done
        async with limit:
            if _STOPPING["now"]:
                return
            result = await grade_submission(path, **options)
            if _STOPPING["now"]:
                return  # stopped by Ctrl-C or kill: a submission in flight gets no (wrong) mark
            results[i] = result
            done += 1
            progress(done, len(paths), results[i])

    await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))


def check_submissions(
    paths: Sequence[Path],
    notebooks_dir: Path = NOTEBOOKS_DIR,
    jobs: int = 1,
    progress: Callable[[int, int, Submission], None] | None = None,
    results: list | None = None,
    **options: Any,
) -> list[Submission]:
    """Grade every notebook in ``paths`` (``jobs`` at a time); return one Submission per notebook, in order.

    ``results``, if given, is filled in as submissions finish (so a caller that is
    interrupted with Ctrl-C still has the finished ones). ``options`` go to
    grade_submission (data_dir, parameters, cell_timeout, notebook_timeout).
    """
    files = find_submissions(paths, exclude=options.pop("exclude", ()))
    if not files:
        raise ValueError("no notebooks (.ipynb) found in " + ", ".join(str(p) for p in paths))
    slots: list[Submission | None] = results if results is not None else []
    slots[:] = [None] * len(files)
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    options.setdefault("threads", threads)
    asyncio.run(_check_all(files, slots, jobs, progress or (lambda *a: None), notebooks_dir=notebooks_dir, **options))
    done = [r for r in slots if r is not None]
    distinguish(done)
    return done


def distinguish(results: Sequence[Submission]) -> None:
    """Rows of one lesson that would show the same student name show the path that tells them apart (A/zhang)."""
    by_name: dict[tuple[str, str], list[Submission]] = {}
    for r in results:
        by_name.setdefault((r.student, r.lesson), []).append(r)
    for rows in by_name.values():
        if len(rows) < 2:
            continue
        common = Path(os.path.commonpath([str(r.path.parent) for r in rows]))
        for r in rows:
            where = r.path.parent.relative_to(common)
            from_folder = r.path.parent.name == r.student and r.path.stem != r.student
            if where == Path("."):
                r.student = f"{r.student} ({r.path.name})"
            else:
                r.student = where.as_posix() if from_folder else (where / r.path.name).as_posix()


# ------------------------------------------------------------------ the table (text, CSV, HTML)


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
        while _width(text) > width - 1:
            text = text[:-1]
        text += "…"
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


_HTML_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC",
       sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.passed { background: #e3f6e3; } td.failed, td.kernel-died { background: #fbe3e3; }
td.timed-out { background: #fdf0d5; } td.missing, td.not-attempted, td.not-run, td.not-answered { background: #eee; }
td.written { background: #e6eefb; } td.problem { background: #fbe3e3; }
.detail { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em; white-space: pre-wrap; }
.answer { white-space: pre-wrap; max-width: 40em; }
"""


def results_html(results: Sequence[Submission], title: str = "练习检查结果 Exercise check") -> str:
    """A self-contained HTML page of the table: inline CSS, no scripts; everything from a submission is escaped."""

    def e(text: object) -> str:
        return html.escape(safe_text(text, keep_newlines=True))

    numbers = exercise_columns(results)
    head = "".join(f"<th>练习 {n}<br>exercise {n}</th>" for n in numbers)
    rows = []
    for r in results:
        cells = [f'<td>{e(r.student)}<div class="detail">{e(r.path.name)}</div></td>', f"<td>{e(r.lesson or '-')}</td>"]
        if r.problem:
            cells.append(f'<td class="problem" colspan="{len(numbers) + 1}">{e(r.problem)}</td>')
        else:
            for n in numbers:
                ex = r.exercises.get(n)
                if ex is None:
                    cells.append("<td></td>")
                elif ex.written:
                    body = f'<div class="answer">{e(ex.detail)}</div>' if ex.detail else ""
                    label = (
                        "书面回答, 老师批阅 written: read by the teacher"
                        if ex.status == WRITTEN
                        else "未作答 not answered"
                    )
                    cells.append(f'<td class="{e(ex.status.replace(" ", "-"))}">{e(label)}{body}</td>')
                else:
                    detail = f'<div class="detail">{e(ex.detail)}</div>' if ex.detail else ""
                    cells.append(f'<td class="{e(ex.status.replace(" ", "-"))}">{e(ex.status)}{detail}</td>')
            cells.append(f'<td class="detail">{e("; ".join(r.notes))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    graded = [r for r in results if not r.problem]
    totals = []
    for n in numbers:
        marked = [r.exercises[n] for r in graded if n in r.exercises]
        if marked and marked[0].written:
            totals.append(f"<td>{sum(e.status == WRITTEN for e in marked)}/{len(marked)} 已作答 answered</td>")
        else:
            totals.append(f"<td>{sum(e.status == PASSED for e in marked)}/{len(marked)} passed</td>")
    foot = f"<tfoot><tr><th>合计 total</th><td></td>{''.join(totals)}<td></td></tr></tfoot>"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="zh">',
            "<head>",
            '<meta charset="utf-8">',
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            f"<title>{e(title)}</title>",
            f"<style>{_HTML_CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{e(title)}</h1>",
            f"<p>{len(results)} 份作业 submissions。</p>",
            "<table>",
            f"<thead><tr><th>学生 student</th><th>课 lesson</th>{head}<th>备注 notes</th></tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            foot,
            "</table>",
            "</body>",
            "</html>",
            "",
        ]
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
    if executed.is_dir():
        shutil.rmtree(executed)  # from an earlier run
    for i, r in enumerate(results, 1):
        if r.executed is not None:
            safe = re.sub(r"[^\w.-]+", "_", r.student).strip("._")[:60] or "student"
            path = executed / f"{i:02d}_{safe}_{r.lesson}.ipynb"
            write_atomic(path, nbformat.writes(r.executed) + "\n")
            written.append(path)
    return written


# ------------------------------------------------------------------ command line


def main(argv: Sequence[str]) -> int:
    """``python -m helpers check``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers check",
        description="Run each submitted student notebook in its own kernel (CPU, temporary folder, time limits) "
        "and report, for every exercise, whether the teacher's check passes.",
    )
    parser.add_argument(
        "submissions",
        nargs="+",
        type=Path,
        metavar="SUBMISSION",
        help="students' notebooks, or folders of them (searched recursively)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="folder for results.csv and results.html (default: check-results/)",
    )
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=NOTEBOOKS_DIR,
        metavar="DIR",
        help="the teacher's source notebooks, whose checks are used (default: notebooks/)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="data folder the notebooks read as ../data (default: data/ next to --notebooks)",
    )
    parser.add_argument("--jobs", "-j", type=int, default=2, help="submissions checked at the same time (default: 2)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=NOTEBOOK_TIMEOUT,
        metavar="S",
        help=f"time limit per submission in seconds (default: {NOTEBOOK_TIMEOUT})",
    )
    parser.add_argument(
        "--cell-timeout",
        type=float,
        default=CELL_TIMEOUT,
        metavar="S",
        help=f"time limit for each of the student's cells and each check (default: {CELL_TIMEOUT})",
    )
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a lesson parameter, e.g. -p epochs 1 (repeatable; device is always cpu)",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run each kernel in bubblewrap: no network, everything but its temporary folder "
        "read-only, a private /tmp, its own process namespace (needs `bwrap`)",
    )
    parser.add_argument(
        "--timing", action="store_true", help="print the time of every submission and of the whole class at the end"
    )
    args = parser.parse_args(list(argv))
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show a character gets an escape, not a traceback
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
    try:
        params = {name: parse_value(value) for name, value in args.parameter}
        injected_source(params)  # plain data only
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if "device" in params:
        print("error: submissions always run on the CPU; leave out -p device", file=sys.stderr)
        return 2
    if args.data is not None and not args.data.is_dir():
        print(f"error: --data {args.data} is not a folder; give the folder that holds FashionMNIST/", file=sys.stderr)
        return 2
    if args.sandbox and sandbox.bubblewrap() is None:
        print(
            "error: --sandbox needs bubblewrap (`bwrap`); install it, e.g. apt-get install bubblewrap", file=sys.stderr
        )
        return 2
    if args.jobs < 1 or args.timeout <= 0 or args.cell_timeout <= 0:
        print("error: --jobs, --timeout and --cell-timeout must be positive", file=sys.stderr)
        return 2
    declared = set().union(*(notebook_parameters(p) for p in list_notebooks(args.notebooks)))
    unknown = sorted(set(params) - declared)
    if unknown:
        print(
            f"error: unknown parameter(s) {', '.join(unknown)}: no lesson in {args.notebooks} declares them "
            "in its parameters cell",
            file=sys.stderr,
        )
        return 2
    out = args.out.resolve()
    for folder in (p.resolve() for p in args.submissions if p.is_dir()):
        if out == folder or folder in out.parents:
            print(
                f"error: --out {safe_text(args.out)} is inside the submissions folder {safe_text(folder)}; the "
                "results would be mixed with the students' files. Choose a folder outside it, e.g. --out check-results",
                file=sys.stderr,
            )
            return 2
    try:
        check_out_dir(args.out, args.notebooks, example="--out check-results")
        files = find_submissions(args.submissions, exclude=[args.out])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not files:
        print("error: no notebooks (.ipynb) found in " + ", ".join(map(str, args.submissions)), file=sys.stderr)
        return 2

    def progress(done: int, total: int, result: Submission) -> None:
        print(
            f"[{done}/{total}] {safe_text(result.student)} ({safe_text(result.path.name)}): "
            f"{safe_text(result.summary())} ({result.seconds:.1f} s)",
            flush=True,
        )

    print(f"checking {len(files)} notebook{'s' if len(files) != 1 else ''}, {args.jobs} at a time ...", flush=True)
    finished: list = []
    interrupted = False
    class_start = time.perf_counter()
    # Ctrl-C or `kill` (SIGTERM): stop, shut the kernels down, remove the temporary folders, mark nothing in flight
    _STOPPING["now"] = False
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        check_submissions(
            files,
            args.notebooks,
            args.jobs,
            progress,
            finished,
            data_dir=args.data,
            parameters=params,
            cell_timeout=args.cell_timeout,
            notebook_timeout=args.timeout,
            use_sandbox=args.sandbox,
        )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    results = [r for r in finished if r is not None]
    if results:
        print()
        print(format_table(results))
    if args.timing and results:
        print()
        print(timing_report(results, time.perf_counter() - class_start, args.jobs))
    if interrupted:  # the previous results stay as they were: a half-checked class must not replace them
        print(
            f"\ninterrupted: {len(results)} of {len(files)} submissions were checked (shown above); nothing was "
            f"written, so {safe_text(args.out)} still holds the results of the last complete run",
            file=sys.stderr,
        )
        return 130
    try:
        written = write_results(results, args.out, args.notebooks)
    except (ValueError, OSError) as exc:
        print(f"error: the results could not be written: {exc}", file=sys.stderr)
        return 2
    print(
        f"\nwrote {written[0]} and {written[1]} (the executed notebooks, with full tracebacks, are in "
        f"{written[0].parent / 'executed'})"
    )
    broken = [r for r in results if r.problem.startswith(COULD_NOT_CHECK)]
    for r in broken:
        print(f"error: {safe_text(r.path)}: {safe_text(r.problem)}", file=sys.stderr)
    return 1 if broken else 0  # 1: the checker itself could not run a notebook (not a student's mistake)
