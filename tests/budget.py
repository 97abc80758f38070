"""Time-budget benchmark (prints figures; not a test): ``.venv/bin/python tests/budget.py --official DIR [--rounds N] [--only-06]``.

Times, in one run and interleaved round by round (so that machine load hits both sides alike), the eight
official "Learn the Basics" scripts of pytorch/tutorials (beginner_source/basics/, kept outside this
repository under DIR) against ``python -m helpers run --only 06`` (lesson 06) and ``python -m helpers run``
(the whole series). Each official script runs in a fresh process whose working directory is a new temporary
folder holding ``data`` -> this repository's data/ (so torchvision finds data/FashionMNIST/raw and downloads
nothing), with MPLBACKEND=Agg. The budget: lesson 06 / optimization_tutorial.py <= 1.6 and
whole series / sum of the eight official scripts <= 0.9 (both from the medians over the rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFICIAL = (
    "quickstart_tutorial.py",
    "tensorqs_tutorial.py",
    "data_tutorial.py",
    "transforms_tutorial.py",
    "buildmodel_tutorial.py",
    "autogradqs_tutorial.py",
    "optimization_tutorial.py",
    "saveloadrun_tutorial.py",
)
OPTIMIZATION = "optimization_tutorial.py"
LESSON_06, SERIES = "lesson 06 (helpers run --only 06)", "whole series (helpers run)"
BUDGET_06, BUDGET_SERIES = 1.6, 0.9
TAIL_LINES = 25


class CommandFailed(Exception):
    """A timed command exited non-zero; the message says which and shows its stderr tail."""


def timed(label: str, command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall-clock seconds of ``command`` run to the end in ``cwd``; raises CommandFailed if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace"
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-TAIL_LINES:])
        hint = (
            "\nhint: a module it imports is not installed in this venv"
            if "ModuleNotFoundError" in tail
            else "\nhint: it tried to download something (no internet here?)"
            if "URLError" in tail
            else ""
        )
        raise CommandFailed(
            f"{label} failed (exit code {proc.returncode}) after {seconds:.1f} s in {cwd}\n"
            f"command: {' '.join(command)}\n--- last lines of its output ---\n{tail}{hint}"
        )
    return seconds


def run_official(script: Path) -> float:
    """Run one official script in a fresh temporary folder that holds ``data`` -> the repository's data/."""
    with tempfile.TemporaryDirectory(prefix="budget-official-") as tmp:
        os.symlink(REPO_ROOT / "data", Path(tmp) / "data", target_is_directory=True)
        return timed(script.name, [sys.executable, str(script)], Path(tmp), {**os.environ, "MPLBACKEND": "Agg"})


def run_helpers(label: str, only: list[str]) -> float:
    """Run ``python -m helpers run`` from the repository root into a fresh temporary --out folder."""
    with tempfile.TemporaryDirectory(prefix="budget-runs-") as out:
        command = [sys.executable, "-m", "helpers", "run", *only, "--no-progress", "--out", out]
        return timed(label, command, REPO_ROOT, dict(os.environ))


def find_scripts(official: Path, names: tuple[str, ...]) -> tuple[dict[str, Path], list[str]]:
    """Each name under DIR/beginner_source/basics/ (or directly under DIR); also the names not found."""
    found, missing = {}, []
    for name in names:
        candidates = [official / "beginner_source" / "basics" / name, official / name]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[name] = path.resolve()
    return found, missing


def machine_facts() -> str:
    """One line: CPUs, torch version and device as the scripts see them, OMP_NUM_THREADS, load (also warms the caches)."""
    probe = "import torch, torchvision; print(torch.__version__, 'cuda' if torch.cuda.is_available() else 'no cuda')"
    torch_info = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    omp = os.environ.get("OMP_NUM_THREADS")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"machine: {os.cpu_count()} CPUs ({usable} usable), torch {torch_info or 'not importable'}"
        + (f", OMP_NUM_THREADS={omp}" if omp else ", OMP_NUM_THREADS not set")
        + f", load average at start {load}; python {sys.executable}"
    )


