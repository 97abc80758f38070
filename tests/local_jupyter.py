"""A local Jupyter server for the tests (test_classroom.py, test_browser.py): 127.0.0.1, token auth,
a throw-away configuration, always stopped on exit. Test machinery, not part of helpers."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # kernels the server started, if any survived it


@contextlib.contextmanager
def local_jupyter(root_dir: Path, app: str = "server", timeout: float = 60.0) -> Iterator[tuple[str, str]]:
    """Run ``jupyter server`` or ``jupyter lab`` on 127.0.0.1 with token auth; yield (base URL, token).

    Settings, workspaces and runtime files live in a temporary folder, so the run
    neither reads nor changes the user's Jupyter setup; the server (and its kernels)
    is always stopped on exit.
    """
    if app not in ("server", "lab"):
        raise ValueError(f"app must be 'server' or 'lab'; got {app!r}")
    port, token = free_port(), secrets.token_hex(16)
    home = Path(tempfile.mkdtemp(prefix="classroom-jupyter-"))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    env["IPYTHONDIR"] = str(home / "ipython")
    env.pop("MPLBACKEND", None)  # a test session may set Agg; kernels must pick their own (inline) backend
    command = [
        sys.executable,
        "-m",
        "jupyter",
        app,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={Path(root_dir).resolve()}",
        "--ServerApp.terminals_enabled=False",
        "--allow-root",  # CI runs as root
    ]
    if app == "lab":  # nothing looked up online: no news, update checks or extension listings, no news prompt
        command += [
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        settings = home / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            '{"fetchNews": "false", "checkForUpdates": false}', encoding="utf-8"
        )
    log_path = home / "server.log"
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter {app} exited with code {process.returncode}:\n{_tail(log_path)}")
            try:
                request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter {app} did not answer within {timeout:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.5)
        yield url, token
    finally:
        _stop(process)
        shutil.rmtree(home, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
