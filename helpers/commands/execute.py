"""Execute one graded notebook in its own kernel, cell by cell, and mark its exercises.

run_graded runs the planned cells with time and output limits, lets the grader
(grading.py) restore the pristine state before each check and verify it afterwards,
and turns errors, time-outs and a dead kernel into marks.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import nbformat

from . import grading, sandbox, trials
from .plan import Planned
from .runner import _kernel_manager_class
from .submissions import FAILED, KERNEL_DIED, NOT_RUN, PASSED, TIMED_OUT, Exercise, _first_line, _tags

CELL_TIMEOUT = 120  # seconds for one of the student's cells or a check cell (07's exercise trains a little)
NOTEBOOK_TIMEOUT = 900  # seconds for a whole submission (lesson 06 takes about 6 minutes on a busy 2-core machine)
OUTPUT_LIMIT = 5_000_000  # characters of output kept per cell; past it the cell is stopped ("output too large")
PROBE_TIMEOUT = 15  # seconds a kernel may take to answer again after an interrupted cell


def _error_text(reply: dict[str, Any]) -> str:
    ename, evalue = _first_line(reply.get("ename", "Error"), 100), _first_line(reply.get("evalue", ""))
    return f"{ename}: {evalue}" if evalue else ename


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
    key: trials.AnswerKey | None = None,
    found: dict[int, str | None] | None = None,
) -> list[str]:
    """Execute the graded notebook cell by cell and mark ``exercises``; return notes on lesson cells that failed.

    With ``key``, each exercise whose check passes also runs its trial (trials.py); the trial's
    JSON text goes into ``found`` for the grader to compare with the key.
    """
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
                        if key is not None and step.exercise in key.trials and found is not None:
                            found[step.exercise] = await _trial(client, key, step.exercise, plan)
                            if found[step.exercise] is None and not await _responds(client, errors):
                                give_up(
                                    NOT_RUN,
                                    f"the kernel stopped answering after the grader's trial of exercise {step.exercise}",
                                )
                                break
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
    cell = nbformat.v4.new_code_cell(grading.BOOTSTRAP + trials.KERNEL_SIDE)
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


async def _trial(client: Any, key: trials.AnswerKey, number: int, plan: list[Planned]) -> str | None:
    """Run exercise ``number``'s trial in the kernel; its JSON text, or None (then the kernel was interrupted)."""
    answers = [p.cell.source for p in plan if p.role == "answer" and p.exercise == number]
    text = await _expression(client, trials.expression(key.trials[number], key.seed, answers), trials.TRIAL_TIMEOUT)
    if text is None:
        await client.km.interrupt_kernel()
    return text


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
