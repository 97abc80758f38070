"""Calibrate the tolerance tags of the lessons: run them under perturbed rounding, measure the drift.

    .venv/bin/python tests/calibrate.py                 # every notebook with tolerance-tagged cells, ulp-1..ulp-4
    .venv/bin/python tests/calibrate.py 06 --runs 2     # lesson 06 only, under ulp-1 and ulp-2
    .venv/bin/python tests/calibrate.py 06 --stand-in compat-1 --write

Each notebook is executed ``--runs`` times (default 4), under the rounding stand-ins ulp-1 .. ulp-N
(tests/standin_site/) and under any ``--stand-in`` named as well, each time in a temporary copy of
notebooks/ (beside a link to data/), on the CPU, as nbval runs it. The fresh text outputs are then
compared with the stored ones token by token, exactly as tests/nbval_plugin.py compares them, and
for every tolerance-tagged cell this prints: the nbval cell number, the first line of its source,
its current tag(s), the largest relative and absolute drift of a decimal number over the runs, and
a suggested tag: the largest drift times ``--margin`` (default 1.5), rounded up to a tidy value
(relative ``nbval-tolerance=R`` when R stays <= 0.1, else absolute ``nbval-tolerance-abs=A``).

It also reports untagged cells whose output changed (nbval fails on them), and cells where words
or integers changed (STRUCTURE: a top-k list, a "worst class", a verdict that a small drift can
flip; fix the lesson, a tag cannot). ``--write`` puts the suggested tags into the tagged cells'
metadata (metadata only: sources and outputs stay byte for byte; the file is replaced in one step).
Exit status: 0 when every run finished and no cell drifted in structure or without a tag, else 1.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import nbformat

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
NOTEBOOKS = REPO / "notebooks"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from nbval_plugin import (  # noqa: E402  (the comparison nbval uses: one definition only)
    ABS_TAG_PREFIX,
    NBVAL_KERNEL_ENV,
    NUMBER,
    TAG_PREFIX,
    ULP,
    ULP_SEED_ENV,
    _padding,
    _text_fields,
    numbers_close,
    stand_in_name,
    stand_in_settings,
    tolerances_of,
)

SKIP_TAGS = {"nbval-ignore-output", "nbval-skip", "raises-exception"}
# what nbval leaves out of its comparison (nbval.plugin.IPyNbFile.skip_compare), and the text it compares loosely
NOT_COMPARED = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}
TIDY = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)
MAX_REL = 0.1  # the largest R tests/nbval_plugin.py accepts


# --------------------------------------------------------------------------------------- measuring drift
@dataclass
class Drift:
    """How far one cell's fresh outputs moved from the stored ones, over one or more runs."""

    rel: float = 0.0  # largest |fresh - stored| / |stored| of a decimal number
    abs: float = 0.0  # largest |fresh - stored| of a decimal number
    changed: bool = False  # some text differed at all
    structure: list = field(default_factory=list)  # descriptions of changed words, integers or outputs

    def add(self, other: Drift) -> None:
        self.rel, self.abs = max(self.rel, other.rel), max(self.abs, other.abs)
        self.changed |= other.changed
        self.structure += other.structure


def _sanitize(text: str, patterns) -> str:
    for regex, replace in patterns:
        text = re.sub(regex, replace, text)
    return text


def sanitize_patterns() -> list:
    """The (regex, replace) pairs of tests/nbval_sanitize.cfg, read the way nbval reads them."""
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns((TESTS / "nbval_sanitize.cfg").read_text(encoding="utf-8"))


