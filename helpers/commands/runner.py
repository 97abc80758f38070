"""Run the whole series (papermill) and regenerate the stored outputs (refresh)."""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import keyword
import math
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import nbformat

from ..files import atomic_write

REPO_ROOT = Path(__file__).resolve().parents[2]  # helpers/commands/runner.py -> the repository
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUT = REPO_ROOT / "runs"
IGNORE_TAG = "nbval-ignore-output"


def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Return the series' notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb") if p.is_file())


def select_notebooks(only: Sequence[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Pick notebooks by number ("3", "03") or file name; all of them when ``only`` is empty.

    Raises ValueError for a folder that does not exist or holds no notebooks, and
    for a key that matches none of them.
    """
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ValueError(f"the notebooks folder {folder} {what}; check the --notebooks path")
    notebooks = list_notebooks(folder)
    if not notebooks:
        raise ValueError(f"no notebooks (NN_name.ipynb) found in {folder}; check the --notebooks path")
    if not only:
        return notebooks
    chosen: list[Path] = []
    for key in only:
        key = key.strip()
        matches = [
            p for p in notebooks if (key.isdigit() and p.name[:2] == key.zfill(2)) or p.name == key or p.stem == key
        ]
        if not matches:
            names = ", ".join(p.name[:2] for p in notebooks)
            raise ValueError(f"no notebook {key!r}; choose from: {names}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def check_out_dir(out_dir: Path, notebooks_dir: Path = NOTEBOOKS_DIR, example: str = "--out student") -> Path:
    """Resolve ``out_dir``; refuse a folder inside the source notebooks' folder, a file, or a folder we cannot write.

    ``run``, ``student`` and ``html`` all check their ``--out`` here. Symbolic
    links and ``..`` are resolved first, so no spelling of the source folder gets through.
    """
    out, sources = Path(out_dir).resolve(), Path(notebooks_dir).resolve()
    if out == sources or sources in out.parents:
        raise ValueError(
            f"--out {out_dir} is inside the source folder {sources.name}/; the sources must stay as they are. "
            f"Choose a folder next to it instead, e.g. {example}"
        )
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"--out {out_dir} cannot be a folder: {existing} is a file; choose another name, e.g. {example}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"--out {out_dir} cannot be written: {existing} is read-only for you; "
            f"choose a folder you can write to, e.g. {example}"
        )
    return out


def make_out_dir(out: Path) -> Path:
    """Create ``out`` (and its parents); turn a failure into one clear ValueError."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"cannot create the output folder {out}: {exc.strerror or exc}; choose a folder you can write to"
        ) from None
    return out


PLAIN_VALUES = "a number, true/false, None, a string, or a list or dict (with string keys) of those"


def parse_value(text: str) -> Any:
    """Turn a command-line value into a Python value: numbers, True/False/None, lists and dicts, else the string.

    Anything else a Python literal can spell (a tuple, a set, bytes, a complex
    number, nan or infinity) is refused with ValueError: a parameter is data.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    problem = _plain_problem(value)
    if problem:
        raise ValueError(
            f"{_shown(text)} {problem}; a parameter can only be {PLAIN_VALUES} "
            "(put quotes around text to pass it as a string)"
        )
    return value


def check_parameter_value(name: str, value: Any) -> Any:
    """Return ``value`` if it is plain data a notebook can receive; else raise ValueError.

    Plain data: None, booleans, integers, finite floats, strings, and lists and
    dicts (with string keys) of those. Papermill writes parameters into the
    notebook as code, so nothing else may reach it.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"parameter name {name!r} is not a Python name; use letters, digits and _ only")
    problem = _plain_problem(value)
    if problem:
        raise ValueError(f"parameter {name} {problem}; a parameter can only be {PLAIN_VALUES}")
    return value


