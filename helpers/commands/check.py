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
and the grader verifies afterwards that it ran to its end untampered), and then
only when the grader's trial agrees: the answer runs again on inputs made from a
seed drawn for this check, and this process compares the plain results with the
answer key that the teacher's solutions gave (trials.py, answer_key.py). Each
kernel has a private connection folder and a minimal environment, and every
process a submission started is killed when it ends (sandbox.py). This is no OS
sandbox: a student's code runs with the teacher's user rights and could still
reach any file on purpose (README, "检查学生交回的练习", says what protects and what not).

The work is split by job: submissions.py (finding, reading and validating
submissions; the marks and data classes), plan.py (the graded notebook),
execute.py (running it in a kernel), trials.py, trial_lessons.py and
answer_key.py (the grader's trials and their key), reuse.py (the lesson's slow cells, run once
per lesson and loaded in every submission), grade.py (one submission, and the class a
few at a time), report.py (table, CSV, HTML); this module is the command line
and re-exports their names.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from helpers.commands.errors import FAILED as FAILED_WORK
from helpers.commands.errors import USAGE, CommandError, reports_errors

from . import reuse, sandbox

# re-exported: every name this module held before it was split stays importable from it (tests use them)
from .execute import (  # noqa: F401
    CELL_TIMEOUT,
    NOTEBOOK_TIMEOUT,
    OUTPUT_LIMIT,
    PROBE_TIMEOUT,
    _bootstrap,
    _error_text,
    _expression,
    _responds,
    run_graded,
)
from .grade import (  # noqa: F401
    _STOPPING,
    COULD_NOT_CHECK,
    _check_all,
    _stop,
    check_submissions,
    distinguish,
    grade_submission,
)
from .plan import (  # noqa: F401
    Planned,
    graded_notebook,
    is_blank_answer,
)
from .report import (  # noqa: F401
    _cell_text,
    _width,
    exercise_columns,
    foreign_executed,
    format_table,
    results_csv,
    results_html,
    table_rows,
    timing_report,
    write_results,
)
from .runner import (
    NOTEBOOKS_DIR,
    check_notebook_parameters,
    check_out_dir,
    injected_source,
    notebook_parameters,
    parse_value,
    select_notebooks,
)
from .submissions import (  # noqa: F401
    _EXERCISE,
    _LESSON_FILE,
    FAILED,
    HANDOUT_HINT,
    KERNEL_DIED,
    MISSING,
    NOT_ANSWERED,
    NOT_ATTEMPTED,
    NOT_RUN,
    PASSED,
    TIMED_OUT,
    WRITTEN,
    Exercise,
    NotASubmission,
    Submission,
    _first_line,
    _is_answer_cell,
    _is_written_cell,
    _tags,
    damaged,
    exercise_number,
    find_submissions,
    lesson_of,
    source_notebook,
    student_name,
)
from .textsafe import safe_text

DEFAULT_OUT = Path("check-results")


@reports_errors
def main(argv: Sequence[str]) -> int:
    """``python -m helpers check``."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers check",
        allow_abbrev=False,  # --hide is not --hide-solutions: a typo is an error, not a guess
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
    parser.add_argument(
        "--no-reuse",
        action="store_true",
        help=f"run every lesson cell in every submission (default: lesson cells slower than {reuse.THRESHOLD} s that "
        "come before the first exercise run once per lesson, and every submission loads their results)",
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
        raise CommandError(str(exc), 2) from None
    if "device" in params:
        raise CommandError("submissions always run on the CPU; leave out -p device", 2)
    if args.data is not None and not args.data.is_dir():
        raise CommandError(f"--data {args.data} is not a folder; give the folder that holds FashionMNIST/", 2)
    if args.sandbox and sandbox.bubblewrap() is None:
        raise CommandError("--sandbox needs bubblewrap (`bwrap`); install it, e.g. apt-get install bubblewrap", 2)
    limits = (args.timeout, args.cell_timeout)
    if args.jobs < 1 or not all(math.isfinite(t) and t > 0 for t in limits):
        raise CommandError("--jobs, --timeout and --cell-timeout must be positive (finite) numbers", 2)
    try:
        lessons = select_notebooks(None, args.notebooks)  # a --notebooks folder that does not exist is said up front
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    declared = {}
    for lesson in lessons:
        try:
            declared[lesson] = notebook_parameters(lesson)
        except Exception as exc:  # a damaged lesson: not JSON, not a notebook, unreadable, a broken parameters cell
            raise CommandError(
                f"the lesson {safe_text(lesson)} cannot be read ({type(exc).__name__}: {_first_line(exc)}); "
                "restore it (for example with git) or take it out of --notebooks",
                2,
            ) from None
    unknown = sorted(set(params) - set().union(*declared.values()))
    if unknown:
        raise CommandError(
            f"unknown parameter(s) {', '.join(unknown)}: no lesson in {args.notebooks} declares them "
            "in its parameters cell",
            2,
        )
    try:  # the checks `run` applies: a value a lesson would refuse is refused before any kernel starts
        for lesson, names in declared.items():
            if set(names) & set(params):
                check_notebook_parameters(lesson, {k: v for k, v in params.items() if k in names})
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    out = args.out.resolve()
    for folder in (p.resolve() for p in args.submissions if p.is_dir()):
        if out == folder or folder in out.parents:
            raise CommandError(
                f"--out {safe_text(args.out)} is inside the submissions folder {safe_text(folder)}; the "
                "results would be mixed with the students' files. Choose a folder outside it, e.g. --out check-results",
                2,
            )
        if out in folder.parents:
            raise CommandError(
                f"--out {safe_text(args.out)} contains the submissions folder {safe_text(folder)}; the results "
                "would be mixed with the students' files. Choose a folder beside it, e.g. --out check-results",
                2,
            )
    foreign = foreign_executed(args.out)
    if foreign:
        raise CommandError(
            f"{safe_text(args.out / 'executed')} holds files that check did not write "
            f"({safe_text(', '.join(foreign[:5]))}); move them or choose another --out",
            2,
        )
    try:
        check_out_dir(args.out, args.notebooks, example="--out check-results")
        files = find_submissions(args.submissions, exclude=[args.out])
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    if not files:
        raise CommandError("no notebooks (.ipynb) found in " + ", ".join(map(str, args.submissions)), 2)

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
            reuse_cells=not args.no_reuse,
            announce=lambda line: print(safe_text(line), flush=True),
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
    except (ValueError, OSError) as exc:  # ValueError: the --out path cannot be used; OSError: the disk said no
        code = USAGE if isinstance(exc, ValueError) else FAILED_WORK
        raise CommandError(f"the results could not be written: {exc}", code) from None
    print(
        f"\nwrote {written[0]} and {written[1]} (the executed notebooks, with full tracebacks, are in "
        f"{written[0].parent / 'executed'})"
    )
    broken = [r for r in results if r.problem.startswith(COULD_NOT_CHECK)]
    for r in broken:
        print(f"error: {safe_text(r.path)}: {safe_text(r.problem)}", file=sys.stderr)
    return 1 if broken else 0  # 1: the checker itself could not run a notebook (not a student's mistake)
