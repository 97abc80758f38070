"""Grade submissions: one notebook in a fresh workspace and kernel, and a whole class a few at a time.

grade_submission reads, validates, plans and runs one submission and never raises
for a bad one; check_submissions grades a class concurrently, stops cleanly on
Ctrl-C or SIGTERM (check.main installs the handler) and tells rows with the same student name apart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nbformat

from . import answer_key, reuse, sandbox, trials
from .classroom import is_solution
from .execute import CELL_TIMEOUT, NOTEBOOK_TIMEOUT
from .plan import graded_notebook
from .runner import NOTEBOOKS_DIR
from .submissions import (
    NOT_RUN,
    NotASubmission,
    Submission,
    _first_line,
    damaged,
    exercise_number,
    find_submissions,
    lesson_of,
    source_notebook,
    student_name,
)
from .workspace import kernel_setup, run_in_workspace

COULD_NOT_CHECK = "could not be checked"


async def grade_submission(
    path: Path,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    data_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    cell_timeout: float = CELL_TIMEOUT,
    notebook_timeout: float = NOTEBOOK_TIMEOUT,
    threads: int = 1,
    use_sandbox: bool = False,
    memos: dict[str, reuse.Memo] | None = None,
    keys: dict[str, trials.AnswerKey] | None = None,
    hidden: Sequence[Path] = (),
) -> Submission:
    """Grade one submitted notebook (see check.py's module docstring); never raises for a bad submission."""
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
        if not any(exercise_number(c) is not None and is_solution(c) for c in source.cells):
            raise NotASubmission(
                f"lesson {result.lesson} in {notebooks_dir} has no exercises tagged exercise-N, so nothing can be checked"
            )
        nb, plan, result.exercises = graded_notebook(source, student, parameters)
        memo = (memos or {}).get(result.lesson)
        reuse.substitute(plan, memo)  # the lesson's slow cells load what the reference run saved
        if any(not e.status for e in result.exercises.values()):
            result.ran = True
            key, found = (keys or {}).get(result.lesson), dict[int, str | None]()
            try:
                result.notes = await run_in_workspace(
                    nb,
                    plan,
                    result.exercises,
                    memo,
                    notebooks_dir,
                    data_dir,
                    threads,
                    use_sandbox,
                    key,
                    found,
                    hidden,
                    cell_timeout=cell_timeout,
                    notebook_timeout=notebook_timeout,
                )
            finally:
                trials.judge(result.exercises, found, key)  # here, outside the student's kernel; even after an error
        result.executed = nb
    except NotASubmission as exc:
        result.problem = str(exc)
    except Exception as exc:  # the run itself broke (e.g. no kernel could start): say so in this row
        result.problem = f"{COULD_NOT_CHECK}: {type(exc).__name__}: {_first_line(exc)}"
        for ex in result.exercises.values():  # no mark from a run that did not finish
            if not ex.written:
                ex.status, ex.detail = NOT_RUN, COULD_NOT_CHECK
    result.seconds = time.perf_counter() - start
    return result


_STOPPING = {"now": False}  # set by main's Ctrl-C/SIGTERM handler


def _stop(signum: int, frame: Any) -> None:
    _STOPPING["now"] = True
    raise KeyboardInterrupt


def _lessons(paths: list[Path], notebooks_dir: Path) -> dict[str, Path]:
    """The lessons the submissions belong to, each with its teacher's notebook (unreadable ones are left out)."""
    lessons: dict[str, Path] = {}
    for path in paths:
        try:
            lesson = lesson_of(path, nbformat.read(path, as_version=4))
            lessons.setdefault(lesson, source_notebook(lesson, notebooks_dir))
        except Exception:  # grade_submission says what is wrong with this one
            continue
    return lessons


async def _reference_runs(
    lessons: dict[str, Path],
    roots: list[Path],
    announce: Callable[[str], None],
    notebooks_dir: Path = NOTEBOOKS_DIR,
    data_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    threads: int = 1,
    use_sandbox: bool = False,
    **ignored: Any,
) -> dict[str, reuse.Memo]:
    """One reference run per lesson that has submissions (reuse.py): the slow lesson cells, saved for all of them."""
    memos = {}
    for lesson, source_path in sorted(lessons.items()):
        root = sandbox.temporary_root()  # mode 0700; the snapshots stay in it until the class is checked
        roots.append(root)
        start = time.perf_counter()
        try:
            # nothing else runs during a reference run, so its kernel may use every core
            workdir, env, wrap = kernel_setup(
                root, notebooks_dir, data_dir, max(threads, os.cpu_count() or 1), use_sandbox
            )
            source = nbformat.read(source_path, as_version=4)
            memos[lesson] = memo = await reuse.run_reference(source, parameters, root, workdir, env, wrap)
        except Exception as exc:
            announce(
                f"lesson {lesson}: the reference run failed ({type(exc).__name__}: {_first_line(exc)}); "
                "every submission runs all lesson cells (as with --no-reuse)"
            )
            continue
        announce(
            f"lesson {lesson}: reference run {time.perf_counter() - start:.1f} s; {len(memo.loaders)} slow lesson "
            f"cell(s) reused in every submission (saving about {sum(memo.seconds.values()):.1f} s each)"
        )
        for reason in memo.skipped.values():
            announce(f"  {reason}")
    return memos


TAMPERED = "the grader's saved lesson results changed while this submission ran"


async def _snapshots_intact(
    memos: dict[str, reuse.Memo] | None, result: Submission, announce: Callable[[str], None]
) -> None:
    """After a submission's kernel (and everything it started) has ended: are the reused snapshots untouched?

    Without --sandbox a student's code runs as the teacher's user and could rewrite them, which would change
    the marks of everyone checked after. A changed lesson is dropped from ``memos`` (later submissions run all
    its cells) and the submission that ran while it changed gets a note. With --jobs 1 that is the one who did it.
    """
    if not memos or not result.ran:
        return  # no kernel ran for this one
    for lesson, memo in list(memos.items()):
        if not await asyncio.to_thread(memo.intact):
            del memos[lesson]
            result.notes.append(f"{TAMPERED} (lesson {lesson}); later submissions ran every lesson cell")
            announce(f"lesson {lesson}: {TAMPERED} ({result.path}); the rest run every lesson cell (as --no-reuse)")


async def _check_all(
    paths: list[Path],
    results: list[Submission | None],
    jobs: int,
    progress: Callable,
    reuse_cells: bool = False,
    announce: Callable[[str], None] = lambda text: None,
    **options,
) -> None:
    limit = asyncio.Semaphore(max(1, jobs))
    done = 0
    roots: list[Path] = []

    async def one(i: int, path: Path) -> None:
        nonlocal done
        async with limit:
            if _STOPPING["now"]:
                return
            result = await grade_submission(path, **options)
            if _STOPPING["now"]:
                return  # stopped by Ctrl-C or kill: a submission in flight gets no (wrong) mark
            await _snapshots_intact(options.get("memos"), result, announce)
            results[i] = result
            done += 1
            progress(done, len(paths), results[i])

    try:
        lessons = _lessons(paths, options["notebooks_dir"])
        if reuse_cells:
            options["memos"] = await _reference_runs(lessons, roots, announce, **options)
        wanted = ("data_dir", "parameters", "threads", "use_sandbox", "cell_timeout", "notebook_timeout")
        options["keys"] = await answer_key.answer_keys(
            lessons,
            options.get("memos") or {},
            announce,
            options["notebooks_dir"],
            **{k: options[k] for k in wanted if k in options},
        )
        await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
    finally:
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


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
    grade_submission (data_dir, parameters, cell_timeout, notebook_timeout), but
    ``reuse_cells`` (True: run the lesson's slow cells once, see reuse.py) and
    ``announce`` (called with a line about each reference run).
    """
    files = find_submissions(paths, exclude=options.pop("exclude", ()))
    sandbox.sweep_stale_roots()  # what a check killed with SIGKILL left in the temporary folder
    # with --sandbox, no kernel sees the class's notebooks: a student could run a classmate's answers
    options.setdefault("hidden", sorted({(p if p.is_dir() else p.parent).resolve() for p in map(Path, paths)}))
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
    for r in results:  # names that look alike (full-width Ｚ and Z, composed and decomposed accents) count as the same
        by_name.setdefault((unicodedata.normalize("NFKC", r.student).casefold(), r.lesson), []).append(r)
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
