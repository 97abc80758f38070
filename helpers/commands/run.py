"""The ``run`` command's work: execute the selected notebooks with papermill into an output folder, one result each."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from .folders import DEFAULT_OUT, NOTEBOOKS_DIR, check_out_dir, make_out_dir, read_notebook, select_notebooks
from .kernels import _kernel_manager_class, _log_tail, _quiet_abandoned_tasks, _stop_kernels, _watch_interrupts
from .parameter_cell import check_notebook_parameters, notebook_parameters
from .parameters import check_parameter_value, injected_source


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
    language = papermill_engines.nb_language(None, read_notebook(path))
    injected_source(params, language)  # raises ValueError for anything that is not plain data
    device = str(params.get("device", declared.get("device", "-")))
    out = make_out_dir(check_out_dir(out_dir, path.parent, example="--out runs"))
    output = out / path.name
    _remove_stale_partials(out, path.stem)
    partial = out / f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial.ipynb"
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


def _remove_stale_partials(out: Path, stem: str) -> None:
    """Delete ``.STEM.PID-XXXX.partial.ipynb`` files whose run is gone (killed with SIGKILL, a power cut)."""
    for stale in out.glob(f".{stem}.*.partial.ipynb"):
        owner = stale.name[len(stem) + 2 :].split("-", 1)[0]
        try:
            alive = owner.isdigit() and int(owner) != os.getpid() and _process_exists(int(owner))
        except (OverflowError, ValueError):
            alive = False
        if not alive:
            with contextlib.suppress(OSError):
                stale.unlink()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not ours to judge, leave its file
        return True
    return True


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
