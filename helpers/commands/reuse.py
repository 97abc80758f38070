"""Reuse a lesson's expensive cells: run them once per lesson per check, load their results in every submission.

Before a class is graded, a reference run executes the lesson's cells that come before its first
exercise (no student code runs before that point, so they compute the same in every submission) in a
kernel set up like a graded one (same bootstrap, parameters, environment and sandbox). A cell that takes
THRESHOLD seconds or more has its results saved into one file with torch.save (so objects shared between
names stay shared): the names it binds at top level, the names it changed in place (those it or the
notebook's functions it calls mention, compared by content before and after it ran) and the random
generators' states. In each graded notebook that cell becomes a loader cell: the cell's leading
def/class/import statements, then the file's values. A cell is run for real instead when its values
cannot be pickled, when a changed name cannot be compared, when it wrote files, when it failed, or when it
defines something after computing. Not captured: changes to module state (e.g. helpers.*, torch settings)
and open matplotlib figures; ``check --no-reuse`` runs every cell in every submission.
"""

from __future__ import annotations

import ast
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from . import sandbox
from .execute import _bootstrap, _expression
from .plan import Planned, graded_notebook
from .reuse_kernel import KERNEL
from .submissions import _tags

THRESHOLD = 0.5  # seconds: a lesson cell at least this slow in the reference run is reused
SAVE_TIMEOUT = 300  # seconds to compare and save one cell's values
_GET = "__import__('sys').modules['_helpers_reuse']"

LOADER = """\
# check: the teacher's lesson cell {number} ({first!r}), reused. The grader ran it once in its own reference
# kernel, where no student code ran, and saved what it left; here its definitions run and the rest is loaded.
# torch.load(weights_only=False) unpickles objects: acceptable only because the grader wrote this file itself.
{definitions}
(lambda saved, names: (
    [names.pop(name, None) for name in saved["absent"]],
    names.update(saved["values"]),
    __import__("torch").set_rng_state(saved["rng"]["torch"]),
    __import__("random").setstate(saved["rng"]["random"]),
    __import__("numpy").random.set_state(saved["rng"]["numpy"]),
) and None)(__import__("torch").load({path!r}, weights_only=False, mmap=True), globals())
"""


@dataclass
class Memo:
    """One lesson's reference run: the loader source for each reused cell, by its position in the graded notebook."""

    sources: dict[int, str] = field(default_factory=dict)  # position -> the teacher's cell source
    loaders: dict[int, str] = field(default_factory=dict)  # position -> the loader cell that replaces it
    seconds: dict[int, float] = field(default_factory=dict)  # position -> the cell's time in the reference run
    skipped: dict[int, str] = field(default_factory=dict)  # position -> why a slow cell is not reused
    folder: Path | None = None  # the snapshot files (shown read-only inside a --sandbox)
    digests: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256, taken when the reference run ended

    def intact(self) -> bool:
        """Whether the snapshot files are still exactly those the reference run wrote (see grade._check_all)."""
        try:
            return self.folder is not None and digests(self.folder) == self.digests
        except OSError:
            return False


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder`` (about 1.3 GB/s here; lesson 06's snapshots are a few hundred MB)."""
    found = {}
    for path in sorted(Path(folder).iterdir()):
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                sha.update(block)
        found[path.name] = sha.hexdigest()
    return found


def _evaluated_at_definition(node: ast.stmt) -> list[ast.AST]:
    """The parts of a def or class statement that run when it is defined (decorators, defaults, bases...)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        parts: list[Any] = [*node.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d], node.returns]
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return [p for p in parts + [a.annotation for a in every if a is not None] if p is not None]
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *[k.value for k in node.keywords]]
    return []


def _definitions(tree: ast.Module, lines: list[str]) -> tuple[str, set[str]] | None:
    """The cell's def/class/import statements (to run before loading) and the names they bind.

    None when a definition that follows other statements uses, while it is defined, a name those bind.
    """
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
    computed = {
        n.id
        for node in tree.body
        if not isinstance(node, kinds)
        for n in ast.walk(node)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    lead, names, parts = 0, set[str](), list[str]()
    while lead < len(tree.body) and isinstance(tree.body[lead], kinds):
        lead += 1
    for i, node in enumerate(tree.body):
        if not isinstance(node, kinds):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        else:
            names.add(node.name)
        if i >= lead:
            used = {n.id for part in _evaluated_at_definition(node) for n in ast.walk(part) if isinstance(n, ast.Name)}
            if used & computed:
                return None
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            parts.append("\n".join(lines[first - 1 : node.end_lineno]))
    end = tree.body[lead - 1].end_lineno if lead else 0
    return "\n\n".join(["\n".join(lines[: end or 0]), *parts]).strip("\n"), names


def _top_level(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Names the cell binds at top level, names it deletes, and every name it mentions."""
    bound, deleted, mentioned = set[str](), set[str](), set[str]()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.comprehension)
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name):
            mentioned.add(node.id)
            (bound if isinstance(node.ctx, ast.Store) else deleted if isinstance(node.ctx, ast.Del) else set()).add(
                node.id
            )
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        for child in ast.iter_child_nodes(node):
            if isinstance(node, scopes) or isinstance(child, scopes):
                mentioned.update(n.id for n in ast.walk(child) if isinstance(n, ast.Name))
            else:
                todo.append(child)
    return bound, deleted, mentioned


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the kernel's folders (not the data link): size and modification time."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("connection", "snapshots")]
        for name in files:
            path = Path(folder) / name
            if path.name != "kernel.log" and not path.is_symlink():
                st = path.stat()
                found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


