"""The check's report (terminal table, results.csv, results.html) with hostile or odd names; no kernels needed."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.commands import check
from helpers.commands.check import FAILED, PASSED, Exercise, Submission

ROOT = Path(__file__).resolve().parents[1]
NON_UTF8 = os.fsdecode(b"\xd5\xc5\xc8\xfd")  # 张三 in GBK, as a Linux unzip leaves it


def row(name: str, path: str = "class/x/01_tiny.ipynb", detail: str = "") -> Submission:
    return Submission(Path(path), name, "01", {1: Exercise(1, status=FAILED if detail else PASSED, detail=detail)})


def csv_table(results) -> list[list[str]]:
    return list(csv.reader(io.StringIO(check.results_csv(results))))


def test_csv_cells_are_never_formulas():
    rows = [row(name) for name in ('=HYPERLINK("http://x")', "+1", "-2", "@SUM(A1)", "\tx", "\rx", "李四")]
    rows.append(row("ok", detail="=cmd|' /C calc'!A0"))
    table = csv_table(rows)
    names = [r[0] for r in table[1:]]
    assert names[:4] == ['\'=HYPERLINK("http://x")', "'+1", "'-2", "'@SUM(A1)"]
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in table for cell in r)
    assert names[6] == "李四"


def test_escape_sequences_and_bidi_overrides_are_shown_not_obeyed():
    evil = "\x1b[2J\x1b]0;owned\x07zhang\u202egnp.exe"
    results = [row(evil, detail="your code: ValueError: \x1b[31mred\u2066")]
    for text in (check.format_table(results), check.results_csv(results), check.results_html(results)):
        assert "\x1b" not in text and "\u202e" not in text and "\u2066" not in text and "\x07" not in text
    assert "\\x1b[2J" in check.format_table(results) and "\\u202e" in check.results_csv(results)


def test_names_that_are_not_utf8_are_shown_escaped(tmp_path):
    results = [row(NON_UTF8, path=f"class/{NON_UTF8}/01_tiny.ipynb")]
    text = check.format_table(results)
    assert "\\xd5\\xc5\\xc8\\xfd" in text
    check.results_csv(results).encode("utf-8")  # no lone surrogates left
    check.results_html(results).encode("utf-8")
    written = check.write_results(results, tmp_path / "out", ROOT / "notebooks")
    assert "\\xd5\\xc5" in written[0].read_text(encoding="utf-8-sig")


def test_same_name_in_two_groups_is_told_apart():
    results = [
        row("zhang", "class/A/zhang/01_tiny.ipynb"),
        row("zhang", "class/B/zhang/01_tiny.ipynb"),
        row("li", "class/A/li/01_tiny.ipynb"),
        row("wang", "class/A/wang.ipynb"),
        row("wang", "class/B/wang.ipynb"),
    ]
    check.distinguish(results)
    assert [r.student for r in results] == ["A/zhang", "B/zhang", "li", "A/wang.ipynb", "B/wang.ipynb"]


def test_names_that_only_look_alike_are_told_apart_and_shown_different():
    results = [
        row("zhang", "class/zhang/01_tiny.ipynb"),
        row("zh\u200bang", "class/zh\u200bang/01_tiny.ipynb"),  # a zero-width space
        row("\uff5ahang", "class/\uff5ahang/01_tiny.ipynb"),  # a full-width z
    ]
    check.distinguish(results)
    table = check.format_table(results)
    assert "\u200b" not in table and "zh\\u200bang" in table
    assert "\uff5ahang" in table and len({r.student for r in results}) == 3


@pytest.fixture
def odd_class(tmp_path):
    """A class folder whose only notebook is no submission (so no kernel starts) under a non-UTF-8 name."""
    folder = tmp_path / "class"
    (folder / NON_UTF8).mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("print('hi')")]), folder / NON_UTF8 / "=evil\u202e.ipynb")
    return folder


def test_out_inside_the_class_folder_is_refused(odd_class, capsys):
    assert check.main([str(odd_class), "--out", str(odd_class / "results")]) == 2
    assert "inside the submissions folder" in capsys.readouterr().err
    assert not (odd_class / "results").exists()


def test_a_strict_ascii_terminal_gets_no_traceback(odd_class, tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "ascii:strict"}
    done = subprocess.run(
        [sys.executable, "-m", "helpers", "check", str(odd_class), "--out", str(tmp_path / "out")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert b"Traceback" not in done.stderr
    assert b"=evil\\u202e" in done.stdout and b"not a student edition" in done.stdout
    table = (tmp_path / "out" / "results.csv").read_text(encoding="utf-8-sig")
    assert "'=evil\\u202e" in table and "\\xd5\\xc5" in table


def test_a_huge_exception_name_is_cut_at_once():
    """A student's exception class named with 20 million characters: one line of at most 100, and the table's cell
    is cut in one pass (cutting a character at a time took minutes, and no results were written)."""
    import time

    from helpers.commands.execute import _error_text
    from helpers.commands.report import _cell_text, _width

    text = _error_text({"ename": "passed\n" * 50 + "X" * 20_000_000, "evalue": "boom"})
    assert len(text) <= 100 + len(": boom") and text.startswith("passed")
    start = time.perf_counter()
    cell = _cell_text(row("x", detail="Y" * 200_000 + "中" * 200_000), 1, width=40)
    assert time.perf_counter() - start < 5 and _width(cell) <= 40 and cell.endswith("…")
    wide = _cell_text(row("x", detail="中文" * 100), 1, width=9)
    assert _width(wide) <= 9 and wide.endswith("…")
