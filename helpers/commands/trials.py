"""The grader's own trials: a verdict on each answer that the student's interpreter does not decide.

A check cell runs in the kernel where the student's code ran, and grading.py's
hardening of it is not a proof (CPython cannot isolate code in one interpreter).
So after a check passes there, the grader runs a *trial*: a few lines of the
teacher's code (trial_lessons.py) that call the student's function, class or answer
on new inputs made from a seed nobody knew before the class was checked, and turn
the results into plain data (numbers, strings, lists, tensors as shape and values).
The data leave the kernel as JSON text. The same trial with the same seed runs once
on the teacher's own solutions (the answer key, grade.py), and this process, not
the kernel, compares the two. Code in the student's kernel can still make the
trial say anything, but to match the key it must compute the right results for
inputs it could not predict: that is, answer the exercise.

What a trial cannot see (a rule such as "without torch.cat", checked by the check
cell) stays with the hardened check cell.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass
from typing import Any

from . import grading
from .submissions import FAILED, PASSED, Exercise, _first_line

TRIAL_TIMEOUT = 60  # seconds one trial may take in the kernel
_MAX_TEXT = 20_000_000  # characters of JSON accepted from a kernel


@dataclass(frozen=True)
class Trial:
    """Kernel-side code that sets ``result`` from the student's objects; ``SEED`` and ``run_answer`` are given.

    ``run_answer(**inputs)`` runs the exercise's answer cells again, one by one, with ``inputs``
    bound as globals (for answers that are statements, not functions); afterwards every
    name of the notebook is bound as before.
    """

    code: str
    rtol: float = 1e-5
    atol: float = 1e-6


def new_seed() -> int:
    return secrets.randbelow(2**31)


# runs in every graded kernel right after grading.BOOTSTRAP; adds ``trial`` to the grader's module
KERNEL_SIDE = r"""
def __helpers_trials_install():
    import contextlib, io, json, random, sys
    import numpy, torch
    from IPython import get_ipython

    shell = get_ipython()
    module = sys.modules["_helpers_grader"]
    Tensor, ndarray = torch.Tensor, numpy.ndarray

    def plain(value, left, depth=0):
        if depth > 20:
            raise ValueError("the result is nested too deeply")
        left[0] -= 1
        if left[0] < 0:
            raise ValueError("the result is too large")
        if value is None or isinstance(value, (bool, numpy.bool_)):
            return None if value is None else bool(value)
        if isinstance(value, (int, numpy.integer)):
            return int(value)
        if isinstance(value, (float, numpy.floating)):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (Tensor, ndarray)):
            if isinstance(value, Tensor):
                with torch._C.DisableTorchFunctionSubclass():
                    t = value.detach().to("cpu")
                    kind = "float" if t.is_floating_point() else "bool" if t.dtype == torch.bool else "int"
                    shape, values = list(t.shape), t.to(torch.float64).flatten().tolist()
                name, dtype = "tensor", str(t.dtype).replace("torch.", "")
            else:
                kind = "float" if value.dtype.kind == "f" else "bool" if value.dtype.kind == "b" else "int"
                shape, values, name = list(value.shape), numpy.asarray(value, dtype=numpy.float64).ravel().tolist(), "ndarray"
                dtype = str(value.dtype)
            left[0] -= len(values)
            if left[0] < 0:
                raise ValueError("the result is too large")
            return {name: shape, "kind": kind, "dtype": dtype, "values": values}
        if isinstance(value, (list, tuple)):
            return [plain(v, left, depth + 1) for v in value]
        if isinstance(value, dict):
            return {"dict": [[plain(k, left, depth + 1), plain(v, left, depth + 1)] for k, v in value.items()]}
        return {"object": type(value).__module__ + "." + type(value).__qualname__}

    def trial(code, seed, answers):
        ns = dict(shell.user_ns)
        ns["SEED"] = seed

        def run_answer(**inputs):
            # as a cell of the notebook (magics included), then every name is put back as it was
            saved = dict(shell.user_ns)
            shell.user_ns.update(inputs)
            try:
                for answer in answers:  # cell by cell, as in the notebook
                    shell.run_cell(answer, store_history=False, silent=True).raise_error()
                ns.update(shell.user_ns)
            finally:
                shell.user_ns.clear()
                shell.user_ns.update(saved)

        ns["run_answer"] = run_answer
        state = random.getstate(), numpy.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                exec(compile(code, "<grader trial>", "exec"), ns)
                data = {"ok": plain(ns["result"], [2_000_000])}
        except BaseException as exc:  # the student's code may raise anything, even SystemExit
            try:
                data = {"error": (type(exc).__name__ + ": " + str(exc))[:300]}
            except BaseException:
                data = {"error": "an error that cannot be shown"}
        finally:
            random.setstate(state[0])
            numpy.random.set_state(state[1])
        return json.dumps(data)

    module.trial = trial