def text_drift(stored: str, fresh: str) -> Drift:
    """The drift between two texts, token by token as tests/nbval_plugin.py compares them."""
    drift = Drift(changed=stored != fresh)
    if not drift.changed:
        return drift
    same_words = [_padding(p) for p in NUMBER.split(stored)] == [_padding(p) for p in NUMBER.split(fresh)]
    if not same_words or len(NUMBER.findall(stored)) != len(NUMBER.findall(fresh)):  # padding may change, as in nbval
        drift.structure.append(f"text: {_first_difference(stored, fresh)}")
        return drift
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(fresh)):
        if a == b:
            continue
        decimal = ("." in a or "e" in a.lower()) and ("." in b or "e" in b.lower())
        x, y = float(a), float(b)
        if not decimal or not (math.isfinite(x) and math.isfinite(y)):
            drift.structure.append(f"number {a} became {b}")
            continue
        drift.abs = max(drift.abs, abs(x - y))
        drift.rel = max(drift.rel, abs(x - y) / abs(x) if x else math.inf)
    return drift


def _first_difference(stored: str, fresh: str) -> str:
    for old, new in zip(stored.splitlines(), fresh.splitlines()):
        if old != new:
            return f"{old.strip()!r} became {new.strip()!r}"
    return f"{len(stored.splitlines())} lines became {len(fresh.splitlines())}"


def outputs_drift(stored_outputs, fresh_outputs, patterns=()) -> Drift:
    """The drift of one cell: its text outputs token by token, everything else nbval compares exactly."""
    drift = Drift()
    kinds = [(o.get("output_type"), o.get("name")) for o in stored_outputs]
    if kinds != [(o.get("output_type"), o.get("name")) for o in fresh_outputs]:
        drift.changed = True
        drift.structure.append(
            f"outputs {kinds} became {[(o.get('output_type'), o.get('name')) for o in fresh_outputs]}"
        )
        return drift
    for old, new in zip(stored_outputs, fresh_outputs):
        old_data, new_data = old.get("data", {}), new.get("data", {})
        for key in sorted(set(old_data) | set(new_data)):
            if key in NOT_COMPARED or key == "text/plain":
                continue
            if _sanitize(str(old_data.get(key)), patterns) != _sanitize(str(new_data.get(key)), patterns):
                drift.changed = True
                drift.structure.append(f"{key} output changed")
    for (_, _, old), (_, _, new) in zip(_text_fields(stored_outputs), _text_fields(fresh_outputs)):
        drift.add(text_drift(_sanitize(old, patterns), _sanitize(new, patterns)))
    return drift


def tidy_up(value: float) -> float:
    """The smallest tidy value (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten) >= value."""
    if value <= 0:
        return 0.0
    exponent = math.floor(math.log10(value))
    for step in TIDY:
        candidate = float(Decimal(str(step)).scaleb(exponent))
        if candidate >= value * (1 - 1e-12):
            return candidate
    return float(Decimal(1).scaleb(exponent + 1))


def _format(value: float) -> str:
    return f"{value:.6g}"


def suggest_tags(drift: Drift, margin: float = 1.5) -> list[str] | None:
    """The tolerance tag(s) that cover ``margin`` times the drift seen; None when nothing drifted
    (keep what is there) or the structure changed (no tag can help)."""
    if drift.structure or (drift.rel == 0 and drift.abs == 0):
        return None
    rel = drift.rel * margin
    if rel <= MAX_REL:
        return [f"{TAG_PREFIX}{_format(min(tidy_up(rel), MAX_REL))}"]
    return [f"{ABS_TAG_PREFIX}{_format(tidy_up(drift.abs * margin))}"]


@dataclass
class CellReport:
    number: int  # the nbval cell number (index among the code cells), as in "Cell 23"
    index: int  # the index among all cells
    first_line: str
    tags: list  # its current nbval-tolerance tags
    drift: Drift
    runs: int
    covered: bool  # the current tags pass every run
    suggestion: list | None

    @property
    def verdict(self) -> str:
        if self.drift.structure:
            return "STRUCTURE"
        if not self.tags:
            return "UNTAGGED" if self.drift.changed else "exact"
        return "ok" if self.covered else "FAILS"


