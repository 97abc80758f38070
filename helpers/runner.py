"""Run the whole series (papermill) and regenerate the stored outputs (refresh)."""

from __future__ import annotations

import argparse
import ast
import copy
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import nbformat

from .files import atomic_write

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUT = REPO_ROOT / "runs"
IGNORE_TAG = "nbval-ignore-output"


def list_notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Return the series' notebooks (``NN_name.ipynb``) in order."""
    return sorted(p for p in notebooks_dir.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def select_notebooks(only: Optional[Sequence[str]] = None, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Pick notebooks by number ("3", "03") or file name; all of them when ``only`` is empty."""
    notebooks = list_notebooks(notebooks_dir)
    if not only:
        return notebooks
    chosen = []
    for key in only:
        key = key.strip()
        matches = [
            p for p in notebooks
            if (key.isdigit() and p.name[:2] == key.zfill(2)) or p.name == key or p.stem == key
        ]
        if not matches:
            names = ", ".join(p.name[:2] for p in notebooks)
            raise ValueError(f"no notebook {key!r}; choose from: {names}")
        chosen.extend(m for m in matches if m not in chosen)
    return sorted(chosen)


def parse_value(text: str) -> Any:
    """Turn a command-line value into a Python value: numbers, True/False/None, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            values: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        values[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        values[node.targets[0].id] = ast.unparse(node.value)
            return values
    return {}


def _kernel_manager_class():
    """Kernel manager for executing notebooks: local IPC sockets on POSIX (no TCP, no warning about it)."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    if os.name != "posix":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"

        @default("ip")
        def _default_ip(self):  # absolute, so the kernel's working folder does not matter
            return os.path.join(tempfile.gettempdir(), f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


@dataclass
class RunResult:
    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    device: str
    output: Optional[Path] = None
    error: str = ""
    parameters: dict = field(default_factory=dict)


def run_notebook(
    path: Path,
    out_dir: Path,
    parameters: Optional[dict[str, Any]] = None,
    progress_bar: bool = True,
) -> RunResult:
    """Execute one notebook with papermill into ``out_dir``; never touches the source file."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    declared = notebook_parameters(path)
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    device = str(params.get("device", declared.get("device", "-")))
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    start = time.perf_counter()
    error = ""
    try:
        pm.execute_notebook(
            str(path),
            str(output),
            parameters=params,
            cwd=str(path.parent),
            progress_bar=progress_bar,
            kernel_name="python3",
            kernel_manager_class=_kernel_manager_class(),
        )
        status = "ok"
    except PapermillExecutionError as exc:
        status = "failed"
        error = f"{_describe_cell(output, exc.exec_count)}: {exc.ename}: {exc.evalue}"
    except Exception as exc:  # kernel died, bad notebook, ...
        status = "failed"
        error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    return RunResult(path.name, status, seconds, device, output, error, params)


def _describe_cell(executed: Path, exec_count: Optional[int]) -> str:
    """Name a failed cell as the reader sees it in the source: 'code cell N (first line)'."""
    try:
        cells = [c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"
                 and "injected-parameters" not in c.metadata.get("tags", [])]
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
        lines.append("  ".join(cell.ljust(widths[i]) if i != 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_series(
    device: str = "auto",
    only: Optional[Sequence[str]] = None,
    parameters: Optional[dict[str, Any]] = None,
    out_dir: Path = DEFAULT_OUT,
    progress_bar: bool = True,
    echo=print,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> list[RunResult]:
    """Run the selected notebooks in order, each with ``device`` and the given parameters."""
    from .device import get_device

    resolved = get_device(device)  # fail before any notebook starts: unknown or unavailable device
    notebooks = select_notebooks(only, notebooks_dir)
    if not notebooks:
        raise ValueError(f"no notebooks (NN_name.ipynb) found in {notebooks_dir}")
    params = dict(parameters or {})
    params["device"] = device
    unknown = set(params) - set().union(*(notebook_parameters(p) for p in notebooks))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(sorted(unknown))}: no selected notebook declares them "
            "in its parameters cell (see the README's parameter table)"
        )
    results = []
    for i, path in enumerate(notebooks, 1):
        echo(f"[{i}/{len(notebooks)}] {path.name}", flush=True)
        result = run_notebook(path, out_dir, params, progress_bar=progress_bar)
        result.device = str(resolved)  # "auto" shown as what it picked, e.g. cuda:0 or cpu
        echo(f"      {result.status} in {result.seconds:.1f} s" + (f" - {result.error}" if result.error else ""), flush=True)
        results.append(result)
    return results


def _clean_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Keep only what a reader needs: tags in cells, kernelspec and language in the notebook."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.NotebookNode({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            for out in cell.outputs:
                if "metadata" in out:
                    out.metadata = nbformat.NotebookNode({})
    nb.metadata = nbformat.NotebookNode(
        {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "pygments_lexer": "ipython3"},
        }
    )
    return nb


def _without_ignored_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and IGNORE_TAG in cell.metadata.get("tags", []):
            cell.outputs = []
    return nb


def refresh_notebook(path: Path, timeout: int = 1200) -> str:
    """Re-execute a source notebook in place on the CPU with its default parameters.

    Returns "updated", "unchanged", or "kept" (only outputs of cells tagged
    nbval-ignore-output, such as timings, changed, so the stored file is kept to
    avoid churn).
    """
    from nbclient import NotebookClient

    old = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(old)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        coalesce_streams=True,  # one print may arrive in several messages under load
        kernel_manager_class=_kernel_manager_class(),
    )
    client.execute()
    nb = _clean_metadata(nb)
    nbformat.validate(nb)
    if nbformat.writes(nb) == nbformat.writes(old):
        return "unchanged"
    if nbformat.writes(_without_ignored_outputs(nb)) == nbformat.writes(_without_ignored_outputs(_clean_metadata(copy.deepcopy(old)))):
        return "kept"
    with atomic_write(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return "updated"


def _parse_args(argv: Sequence[str], command: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m helpers {command}")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. --only 03 06)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, metavar="DIR",
                        help="folder of the notebooks (default: notebooks/; e.g. a student edition)")
    if command == "run":
        parser.description = "Execute every notebook in order with papermill into an output folder."
        parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps or xpu")
        parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                            help="a papermill parameter, e.g. -p epochs 2 (repeatable)")
        parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: runs/)")
        parser.add_argument("--no-progress", action="store_true", help="hide the per-cell progress bar")
    else:
        parser.description = "Re-execute the source notebooks in place on the CPU to regenerate stored outputs."
    return parser.parse_args(list(argv))


def run_main(argv: Sequence[str]) -> int:
    """``python -m helpers run``."""
    args = _parse_args(argv, "run")
    params = {name: parse_value(value) for name, value in args.parameter}
    if "device" in params:
        print("error: give the device with --device, not -p device", file=sys.stderr)
        return 2
    try:
        results = run_series(args.device, args.only, params, args.out, progress_bar=not args.no_progress,
                             notebooks_dir=args.notebooks)
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
    """``python -m helpers refresh``."""
    args = _parse_args(argv, "refresh")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # stored outputs are made on the CPU
    try:
        notebooks = select_notebooks(args.only, args.notebooks)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in notebooks:
        start = time.perf_counter()
        print(f"refreshing {path.name} ...", flush=True)
        try:
            state = refresh_notebook(path)
        except Exception as exc:
            failed += 1
            print(f"  FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}", file=sys.stderr)
            continue
        print(f"  {state} ({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0
