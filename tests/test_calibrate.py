"""tests/calibrate.py: drift measurement, tag suggestion and --write, on small synthetic notebooks."""

import math
import os
import random
import subprocess
import sys

import calibrate
import nbformat
import pytest
from calibrate import Drift, apply_tags, measure, outputs_drift, suggest_tags, text_drift, tidy_up
from nbval_plugin import numbers_close, tolerances_of

from conftest import REPO_ROOT


def stream(text):
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def notebook(*cells):
    """cells: (source, [stdout texts], tags); stored as if already run."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# title"))
    for n, (source, texts, tags) in enumerate(cells, 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=n)
        cell.outputs = [stream(t) for t in texts]
        cell.metadata["tags"] = list(tags)
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def test_text_drift_measures_decimals_and_flags_structure():
    drift = text_drift(
        "T恤/上衣 → 衬衫: 13.5%\n套头衫 → 外套: 13.7%\n", "T恤/上衣 → 衬衫: 12.4%\n套头衫 → 外套: 13.8%\n"
    )
    assert not drift.structure and drift.changed
    assert drift.abs == pytest.approx(1.1) and drift.rel == pytest.approx(1.1 / 13.5)
    assert text_drift("loss 0.50", "loss 0.50") == Drift()
    assert text_drift("最差的类别: 衬衫 13.5%", "最差的类别: 外套 13.5%").structure  # words
    assert text_drift("epoch 3: 85.2%", "epoch 4: 85.2%").structure  # integers
    assert text_drift("85.2%", "85.2% 0.1").structure  # one number more
    assert text_drift("x = 0.0", "x = 0.5").rel == math.inf


def test_outputs_drift_compares_every_output_and_sanitizes():
    old = [stream("a 1.00\n"), nbformat.v4.new_output("execute_result", data={"text/plain": "tensor(2.50)"})]
    new = [stream("a 1.02\n"), nbformat.v4.new_output("execute_result", data={"text/plain": "tensor(2.40)"})]
    drift = outputs_drift(old, new)
    assert drift.abs == pytest.approx(0.1) and drift.rel == pytest.approx(0.04) and not drift.structure
    assert outputs_drift(old, new[:1]).structure  # an output missing
    html_old = [nbformat.v4.new_output("display_data", data={"text/plain": "x", "text/html": "<b>A</b>"})]
    html_new = [nbformat.v4.new_output("display_data", data={"text/plain": "x", "text/html": "<b>B</b>"})]
    assert outputs_drift(html_old, html_new).structure
    patterns = [(r", device='cuda:0'", "")]
    assert not outputs_drift([stream("t([1.5])")], [stream("t([1.5], device='cuda:0')")], patterns).changed


@pytest.mark.parametrize(
    "value, tidy",
    [(0.0123, 0.015), (0.1, 0.1), (0.101, 0.12), (1.65, 2), (3e-4, 3e-4), (0.00031, 0.0004), (9, 10), (0, 0)],
)
def test_tidy_up(value, tidy):
    assert tidy_up(value) == pytest.approx(tidy)
    assert tidy_up(value) >= value


def test_suggestion_prefers_a_relative_tag_and_switches_to_absolute_beyond_r_0_1():
    assert suggest_tags(Drift(rel=0.01, abs=0.85, changed=True)) == ["nbval-tolerance=0.015"]
    assert suggest_tags(Drift(rel=0.01, abs=0.85, changed=True), margin=3) == ["nbval-tolerance=0.03"]
    assert suggest_tags(Drift(rel=1.1 / 13.5, abs=1.1, changed=True)) == ["nbval-tolerance-abs=2"]
    assert suggest_tags(Drift(rel=math.inf, abs=0.02, changed=True)) == ["nbval-tolerance-abs=0.03"]
    assert suggest_tags(Drift()) is None  # nothing drifted: keep the tag there is
    assert suggest_tags(Drift(rel=0.01, abs=0.1, changed=True, structure=["text"])) is None
    for tags in (["nbval-tolerance=0.015"], ["nbval-tolerance-abs=2"]):
        tolerances_of(tags)  # every suggestion is a valid tag


def test_a_suggested_tag_passes_every_run_it_was_measured_on():
    rng = random.Random(0)
    for _ in range(200):
        stored = [round(rng.uniform(0.1, 100), rng.choice([1, 2, 3])) for _ in range(3)]
        text = " ".join(f"{v}" for v in stored)
        runs = [
            " ".join(f"{v * (1 + rng.gauss(0, 0.05)):.{len(str(v).split('.')[1])}f}" for v in stored) for _ in range(3)
        ]
        drift = Drift()
        for run in runs:
            drift.add(text_drift(text, run))
        tags = suggest_tags(drift) or []
        rel, absolute = tolerances_of(tags) or (0, 0)
        assert all(numbers_close(text, run, rel, absolute) for run in runs), (text, runs, tags)


CELLS = [
    ("print(acc)", ["accuracy 85.2%\n"], ["nbval-tolerance=0.01"]),  # cell 0: drifts within its tag
    ("print(confusion)", ["衬衫: 13.5%\n"], ["nbval-tolerance=0.01"]),  # cell 1: beyond its tag
    ("print(shape)", ["torch.Size([64, 10])\n"], []),  # cell 2: exact, unchanged
    ("print(loss)", ["loss 0.4312\n"], []),  # cell 3: untagged, changed
    ("print(worst)", ["最差: 衬衫 0.61\n"], ["nbval-tolerance=0.05"]),  # cell 4: structure
    ("print(seconds)", ["3.2 s\n"], ["nbval-ignore-output"]),  # cell 5: not compared
    ("print(steps)", ["steps 0.50\n"], ["nbval-tolerance=0.02"]),  # cell 6: tagged, no drift
]


def fresh_run(outputs):
    nb = notebook(*CELLS)
    for cell, text in zip(nb.cells[1:], outputs):
        cell.outputs = [stream(text)]
    return nb


RUNS = [
    [
        "accuracy 85.0%\n",
        "衬衫: 12.4%\n",
        "torch.Size([64, 10])\n",
        "loss 0.4315\n",
        "最差: 外套 0.60\n",
        "2.9 s\n",
        "steps 0.50\n",
    ],
    [
        "accuracy 85.9%\n",
        "衬衫: 13.8%\n",
        "torch.Size([64, 10])\n",
        "loss 0.4312\n",
        "最差: 衬衫 0.62\n",
        "4.0 s\n",
        "steps 0.50\n",
    ],
]


def test_measure_reports_tagged_cells_and_every_cell_that_would_fail():
    reports = measure(notebook(*CELLS), [fresh_run(r) for r in RUNS], margin=1.5, patterns=[])
    by_cell = {r.number: r for r in reports}
    assert sorted(by_cell) == [0, 1, 3, 4, 6]  # the unchanged exact cell and the timing are left out
    acc = by_cell[0]
    assert acc.verdict == "ok" and acc.tags == ["nbval-tolerance=0.01"] and acc.first_line == "print(acc)"
    assert acc.drift.abs == pytest.approx(0.7) and acc.drift.rel == pytest.approx(0.7 / 85.2)
    assert acc.suggestion == ["nbval-tolerance=0.015"] and acc.runs == 2 and acc.index == 1
    confusion = by_cell[1]
    assert confusion.verdict == "FAILS" and confusion.suggestion == ["nbval-tolerance-abs=2"]
    assert by_cell[3].verdict == "UNTAGGED" and by_cell[3].suggestion == ["nbval-tolerance=0.0012"]
    assert by_cell[4].verdict == "STRUCTURE" and by_cell[4].suggestion is None
    assert by_cell[6].verdict == "ok" and by_cell[6].suggestion is None
    text = calibrate.format_report("x.ipynb", reports, 1.5)
    assert "Cell 1   FAILS" in text and "nbval-tolerance-abs=2" in text and "fix the lesson" in text


def test_write_changes_only_the_tags_of_tagged_cells(tmp_path):
    path = tmp_path / "x.ipynb"
    stored = notebook(*CELLS)
    stored.cells[2].metadata["tags"] = ["solution", "nbval-tolerance=0.01"]
    nbformat.write(stored, path)
    os.chmod(path, 0o640)
    before = path.read_text()
    reports = measure(nbformat.read(path, as_version=4), [fresh_run(r) for r in RUNS], patterns=[])
    assert apply_tags(path, reports) == 2
    after = nbformat.read(path, as_version=4)
    assert after.cells[1].metadata["tags"] == ["nbval-tolerance=0.015"]
    assert after.cells[2].metadata["tags"] == ["solution", "nbval-tolerance-abs=2"]
    assert after.cells[4].metadata["tags"] == []  # untagged cells are the author's call
    assert after.cells[5].metadata["tags"] == ["nbval-tolerance=0.05"] and after.cells[7].metadata["tags"] == [
        "nbval-tolerance=0.02"
    ]
    for old, new in zip(stored.cells, after.cells):
        assert old.source == new.source and old.get("outputs") == new.get("outputs")
    # byte for byte the same file apart from those two tag lines
    changed = [(a, b) for a, b in zip(before.splitlines(), path.read_text().splitlines()) if a != b]
    assert len(changed) == 2 and all("nbval-tolerance" in a and "nbval-tolerance" in b for a, b in changed)
    assert oct(path.stat().st_mode & 0o777) == "0o640" and sorted(p.name for p in tmp_path.iterdir()) == ["x.ipynb"]
    assert apply_tags(path, measure(after, [fresh_run(r) for r in RUNS], patterns=[])) == 0


def test_write_refuses_a_notebook_that_changed_since_it_was_measured(tmp_path):
    path = tmp_path / "x.ipynb"
    nbformat.write(notebook(*CELLS), path)
    reports = measure(nbformat.read(path, as_version=4), [fresh_run(r) for r in RUNS], patterns=[])
    edited = nbformat.read(path, as_version=4)
    edited.cells.insert(1, nbformat.v4.new_code_cell("x = 1"))
    nbformat.write(edited, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not the one measured"):
        apply_tags(path, reports)
    assert path.read_bytes() == before


PROBE = """import torch
a = torch.linspace(0.1, 1.0, 64, dtype=torch.float64).reshape(8, 8)
print("products", " ".join(repr(v) for v in (a @ a)[0, :6].tolist()))"""


def test_calibration_runs_notebooks_under_the_rounding_stand_in(tmp_path):
    """End to end: two runs under ulp-1 and ulp-2 move a float64 product in its last digits."""
    exact = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "HELPERS_ULP_SEED"},
    ).stdout
    (tmp_path / "nb").mkdir()
    path = tmp_path / "nb" / "01_probe.ipynb"
    nb = notebook((PROBE, [exact], ["nbval-tolerance=0.01"]), (PROBE, [exact], []), ("print(6 * 7)", ["42\n"], []))
    nbformat.write(nb, path)
    result = subprocess.run(
        [sys.executable, "tests/calibrate.py", str(path), "--runs", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stdout + result.stderr  # the untagged copy would fail
    lines = result.stdout.splitlines()
    assert lines[0].startswith("01_probe.ipynb: 2 run(s)")
    tagged = next(line for line in lines if line.lstrip().startswith("Cell 0"))
    untagged = next(line for line in lines if line.lstrip().startswith("Cell 1"))
    assert " ok " in tagged and "suggest: nbval-tolerance=" in tagged and tagged.endswith("e-16")  # one ulp, x 1.5
    assert "UNTAGGED" in untagged
    assert not any(line.lstrip().startswith("Cell 2") for line in lines)
    assert "running 01_probe.ipynb under ulp-1, ulp-2" in result.stderr


def test_a_number_that_gains_a_digit_may_take_a_space_less():
    """As nbval_plugin compares: right-aligned 9.8 drifting to 10.2 is a drift, not a change of structure."""
    drift = calibrate.text_drift("衬衫     9.8%\n", "衬衫    10.2%\n")
    assert not drift.structure and abs(drift.abs - 0.4) < 1e-9
    assert calibrate.text_drift("衬衫 9.8%\n", "外套 9.8%\n").structure  # a word that changed still is