def measure(stored: nbformat.NotebookNode, runs: list, margin: float = 1.5, patterns=None) -> list[CellReport]:
    """Compare every compared code cell of ``stored`` with the same cell in each executed notebook of ``runs``.

    Returns a report for each tolerance-tagged cell, and for each untagged cell whose output changed.
    """
    patterns = sanitize_patterns() if patterns is None else patterns
    reports = []
    number = -1
    for index, cell in enumerate(stored.cells):
        if cell.cell_type != "code":
            continue
        number += 1
        tags = cell.metadata.get("tags", [])
        if SKIP_TAGS & set(tags):
            continue
        tolerances = tolerances_of(tags)
        drift, covered = Drift(), True
        for run in runs:
            fresh = run.cells[index]
            if fresh.source != cell.source:
                raise ValueError(f"cell {index} of a run is not the stored cell: the notebook changed while it ran")
            drift.add(outputs_drift(cell.outputs, fresh.outputs, patterns))
            if tolerances is not None:
                covered &= _passes(cell.outputs, fresh.outputs, *tolerances, patterns)
        if tolerances is None and not drift.changed:
            continue
        tolerance_tags = [t for t in tags if t.startswith("nbval-tolerance")]
        lines = cell.source.strip().splitlines()
        reports.append(
            CellReport(
                number,
                index,
                lines[0] if lines else "",
                tolerance_tags,
                drift,
                len(runs),
                covered and not drift.structure,
                suggest_tags(drift, margin),
            )
        )
    return reports


def _passes(stored_outputs, fresh_outputs, rel, absolute, patterns) -> bool:
    old = [_sanitize(t, patterns) for _, _, t in _text_fields(stored_outputs)]
    new = [_sanitize(t, patterns) for _, _, t in _text_fields(fresh_outputs)]
    return len(old) == len(new) and all(a == b or numbers_close(a, b, rel, absolute) for a, b in zip(old, new))