def prefix_length(plan: list[Planned]) -> int:
    """How many cells of a graded notebook come before the first one a student wrote (the reusable part)."""
    return next((i for i, p in enumerate(plan) if p.role != "lesson"), len(plan))


async def reference_run(
    source: nbformat.NotebookNode,
    parameters: dict[str, Any] | None,
    root: Path,
    client: Any,
    threshold: float = THRESHOLD,
) -> Memo:
    """Run the lesson's cells before its first exercise in ``client`` (a started kernel); save the slow ones."""
    nb, plan, _ = graded_notebook(source, source, parameters)  # the teacher's own solutions: only the prefix runs
    client.nb = nb
    errors: dict[int, Any] = {}
    client.on_cell_error = lambda cell, cell_index, execute_reply: errors.__setitem__(cell_index, execute_reply)
    if not await _bootstrap(client, errors):
        raise RuntimeError("the grader's bootstrap failed in the reference kernel (see the lesson's first cells)")
    await client.async_execute_cell(nbformat.v4.new_code_cell(KERNEL), -3, store_history=False)
    if errors.pop(-3, None) is not None:
        raise RuntimeError("the reference kernel could not set up its snapshots")
    folder = sandbox.private_dir(root, "snapshots")
    memo, number = Memo(folder=folder), 0
    for index in range(prefix_length(plan)):
        cell = nb.cells[index]
        if cell.cell_type != "code":
            continue
        number += "injected-parameters" not in _tags(cell)
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:  # IPython syntax (%magic, !shell): always run
            tree = None
        bound, deleted, mentioned = _top_level(tree) if tree is not None else (set(), set(), set())
        if tree is not None:
            await _expression(client, f"{_GET}.before({sorted(mentioned)!r})", SAVE_TIMEOUT)
        files, start = _files(root), time.perf_counter()
        await client.async_execute_cell(cell, index)
        seconds = time.perf_counter() - start
        if seconds < threshold:
            continue
        definitions = _definitions(tree, cell.source.splitlines()) if tree is not None else None
        reason = (
            "it is not plain Python"
            if tree is None
            else "it failed"
            if index in errors
            else "it wrote files"
            if _files(root) != files
            else "a definition uses a value the cell computes"
            if definitions is None
            else "it only defines and imports"
            if not (bound - definitions[1]) and not deleted
            else None
        )
        if reason is None and definitions is not None:
            path = folder / f"cell{index}.pt"
            arguments = f"{str(path)!r}, {sorted(bound)!r}, {sorted(deleted)!r}, {sorted(definitions[1])!r}"
            saved = await _expression(client, f"{_GET}.save({arguments})", SAVE_TIMEOUT)
            reason = None if saved == "ok" else saved or "saving timed out"
        if reason is not None:
            memo.skipped[index] = f"lesson code cell {number} ({seconds:.1f} s) runs in every submission: {reason}"
            continue
        assert definitions is not None
        first = (cell.source.strip().splitlines() or [""])[0][:60]
        memo.sources[index], memo.seconds[index] = cell.source, seconds
        memo.loaders[index] = LOADER.format(number=number, first=first, definitions=definitions[0], path=str(path))
    memo.digests = digests(folder)
    return memo


def substitute(plan: list[Planned], memo: Memo | None) -> int:
    """Put the loader cells into a submission's graded notebook in place of the reused lesson cells; count them."""
    if memo is None:
        return 0
    count = 0
    for index, loader in memo.loaders.items():
        step = plan[index] if index < prefix_length(plan) else None
        if step is not None and step.cell.source == memo.sources[index]:
            step.cell.source = loader
            count += 1
    return count


async def run_reference(
    source: nbformat.NotebookNode,
    parameters: dict[str, Any] | None,
    root: Path,
    workdir: Path,
    env: dict[str, str],
    wrap: list[str] | None,
    threshold: float = THRESHOLD,
    timeout: float = 3600,
) -> Memo:
    """Start a kernel set up as a graded one (folders, environment, sandbox) and make the lesson's snapshots."""
    from nbclient import NotebookClient

    with open(root / "kernel.log", "w", encoding="utf-8") as log:
        client = NotebookClient(
            nbformat.v4.new_notebook(),
            kernel_name="python3",
            allow_errors=True,
            timeout=int(timeout),
            startup_timeout=120,
            shutdown_kernel="immediate",
            record_timing=False,
            kernel_manager_class=sandbox.kernel_manager_class(sandbox.private_dir(root, "connection"), log, wrap),
        )
        client.km = client.create_kernel_manager()
        try:
            await client.async_start_new_kernel(cwd=str(workdir), env=env)
            await client.async_start_new_kernel_client()
            sandbox.forget_connection_file(client.km)
            return await reference_run(source, parameters, root, client, threshold)
        finally:
            pid = sandbox.kernel_pid(client.km)
            try:
                await client._async_cleanup_kernel()
            finally:
                sandbox.kill_submission(env.get(sandbox.MARKER, ""), pid)