def _plain_problem(value: Any, depth: int = 0) -> str | None:
    """What keeps ``value`` from being plain data, or None."""
    if depth > 20:
        return "is nested more than 20 levels deep"
    if value is None or type(value) in (bool, int, str):
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"is {value!r}, not a finite number"
    if type(value) is list:
        return next((p for p in (_plain_problem(v, depth + 1) for v in value) if p), None)
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"has the dict key {_shown(key)}, which is not a string"
            problem = _plain_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"holds a value of type {type(value).__name__}" if depth else f"is of type {type(value).__name__}"


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types all the way down (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    return a == b


def injected_source(parameters: dict[str, Any], language: str = "python") -> str:
    """The code papermill puts into the notebook for ``parameters``, checked to assign exactly these values.

    Raises ValueError for a value that is not plain data or that papermill would
    not write back as exactly itself, so no parameter can ever become code.
    """
    from papermill.translators import PythonTranslator, papermill_translators, translate_parameters

    for name, value in parameters.items():
        check_parameter_value(name, value)
    try:
        translator = papermill_translators.find_translator("python3", language)
    except Exception:
        translator = None
    if parameters and not (isinstance(translator, type) and issubclass(translator, PythonTranslator)):
        raise ValueError(f"the notebook's language is {language!r}; only Python notebooks take parameters here")
    try:
        source = translate_parameters("python3", language, parameters, "Parameters")
        tree = ast.parse(source)
        assigned = []
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                raise ValueError("not a plain assignment")
            assigned.append((node.targets[0].id, ast.literal_eval(node.value)))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        assigned = None
    if assigned is None or [n for n, _ in assigned] != list(parameters):
        raise ValueError(
            f"the parameters {', '.join(parameters)} cannot be written into the notebook as plain "
            f"data; give {PLAIN_VALUES}"
        )
    for name, value in assigned:
        if not _same_value(value, parameters[name]):
            raise ValueError(
                f"parameter {name} would not reach the notebook as exactly {_shown(parameters[name])}; "
                f"give {PLAIN_VALUES}"
            )
    return source


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _code_cells(path: Path) -> tuple[str, str]:
    """The source of the ``parameters`` cell and of the code cell after it (the setup cell); "" when absent."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        if "parameters" in cell.metadata.get("tags", []):
            return cell.source, (code[i + 1].source if i + 1 < len(code) else "")
    return "", ""


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    return {name: value for name, (value, _) in _declared(path).items()}


def _declared(path: Path) -> dict[str, tuple[Any, bool]]:
    """name -> (default, whether the default is a literal) from the ``parameters`` cell."""
    source, _ = _code_cells(path)
    values: dict[str, tuple[Any, bool]] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(
            f"{path.name}: the parameters cell is not valid Python ({exc.msg}, line {exc.lineno}); fix it first"
        ) from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = (ast.literal_eval(node.value), True)
            except ValueError:
                values[node.targets[0].id] = (ast.unparse(node.value), False)
    return values


_KINDS = {"int": int, "float": float, "str": str, "bool": bool}


def _kind_of(default: Any) -> tuple[type, str] | None:
    """The type a parameter's value must have, judged by its default, and how to name it."""
    if isinstance(default, bool):
        return bool, "true or false"
    if isinstance(default, int):
        return int, "an integer"
    if isinstance(default, float):
        return float, "a number"
    if isinstance(default, str):
        return str, "a string"
    if isinstance(default, list):
        return list, "a list"
    if isinstance(default, dict):
        return dict, "a dict"
    return None  # None or anything else: any plain value


def check_notebook_parameters(path: Path, parameters: dict[str, Any]) -> None:
    """Raise ValueError if a value for ``path`` is of another type than the default or fails the setup cell's checks.

    The setup cell (the code cell after ``parameters``) is read, never run: each
    ``helpers.check_parameter("name", name, kind, minimum=..., maximum=...)``
    with literal arguments (also inside ``for name in ("a", "b"):`` with
    ``globals()[name]``), and the seed given to ``helpers.setup(device, seed)``,
    is applied here, so a bad value is refused before any notebook runs. Checks
    written any other way still run in the notebook itself.
    """
    declared = _declared(path)
    values = {name: default for name, (default, _) in declared.items()}
    values.update({k: v for k, v in parameters.items() if k in declared})
    for name, value in parameters.items():
        if name not in declared or not declared[name][1]:
            continue
        kind = _kind_of(declared[name][0])
        if kind is None:
            continue
        wanted, noun = kind
        ok = isinstance(value, wanted) and not (wanted in (int, float) and isinstance(value, bool))
        if wanted is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            hint = " (to pass text that looks like a number, quote it: -p NAME \"'text'\")" if wanted is str else ""
            raise ValueError(
                f"{path.name}: parameter {name} must be {noun}, like its default "
                f"{declared[name][0]!r}; got {_shown(value)}{hint}"
            )
    from ..params import check_parameter  # imports torch: not at module level, so --help starts fast

    _, setup_source = _code_cells(path)
    for name, check_kind, minimum, maximum, allow in _setup_checks(setup_source, values):
        try:
            check_parameter(name, values[name], check_kind, minimum=minimum, maximum=maximum, allow_nonfinite=allow)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None


class _Unknown(Exception):
    """A check the runner cannot read without running code: left to the notebook."""


def _number(node: ast.AST, values: dict[str, Any]) -> Any:
    """Evaluate a small arithmetic expression of literals and parameter names, without running code."""
    if isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (int, float, bool)):
        return node.value
    if isinstance(node, ast.Name) and node.id in values and type(values[node.id]) in (int, float):
        return values[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand, values)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _number(node.left, values), _number(node.right, values)
        if isinstance(node.op, ast.Pow) and (abs(right) > 128 or abs(left) > 2**64):
            raise _Unknown
        operations = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
            ast.Div: lambda a, b: a / b,
            ast.FloorDiv: lambda a, b: a // b,
            ast.Pow: lambda a, b: a**b,
        }
        if type(node.op) in operations:
            try:
                return operations[type(node.op)](left, right)
            except (ArithmeticError, ValueError, TypeError):
                raise _Unknown from None
    raise _Unknown


