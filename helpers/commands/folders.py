"""Where the series lives and where results go: list and select the notebooks, check and create an --out folder."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]  # helpers/commands/folders.py -> the repository
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUT = REPO_ROOT / "runs"


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
    try:
        out, sources = Path(out_dir).resolve(), Path(notebooks_dir).resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of symbolic links
        raise ValueError(f"cannot use --out {out_dir}: {exc}; choose a plain folder") from None
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


def read_notebook(path: Path) -> Any:
    """Read and validate a notebook (an nbformat NotebookNode); raise ValueError naming the file when it is damaged."""
    import nbformat  # here, so that commands that never read a notebook start without it

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)  # read() only warns: "cells": 3 would fail later with a TypeError
        return nb
    except Exception as exc:  # NotJSONError, ValidationError, UnicodeDecodeError, OSError, ...
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable notebook ({text}); fix it or move it out of the folder") from None
