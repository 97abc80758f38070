"""Start-up benchmark (prints figures; not a test): ``.venv/bin/python tests/bench_startup.py [--runs N] [--before DIR]``.

Times, in one run and interleaved, (a) ``python -c "import torch"`` as the baseline, (b) ``python -c
"import helpers"`` and (c) ``python -m helpers --help``, each N times, and prints the medians and their
ratios to the baseline. With ``--before DIR`` (a folder holding an older copy of the ``helpers`` package)
(b) and (c) are also timed against that copy. Timings on a shared machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cases(before: str | None) -> list[tuple[str, list[str], str]]:
    found = [
        ("import torch (baseline)", ["-c", "import torch"], str(REPO_ROOT)),
        ("import helpers", ["-c", "import helpers"], str(REPO_ROOT)),
        ("python -m helpers --help", ["-m", "helpers", "--help"], str(REPO_ROOT)),
    ]
    if before:
        found += [
            ("import helpers (before)", ["-c", "import helpers"], before),
            ("python -m helpers --help (before)", ["-m", "helpers", "--help"], before),
        ]
    return found


def once(args: list[str], path: str) -> float:
    env = {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *args], cwd=path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
    )
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default 5)")
    parser.add_argument("--before", help="a folder that holds an older helpers/ package to compare with")
    args = parser.parse_args(argv)
    todo = cases(args.before)
    for _, command, path in todo:  # warm the file cache and the .pyc files first
        once(command, path)
    times: dict[str, list[float]] = {name: [] for name, _, _ in todo}
    for _ in range(args.runs):  # interleaved, so that a burst of load hits every command alike
        for name, command, path in todo:
            times[name].append(once(command, path))
    baseline = statistics.median(times[todo[0][0]])
    print(f"{'command':<36} {'median s':>9} {'min s':>7} {'x baseline':>11}   ({args.runs} runs, {sys.executable})")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<36} {median:>9.3f} {min(values):>7.3f} {median / baseline:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