def _setup_checks(source: str, values: dict[str, Any]) -> Iterator[tuple[str, type, Any, Any, bool]]:
    """(name, kind, minimum, maximum, allow_nonfinite) for each parameter check the setup cell makes."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return
    for node in tree.body:
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, (ast.Tuple, ast.List))
        ):
            names = [e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(names) != len(node.iter.elts):
                continue
            for name in names:
                for statement in node.body:
                    yield from _check_call(statement, values, {node.target.id: name})
        else:
            yield from _check_call(node, values, {})


def _check_call(node: ast.AST, values: dict[str, Any], loop: dict[str, str]) -> Iterator[tuple]:
    call = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if not isinstance(call, ast.Call):
        return
    function = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if function == "setup":  # helpers.setup(device, seed): the seed must suit seed_everything()
        seed = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "seed"), None)
        if isinstance(seed, ast.Name) and seed.id in values:
            yield seed.id, int, 0, 2**32 - 1, False
        return
    if function != "check_parameter" or len(call.args) < 2:
        return
    first, second = call.args[0], call.args[1]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        name = first.value
    elif isinstance(first, ast.Name) and first.id in loop:
        name = loop[first.id]
    else:
        return
    is_itself = isinstance(second, ast.Name) and second.id == name
    is_lookup = (
        isinstance(second, ast.Subscript)
        and isinstance(second.value, ast.Call)
        and getattr(second.value.func, "id", None) == "globals"
    )
    if name not in values or not (is_itself or is_lookup):
        return
    arguments = dict(zip(("kind", "minimum", "maximum", "allow_nonfinite"), call.args[2:]))
    arguments.update({k.arg: k.value for k in call.keywords if k.arg})
    kind_node = arguments.get("kind")
    kind = int if kind_node is None else _KINDS.get(getattr(kind_node, "id", ""))
    try:
        if kind is None:
            raise _Unknown
        bounds = [_number(arguments[k], values) if k in arguments else None for k in ("minimum", "maximum")]
        allow = bool(_number(arguments["allow_nonfinite"], values)) if "allow_nonfinite" in arguments else False
    except _Unknown:
        return
    yield name, kind, bounds[0], bounds[1], allow


def _kernel_manager_class(log: IO | None = None, started: list | None = None):
    """Kernel manager for executing notebooks.

    Local IPC sockets on POSIX (no TCP, no warning about it). The kernel's own
    stdout and stderr (its log, such as the "KeyboardInterrupt caught in kernel"
    line jupyter_client's shutdown provokes) go to ``log`` instead of the
    terminal; what the cells print still reaches the notebook. Each manager that
    launches a kernel is appended to ``started``, so an interrupted run can stop it.
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class QuietKernelManager(AsyncKernelManager):
        if os.name == "posix":

            @default("transport")
            def _default_transport(self):
                return "ipc"

            @default("ip")
            def _default_ip(self):  # absolute, so the kernel's working folder does not matter
                return os.path.join(tempfile.gettempdir(), f"kernel-{uuid.uuid4().hex[:12]}-ipc")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log is not None:
                kw["stdout"] = kw["stderr"] = log
            if started is not None:
                started.append(self)
            await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def _stop_kernels(managers: Sequence[Any]) -> None:
    """Kill the kernels of ``managers`` that still run and remove their connection and socket files."""
    for km in managers:
        process = getattr(getattr(km, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(10)
        for cleanup in ("cleanup_connection_file", "cleanup_ipc_files"):
            with contextlib.suppress(Exception):
                getattr(km, cleanup)()


class _Interrupts:
    """Whether Ctrl-C (SIGINT) arrived while this was active; the usual KeyboardInterrupt is still raised."""

    def __init__(self) -> None:
        self.hit = False


@contextlib.contextmanager
def _watch_interrupts() -> Iterator[_Interrupts]:
    """Record Ctrl-C, so an error that a half-stopped kernel client raises instead is known for what it is."""
    state = _Interrupts()
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(previous):
        yield state  # signals go to the main thread only; an ignored SIGINT stays ignored
        return

    def handler(signum, frame):
        state.hit = True
        previous(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_abandoned_tasks() -> None:
    """After Ctrl-C, drop asyncio's reports about the kernel client's abandoned tasks.

    Ctrl-C stops whichever of the client's tasks was running; the others are left
    behind and end with errors nobody reads (``DeadKernelError`` once the kernel is
    stopped), which asyncio would print at exit as "Task exception was never
    retrieved" with a traceback, after the one-line message. Other reports still print.
    """
    import asyncio

    with contextlib.suppress(Exception):
        from jupyter_core.utils import ensure_event_loop

        loop = ensure_event_loop()
        previous = loop.get_exception_handler()

        def handler(loop, context):
            if isinstance(context.get("future"), asyncio.Future) and "never retrieved" in context.get("message", ""):
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)


def _log_tail(log: IO, lines: int = 5) -> str:
    with contextlib.suppress(Exception):
        log.flush()
        log.seek(0)
        text = log.read().decode("utf-8", errors="replace").strip()
        return "\n".join(text.splitlines()[-lines:])
    return ""


@dataclass
class RunResult:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    device: str
    output: Path | None = None
    error: str = ""
    parameters: dict = field(default_factory=dict)


def run_notebook(
    path: Path,
    out_dir: Path,
    parameters: dict[str, Any] | None = None,
    progress_bar: bool = True,
) -> RunResult:
    """Execute one notebook with papermill into ``out_dir``; never touches the source file.

    Only plain data reaches the notebook (see injected_source). The executed
    notebook is written under a temporary name and renamed when the run ends, so
    an interrupted run (KeyboardInterrupt, which is re-raised after the kernel is
    stopped) never leaves a half-written notebook where a finished one belongs.
    """
    import papermill as pm
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillExecutionError

    declared = notebook_parameters(path)
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    language = papermill_engines.nb_language(None, nbformat.read(path, as_version=4))
    injected_source(params, language)  # raises ValueError for anything that is not plain data
    device = str(params.get("device", declared.get("device", "-")))
    out = make_out_dir(check_out_dir(out_dir, path.parent, example="--out runs"))
    output = out / path.name
    partial = out / f".{path.stem}.{uuid.uuid4().hex[:8]}.partial.ipynb"
    started: list = []
    start = time.perf_counter()
    error = ""
    with tempfile.TemporaryFile() as log, _watch_interrupts() as interrupts:
        try:
            pm.execute_notebook(
                str(path),
                str(partial),
                parameters=params,
                cwd=str(path.parent),
                progress_bar=progress_bar,
                kernel_name="python3",
                kernel_manager_class=_kernel_manager_class(log, started),
            )
            status = "ok"
        except BaseException as exc:
            if interrupts.hit or not isinstance(exc, Exception):  # Ctrl-C, however the kernel client reported it
                _stop_kernels(started)
                _quiet_abandoned_tasks()
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
                if isinstance(exc, Exception):
                    raise KeyboardInterrupt from None
                raise
            status = "failed"
            if isinstance(exc, PapermillExecutionError):
                error = f"{_describe_cell(partial, exc.exec_count)}: {exc.ename}: {exc.evalue}"
            else:  # kernel died, bad notebook, ...
                error = f"{type(exc).__name__}: {exc}"
                tail = _log_tail(log)
                error += f"\nthe kernel's last words:\n{tail}" if tail else ""
        finally:
            _stop_kernels([km for km in started if getattr(km, "has_kernel", False)])
    seconds = time.perf_counter() - start
    if partial.exists():
        os.replace(partial, output)
    elif output.exists():
        output.unlink()  # a stale result from an earlier run must not pass for this one
    return RunResult(path.name, status, seconds, device, output if output.exists() else None, error, params)


def _describe_cell(executed: Path, exec_count: int | None) -> str:
    """Name a failed cell as the reader sees it in the source: 'code cell N (first line)'."""
    try:
        cells = [
            c
            for c in nbformat.read(executed, as_version=4).cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])
        ]
    except Exception:
        return f"the cell with execution count {exec_count}"
    for number, cell in enumerate(cells, 1):
        if cell.get("execution_count") == exec_count:
            first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            return f"code cell {number} ({first_line[:60]!r})"
    return f"the cell with execution count {exec_count}"


def format_table(results: Sequence[RunResult]) -> str:
    """A plain-text table: notebook, status, seconds, device."""
    rows = [("notebook", "status", "seconds", "device")]
    rows += [(r.notebook, r.status, f"{r.seconds:.1f}", r.device) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(cell.ljust(widths[i]) if i != 2 else cell.rjust(widths[i]) for i, cell in enumerate(row))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped run_series: ``results`` holds the notebooks that finished, ``stopped`` the one that did not."""

    def __init__(self, results: list[RunResult], stopped: str):
        super().__init__(f"interrupted during {stopped}")
        self.results, self.stopped = results, stopped


def run_series(
    device: str = "auto",
    only: Sequence[str] | None = None,
    parameters: dict[str, Any] | None = None,
    out_dir: Path = DEFAULT_OUT,
    progress_bar: bool = True,
    echo=print,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> list[RunResult]:
    """Run the selected notebooks in order, each with ``device`` and the given parameters.

    Everything is checked before the first notebook starts: the device, the
    notebooks, the output folder, and every parameter of every notebook (plain
    data, the default's type, the setup cell's checks). Ctrl-C raises
    RunInterrupted, which says what had finished.
    """
    from ..device import get_device

    resolved = get_device(device)  # fail before any notebook starts: unknown or unavailable device
    notebooks = select_notebooks(only, notebooks_dir)
    params = dict(parameters or {})
    params["device"] = device
    for name, value in params.items():
        check_parameter_value(name, value)
    unknown = set(params) - set().union(*(notebook_parameters(p) for p in notebooks))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}: no selected notebook declares them "
            "in its parameters cell (see the README's parameter table)"
        )
    for path in notebooks:
        declared = notebook_parameters(path)
        mine = {k: v for k, v in params.items() if k in declared}
        injected_source(mine)
        check_notebook_parameters(path, mine)
    out = make_out_dir(check_out_dir(out_dir, notebooks_dir, example="--out runs"))
    results: list[RunResult] = []
    for i, path in enumerate(notebooks, 1):
        echo(f"[{i}/{len(notebooks)}] {path.name}", flush=True)
        try:
            result = run_notebook(path, out, params, progress_bar=progress_bar)
        except KeyboardInterrupt:
            raise RunInterrupted(results, path.name) from None
        result.device = str(resolved)  # "auto" shown as what it picked, e.g. cuda:0 or cpu
        echo(
            f"      {result.status} in {result.seconds:.1f} s" + (f" - {result.error}" if result.error else ""),
            flush=True,
        )
        results.append(result)
    return results


_KERNEL_METADATA: dict[str, dict] = {}


def kernel_metadata(kernel_name: str = "python3") -> dict:
    """The notebook metadata JupyterLab writes when it starts ``kernel_name``: stored the same, a lesson opens clean.

    JupyterLab sets ``kernelspec`` to the spec's name, display_name and language,
    and ``language_info`` to what the kernel reports in its kernel_info_reply; a
    notebook whose stored values differ is marked modified as soon as its kernel
    starts. So both are asked from a real kernel (once per process).
    """
    if kernel_name not in _KERNEL_METADATA:
        import subprocess

        from jupyter_client.manager import start_new_kernel

        km, kc = start_new_kernel(kernel_name=kernel_name, startup_timeout=120, stderr=subprocess.DEVNULL)
        try:
            reply = kc.kernel_info(reply=True, timeout=60)
            language_info = reply["content"]["language_info"]
            spec = km.kernel_spec
            if spec is None:
                raise RuntimeError(
                    f"the kernel {kernel_name!r} has no kernel spec; install ipykernel in this environment"
                )
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        _KERNEL_METADATA[kernel_name] = {
            "kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": kernel_name},
            "language_info": dict(language_info),
        }
    return copy.deepcopy(_KERNEL_METADATA[kernel_name])


def apply_kernel_metadata(path: Path, metadata: dict | None = None) -> bool:
    """Set only ``path``'s notebook-level metadata to ``metadata`` (default: kernel_metadata()); True if it changed.

    Cells and outputs are read fresh and written back untouched, in one step.
    """
    nb = nbformat.read(path, as_version=4)
    new = nbformat.NotebookNode(copy.deepcopy(metadata if metadata is not None else kernel_metadata()))
    if nb.metadata == new:
        return False
    nb.metadata = new
    nbformat.validate(nb)
    with atomic_write(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return True


def _clean_metadata(nb: nbformat.NotebookNode, metadata: dict | None = None) -> nbformat.NotebookNode:
    """Keep only what a reader needs: tags in cells; in the notebook, what JupyterLab writes (kernel_metadata)."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            for out in cell.outputs:
                if "metadata" in out:
                    out.metadata = nbformat.NotebookNode({})
    nb.metadata = nbformat.NotebookNode(copy.deepcopy(metadata if metadata is not None else kernel_metadata()))
    return nb


def _without_ignored_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and IGNORE_TAG in cell.metadata.get("tags", []):
            cell.outputs = []
    return nb


def _execute(client: Any) -> None:
    """NotebookClient.execute() without the SIGINT handler it installs, so Ctrl-C arrives as KeyboardInterrupt.

    (nbclient's handler quietly shuts the kernel down, and the run then fails
    with an unrelated error.) papermill runs its cells the same way.
    """
    client.reset_execution_trackers()
    with client.setup_kernel():
        for index, cell in enumerate(client.nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        client.set_widgets_metadata()


def refresh_notebook(path: Path, timeout: int = 1200) -> str:
    """Re-execute a source notebook in place on the CPU with its default parameters.

    Returns "updated", "unchanged", or "kept" (only outputs of cells tagged
    nbval-ignore-output, such as timings, changed, so the stored file is kept to
    avoid churn). The file is replaced in one step only after every cell ran; a
    failure or Ctrl-C (KeyboardInterrupt, after the kernel is stopped) leaves it as it was.
    """
    from nbclient import NotebookClient

    old = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(old)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    started: list = []
    with tempfile.TemporaryFile() as log, _watch_interrupts() as interrupts:
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,
            coalesce_streams=True,  # one print may arrive in several messages under load
            kernel_manager_class=_kernel_manager_class(log, started),
        )
        try:
            _execute(client)
        except BaseException as exc:
            if interrupts.hit or not isinstance(exc, Exception):
                _quiet_abandoned_tasks()
            if interrupts.hit and isinstance(exc, Exception):
                raise KeyboardInterrupt from None  # however the half-stopped client reported Ctrl-C
            raise
        finally:
            _stop_kernels([km for km in started if getattr(km, "has_kernel", False) or interrupts.hit])
    nb = _clean_metadata(nb)
    nbformat.validate(nb)
    if nbformat.writes(nb) == nbformat.writes(old):
        return "unchanged"
    stored_timings = [
        c.outputs for c in old.cells if c.cell_type == "code" and IGNORE_TAG in c.metadata.get("tags", [])
    ]
    if all(stored_timings) and nbformat.writes(_without_ignored_outputs(nb)) == nbformat.writes(
        _without_ignored_outputs(_clean_metadata(copy.deepcopy(old)))
    ):
        return "kept"  # (a cleared timing cell is filled in, not kept empty)
    with atomic_write(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return "updated"


def _parse_args(argv: Sequence[str], command: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m helpers {command}")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. --only 03 06)")
    parser.add_argument(
        "--notebooks",
        type=Path,
        default=NOTEBOOKS_DIR,
        metavar="DIR",
        help="folder of the notebooks (default: notebooks/; e.g. a student edition)",
    )
    if command == "run":
        parser.description = "Execute every notebook in order with papermill into an output folder."
        parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps or xpu")
        parser.add_argument(
            "-p",
            "--parameter",
            nargs=2,
            action="append",
            default=[],
            metavar=("NAME", "VALUE"),
            help="a papermill parameter, e.g. -p epochs 2 (repeatable)",
        )
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: runs/)")
        parser.add_argument("--no-progress", action="store_true", help="hide the per-cell progress bar")
    else:
        parser.description = "Re-execute the source notebooks in place on the CPU to regenerate stored outputs."
        parser.add_argument(
            "--metadata-only",
            action="store_true",
            help="only set each notebook's metadata to what JupyterLab writes (no cell is run)",
        )
    return parser.parse_args(list(argv))


def run_main(argv: Sequence[str]) -> int:
    """``python -m helpers run``."""
    args = _parse_args(argv, "run")
    params = {}
    for name, value in args.parameter:
        if name == "device":
            print("error: give the device with --device, not -p device", file=sys.stderr)
            return 2
        try:
            params[name] = check_parameter_value(name, parse_value(value))
        except ValueError as exc:
            print(f"error: -p {name}: {exc}", file=sys.stderr)
            return 2
    try:
        results = run_series(
            args.device, args.only, params, args.out, progress_bar=not args.no_progress, notebooks_dir=args.notebooks
        )
    except RunInterrupted as exc:
        finished = ", ".join(f"{r.notebook} ({r.status})" for r in exc.results) or "none"
        print(
            f"\ninterrupted: {exc.stopped} was stopped and has no output; finished before it: {finished}",
            file=sys.stderr,
        )
        return 130
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(format_table(results))
    failed = [r for r in results if r.status != "ok"]
    try:
        where = args.out.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        where = args.out
    print(f"\nexecuted notebooks are in {where}/")
    for r in failed:
        print(f"FAILED {r.notebook}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def refresh_main(argv: Sequence[str]) -> int:
    """``python -m helpers refresh``; the environment it sets for its kernels is restored afterwards."""
    saved = {key: os.environ.get(key) for key in ("CUDA_VISIBLE_DEVICES", "HELPERS_AUTO_DEVICE")}
    try:
        return _refresh_main(argv)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refresh_main(argv: Sequence[str]) -> int:
    args = _parse_args(argv, "refresh")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # stored outputs are made on the CPU: no GPU is visible,
    os.environ["HELPERS_AUTO_DEVICE"] = "cpu"  # and device "auto" means the CPU (also on Apple silicon)
    try:
        notebooks = select_notebooks(args.only, args.notebooks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.metadata_only:
        metadata = kernel_metadata()
        for path in notebooks:
            state = "updated" if apply_kernel_metadata(path, metadata) else "unchanged"
            print(f"{path.name}: metadata {state}", flush=True)
        return 0
    failed = 0
    done: list[str] = []
    for path in notebooks:
        start = time.perf_counter()
        print(f"refreshing {path.name} ...", flush=True)
        try:
            state = refresh_notebook(path)
        except KeyboardInterrupt:
            print(
                f"\ninterrupted: {path.name} was left as it was; refreshed before it: {', '.join(done) or 'none'}",
                file=sys.stderr,
            )
            return 130
        except Exception as exc:
            failed += 1
            print(
                f"  FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}",
                file=sys.stderr,
            )
            continue
        done.append(path.name)
        print(f"  {state} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0
