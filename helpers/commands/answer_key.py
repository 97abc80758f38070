"""The answer key: each lesson's trials (trials.py) run once on the teacher's own solutions, with a fresh seed.

check runs it before the class, in a kernel set up like a student's (same bootstrap,
parameters, environment and sandbox); the reused lesson cells of reuse.py load there
too. The key holds only what the teacher's solutions gave; a trial that failed on
them is announced, and that exercise's marks then rest on the check cell alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from . import reuse
from .execute import CELL_TIMEOUT, NOTEBOOK_TIMEOUT
from .plan import graded_notebook
from .submissions import PASSED, _first_line
from .trial_lessons import TRIALS
from .trials import AnswerKey, new_seed, read
from .workspace import run_in_workspace


async def answer_key(
    source_path: Path,
    memo: reuse.Memo | None,
    notebooks_dir: Path,
    data_dir: Path | None = None,
    parameters: dict[str, Any] | None = None,
    threads: int = 1,
    use_sandbox: bool = False,
    cell_timeout: float = CELL_TIMEOUT,
    notebook_timeout: float = NOTEBOOK_TIMEOUT,
) -> tuple[AnswerKey | None, list[str]]:
    """The lesson's answer key (None when the lesson has no trials) and lines about what went wrong."""
    lesson_trials = TRIALS.get(source_path.stem, {})
    if not lesson_trials:
        return None, []
    source = nbformat.read(source_path, as_version=4)
    nb, plan, exercises = graded_notebook(source, source, parameters)  # the teacher's solutions as the answers
    reuse.substitute(plan, memo)
    key = AnswerKey(new_seed(), {n: t for n, t in lesson_trials.items() if n in exercises}, {})
    found: dict[int, str | None] = {}
    # nothing else runs while the key is made, so its kernel may use every core
    threads = max(threads, os.cpu_count() or 1)
    await run_in_workspace(
        nb,
        plan,
        exercises,
        memo,
        notebooks_dir,
        data_dir,
        threads,
        use_sandbox,
        key,
        found,
        cell_timeout=cell_timeout,
        notebook_timeout=notebook_timeout,
    )
    problems = []
    for number in key.trials:
        ok, data = read(found.get(number))
        if exercises[number].status == PASSED and ok:
            key.expected[number] = data
        else:
            why = data if exercises[number].status == PASSED else exercises[number].label()
            problems.append(
                f"exercise {number}: the teacher's solution gave no answer key ({_first_line(str(why))}); "
                "its marks rest on the check cell alone"
            )
    return key, problems


async def answer_keys(
    lessons: dict[str, Path],
    memos: dict[str, reuse.Memo],
    announce: Callable[[str], None],
    notebooks_dir: Path,
    **options: Any,
) -> dict[str, AnswerKey]:
    """One answer key per lesson that has trials; a lesson whose key cannot be made is announced and left out."""
    keys = {}
    for lesson, source_path in sorted(lessons.items()):
        start = time.perf_counter()
        try:
            key, problems = await answer_key(source_path, memos.get(lesson), notebooks_dir, **options)
        except Exception as exc:
            announce(
                f"lesson {lesson}: the answer key could not be made ({type(exc).__name__}: {_first_line(exc)}); "
                "marks rest on the check cells alone"
            )
            continue
        if key is None:
            continue
        keys[lesson] = key
        announce(
            f"lesson {lesson}: answer key for {len(key.expected)} of {len(key.trials)} exercise(s) "
            f"in {time.perf_counter() - start:.1f} s (the grader's own trials on new inputs)"
        )
        for line in problems:
            announce(f"  {line}")
    return keys
