"""Tests for helpers/commands/reuse.py: check's reused lesson cells give the same marks as running every cell."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from reuse_class import WRONG, make_class

from conftest import NOTEBOOKS, needs_data
from helpers.commands.check import PASSED, check_submissions, exercise_number
from helpers.commands.reuse import _LINES, _definitions, _top_level

# -------------------------------------------------------------- reading a cell


def test_top_level_names_leave_out_function_locals_and_comprehension_variables():
    tree = ast.parse(
        "import numpy as np\nx, y = 1, 2\nfor i in range(3):\n    z = i\n"
        "def f(a):\n    local = a\n    return local\nsquares = [k * k for k in range(3)]\ndel y\n"
    )
    bound, deleted, mentioned = _top_level(tree)
    assert bound == {"np", "x", "y", "i", "z", "f", "squares"}
    assert deleted == {"y"}
    assert {"range", "local", "k"} <= mentioned


def test_definitions_run_first_unless_they_use_a_value_the_cell_computes():
    source = "import os\nx = 1\n\ndef f(a=2):\n    return x + a\n\n\n@staticmethod\ndef g():\n    pass\n"
    code, names = _definitions(ast.parse(source), source.splitlines())
    assert names == {"os", "f", "g"}
    assert code == "import os\n\ndef f(a=2):\n    return x + a\n\n@staticmethod\ndef g():\n    pass"
    for late in (
        "x = 1\ndef f(a=x):\n    pass",
        "x = 1\n@x\ndef f():\n    pass",
        "Base = object\nclass C(Base):\n    pass",
    ):
        assert _definitions(ast.parse(late), late.splitlines()) is None, late


def test_definitions_are_cut_out_by_the_lines_ast_counts():
    source = (
        "import os\n# a form feed \x0c and a line separator \u2028 in a comment\nx = 1\n\n\ndef f():\n    return x\n"
    )
    code, names = _definitions(ast.parse(source), _LINES.split(source))
    assert names == {"os", "f"} and code.endswith("def f():\n    return x")
    compile(code, "<loader>", "exec")


def test_a_loader_runs_the_cell_itself_when_its_file_is_changed_or_gone(tmp_path):
    import hashlib
    import random

    import torch

    from helpers.commands.reuse import LOADER
    from helpers.commands.reuse_kernel import WALKER

    w = torch.ones(2, requires_grad=True)
    (w * 3).sum().backward()
    saved = {
        "values": {"x": 7, "w": w},
        "absent": [],
        "rng": {
            "torch": torch.get_rng_state(),
            "random": random.getstate(),
            "numpy": __import__("numpy").random.get_state(),
        },
        "grads": [(0, w.grad)],
    }
    path = tmp_path / "cell3.pt"
    torch.save(saved, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()

    def loaded() -> dict:
        names: dict = {}
        source = LOADER.format(
            number=3, first="x = 6 + 1", definitions="", path=str(path), sha=sha, source="x = -1", walker=WALKER
        )
        exec(compile(source, "<loader>", "exec"), names)
        return names

    names = loaded()
    assert names["x"] == 7 and names["w"].grad.tolist() == [3.0, 3.0]  # loaded, gradient included
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))  # rewritten: the cell itself runs
    assert loaded()["x"] == -1
    path.unlink()  # gone: the cell itself runs, no error
    assert loaded()["x"] == -1


# -------------------------------------------------------------- a tiny lesson, both ways

SLOW = "time.sleep(1.2)  # slow enough to be reused\n"


def tiny_lesson() -> nbformat.NotebookNode:
    """Slow cells that bind, change an earlier list, draw random numbers, define after computing, write a file, change
    what other names share, leave a gradient, set a global in a function, capture in a match; and cells that
    cannot be reused (a function default holds what they change, a rebound definition, a class body)."""
    cells = [
        new_code_cell('device = "auto"\nseed = 0', metadata={"tags": ["parameters"]}),
        new_code_cell("import time\nimport torch\nitems = [1, 2, 3]"),
        new_code_cell(
            SLOW + "torch.manual_seed(seed)\nweights = torch.rand(3)\nitems.append(4)\nsame = {'a': weights}\n\n\n"
            "def total():\n    return float(weights.sum()) + len(items)\n"
        ),
        new_code_cell("after = torch.rand(1).item()  # the random state the slow cell left"),
        new_code_cell(SLOW + "open('made.txt', 'w').write('x')"),
        new_code_cell(SLOW + "square = lambda x: x * x"),
        new_code_cell(
            "import functools\nbox = {'v': [0]}\nalias = box['v']\nnet = torch.nn.Sequential(torch.nn.Linear(2, 2))\n"
            "first = net[0]\ncounter = [0]\n\n\ndef load():\n    global loaded\n    loaded = 5\n\n\n"
            "def peek(c=counter):\n    return c[0]\n"
        ),
        new_code_cell(  # reused: what other names share, a gradient, a global set by a function, a match capture
            SLOW + "box['v'].append(1)\nwith torch.no_grad():\n    net[0].weight.add_(1)\n"
            "w = torch.ones(2, requires_grad=True)\n(w * 2).sum().backward()\nload()\n"
            "match {'acc': 3}:\n    case {'acc': acc}:\n        pass\n"
        ),
        new_code_cell(SLOW + "counter[0] += 1  # peek() holds counter as a default: cannot be reused"),
        new_code_cell(  # a definition rebound, and a class body that reads what the cell computed: run every time
            SLOW + "table = [1, 2, 3]\n\n\ndef add(x, y):\n    return x + y\n\n\nadd = functools.partial(add, 1)\n"
        ),
        new_code_cell(SLOW + "table = [1, 2, 3]\n\n\nclass Cfg:\n    size = len(table)\n"),
        new_markdown_cell("**练习 1.** `answer = total()`"),
        new_code_cell("answer = total()", metadata={"tags": ["solution", "exercise-1"]}),
        new_code_cell(
            "torch.manual_seed(seed)\nexpected = torch.rand(3)\nfollowing = torch.rand(1).item()\n"
            "assert torch.equal(weights, expected) and same['a'] is weights\n"
            "assert items == [1, 2, 3, 4] and after == following\n"
            "assert answer == float(expected.sum()) + 4\n"
            "assert open('made.txt').read() == 'x' and square(3) == 9\n"
            "assert alias is box['v'] and box['v'] == [0, 1] and first is net[0]\n"
            "assert w.grad is not None and w.grad.tolist() == [2.0, 2.0]\n"
            "assert loaded == 5 and acc == 3 and peek() == 1 and add(2) == 3 and Cfg.size == 3",
            metadata={"tags": ["check", "exercise-1"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    return nb


def both_ways(folder: Path, **options) -> tuple[dict, dict, list[str], dict]:
    """Marks per student with reuse and without, the lines the reuse run announced, and its rows."""
    lines: list[str] = []
    options.setdefault("cell_timeout", 600)  # a loaded CI machine is slow; a time-out here is not what is tested
    reused = check_submissions([folder], jobs=2, reuse_cells=True, announce=lines.append, **options)
    full = check_submissions([folder], jobs=2, reuse_cells=False, **options)
    marks = [{r.student: {n: e.status for n, e in r.exercises.items()} for r in rows} for rows in (reused, full)]
    assert all(not r.problem for r in reused + full), [r.problem for r in reused + full]
    return marks[0], marks[1], lines, {r.student: r for r in reused}


def loaders(result) -> list[str]:
    return [c.source for c in result.executed.cells if c.source.startswith("# check: the teacher's lesson cell")]


def test_reused_cells_restore_what_the_checks_read(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (tmp_path / "data").mkdir()
    source = tiny_lesson()
    nbformat.write(source, notebooks / "01_tiny.ipynb")
    make_class(notebooks / "01_tiny.ipynb", tmp_path / "class", 3, {1: "answer = 0"})
    reused, full, lines, rows = both_ways(tmp_path / "class", notebooks_dir=notebooks)
    assert reused == full, "\n".join(lines)
    assert reused["s00_right"] == {1: PASSED} and reused["s01_wrong"] != {1: PASSED}
    announced = "\n".join(lines)
    assert "it wrote files" in announced and "its values cannot be pickled" in announced, announced
    assert "holds, as a default" in announced and announced.count("cannot be run apart") == 2, announced
    shown = loaders(rows["s00_right"])  # (a fast cell may join them on a loaded machine: 0.1 s is the threshold)
    first = next(code for code in shown if "def total():" in code)  # the cell that binds, changes and draws
    code = [line for line in first.split("def __helpers_reuse_load")[0].splitlines() if not line.startswith("#")]
    assert "def total():" in code and not any("time.sleep" in line for line in code), first
    cases = next(code for code in shown if "backward()" in code)  # the one with the cases: loaded, not run,
    assert "backward" not in cases.split("exec(compile(")[0], cases  # its source is only the fallback


TAMPER = """import glob, os
for path in glob.glob('/tmp/helpers-check-*/snapshots/*.pt'):
    try:
        os.chmod(path, 0o600)
        open(path, 'wb').write(b'not a snapshot')
    except OSError:
        pass
