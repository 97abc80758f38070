"""A private workspace for one kernel of check: its working folder, its data, its environment."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

from . import reuse, sandbox, trials
from .execute import run_graded
from .plan import Planned
from .submissions import Exercise


def kernel_setup(
    root: Path,
    notebooks_dir: Path,
    data_dir: Path | None,
    threads: int,
    use_sandbox: bool,
    shown: Sequence[Path] = (),
    hidden: Sequence[Path] = (),
) -> tuple[Path, dict[str, str], list[str] | None]:
    """The kernel's working folder, environment and (with --sandbox) bubblewrap command in the private ``root``."""
    data = data_dir if data_dir is not None else Path(notebooks_dir).resolve().parent / "data"
    workdir = _workspace(root, data)
    home, tmp = sandbox.private_dir(root, "home"), sandbox.private_dir(root, "tmp")
    env = sandbox.minimal_env(home, tmp, sandbox.new_marker(), threads)
    if not use_sandbox:
        return workdir, env, None
    # out of sight: the teacher's solutions and the class's submissions (``hidden``)
    return workdir, env, sandbox.bubblewrap_prefix(root, [data, *shown], hidden=[notebooks_dir, *hidden])


def _workspace(root: Path, data_dir: Path | None) -> Path:
    """A fresh folder for one submission: ROOT/work is the kernel's working folder, ROOT/data its data."""
    work = root / "work"
    work.mkdir(parents=True)
    if data_dir is not None and Path(data_dir).is_dir():
        (root / "data").symlink_to(Path(data_dir).resolve(), target_is_directory=True)  # notebooks read ../data
    return work


async def run_in_workspace(
    nb: nbformat.NotebookNode,
    plan: list[Planned],
    exercises: dict[int, Exercise],
    memo: reuse.Memo | None,
    notebooks_dir: Path,
    data_dir: Path | None,
    threads: int,
    use_sandbox: bool,
    key: trials.AnswerKey | None,
    found: dict[int, str | None],
    hidden: Sequence[Path] = (),
    **limits: Any,
) -> list[str]:
    """run_graded in a fresh private folder (removed afterwards); ``limits``: cell_timeout, notebook_timeout."""
    root = sandbox.temporary_root()  # mode 0700
    try:
        shown = [memo.folder] if memo is not None and memo.folder is not None else []
        workdir, env, wrap = kernel_setup(root, notebooks_dir, data_dir, threads, use_sandbox, shown, hidden)
        with open(root / "kernel.log", "w", encoding="utf-8") as log:
            return await run_graded(
                nb,
                plan,
                exercises,
                workdir,
                env,
                log=log,
                connection_dir=sandbox.private_dir(root, "connection"),
                wrap=wrap,
                key=key,
                found=found,
                **limits,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
