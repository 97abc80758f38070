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
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from . import sandbox
from .execute import _bootstrap, _expression
from .plan import Planned, graded_notebook
from .reuse_kernel import KERNEL, WALKER
from .submissions import _tags

_LINES = re.compile(r"\r\n|\r|\n")  # the line breaks ast counts (str.splitlines also splits at \f, \x85, \u2028...)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)
THRESHOLD = 0.1  # seconds: a lesson cell at least this slow in the reference run is reused
SAVE_TIMEOUT = 300  # seconds to compare and save one cell's values
_GET = "__import__('sys').modules['_helpers_reuse']"

LOADER = """\
# check: the teacher's lesson cell {number} ({first!r}), reused. The grader ran it once in its own reference
# kernel, where no student code ran, and saved what it left; here its definitions run and the rest is loaded.
# The file is read once and must have the SHA-256 the grader recorded; if not (or it is gone), the cell itself runs.
# torch.load(weights_only=False) unpickles objects: acceptable only because the grader wrote this file itself.
{definitions}
def __helpers_reuse_load(path, expected, names):
    import hashlib, io, pickle, random, numpy, torch
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:  # deleted, renamed or made unreadable (by a submission checked at the same time)
        return False
    if hashlib.sha256(data).hexdigest() != expected:
        return False
    saved = torch.load(io.BytesIO(data), weights_only=False)
{walker}
    walker = Tensors()
    walker.dump(saved["values"])
    for i, grad in saved["grads"]:
        walker.found[i].grad = grad
    for name in saved["absent"]:
        names.pop(name, None)
    names.update(saved["values"])
    torch.set_rng_state(saved["rng"]["torch"])
    random.setstate(saved["rng"]["random"])
    numpy.random.set_state(saved["rng"]["numpy"])
    return True
if not __helpers_reuse_load({path!r}, {sha!r}, globals()):
    exec(compile({source!r}, "<lesson cell {number}>", "exec"), globals())
del __helpers_reuse_load
"""


@dataclass
class Memo:
    """One lesson's reference run: the loader source for each reused cell, by its position in the graded notebook."""

    sources: dict[int, str] = field(default_factory=dict)  # position -> the teacher's cell source
    loaders: dict[int, str] = field(default_factory=dict)  # position -> the loader cell that replaces it
    seconds: dict[int, float] = field(default_factory=dict)  # position -> the cell's time in the reference run
    skipped: dict[int, str] = field(default_factory=dict)  # position -> why a slow cell is not reused
    folder: Path | None = None  # the snapshot files (shown read-only inside a --sandbox)
    stamps: dict[str, tuple[int, ...]] = field(default_factory=dict)  # file name -> stamp(), when the run ended

    def intact(self) -> bool:
        """Whether nothing has written to, replaced, added or removed a snapshot file since the reference run.

        Each loader cell checks its file's SHA-256 itself (and runs the cell instead when it differs); this
        cheaper check, after each submission, tells the teacher that someone tried (see grade._check_all).
        """
        try:
            return self.folder is not None and stamps(self.folder) == self.stamps
        except OSError:
            return False


def stamps(folder: Path) -> dict[str, tuple[int, ...]]:
    """Inode, size, modification and change time of each file: any write, chmod, utime or rename changes ctime."""
    found: dict[str, tuple[int, ...]] = {}
    for path in sorted(Path(folder).iterdir()):
        st = path.stat()
        found[path.name] = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return found


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


def _evaluated_at_definition(node: ast.stmt) -> list[ast.AST]:
    """The parts of a def or class statement that run when it is defined (decorators, defaults, bases...)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        parts: list[Any] = [*node.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d], node.returns]
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        return [p for p in parts + [a.annotation for a in every if a is not None] if p is not None]
    if isinstance(node, ast.ClassDef):  # its body runs when it is defined
        return [*node.decorator_list, *node.bases, *[k.value for k in node.keywords], *node.body]
    return []


def _definitions(tree: ast.Module, lines: list[str]) -> tuple[str, set[str]] | None:
    """The cell's def/class/import statements (to run before loading) and the names they bind.

    None when a definition that follows other statements uses, while it is defined, a name those bind.
    """
    kinds = _DEFINITIONS
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
    if names & computed:
        return None  # def f(): ... then f = partial(f, 1): loading would bring back the plain def
    end = tree.body[lead - 1].end_lineno if lead else 0
    return "\n\n".join(["\n".join(lines[: end or 0]), *parts]).strip("\n"), names


def _top_level(tree: ast.Module) -> tuple[set[str], set[str], set[str]]:
    """Names the cell binds at top level, names it deletes, and every name it mentions."""
    bound, deleted, mentioned = set[str](), set[str](), set[str]()
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.comprehension)
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
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
        definitions = _definitions(tree, _LINES.split(cell.source)) if tree is not None else None
        reason = (
            "it is not plain Python"
            if tree is None
            else "it failed"
            if index in errors
            else "it wrote files"
            if _files(root) != files
            else "its definitions cannot be run apart from what it computes"
            if definitions is None
            else "it only defines and imports"
            if all(isinstance(node, _DEFINITIONS) for node in tree.body)  # a loader would run it all again
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
        loader = LOADER.format(
            number=number,
            first=first,
            definitions=definitions[0],
            path=str(path),
            sha=file_digest(path),
            source=cell.source,
            walker=WALKER,
        )
        try:
            compile(loader, f"<loader of lesson cell {number}>", "exec")
        except (SyntaxError, ValueError):
            path.unlink()
            memo.skipped[index] = (
                f"lesson code cell {number} ({seconds:.1f} s) runs in every submission: its "
                "definitions cannot be taken apart from the rest"
            )
            continue
        memo.sources[index], memo.seconds[index], memo.loaders[index] = cell.source, seconds, loader
    memo.stamps = stamps(folder)
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
