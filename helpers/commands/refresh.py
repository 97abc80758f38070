"""The ``refresh`` command's work: re-execute a source notebook in place on the CPU, keeping only clean metadata."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import nbformat

from ..files import atomic_write
from .folders import read_notebook
from .kernels import (
    _execute,
    _kernel_manager_class,
    _quiet_abandoned_tasks,
    _stop_kernels,
    _watch_interrupts,
    kernel_metadata,
)

IGNORE_TAG = "nbval-ignore-output"


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


def refresh_notebook(path: Path, timeout: int = 1200) -> str:
    """Re-execute a source notebook in place on the CPU with its default parameters.

    Returns "updated", "unchanged", or "kept" (only outputs of cells tagged
    nbval-ignore-output, such as timings, changed, so the stored file is kept to
    avoid churn). The file is replaced in one step only after every cell ran; a
    failure or Ctrl-C (KeyboardInterrupt, after the kernel is stopped) leaves it as it was.
    """
    from nbclient import NotebookClient

    old = read_notebook(path)
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
