"""``python -m helpers lab``: JupyterLab on notebooks/ with the project's settings (no news prompt)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .runner import NOTEBOOKS_DIR

# overrides.json there changes JupyterLab's defaults for this project only: it never asks a newcomer
# whether to fetch "official Jupyter news" (and so never contacts the news feed or checks for updates).
SETTINGS_DIR = Path(__file__).resolve().parent.parent / "jupyter" / "settings"


def lab_command(argv: Sequence[str] = ()) -> list[str]:
    """The ``jupyter lab`` command line: the project's settings, notebooks/ unless a folder is given."""
    argv = list(argv)
    command = [sys.executable, "-m", "jupyter", "lab", f"--LabApp.app_settings_dir={SETTINGS_DIR}"]
    if not any(not a.startswith("-") for a in argv):
        command.append(str(NOTEBOOKS_DIR))
    return command + argv


def main(argv: Sequence[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(
            "usage: python -m helpers lab [FOLDER] [jupyter lab options ...]\n\n"
            "Start JupyterLab on notebooks/ (or FOLDER) with the project's settings in\n"
            f"{SETTINGS_DIR} (no prompt about Jupyter news).\n"
            "Other options go to jupyter lab unchanged, e.g. --port 8899 or --no-browser."
        )
        return 0
    command = lab_command(argv)
    if os.name == "posix":  # become jupyter lab: Ctrl-C and exit codes are its own
        sys.stdout.flush()
        os.execv(sys.executable, command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 130