answer = total()
"""


def tamper_class(tmp_path: Path) -> Path:
    """The tiny lesson in tmp_path/notebooks; a class of a_tamper (checked first, rewrites snapshots) and b_right."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (tmp_path / "data").mkdir()
    nbformat.write(tiny_lesson(), notebooks / "01_tiny.ipynb")
    make_class(notebooks / "01_tiny.ipynb", tmp_path / "class", 1)
    (tmp_path / "class" / "s00_right").rename(tmp_path / "class" / "b_right")
    tamper = tmp_path / "class" / "a_tamper"
    tamper.mkdir()
    nb = nbformat.read(tmp_path / "class" / "b_right" / "01_tiny.ipynb", as_version=4)
    next(c for c in nb.cells if c.source == "answer = total()").source = TAMPER
    nbformat.write(nb, tamper / "01_tiny.ipynb")
    return notebooks


@pytest.mark.skipif(__import__("shutil").which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_in_the_sandbox_the_snapshots_are_shown_read_only(tmp_path):
    notebooks = tamper_class(tmp_path)
    rows = check_submissions([tmp_path / "class"], notebooks_dir=notebooks, jobs=1, reuse_cells=True, use_sandbox=True)
    marks = {r.student: {n: e.status for n, e in r.exercises.items()} for r in rows}
    assert marks == {"a_tamper": {1: PASSED}, "b_right": {1: PASSED}}, [
        (r.student, r.exercises, r.problem) for r in rows
    ]
    assert len({len(loaders(r)) for r in rows}) == 1 and len(loaders(rows[0])) >= 2


def test_without_the_sandbox_a_student_who_rewrites_the_snapshots_changes_no_classmate_mark(tmp_path):
    notebooks = tamper_class(tmp_path)
    lines: list[str] = []
    rows = check_submissions(
        [tmp_path / "class"], notebooks_dir=notebooks, jobs=1, reuse_cells=True, announce=lines.append
    )
    by_name = {r.student: r for r in rows}  # a_tamper's own mark is its business (its kernel mapped the file)
    assert by_name["b_right"].exercises[1].status == PASSED, [(r.student, r.exercises, r.notes) for r in rows]
    assert any("changed while this submission ran" in note for note in by_name["a_tamper"].notes)
    assert not by_name["b_right"].notes and not loaders(by_name["b_right"])  # b ran every cell
    assert len(loaders(by_name["a_tamper"])) >= 2 and any("a_tamper" in line for line in lines), lines


# -------------------------------------------------------------- real lessons

SMALL_06 = {"epochs": 1, "fast_epochs": 1, "n_seeds": 2, "compare_size": 5000, "timing_batches": 5}


@needs_data
@pytest.mark.parametrize("prefix", ["03", "06"])
def test_a_real_class_gets_the_same_marks_with_and_without_reuse(tmp_path, prefix):
    source = next(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    kinds = make_class(source, tmp_path / "class", 4, WRONG.get(prefix))
    parameters = SMALL_06 if prefix == "06" else {}
    reused, full, lines, rows = both_ways(tmp_path / "class", parameters=parameters)
    assert reused == full, (reused, full)
    nb = nbformat.read(source, as_version=4)
    code = {exercise_number(c) for c in nb.cells if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])}
    for name, kind in kinds.items():
        passed = {n for n, status in reused[name].items() if status == PASSED}
        assert passed == {"right": code, "mixed": {min(code)}}.get(kind, set()), (name, reused[name])
    if prefix == "06":  # data loading and training are reused
        assert len(loaders(rows["s00_right"])) >= 3, lines
