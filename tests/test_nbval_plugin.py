"""The nbval extensions in tests/nbval_plugin.py: tolerance tags, the CPU pin for nbval's
kernels, and --stand-in. Each is checked on a tiny notebook run by a real nbval."""

import os
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO_ROOT
from helpers.commands import runner
from nbval_plugin import NBVAL_KERNEL_ENV, STAND_INS, numbers_close, tolerance_of


@pytest.mark.parametrize("stored, fresh, rel", [
    ("accuracy 85.2%, loss 0.4312", "accuracy 85.0%, loss 0.4320", 0.01),
    ("loss 0.50", "loss 0.51", 0.0),  # one unit in the last printed digit
    ("tensor([1.5e-03, 2.0e-03])", "tensor([1.5e-03, 2.0e-03])", 0.0),
    ("x1 = 0.50 (epoch 3)", "x1 = 0.505 (epoch 3)", 0.02),
])
def test_numbers_within_the_tolerance_match(stored, fresh, rel):
    assert numbers_close(stored, fresh, rel)


@pytest.mark.parametrize("stored, fresh, rel", [
    ("accuracy 85.2%", "accuracy 83.0%", 0.01),  # too far off
    ("epoch 3", "epoch 4", 0.1),  # integers are exact
    ("(58%)", "(59%)", 0.1),
    ("x1 = 0.50", "x2 = 0.50", 0.5),  # a name is text, not a number
    ("loss 0.5", "loss 0.5 nan", 0.5),  # one number more
    ("loss 0.5", "loss nan", 0.5),
    ("tensor([1., 1.])", "tensor([1.0000, 1.0000])", 0.1),  # the display flip is text
])
def test_numbers_outside_the_tolerance_or_other_text_differ(stored, fresh, rel):
    assert not numbers_close(stored, fresh, rel)


def test_tolerance_tag():
    assert tolerance_of(["parameters"]) is None
    assert tolerance_of(["nbval-tolerance=0.02", "solution"]) == 0.02
    for bad in (["nbval-tolerance=big"], ["nbval-tolerance=0.5"], ["nbval-tolerance=0.01", "nbval-tolerance=0.02"]):
        with pytest.raises(ValueError):
            tolerance_of(bad)


def tiny_notebook(path, cells):
    """A notebook whose code cells (source, stored stdout, tags) are stored as if already run."""
    nb = nbformat.v4.new_notebook()
    for n, (source, stored, tags) in enumerate(cells, 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=n)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored)]
        cell.metadata["tags"] = tags
        nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def nbval(path, *options):
    """Run this project's pytest (nbval and its extensions) on one notebook; return (passed, output)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.nbval_plugin", "-c", str(REPO_ROOT / "pyproject.toml"),
         "--rootdir", str(REPO_ROOT), "-q", "--color=no", *options, str(path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    return result.returncode == 0, result.stdout + result.stderr


def test_nbval_compares_tagged_cells_within_their_tolerance_and_others_exactly(tmp_path):
    near = tiny_notebook(tmp_path / "near.ipynb", [
        ('print("accuracy 85.04%")', "accuracy 85.2%\n", ["nbval-tolerance=0.01"]),
    ])
    assert nbval(near)[0]
    far = tiny_notebook(tmp_path / "far.ipynb", [
        ('print("accuracy 86.3%")', "accuracy 85.2%\n", ["nbval-tolerance=0.01"]),
    ])
    passed, output = nbval(far)
    assert not passed and "85.2%" in output
    untagged = tiny_notebook(tmp_path / "untagged.ipynb", [('print("accuracy 85.04%")', "accuracy 85.2%\n", [])])
    assert not nbval(untagged)[0]


def test_nbval_kernels_pick_the_cpu_and_papermill_kernels_the_default_device(tmp_path):
    """On a GPU machine nbval compares CPU-made outputs on the CPU; papermill uses the GPU."""
    source = 'import helpers; print(helpers.get_device("auto").type)'
    pinned = tiny_notebook(tmp_path / "pinned.ipynb", [
        ('import os; print(os.environ.get("HELPERS_AUTO_DEVICE"))', "cpu\n", []),
        (source, "cpu\n", []),
    ])
    assert NBVAL_KERNEL_ENV == {"HELPERS_AUTO_DEVICE": "cpu"}
    passed, output = nbval(pinned)
    assert passed, output
    # the papermill runner does not pin "auto": its kernel sees the test process's own environment
    parameters = nbformat.v4.new_code_cell('device = "auto"')
    parameters.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[parameters, nbformat.v4.new_code_cell(
        'import os; assert os.environ.get("HELPERS_AUTO_DEVICE") is None, os.environ.get("HELPERS_AUTO_DEVICE")')])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "lesson").mkdir()
    nbformat.write(nb, tmp_path / "lesson" / "free.ipynb")
    result = runner.run_notebook(tmp_path / "lesson" / "free.ipynb", tmp_path / "out", {}, progress_bar=False)
    assert result.status == "ok", result.error


@pytest.mark.parametrize("name", ["compat-1", "avx2-3"])
def test_stand_in_reaches_the_kernels(name, tmp_path):
    settings = STAND_INS[name]
    cells = [(f'import os; print(os.environ.get("{key}"))', f"{value}\n", []) for key, value in settings.items()]
    notebook = tiny_notebook(tmp_path / "standin.ipynb", cells)
    passed, output = nbval(notebook, "--stand-in", name)
    assert passed, output
    if any(os.environ.get(key) != value for key, value in settings.items()):  # not already this stand-in
        assert not nbval(notebook)[0], "without --stand-in the kernels see this machine's own settings"
