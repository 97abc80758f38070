"""Hostile submissions: code in a student's own cell must not turn a wrong answer into "passed".

Each submission below answers wrongly and then tries to fake the teacher's check
from inside the kernel (see helpers/commands/grading.py for what the grader does).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.commands.check import FAILED, PASSED, check_submissions, exercise_number
from helpers.commands.classroom import write_student_edition

WRONG_DOUBLE = "def double(x):\n    return x + 0  # wrong: should be 2 * x\n"
WRONG_TOTAL = "total = 0  # wrong: should be 15\n"


def hostile_lesson() -> nbformat.NotebookNode:
    """A tiny torch lesson: exercise 1 is checked with torch.allclose and torch.equal, exercise 2 with ==."""
    cells = [
        new_markdown_cell("# 01 小练习", id="md0"),
        new_code_cell('device = "auto"', id="c1", metadata={"tags": ["parameters"]}),
        new_code_cell("import torch\nvalues = torch.arange(6.0)", id="c2"),
        new_markdown_cell("**练习 1.** 写 `double(x)`。", id="md3"),
        new_code_cell("def double(x):\n    return 2 * x", id="c4", metadata={"tags": ["solution", "exercise-1"]}),
        new_code_cell(
            "t = torch.arange(4.0)\nassert torch.allclose(double(t), t * 2), 'double 不对'\n"
            "assert torch.equal(double(t), t + t), 'double 不对'\nprint('练习 1 通过 passed')",
            id="c5",
            metadata={"tags": ["check", "exercise-1"]},
        ),
        new_markdown_cell("**练习 2.** 算出 `total`。", id="md6"),
        new_code_cell("total = int(values.sum())", id="c7", metadata={"tags": ["solution", "exercise-2"]}),
        new_code_cell(
            "assert total == 15, 'total 不对'\nprint('练习 2 通过 passed')",
            id="c8",
            metadata={"tags": ["check", "exercise-2"]},
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    return nb


HOSTILE = {
    # IPython rewrites every later cell (the check included) to `pass`
    "input_transformer": "get_ipython().input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n" + WRONG_DOUBLE,
    "post_transformer": "get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])\n" + WRONG_DOUBLE,
    "ast_transformer": "import ast\nclass Blank(ast.NodeTransformer):\n    def visit_Module(self, node):\n"
    "        return ast.Module(body=[ast.Pass()], type_ignores=[])\n"
    "get_ipython().ast_transformers.append(Blank())\n" + WRONG_DOUBLE,
    # the comparisons the check relies on always say yes
    "patched_torch": "import torch\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
    + WRONG_DOUBLE,
    "patched_tensor": "import torch\ntorch.Tensor.__eq__ = lambda *a: torch.tensor(True)\n"
    "torch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n" + WRONG_DOUBLE,
    # ... patched only while the check calls the student's function
    "patched_during_call": "import torch\ndef double(x):\n    torch.allclose = lambda *a, **k: True\n"
    "    torch.equal = lambda *a, **k: True\n    return x\n",
    # the name `torch` in the notebook now means something else
    "fake_torch": "import types\ntorch = types.SimpleNamespace(arange=__import__('torch').arange, "
    "allclose=lambda *a, **k: True, equal=lambda *a, **k: True)\n" + WRONG_DOUBLE,
    # an event hook puts the patch back before every cell
    "event_hook": "import torch\ndef again(*args):\n    torch.allclose = lambda *a, **k: True\n"
    "    torch.equal = lambda *a, **k: True\nget_ipython().events.register('pre_run_cell', again)\n" + WRONG_DOUBLE,
    # a tensor subclass that answers every torch function with True
    "torch_function": "import torch\nclass Yes(torch.Tensor):\n    @classmethod\n"
    "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n        return True\n"
    "def double(x):\n    return x.as_subclass(Yes)\n",
}
HOSTILE_TOTAL = {
    # an int whose == is always true
    "int_subclass": "class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
    "total = Liar(0)\n",
    "eq_object": "class Anything:\n    def __eq__(self, other):\n        return True\ntotal = Anything()\n",
}


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    (root / "data").mkdir()
    source = hostile_lesson()
    nbformat.write(source, notebooks / "01_tiny.ipynb")
    student_path = write_student_edition(root / "student", notebooks_dir=notebooks)[0]
    student = nbformat.read(student_path, as_version=4)

    def answered(one: str, two: str) -> nbformat.NotebookNode:
        nb = nbformat.from_dict(nbformat.reads(nbformat.writes(student), as_version=4))
        for cell in nb.cells:
            if cell.cell_type == "code" and "check" not in cell.metadata.get("tags", []):
                if exercise_number(cell) == 1:
                    cell.source = one
                elif exercise_number(cell) == 2:
                    cell.source = two
        return nb

    submissions = {"correct": answered("def double(x):\n    return 2 * x", "total = int(values.sum())")}
    for name, code in HOSTILE.items():
        submissions[name] = answered(code, "total = int(values.sum())")
    # a right answer that also patches torch while the check calls it: the check's verdict cannot be trusted
    submissions["patches_while_checked"] = answered(
        "import torch\ndef double(x):\n    torch.equal = lambda *a, **k: True\n    return 2 * x\n", "total = 15"
    )
    # processes that try to outlive the submission: a new session, and a double-forked one that renames itself
    spawner = (
        "import os, subprocess, sys\n"
        f"pids = open({str(root / 'pids.txt')!r}, 'a')\n"
        "def born(pid):\n"  # the start time tells this process apart from a later one that reuses its pid
        "    return open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19]\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        "pids.write(f'{child.pid} {born(child.pid)}\\n')\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(root / 'pids.txt')!r}, 'a').write(f'{{os.getpid()}} {{born(os.getpid())}}\\n')\n"
        "        import time; time.sleep(300)\n"
        "    os._exit(0)\n"
        "pids.close()\n"
        "import time; time.sleep(0.5)\n"
        "total = int(values.sum())\n"
    )
    submissions["spawns"] = answered("def double(x):\n    return 2 * x", spawner)
    for name, code in HOSTILE_TOTAL.items():
        submissions[name] = answered("def double(x):\n    return 2 * x", code)
    folder = root / "class"
    for name, nb in submissions.items():
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / student_path.name)
    results = check_submissions([folder], notebooks_dir=notebooks, jobs=2, cell_timeout=30, notebook_timeout=120)
    rows = {r.student: r for r in results}
    rows["pids"] = [tuple(line.split()) for line in (root / "pids.txt").read_text().splitlines()]
    return rows


def test_no_process_of_a_submission_survives(hostile_class):
    assert {n: e.status for n, e in hostile_class["spawns"].exercises.items()} == {1: PASSED, 2: PASSED}
    pids = hostile_class["pids"]
    assert len(pids) == 2
    for pid, born in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone
        if fields[19] != born:
            continue  # gone: a later process (or thread) got the same pid, which happens once pids wrap around
        assert fields[0] in ("Z", "X"), f"process {pid} started by a submission is still running"


def test_the_killer_waits_until_a_killed_process_has_exited(monkeypatch):
    """A killed process loses its marker (its environment) while it still exits; the killer follows it anyway.

    On a busy machine a SIGKILLed kernel child can take seconds to exit. Here the
    marker is visible only on the first scan and the kill lands 0.5 s late: the
    killer must not return before the process is gone.
    """
    import subprocess
    import sys
    import threading

    from helpers.commands import sandbox

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        scans = iter([{child.pid}])
        monkeypatch.setattr(sandbox, "submission_processes", lambda marker, root: next(scans, set()))
        real_signal = sandbox._signal
        late = threading.Timer(0.5, real_signal, args=([child.pid], 9))

        def slow_signal(pids, sig):
            if sig == 9 and late.ident is None:
                late.start()  # the first SIGKILL arrives 0.5 s late; the later ones are dropped

        monkeypatch.setattr(sandbox, "_signal", slow_signal)
        assert sandbox.kill_submission("m", None) == 1
        assert child.poll() is not None, "kill_submission returned while a process it killed was still exiting"
    finally:
        child.kill()
        child.wait()


def test_a_correct_answer_still_passes(hostile_class):
    row = hostile_class["correct"]
    assert {n: e.status for n, e in row.exercises.items()} == {1: PASSED, 2: PASSED}, row.exercises


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_wrong_function_cannot_fake_its_check(hostile_class, name):
    row = hostile_class[name]
    assert row.exercises[1].status == FAILED, (name, row.exercises[1])


@pytest.mark.parametrize("name", sorted(HOSTILE_TOTAL))
def test_a_wrong_value_cannot_fake_its_check(hostile_class, name):
    row = hostile_class[name]
    assert row.exercises[1].status == PASSED, row.exercises[1]  # the honest exercise is untouched
    assert row.exercises[2].status == FAILED, (name, row.exercises[2])


def test_the_detail_says_what_happened(hostile_class):
    row = hostile_class["patches_while_checked"]
    assert row.exercises[1].status == FAILED and "changed while the check ran: equal" in row.exercises[1].detail
    assert row.exercises[2].status == PASSED
    assert hostile_class["int_subclass"].exercises[2].detail == "check: AssertionError: total 不对"
    assert "defines its own comparison" in hostile_class["eq_object"].exercises[2].detail
    assert "tensor or array subclass" in hostile_class["torch_function"].exercises[1].detail


def test_the_student_edition_drops_raw_and_capitalised_solutions():
    from nbformat.v4 import new_raw_cell

    from helpers.commands.classroom import student_notebook

    nb = hostile_lesson()
    nb.cells.append(new_raw_cell("SECRET raw answer", metadata={"tags": ["solution", "exercise-3"]}))
    nb.cells.append(new_code_cell("SECRET = 'capitalised'", metadata={"tags": ["Solution", "exercise-4"]}))
    student = student_notebook(nb, lesson="01")
    assert not [c for c in student.cells if "SECRET" in c.source]
    assert not [c for c in student.cells if any(str(t).lower() == "solution" for t in c.metadata.get("tags", []))]


@pytest.mark.skipif(__import__("shutil").which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_the_sandbox_has_no_network_no_writable_repository_and_its_own_tmp(tmp_path):
    import secrets

    REPO = Path(__file__).resolve().parent.parent
    assert (REPO / "notebooks" / "06_training.ipynb").exists()

    from helpers.commands.check import grade_submission

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(hostile_lesson(), notebooks / "01_tiny.ipynb")
    student_path = write_student_edition(tmp_path / "student", notebooks_dir=notebooks)[0]
    nb = nbformat.read(student_path, as_version=4)
    outside, probe = tmp_path / "outside.txt", f"/tmp/helpers-sandbox-probe-{secrets.token_hex(6)}"
    probe_code = (
        "import socket\n"
        "blocked = []\n"
        f"try:\n    open({str(outside)!r}, 'w').write('x')\nexcept OSError:\n    blocked.append('files')\n"
        "try:\n    socket.create_connection(('127.0.0.1', 9), timeout=2)\nexcept OSError:\n    blocked.append('network')\n"
        f"open({probe!r}, 'w').write('x')  # the private /tmp is writable\n"
        # the teacher's solutions are out of sight: the --notebooks folder, the repository's notebooks and git history
        f"solutions = [{str(notebooks / '01_tiny.ipynb')!r}, {str(REPO / 'notebooks' / '06_training.ipynb')!r}, "
        f"{str(REPO / '.git' / 'HEAD')!r}]\n"
        "import os, helpers\n"
        "if not any(os.path.exists(p) for p in solutions):\n    blocked.append('solutions')\n"
        "total = 15 if blocked == ['files', 'network', 'solutions'] else 0\n"
    )
    for cell in nb.cells:
        if cell.cell_type == "code" and "check" not in cell.metadata.get("tags", []):
            if exercise_number(cell) == 1:
                cell.source = "def double(x):\n    return 2 * x"
            elif exercise_number(cell) == 2:
                cell.source = probe_code
    (tmp_path / "class").mkdir()
    nbformat.write(nb, tmp_path / "class" / "01_tiny.ipynb")
    import asyncio

    row = asyncio.run(
        grade_submission(
            tmp_path / "class" / "01_tiny.ipynb",
            notebooks_dir=notebooks,
            cell_timeout=30,
            notebook_timeout=120,
            use_sandbox=True,
        )
    )
    assert {n: e.status for n, e in row.exercises.items()} == {1: PASSED, 2: PASSED}, (row.exercises, row.problem)
    assert not outside.exists() and not Path(probe).exists()


def test_a_killed_check_leaves_nothing_for_the_next_one(tmp_path, monkeypatch):
    """A check killed with SIGKILL cannot clean up; the next check removes its folders, and only those."""
    import os
    import subprocess
    import sys
    import tempfile

    from helpers.commands import sandbox

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    born = sandbox._started(gone.pid)
    gone.kill()
    gone.wait()
    stale, mine, unmarked = tmp_path / "helpers-check-stale", sandbox.temporary_root(), tmp_path / "helpers-check-other"
    for folder in (stale, unmarked):
        (folder / "work").mkdir(parents=True)
    (stale / ".owner").write_text(f"{gone.pid} {born}\n")
    assert sandbox.sweep_stale_roots() == 1
    assert not stale.exists() and mine.exists() and unmarked.exists()
    assert mine.parent == tmp_path and os.stat(mine).st_mode & 0o777 == 0o700


@pytest.mark.skipif(__import__("shutil").which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_in_the_sandbox_no_kernel_sees_the_class(tmp_path):
    """A classmate's notebook holds answers that could be run; with --sandbox the class folder is out of sight."""
    import shutil
    import tempfile

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(hostile_lesson(), notebooks / "01_tiny.ipynb")
    student = nbformat.read(write_student_edition(tmp_path / "student", notebooks_dir=notebooks)[0], as_version=4)
    outside_tmp = Path(tempfile.mkdtemp(dir=Path.home()))  # not under /tmp, which the sandbox replaces anyway
    try:
        other = outside_tmp / "class" / "li" / "01_tiny.ipynb"
        looks = f"import os\ntotal = 0 if os.path.exists({str(other)!r}) else 15\n"
        for name, two in (("wang", looks), ("li", "total = int(values.sum())")):
            nb = nbformat.from_dict(nbformat.reads(nbformat.writes(student), as_version=4))
            for cell in nb.cells:
                if cell.cell_type == "code" and "check" not in cell.metadata.get("tags", []):
                    number = exercise_number(cell)
                    if number:
                        cell.source = "def double(x):\n    return 2 * x" if number == 1 else two
            (outside_tmp / "class" / name).mkdir(parents=True)
            nbformat.write(nb, outside_tmp / "class" / name / "01_tiny.ipynb")
        rows = check_submissions([outside_tmp / "class"], notebooks_dir=notebooks, use_sandbox=True, cell_timeout=60)
        marks = {r.student: {n: e.status for n, e in r.exercises.items()} for r in rows}
        assert marks == {"wang": {1: PASSED, 2: PASSED}, "li": {1: PASSED, 2: PASSED}}, marks
    finally:
        shutil.rmtree(outside_tmp, ignore_errors=True)