def verdict(name: str, ratios: list[float], value: float, budget: float) -> str:
    per_round = ", ".join(f"{r:.2f}" for r in ratios)
    state = "within budget" if value <= budget else "OVER budget"
    return f"{name}: {value:.2f} (budget <= {budget}) {state}   [per round: {per_round}]"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official",
        type=Path,
        required=True,
        metavar="DIR",
        help="folder holding beginner_source/basics/ of pytorch/tutorials (or the eight scripts)",
    )
    parser.add_argument("--rounds", type=int, default=1, metavar="N", help="rounds (default 1)")
    parser.add_argument("--only-06", action="store_true", help="time only optimization_tutorial.py and lesson 06")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="SCRIPT",
        choices=OFFICIAL,
        help="leave this official script out (repeatable), e.g. saveloadrun_tutorial.py where "
        "its VGG16 download cannot work; the series is then compared with fewer scripts",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not args.official.is_dir():
        parser.error(f"--official {args.official} is not a folder")
    if OPTIMIZATION in args.skip:
        parser.error(f"--skip {OPTIMIZATION}: lesson 06 is compared with it")
    wanted = (OPTIMIZATION,) if args.only_06 else tuple(n for n in OFFICIAL if n not in args.skip)
    scripts, missing = find_scripts(args.official, wanted)
    if missing:
        parser.error(f"not found under {args.official}/beginner_source/basics/: {', '.join(missing)}")
    if not (REPO_ROOT / "data" / "FashionMNIST" / "raw").is_dir():
        parser.error(f"{REPO_ROOT / 'data/FashionMNIST/raw'} is missing (python -m helpers data fetches it)")

    # per round: the 06 pair back to back, then the other official scripts, then the whole series
    cases = [
        (OPTIMIZATION, lambda: run_official(scripts[OPTIMIZATION])),
        (LESSON_06, lambda: run_helpers(LESSON_06, ["--only", "06"])),
    ]
    if not args.only_06:
        cases += [(name, lambda p=path: run_official(p)) for name, path in scripts.items() if name != OPTIMIZATION]
        cases += [(SERIES, lambda: run_helpers(SERIES, []))]
    facts = machine_facts()  # before the first round: imports torch once, so no case pays the cold start
    print(facts, flush=True)
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    try:
        for round_ in range(1, args.rounds + 1):
            for name, run in cases:
                times[name].append(run())
                print(f"round {round_}: {name}: {times[name][-1]:.1f} s", flush=True)
    except CommandFailed as exc:
        print(
            f"\nerror: {exc}\n\nbudget.py stopped: an official script or the series must run to the end to be timed.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130

    official_names = [n for n in OFFICIAL if n in times]
    total = f"sum of the {len(official_names)} official scripts"
    if not args.only_06:
        times[total] = [sum(v) for v in zip(*(times[n] for n in official_names))]
    width = max(len(n) for n in times)
    print(
        f"\n{'seconds':<{width}} "
        + " ".join(f"{f'round {r}':>9}" for r in range(1, args.rounds + 1))
        + f" {'median':>9}"
    )
    for name, values in times.items():
        print(f"{name:<{width}} " + " ".join(f"{v:>9.1f}" for v in values) + f" {statistics.median(values):>9.1f}")
    median = {name: statistics.median(values) for name, values in times.items()}
    print()
    print(
        verdict(
            "lesson 06 / optimization_tutorial.py",
            [a / b for a, b in zip(times[LESSON_06], times[OPTIMIZATION])],
            median[LESSON_06] / median[OPTIMIZATION],
            BUDGET_06,
        )
    )
    if not args.only_06:
        skipped = f" (left out: {', '.join(args.skip)})" if args.skip else ""
        print(
            verdict(
                f"whole series / {total}{skipped}",
                [a / b for a, b in zip(times[SERIES], times[total])],
                median[SERIES] / sum(median[n] for n in official_names),
                BUDGET_SERIES,
            )
        )
    print(facts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
