"""Kernels: their metadata and spec, their managers, logs and Ctrl-C; the only code that touches nbclient's and jupyter_client's internals."""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import nbformat

from ..files import atomic_write
from .folders import read_notebook


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
    nb = read_notebook(path)
    new = nbformat.NotebookNode(copy.deepcopy(metadata if metadata is not None else kernel_metadata()))
    if nb.metadata == new:
        return False
    nb.metadata = new
    nbformat.validate(nb)
    with atomic_write(path, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    return True


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
