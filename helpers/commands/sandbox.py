"""Keeping one submission's kernel to itself: private files, a small environment, no survivors.

- Each kernel gets a private folder (mode 0700) for its connection file and IPC
  sockets; the connection file (which holds the key that signs messages to the
  kernel) is deleted as soon as the kernel answers, so it cannot be read later.
- The kernel gets a minimal environment, not the teacher's: ``PATH``, locale and
  Python-path variables plus what the check sets itself.
- Every process a submission starts carries a per-run marker variable
  (``HELPERS_CHECK_RUN``); when the submission ends, every process in the kernel's
  session or process group, every descendant of the kernel and every process
  whose environment holds the marker is stopped and killed, repeatedly, until
  none is left. A process that both leaves the session and clears its environment
  escapes this; ``check --sandbox`` (bubblewrap: separate process namespace) does not
  let it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

MARKER = "HELPERS_CHECK_RUN"
_KEEP = (
    "PATH",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "LANG",
    "LANGUAGE",
    "TZ",
    "SYSTEMROOT",
    "COVERAGE_PROCESS_START",
)


def new_marker() -> str:
    return secrets.token_hex(12)


def private_dir(parent: Path, name: str) -> Path:
    """``parent/name``, created with mode 0700 (only this user can list or open it)."""
    path = Path(parent) / name
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


def minimal_env(home: Path, tmp: Path, marker: str, threads: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: a few variables of ``base`` (default os.environ) and the check's own."""
    base = dict(os.environ if base is None else base)
    env = {k: v for k, v in base.items() if k in _KEEP or k.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env.update(
        HELPERS_AUTO_DEVICE="cpu",  # device "auto" means the CPU
        CUDA_VISIBLE_DEVICES="",  # and no GPU is visible at all
        MPLBACKEND="Agg",  # figures are drawn off-screen
        HOME=str(home),  # ~ is the submission's temporary folder
        TMPDIR=str(tmp),
        IPYTHONDIR=str(home / ".ipython"),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONIOENCODING="utf-8",
        **{MARKER: marker},
    )
    return env


def bubblewrap() -> str | None:
    """The path of bubblewrap's ``bwrap``, or None when it is not installed."""
    import shutil

    return shutil.which("bwrap")


def bubblewrap_prefix(writable: Path, shown: Iterable[Path] = (), hidden: Iterable[Path] = ()) -> list[str]:
    """``bwrap`` arguments: everything read-only but ``writable``, a private /tmp, no network, own process namespace.

    The repository and ``hidden`` (the teacher's notebooks folder) are replaced by empty folders: they hold
    the reference solutions (notebooks, executed runs, git history), and code that could read them could make
    the grader's trials report the answer key. Only ``helpers/``, Python and ``shown`` (the data folder, the
    lesson's reused cells of reuse.py) are shown again, read-only.
    """
    bwrap = bubblewrap()
    if bwrap is None:
        raise RuntimeError("--sandbox needs bubblewrap: install it (Debian/Ubuntu: apt-get install bubblewrap)")
    import sys

    repository = Path(__file__).resolve().parents[2]
    tmp = Path("/tmp").resolve()  # already replaced by the private /tmp
    hidden = [*hidden, Path(tempfile.gettempdir())]  # where the other kernels' folders are, when TMPDIR is not /tmp
    python = Path(sys.base_prefix).resolve()
    covered = sorted(
        {
            str(Path(p).resolve())
            for p in [repository, *hidden]
            # not what /tmp already covers, nor / or a folder holding Python itself (the kernel could not start)
            if not Path(p).resolve().is_relative_to(tmp) and not python.is_relative_to(Path(p).resolve())
        }
    )
    folders: list[str | Path] = [sys.prefix, sys.base_prefix, repository / "helpers", *shown]
    keep = sorted({str(Path(p).resolve()) for p in folders if Path(p).exists()})
    again = [arg for path in keep for arg in ("--ro-bind", path, path)]
    return [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--tmpfs",
        "/dev/shm",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        *[arg for path in covered for arg in ("--tmpfs", path)],
        *again,
        "--bind",
        str(writable),
        str(writable),
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--die-with-parent",  # and ipykernel must not watch its parent: inside, the parent is pid 1
        "--setenv",
        "JPY_PARENT_PID",
        "1",
        "--",
    ]


def kernel_manager_class(folder: Path, log: IO | None = None, wrap: list[str] | None = None):
    """A kernel manager whose connection file and IPC sockets live in ``folder`` (a private_dir).

    ``wrap`` is put in front of the kernel's command (bubblewrap_prefix for ``check --sandbox``).
    """
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class PrivateKernelManager(AsyncKernelManager):
        @default("connection_file")
        def _default_connection_file(self):
            return str(Path(folder) / "kernel.json")

        if os.name == "posix":

            @default("transport")
            def _default_transport(self):
                return "ipc"

            @default("ip")
            def _default_ip(self):
                return str(Path(folder) / "ipc")

        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            if log is not None:
                kw["stdout"] = kw["stderr"] = log
            await super()._async_launch_kernel(list(wrap or []) + list(kernel_cmd), **kw)

    return PrivateKernelManager


def forget_connection_file(km: Any) -> None:
    """Delete the kernel's connection file once the kernel is running (it read the file at start-up)."""
    path = getattr(km, "connection_file", "")
    if path:
        try:
            os.unlink(path)
        except OSError:
            pass


def kernel_pid(km: Any) -> int | None:
    process = getattr(getattr(km, "provisioner", None), "process", None)
    return getattr(process, "pid", None)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, sid) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2]), int(fields[3])