def format_report(name: str, reports: list[CellReport], margin: float) -> str:
    lines = [f"{name}: {reports[0].runs if reports else 0} run(s); suggestion = largest drift x {margin:g}, rounded up"]
    for r in reports:
        current = " ".join(r.tags) or "(no tag)"
        suggestion = " ".join(r.suggestion) if r.suggestion else ("keep" if r.tags else "-")
        if r.drift.structure:
            suggestion = "fix the lesson: " + "; ".join(dict.fromkeys(r.drift.structure))
        lines.append(
            f"  Cell {r.number:<3} {r.verdict:<9} rel {r.drift.rel:<8.4g} abs {r.drift.abs:<8.4g} "
            f"now: {current:<26} suggest: {suggestion}"
        )
        lines.append(f"            {r.first_line[:90]}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- writing the tags
def apply_tags(path: Path, reports: list[CellReport]) -> int:
    """Put each tagged cell's suggested tags into ``path`` (metadata only, one atomic replace); return how many changed."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    before = copy.deepcopy(nb)
    changed = 0
    for r in reports:
        if not r.tags or not r.suggestion:
            continue
        cell = nb.cells[r.index]
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type != "code" or first != r.first_line:
            raise ValueError(f"{path.name}: cell {r.index} is not the one measured; run the calibration again")
        tags = cell.metadata.get("tags", [])
        kept = [t for t in tags if not t.startswith("nbval-tolerance")]
        new = kept + r.suggestion
        if tags != new:
            cell.metadata["tags"] = new
            changed += 1
    if not changed:
        return 0
    for old, new in zip(before.cells, nb.cells):  # only tags moved
        assert old.source == new.source and old.get("outputs") == new.get("outputs")
    out = nbformat.writes(nb) + ("\n" if text.endswith("\n") else "")
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(out)
        os.chmod(temp, path.stat().st_mode & 0o7777)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return changed


# ------------------------------------------------------------------------------------------- running
def kernel_environment(stand_in: str) -> dict:
    """The environment a kernel gets for a run under ``stand_in``: nbval's CPU pin and the stand-in's settings."""
    env = dict(os.environ)
    if not ULP.fullmatch(stand_in):
        env.pop(ULP_SEED_ENV, None)
    env.update(NBVAL_KERNEL_ENV)
    env.update(stand_in_settings(stand_in, env))
    return env


def execute(notebook: Path, stand_in: str, timeout: int = 3600) -> nbformat.NotebookNode:
    """Execute a copy of ``notebook`` (in a temporary notebooks/ beside a link to data/) under ``stand_in``."""
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        work = Path(tmp) / notebook.parent.name
        work.mkdir()
        data = REPO / "data"  # the lessons read ../data
        if data.exists():
            (Path(tmp) / "data").symlink_to(data.resolve())
        source, executed = work / notebook.name, work / f"{notebook.stem}.executed.ipynb"
        shutil.copyfile(notebook, source)
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--execute-one", str(source), str(executed), str(timeout)],
            env=kernel_environment(stand_in),
            cwd=work,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{notebook.name} under {stand_in} failed:\n{result.stderr[-3000:]}")
        return nbformat.read(executed, as_version=4)


def _execute_one(source: str, executed: str, timeout: str) -> None:
    """(In a child process whose environment the kernel inherits.) Run ``source`` as nbval does; write ``executed``."""
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=int(timeout),
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(Path(source).parent)}},
        coalesce_streams=True,
    )
    client.execute()
    nbformat.write(nb, executed)


def tagged_notebooks() -> list[Path]:
    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(tolerances_of(c.metadata.get("tags", [])) is not None for c in nb.cells if c.cell_type == "code"):
            found.append(path)
    return found


def resolve(name: str) -> Path:
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    matches = sorted(NOTEBOOKS.glob(f"{name}*.ipynb"))
    if len(matches) != 1:
        raise SystemExit(f"error: {name!r} names {len(matches)} notebooks in {NOTEBOOKS}")
    return matches[0]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--execute-one"]:
        _execute_one(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "notebooks", nargs="*", help="notebook paths or numbers (default: every notebook with tolerance-tagged cells)"
    )
    parser.add_argument("--runs", type=int, default=4, help="rounding stand-ins ulp-1 .. ulp-RUNS (default 4)")
    parser.add_argument(
        "--stand-in",
        action="append",
        default=[],
        type=stand_in_name,
        dest="stand_ins",
        help="also run under this stand-in (compat-1, avx2-3, ...); may be repeated",
    )
    parser.add_argument("--margin", type=float, default=1.5, help="suggested tag = drift x MARGIN (default 1.5)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="runs at the same time (default 1; each trains on all cores)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    parser.add_argument("--write", action="store_true", help="write the suggested tags into the tagged cells")
    args = parser.parse_args(argv)
    if args.runs < 0 or args.margin < 1 or args.jobs < 1:
        parser.error("--runs must be >= 0, --margin >= 1, --jobs >= 1")
    stand_ins = [f"ulp-{k}" for k in range(1, args.runs + 1)] + args.stand_ins
    if not stand_ins:
        parser.error("nothing to run: give --runs 1 or more, or a --stand-in")
    paths = [resolve(n) for n in args.notebooks] or tagged_notebooks()
    status = 0
    for path in paths:
        stored = nbformat.read(path, as_version=4)
        print(f"running {path.name} under {', '.join(stand_ins)} ...", file=sys.stderr, flush=True)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            futures = {name: pool.submit(execute, path, name, args.timeout) for name in stand_ins}
            runs, failed = [], []
            for future in futures.values():
                try:
                    runs.append(future.result())
                except RuntimeError as exc:
                    failed.append(str(exc))
        for message in failed:
            print(f"FAILED: {message}", file=sys.stderr)
            status = 1
        if not runs:
            continue
        reports = measure(stored, runs, args.margin)
        print(format_report(path.name, reports, args.margin), flush=True)
        if any(r.verdict in ("STRUCTURE", "UNTAGGED") for r in reports):
            status = 1
        if args.write:
            if nbformat.read(path, as_version=4).cells != stored.cells:
                print(f"{path.name} changed while it ran; tags not written", file=sys.stderr)
                status = 1
            else:
                print(f"{path.name}: {apply_tags(path, reports)} cell(s) retagged", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
