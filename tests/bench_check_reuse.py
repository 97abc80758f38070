"""Benchmark: check a generated class of one lesson with reused lesson cells, against a full run of a few.

    .venv/bin/python tests/bench_check_reuse.py [--lesson 06] [--size 30] [--full 2] [--jobs 2]

Writes SIZE submissions (right, wrong, untouched and mixed answers in turn) into a temporary folder, checks
them with the lesson's default parameters as `python -m helpers check` does (reference run included), then
checks the first FULL of them again with --no-reuse. The full class time is extrapolated from those
(per-submission mean x SIZE / JOBS); it is not measured. Marks of the submissions checked both ways must agree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reuse_class import WRONG, make_class  # noqa: E402

from helpers.commands.grade import check_submissions  # noqa: E402
from helpers.commands.report import timing_report  # noqa: E402
from helpers.commands.runner import NOTEBOOKS_DIR  # noqa: E402
from helpers.commands.submissions import NOT_ATTEMPTED  # noqa: E402


def timed(paths: list[Path], jobs: int, reuse_cells: bool) -> tuple[list, float]:
    """Check ``paths``; return the rows and the wall time of the whole run."""
    start = time.perf_counter()
    rows = check_submissions(paths, jobs=jobs, reuse_cells=reuse_cells, announce=print)
    return rows, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lesson", default="06", help="the lesson's number (default 06)")
    parser.add_argument("--size", type=int, default=30, help="submissions in the class (default 30)")
    parser.add_argument("--full", type=int, default=2, help="submissions also checked without reuse (default 2)")
    parser.add_argument("--jobs", type=int, default=2, help="submissions at a time, as check --jobs (default 2)")
    args = parser.parse_args()
    source = next(NOTEBOOKS_DIR.glob(f"{args.lesson}_*.ipynb"))
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        folder = Path(tmp) / "class"
        kinds = make_class(source, folder, args.size, WRONG.get(args.lesson))
        print(f"{args.size} submissions of {source.name}: " + ", ".join(sorted(set(kinds.values()))), flush=True)
        reused, wall = timed([folder], args.jobs, True)
        print(timing_report(reused, wall, args.jobs), flush=True)
        ran = [r for r in reused if any(e.status != NOT_ATTEMPTED for e in r.exercises.values())]
        few = [r.path for r in ran[: args.full]]
        full, full_wall = timed(few, args.jobs, False)
        print(timing_report(full, full_wall, args.jobs), flush=True)
        marks = {r.path: {n: e.status for n, e in r.exercises.items()} for r in reused}
        same = all(marks[r.path] == {n: e.status for n, e in r.exercises.items()} for r in full)
        mean_full = sum(r.seconds for r in full) / len(full)
        mean_reused = sum(r.seconds for r in ran) / len(ran)
        estimate = mean_full * len(ran) / args.jobs
        print(
            f"\nwith reuse: {args.size} submissions in {wall:.0f} s (measured, reference run included), "
            f"{wall / args.size:.1f} s per submission in the class; a run submission takes {mean_reused:.1f} s"
            f"\nwithout reuse: a run submission takes {mean_full:.1f} s (measured on {len(full)}); the class "
            f"would take about {estimate:.0f} s ({len(ran)} x {mean_full:.1f} s / {args.jobs} jobs; extrapolated, "
            f"not measured)\nratio: {estimate / wall:.1f}x faster; marks of the {len(full)} checked both ways "
            f"{'agree' if same else 'DIFFER'}"
        )
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
