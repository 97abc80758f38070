"""Mutation check for the stored outputs: a change to what a lesson teaches must fail nbval.

Each ``tests/mutations/NN.json`` lists one-line changes to notebook NN::

    [{"old": "nn.Linear(512, 10)", "new": "nn.Linear(512, 10, bias=False)", "why": "no bias"}]

For each change, a copy of the notebook (beside a link to ``data/``) gets ``old``
replaced by ``new`` in the one code cell that holds it, and nbval runs on the copy,
stopping at the first failing cell. The change counts as caught only when nbval
reports different outputs, not when the mutated notebook raises an error.

    python tests/mutate.py            # every notebook that has a mutations file
    python tests/mutate.py 04 06      # only these
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
MUTATIONS = REPO / "tests" / "mutations"
# nbval's words for "the outputs differ" (as opposed to "the cell raised")
DIFFERENT_OUTPUTS = (
    "Cell outputs differ",
    "dissimilar number of outputs",
    "Missing output fields",
    "Unexpected output fields",
)


@dataclass
class Mutation:
    notebook: Path
    old: str
    new: str
    why: str


@dataclass
class Outcome:
    mutation: Mutation
    caught: bool
    detail: str


def notebook_for(number: str) -> Path:
    """The source notebook NN_*.ipynb for a mutations file NN.json."""
    found = sorted((REPO / "notebooks").glob(f"{number}_*.ipynb"))
    if len(found) != 1:
        raise ValueError(f"tests/mutations/{number}.json: expected one notebook {number}_*.ipynb, found {len(found)}")
    return found[0]


def load_mutations(numbers: list[str] | None = None) -> list[Mutation]:
    """Every mutation in tests/mutations/NN.json (or only the given NN)."""
    files = sorted(MUTATIONS.glob("[0-9][0-9].json"))
    if numbers:
        files = [f for f in files if f.stem in {n.zfill(2) for n in numbers}]
    mutations = []
    for file in files:
        notebook = notebook_for(file.stem)
        for entry in json.loads(file.read_text(encoding="utf-8")):
            mutations.append(Mutation(notebook, entry["old"], entry["new"], entry.get("why", "")))
    return mutations


def apply(mutation: Mutation, target: Path) -> None:
    """Write the mutated copy of the notebook to ``target``; ``old`` must occur in exactly one place."""
    nb = nbformat.read(mutation.notebook, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and mutation.old in c.source]
    count = sum(c.source.count(mutation.old) for c in cells)
    if count != 1:
        raise ValueError(
            f"{mutation.notebook.name}: {mutation.old!r} occurs {count} times in code cells; make it occur exactly once"
        )
    cells[0].source = cells[0].source.replace(mutation.old, mutation.new)
    nbformat.write(nb, target)


def run(mutation: Mutation) -> Outcome:
    """Run nbval on a mutated copy; caught when an output differs from the stored one."""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        folder = Path(tmp) / "notebooks"
        folder.mkdir()
        os.symlink(REPO / "data", Path(tmp) / "data")  # the notebooks read ../data
        target = folder / mutation.notebook.name
        apply(mutation, target)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.nbval_plugin",
                "-c",
                str(REPO / "pyproject.toml"),
                "--rootdir",
                str(REPO),
                "-x",
                "-q",
                "--no-header",
                "--color=no",
                str(target),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    output = result.stdout + result.stderr
    if result.returncode == 0:
        return Outcome(mutation, False, "nbval passed: the stored outputs do not notice this change")
    if any(words in output for words in DIFFERENT_OUTPUTS):
        failed = [line for line in output.splitlines() if line.startswith("FAILED")]
        return Outcome(mutation, True, failed[0] if failed else "outputs differ")
    tail = "\n".join(output.strip().splitlines()[-15:])
    return Outcome(mutation, False, f"the mutated notebook did not run to a comparison:\n{tail}")


def main(argv: list[str]) -> int:
    mutations = load_mutations(argv or None)
    if not mutations:
        print("no mutations found in tests/mutations/", file=sys.stderr)
        return 2
    missed = 0
    for m in mutations:
        outcome = run(m)
        missed += not outcome.caught
        mark = "caught" if outcome.caught else "MISSED"
        print(
            f"{mark:7} {m.notebook.name[:2]}  {m.why or m.new}\n        {m.old!r} -> {m.new!r}\n        {outcome.detail}",
            flush=True,
        )
    print(f"\n{len(mutations) - missed} of {len(mutations)} mutations caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
