"""The ``run`` and ``refresh`` command lines and entry points (run_main, refresh_main); the work is in folders.py,
parameters.py, parameter_cell.py, kernels.py, run.py and refresh.py, and every name this module held stays importable here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from helpers.commands.errors import CommandError, reports_errors
from helpers.commands.textsafe import safe_text, strip_ansi

from .folders import (
    DEFAULT_OUT as DEFAULT_OUT,
)
from .folders import (
    NOTEBOOKS_DIR as NOTEBOOKS_DIR,
)
from .folders import (
    REPO_ROOT as REPO_ROOT,
)
from .folders import (
    check_out_dir as check_out_dir,
)
from .folders import (
    list_notebooks as list_notebooks,
)
from .folders import (
    make_out_dir as make_out_dir,
)
from .folders import (
    read_notebook,
)
from .folders import (
    select_notebooks as select_notebooks,
)
from .kernels import (
    _KERNEL_METADATA as _KERNEL_METADATA,
)
from .kernels import (
    _execute as _execute,
)
from .kernels import (
    _Interrupts as _Interrupts,
)
from .kernels import (
    _kernel_manager_class as _kernel_manager_class,
)
from .kernels import (
    _log_tail as _log_tail,
)
from .kernels import (
    _quiet_abandoned_tasks as _quiet_abandoned_tasks,
)
from .kernels import (
    _stop_kernels as _stop_kernels,
)
from .kernels import (
    _watch_interrupts as _watch_interrupts,
)
from .kernels import (
    apply_kernel_metadata as apply_kernel_metadata,
)
from .kernels import (
    kernel_metadata as kernel_metadata,
)
from .parameter_cell import (
    _KINDS as _KINDS,
)
from .parameter_cell import (
    _check_call as _check_call,
)
from .parameter_cell import (
    _code_cells as _code_cells,
)
from .parameter_cell import (
    _declared as _declared,
)
from .parameter_cell import (
    _kind_of as _kind_of,
)
from .parameter_cell import (
    _number as _number,
)
from .parameter_cell import (
    _setup_checks as _setup_checks,
)
from .parameter_cell import (
    _Unknown as _Unknown,
)
from .parameter_cell import (
    check_notebook_parameters as check_notebook_parameters,
)
from .parameter_cell import (
    notebook_parameters as notebook_parameters,
)
from .parameters import (
    PLAIN_VALUES as PLAIN_VALUES,
)
from .parameters import (
    _plain_problem as _plain_problem,
)
from .parameters import (
    _same_value as _same_value,
)
from .parameters import (
    _shown as _shown,
)
from .parameters import (
    check_parameter_value as check_parameter_value,
)
from .parameters import (
    injected_source as injected_source,
)
from .parameters import (
    parse_value as parse_value,
)
from .refresh import (
    IGNORE_TAG as IGNORE_TAG,
)
from .refresh import (
    _clean_metadata as _clean_metadata,
)
from .refresh import (
    _without_ignored_outputs as _without_ignored_outputs,
)
from .refresh import (
    refresh_notebook as refresh_notebook,
)
from .run import (
    RunInterrupted as RunInterrupted,
)
from .run import (
    RunResult as RunResult,
)
from .run import (
    _describe_cell as _describe_cell,
)
from .run import (
    format_table as format_table,
)
from .run import (
    run_notebook as run_notebook,
)
from .run import (
    run_series as run_series,
)


def _parse_args(argv: Sequence[str], command: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m helpers {command}", allow_abbrev=False)
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


@reports_errors
def run_main(argv: Sequence[str]) -> int:
    """``python -m helpers run``."""
    args = _parse_args(argv, "run")
    params = {}
    for name, value in args.parameter:
        if name == "device":
            raise CommandError("give the device with --device, not -p device", 2)
        try:
            params[name] = check_parameter_value(name, parse_value(value))
        except ValueError as exc:
            raise CommandError(f"-p {name}: {exc}", 2) from None
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
        raise CommandError(str(exc), 2) from None
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


@reports_errors
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
        raise CommandError(str(exc), 2) from None
    if args.metadata_only:
        metadata = kernel_metadata()
        try:
            for path in notebooks:  # every one is readable before any is changed
                read_notebook(path)
        except ValueError as exc:
            raise CommandError(str(exc), 2) from None
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
            last = strip_ansi(str(exc)).strip().splitlines()[-1] if str(exc).strip() else ""  # tracebacks are coloured
            print(f"  FAILED: {type(exc).__name__}: {safe_text(last)}", file=sys.stderr)
            continue
        done.append(path.name)
        print(f"  {state} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0