def _has_marker(pid: int, needle: bytes) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def submission_processes(marker: str, root: int | None) -> set[int]:
    """Processes of one submission: marked, in ``root``'s session or group, or descended from ``root``."""
    me = os.getpid()
    needle = f"{MARKER}={marker}".encode()
    stats = {pid: _stat(pid) for pid in _pids()}
    found = {pid for pid, st in stats.items() if st and root is not None and (st[1] == root or st[2] == root)}
    found |= {pid for pid in stats if _has_marker(pid, needle)}
    if root is not None and stats.get(root):
        found.add(root)
    children: dict[int, list[int]] = {}
    for pid, st in stats.items():
        if st:
            children.setdefault(st[0], []).append(pid)
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return {pid for pid in found if pid not in (me, os.getppid(), 1)}


def _signal(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def kill_submission(marker: str, root: int | None, patience: float = 30.0) -> int:
    """Stop, then kill, every process of one submission and wait until each has exited; return how many were found.

    A process is followed by its pid and start time from the moment it is found: once
    killed, its environment (the marker) becomes unreadable while it still exits, and
    on a busy machine that can take seconds. ``patience`` bounds the whole wait.
    """
    if not Path("/proc/self/stat").exists():  # not Linux: the kernel's process group is all we can reach
        if root is not None:
            try:
                os.killpg(root, signal.SIGKILL)
            except OSError:
                pass
        return 0
    seen: dict[int, str] = {}  # pid -> start time (tells it apart from a later process with the same pid)
    end = time.monotonic() + patience
    while True:
        for pid in submission_processes(marker, root):
            born = _started(pid)
            if born is not None and pid not in seen:
                seen[pid] = born
        alive = [pid for pid, born in seen.items() if _started(pid) == born]
        if not alive or time.monotonic() > end:
            break
        _signal(alive, signal.SIGSTOP)  # frozen processes cannot fork new ones while we kill them
        _signal(alive, signal.SIGKILL)
        time.sleep(0.05)
    return len(seen)


def _started(pid: int) -> str | None:
    """The start time of a running ``pid``; None when it is gone or has already exited (a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields[19]


_OWNER = ".owner"  # in each temporary root: the pid and start time of the check process that made it


def temporary_root() -> Path:
    """A fresh private folder for one submission (mode 0700), marked with the process that owns it."""
    root = Path(tempfile.mkdtemp(prefix="helpers-check-"))
    (root / _OWNER).write_text(f"{os.getpid()} {_started(os.getpid())}\n", encoding="ascii")
    return root


def sweep_stale_roots() -> int:
    """Remove the temporary roots of check processes that are gone (killed with SIGKILL); return how many.

    Only folders of this user with an owner mark are touched, and only when no process with that pid
    and start time is running; a lesson's saved cells can take hundreds of MB.
    """
    removed = 0
    for folder in Path(tempfile.gettempdir()).glob("helpers-check-*"):
        try:
            if folder.is_symlink() or not folder.is_dir() or folder.stat().st_uid != os.getuid():
                continue
            pid, born = (folder / _OWNER).read_text(encoding="ascii").split()
            if _started(int(pid)) == born:
                continue  # its check is still running
        except (OSError, ValueError):
            continue  # no readable mark: not ours to remove
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed
