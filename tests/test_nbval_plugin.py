"""The nbval extensions in tests/nbval_plugin.py: tolerance tags, the CPU pin for nbval's
kernels, and --stand-in. Each is checked on a tiny notebook run by a real nbval."""

import os
import subprocess
import sys

import nbformat
import pytest
from nbval_plugin import (
    NBVAL_KERNEL_ENV,
    STAND_INS,
    STANDIN_SITE,
    numbers_close,
    stand_in_settings,
    tolerance_of,
    tolerances_of,
)

from conftest import REPO_ROOT
from helpers.commands import runner


@pytest.mark.parametrize(
    "stored, fresh, rel",
    [
        ("accuracy 85.2%, loss 0.4312", "accuracy 85.0%, loss 0.4320", 0.01),
        ("loss 0.50", "loss 0.51", 0.0),  # one unit in the last printed digit
        ("tensor([1.5e-03, 2.0e-03])", "tensor([1.5e-03, 2.0e-03])", 0.0),
        ("x1 = 0.50 (epoch 3)", "x1 = 0.505 (epoch 3)", 0.02),
    ],
)
def test_numbers_within_the_tolerance_match(stored, fresh, rel):
    assert numbers_close(stored, fresh, rel)


@pytest.mark.parametrize(
    "stored, fresh, rel",
    [
        ("accuracy 85.2%", "accuracy 83.0%", 0.01),  # too far off
        ("epoch 3", "epoch 4", 0.1),  # integers are exact
        ("(58%)", "(59%)", 0.1),
        ("x1 = 0.50", "x2 = 0.50", 0.5),  # a name is text, not a number
        ("loss 0.5", "loss 0.5 nan", 0.5),  # one number more
        ("loss 0.5", "loss nan", 0.5),
        ("tensor([1., 1.])", "tensor([1.0000, 1.0000])", 0.1),  # the display flip is text
    ],
)
def test_numbers_outside_the_tolerance_or_other_text_differ(stored, fresh, rel):
    assert not numbers_close(stored, fresh, rel)


def test_tolerance_tag():
    assert tolerance_of(["parameters"]) is None
    assert tolerance_of(["nbval-tolerance=0.02", "solution"]) == 0.02
    for bad in (["nbval-tolerance=big"], ["nbval-tolerance=0.5"], ["nbval-tolerance=0.01", "nbval-tolerance=0.02"]):
        with pytest.raises(ValueError):
            tolerance_of(bad)


def test_absolute_tolerance_tag():
    assert tolerances_of(["parameters"]) is None
    assert tolerances_of(["nbval-tolerance=0.02"]) == (0.02, 0.0)
    assert tolerances_of(["nbval-tolerance-abs=1.5"]) == (0.0, 1.5)
    assert tolerances_of(["nbval-tolerance-abs=1.5", "nbval-tolerance=0.01"]) == (0.01, 1.5)
    assert tolerance_of(["nbval-tolerance-abs=1.5"]) is None  # no relative tag
    for bad in (
        ["nbval-tolerance-abs=x"],
        ["nbval-tolerance-abs=-1"],
        ["nbval-tolerance-abs=nan"],
        ["nbval-tolerance-abs=inf"],
        ["nbval-tolerance-abs=1", "nbval-tolerance-abs=2"],
        ["nbval-tolerance-abs="],
        ["nbval-tolerance-ab=1"],
        ["nbval-tolerance:0.1"],
        ["nbval-tolerance"],
    ):
        with pytest.raises(ValueError):
            tolerances_of(bad)


@pytest.mark.parametrize(
    "stored, fresh, rel, absolute, close",
    [
        ("占该类测试图片的 13.5%", "占该类测试图片的 12.4%", 0.0, 1.0, True),  # 1.1 <= 1.0 + 0.1
        ("占该类测试图片的 13.5%", "占该类测试图片的 12.3%", 0.0, 1.0, False),
        ("占该类测试图片的 13.5%", "占该类测试图片的 14.9%", 0.01, 1.2, True),  # 1.4 <= 0.135 + 1.2 + 0.1
        ("占该类测试图片的 13.5%", "占该类测试图片的 14.9%", 0.0, 1.2, False),
        ("loss 0.500", "loss 0.551", 0.0, 0.05, True),
        ("loss 0.500", "loss 0.552", 0.0, 0.05, False),
        ("epoch 3, 13.5%", "epoch 4, 13.5%", 0.1, 5.0, False),  # integers stay exact
        ("13.5% 衬衫", "13.5% 外套", 0.1, 5.0, False),  # and so do words
    ],
)
def test_absolute_tolerance(stored, fresh, rel, absolute, close):
    assert numbers_close(stored, fresh, rel, absolute) is close


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
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.nbval_plugin",
            "-c",
            str(REPO_ROOT / "pyproject.toml"),
            "--rootdir",
            str(REPO_ROOT),
            "-q",
            "--color=no",
            *options,
            str(path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result.returncode == 0, result.stdout + result.stderr


def test_nbval_compares_tagged_cells_within_their_tolerance_and_others_exactly(tmp_path):
    near = tiny_notebook(
        tmp_path / "near.ipynb",
        [
            ('print("accuracy 85.04%")', "accuracy 85.2%\n", ["nbval-tolerance=0.01"]),
        ],
    )
    assert nbval(near)[0]
    far = tiny_notebook(
        tmp_path / "far.ipynb",
        [
            ('print("accuracy 86.3%")', "accuracy 85.2%\n", ["nbval-tolerance=0.01"]),
        ],
    )
    passed, output = nbval(far)
    assert not passed and "85.2%" in output
    untagged = tiny_notebook(tmp_path / "untagged.ipynb", [('print("accuracy 85.04%")', "accuracy 85.2%\n", [])])
    assert not nbval(untagged)[0]
    absolute = tiny_notebook(
        tmp_path / "absolute.ipynb",
        [
            ('print("T恤/上衣 → 衬衫: 12.4%")', "T恤/上衣 → 衬衫: 13.5%\n", ["nbval-tolerance-abs=1.5"]),
            ('print("loss 0.42, 84.0%")', "loss 0.45, 85.2%\n", ["nbval-tolerance=0.02", "nbval-tolerance-abs=0.03"]),
        ],
    )
    passed, output = nbval(absolute)
    assert passed, output
    beyond = tiny_notebook(
        tmp_path / "beyond.ipynb",
        [
            ('print("T恤/上衣 → 衬衫: 11.8%")', "T恤/上衣 → 衬衫: 13.5%\n", ["nbval-tolerance-abs=1.5"]),
        ],
    )
    passed, output = nbval(beyond)
    assert not passed and "13.5%" in output
    malformed = tiny_notebook(
        tmp_path / "malformed.ipynb",
        [
            ('print("13.5%")', "13.5%\n", ["nbval-tolerance-abs=lots"]),
        ],
    )
    passed, output = nbval(malformed)
    assert not passed and "nbval-tolerance-abs=lots" in output


def test_nbval_kernels_pick_the_cpu_and_papermill_kernels_the_default_device(tmp_path):
    """On a GPU machine nbval compares CPU-made outputs on the CPU; papermill uses the GPU."""
    source = 'import helpers; print(helpers.get_device("auto").type)'
    pinned = tiny_notebook(
        tmp_path / "pinned.ipynb",
        [
            ('import os; print(os.environ.get("HELPERS_AUTO_DEVICE"))', "cpu\n", []),
            (source, "cpu\n", []),
        ],
    )
    assert NBVAL_KERNEL_ENV == {"HELPERS_AUTO_DEVICE": "cpu"}
    passed, output = nbval(pinned)
    assert passed, output
    # the papermill runner does not pin "auto": its kernel sees the test process's own environment
    parameters = nbformat.v4.new_code_cell('device = "auto"')
    parameters.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(
        cells=[
            parameters,
            nbformat.v4.new_code_cell(
                'import os; assert os.environ.get("HELPERS_AUTO_DEVICE") is None, os.environ.get("HELPERS_AUTO_DEVICE")'
            ),
        ]
    )
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


ULP_PROBE = """import os, sys
import torch
mode = sys.modules["ulp_standin"].active()
a = torch.linspace(0.1, 1.0, 12, dtype=torch.float64).reshape(3, 4)
b = torch.linspace(-1.0, 0.7, 8, dtype=torch.float64).reshape(4, 2)
with torch._C.DisableTorchFunction():
    exact = torch.mm(a, b)
print(os.environ["HELPERS_ULP_SEED"], mode.seed, (a @ b != exact).any().item())"""


def test_rounding_stand_in_settings():
    settings = stand_in_settings("ulp-3", {"PYTHONPATH": os.pathsep.join(["/x", STANDIN_SITE])})
    assert settings == {"HELPERS_ULP_SEED": "3", "PYTHONPATH": os.pathsep.join([STANDIN_SITE, "/x"])}
    assert "HELPERS_ULP_SEED" not in stand_in_settings("compat-1")
    for bad in ("ulp-0", "ulp-", "ulp-x", "ulp1", "fast"):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "--stand-in", bad, "--co", "-q", "tests/test_splits.py"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0 and "ulp-K" in result.stderr, bad


def test_rounding_stand_in_reaches_the_kernels_and_only_under_ulp(tmp_path):
    notebook = tiny_notebook(tmp_path / "ulp.ipynb", [(ULP_PROBE, "2 2 True\n", [])])
    passed, output = nbval(notebook, "--stand-in", "ulp-2", "-p", "no:randomly")
    assert passed, output
    # without it, and under the other stand-ins, no kernel perturbs anything (a set seed is even removed)
    env = dict(os.environ, HELPERS_ULP_SEED="2")
    off = tiny_notebook(
        tmp_path / "off.ipynb",
        [
            (
                'import os, sys, torch; print(os.environ.get("HELPERS_ULP_SEED"), "ulp_standin" in sys.modules)',
                "None False\n",
                [],
            )
        ],
    )
    for options in ((), ("--stand-in", "compat-1")):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "tests.nbval_plugin",
                "-c",
                str(REPO_ROOT / "pyproject.toml"),
                "--rootdir",
                str(REPO_ROOT),
                "-q",
                "--color=no",
                *options,
                str(off),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- the rounding stand-in itself (tests/standin_site/ulp_standin.py), in this process --------------------


def _ulp_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "ulp_standin_under_test", os.path.join(STANDIN_SITE, "ulp_standin.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _products(seed, dtype=None):
    import torch
    import torch.nn.functional as F

    ulp = _ulp_module()
    dtype = dtype or torch.float32
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=gen, dtype=dtype), torch.randn(5, 4, generator=gen, dtype=dtype)
    image, kernel = (
        torch.randn(1, 1, 6, 6, generator=gen, dtype=dtype),
        torch.randn(2, 1, 3, 3, generator=gen, dtype=dtype),
    )
    calls = [
        lambda: a @ b,
        lambda: torch.matmul(a, b),
        lambda: torch.mm(a, b),
        lambda: a.mm(b),
        lambda: torch.bmm(a[None], b[None]),
        lambda: torch.addmm(a[:, :4], a, b),
        lambda: F.linear(a, b.T),
        lambda: F.conv2d(image, kernel),
    ]
    with torch._C.DisableTorchFunction():
        exact = [f() for f in calls]
    with ulp.UlpPerturbation(seed) as mode:
        moved = [f() for f in calls]
    assert mode.count == len(calls)
    return exact, moved


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ulp_hook_moves_every_product_by_at_most_one_ulp(dtype):
    import torch

    dtype = getattr(torch, dtype)
    exact, moved = _products(1, dtype)
    for e, m in zip(exact, moved):
        assert m.dtype == dtype and m.shape == e.shape
        up = torch.nextafter(e, torch.full_like(e, float("inf")))
        down = torch.nextafter(e, torch.full_like(e, float("-inf")))
        assert ((m == e) | (m == up) | (m == down)).all()
        changed = (m != e).float().mean().item()
        assert 0.3 < changed < 0.95, changed  # about two thirds move, one way or the other


def test_ulp_hook_is_deterministic_per_seed_and_differs_between_seeds():
    import torch

    _, first = _products(1)
    _, again = _products(1)
    _, other = _products(2)
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    assert not all(torch.equal(x, y) for x, y in zip(first, other))


def test_ulp_hook_leaves_the_global_rng_integers_and_gradients_alone():
    import torch

    ulp = _ulp_module()
    torch.manual_seed(0)
    state = torch.get_rng_state()
    layer = torch.nn.Linear(5, 3)
    x = torch.randn(4, 5)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    with ulp.UlpPerturbation(7) as mode:
        out = layer(x)
        out.sum().backward()
        ints = torch.arange(6).reshape(2, 3) @ torch.arange(6).reshape(3, 2)
    assert torch.equal(torch.get_rng_state(), before), "the hook must not draw from the global generator"
    assert not torch.equal(before, state)
    assert mode.count == 1 and ints.tolist() == [[10, 13], [28, 40]]  # only the float product moved
    assert torch.allclose(layer.weight.grad, x.sum(0).expand(3, 5)) and torch.equal(
        layer.bias.grad, torch.full((3,), 4.0)
    )


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_ulp_hook_on_cuda_uses_the_same_pattern():
    import torch

    ulp = _ulp_module()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 32, generator=gen), torch.randn(32, 16, generator=gen)
    with torch._C.DisableTorchFunction():
        exact = a.cuda() @ b.cuda()
    with ulp.UlpPerturbation(3):
        on_gpu = a.cuda() @ b.cuda()
        assert on_gpu.is_cuda
    up = torch.nextafter(exact, torch.full_like(exact, float("inf")))
    down = torch.nextafter(exact, torch.full_like(exact, float("-inf")))
    assert ((on_gpu == exact) | (on_gpu == up) | (on_gpu == down)).all() and (on_gpu != exact).any()