__helpers_trials_install()
del __helpers_trials_install
"""


def expression(trial: Trial, seed: int, answers: list[str]) -> str:
    """The user expression that runs ``trial`` in the kernel (no input transformers run on it).

    ``answers``: the sources of the exercise's answer cells, for run_answer.
    """
    return f"{grading._GET}.trial({trial.code!r}, {int(seed)}, {[str(a) for a in answers]!r})"


def read(text: str | None) -> tuple[bool, Any]:
    """(True, data) from a trial's JSON text, or (False, why not)."""
    if text is None:
        return False, "it did not finish or gave no answer"
    if len(text) > _MAX_TEXT:
        return False, "its result is too large"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError, MemoryError):  # not JSON, or nested too deeply
        return False, "its result could not be read"
    if isinstance(data, dict) and "ok" in data:
        return True, data["ok"]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return False, data["error"]
    return False, "its result could not be read"


def _close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    if isinstance(a, bool) or not isinstance(a, (int, float)):
        return False
    try:
        a, b = float(a), float(b)
    except OverflowError:  # an int with hundreds of digits
        return False
    if math.isnan(b) or math.isnan(a):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(b) or math.isinf(a):
        return a == b
    return abs(a - b) <= atol + rtol * abs(b)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        for kind in ("tensor", "ndarray"):
            if kind in value:
                return f"a {kind} of shape {value[kind]}"
        if "object" in value:
            return f"an object of type {str(value['object'])[:60]}"
        return "a dict"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)[:60]


def difference(got: Any, want: Any, rtol: float, atol: float, path: str = "result") -> str | None:
    """Where ``got`` (from the student's kernel) differs from ``want`` (the key); None when they agree."""
    if isinstance(want, dict):
        kind = next((k for k in ("tensor", "ndarray", "dict", "object") if k in want), "")
        if not isinstance(got, dict) or kind not in got:
            return f"{path}: expected {_show(want)}, got {_show(got)}"
        if kind in ("tensor", "ndarray"):
            if got[kind] != want[kind] or got.get("dtype") != want.get("dtype"):
                return f"{path}: expected {want.get('dtype')} {_show(want)}, got {got.get('dtype')} {_show(got)}"
            values, expected = got.get("values"), want["values"]
            if not isinstance(values, list) or len(values) != len(expected):
                return f"{path}: its values could not be read"
            for i, (a, b) in enumerate(zip(values, expected)):
                if not _close(a, b, rtol, atol):
                    return f"{path}, element {i} (flattened): got {_show(a)}, expected {_show(b)}"
            return None
        if kind == "object":
            return None if got == want else f"{path}: expected {_show(want)}, got {_show(got)}"
        got, want, path = got["dict"], want["dict"], f"{path} (as key, value pairs)"
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{path}: expected {_show(want)}, got {_show(got)}"
        for i, (a, b) in enumerate(zip(got, want)):
            found = difference(a, b, rtol, atol, f"{path}[{i}]")
            if found:
                return found
        return None
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return None if _close(got, float(want), rtol, atol) else f"{path}: got {_show(got)}, expected {_show(want)}"
    return None if type(got) is type(want) and got == want else f"{path}: got {_show(got)}, expected {_show(want)}"


@dataclass
class AnswerKey:
    """One lesson's trials, their seed and what the teacher's solutions gave (None where the key has no result)."""

    seed: int
    trials: dict[int, Trial]
    expected: dict[int, Any]


def judge(exercises: dict[int, Exercise], found: dict[int, str | None], key: AnswerKey | None) -> None:
    """Turn a check that passed inside the kernel into FAILED where the trial does not match the key."""
    if key is None:
        return
    for number, trial in key.trials.items():
        ex = exercises.get(number)
        if ex is None or ex.status != PASSED or number not in key.expected:
            continue
        try:
            ok, data = read(found.get(number))
            where = difference(data, key.expected[number], trial.rtol, trial.atol) if ok else None
        except Exception as exc:  # whatever the kernel sent, it is no result and no mark for it
            ok, data = False, f"its result could not be compared ({type(exc).__name__})"
        if not ok:
            ex.status, ex.detail = (
                FAILED,
                _first_line(f"check: the grader's own trial on new inputs failed: {data}", 300),
            )
        elif where:
            ex.status = FAILED
            ex.detail = _first_line(f"check: on the grader's new inputs the answer is not right ({where})", 300)