def test_ulp_hook_is_a_function_of_the_value_like_a_real_machine():
    """The same product twice gives the same bits; whole numbers and grad_fn are left as they are; out= moves too."""
    import torch

    ulp = _ulp_module()
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, generator=gen), torch.randn(5, 3, generator=gen)
    layer = torch.nn.Linear(5, 3)
    with torch._C.DisableTorchFunction():
        exact = a @ b
    with ulp.UlpPerturbation(4):
        first, second = a @ b, a @ b
        into = torch.empty(8, 3)
        torch.matmul(a, b, out=into)
        whole = torch.tensor([[1.0, 2.0], [3.0, 4.0]]) @ torch.tensor([[5.0], [6.0]])
        grad_fn = type(layer(a).grad_fn).__name__
    assert torch.equal(first, second) and torch.equal(first, into)
    assert not torch.equal(first, exact)
    assert whole.flatten().tolist() == [17.0, 39.0]
    assert grad_fn == "AddmmBackward0"


def test_a_number_that_gains_a_digit_may_take_a_space_of_the_padding():
    stored = "外套        9.8%    76.4%\n"
    fresh = "外套       10.2%    76.0%\n"
    assert numbers_close(stored, fresh, 0.1, 3)
    assert not numbers_close(stored, fresh.replace("外套", "衬衫"), 0.1, 3)  # other words still fail
    assert not numbers_close(stored, "外套       14.2%    76.0%\n", 0.1, 3)  # too far still fails
    assert not numbers_close("a 1.0\n", "a1.0\n", 0.1, 3)  # padding may shrink, not vanish
