"""Fast start-up: ``import helpers`` and the commands' ``--help`` load no torch, torchvision or matplotlib.

Each check runs in a fresh interpreter, since this test process has long since imported them all.
"""

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import helpers
from tests.conftest import REPO_ROOT, write_fake_fashion_mnist

HEAVY = ("torch", "torchvision", "matplotlib")


def run_python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)


def heavy_modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter and return which of HEAVY it left in sys.modules."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    result = run_python("-c", probe)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def imported_by(result: subprocess.CompletedProcess) -> set[str]:
    """The top-level packages that ``python -X importtime`` reported importing."""
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    return names


HELP_COMMANDS = [
    ["--help"],
    ["student", "--help"],
    ["html", "--help"],
    ["data", "--help"],
    ["lab", "--help"],
    ["bench", "--help"],
    ["check", "--help"],
    ["run", "--help"],
]


@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=" ".join)
def test_command_help_loads_no_torch_or_matplotlib(argv):
    result = run_python("-X", "importtime", "-m", "helpers", *argv)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "usage:" in result.stdout
    names = imported_by(result)
    assert "helpers" in names  # the importtime report was read
    assert not names & set(HEAVY), f"python -m helpers {' '.join(argv)} imported {sorted(names & set(HEAVY))}"


def test_import_helpers_loads_no_torch_or_matplotlib():
    assert heavy_modules_after("import helpers") == []


def test_names_load_only_what_their_module_needs():
    # the dataset's constants and functions need neither torch nor torchvision until called
    assert heavy_modules_after("from helpers import CLASSES, CLASSES_ZH, RAW_FILES, fashion_mnist") == []
    assert heavy_modules_after("from helpers import TensorLoader") == ["torch"]  # not torchvision
    assert heavy_modules_after("import helpers; helpers.get_device") == ["torch"]


def test_every_public_name_is_the_object_of_its_submodule():
    import importlib

    for name in helpers.__all__:
        module = importlib.import_module(f"helpers.{helpers._EXPORTS[name]}")
        assert getattr(helpers, name) is getattr(module, name), name
    assert set(helpers.__all__) == set(helpers._EXPORTS)
    assert set(helpers.__all__) <= set(dir(helpers))
    namespace = {}
    exec("from helpers import *", namespace)
    assert {name for name in namespace if not name.startswith("__")} == set(helpers.__all__)


def test_submodules_stay_reachable_as_attributes():
    result = run_python("-c", "import helpers; print(helpers.training.fit is helpers.fit, helpers.data.CLASSES[0])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "T-shirt/top"]


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = helpers.no_such_name
    with pytest.raises(ImportError):
        exec("from helpers import no_such_name", {})


def test_fashion_mnist_defaults_to_the_v2_transform(tmp_path):
    root = write_fake_fashion_mnist(tmp_path)
    image, label = helpers.fashion_mnist(root, download=False)[0]
    assert isinstance(image, torch.Tensor) and image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert float(image.max()) <= 1.0
    raw, _ = helpers.fashion_mnist(root, download=False, transform=None)[0]
    assert not isinstance(raw, torch.Tensor)  # transform=None still means no transform (a PIL image)
    assert torch.equal(image, torch.from_numpy(np.array(raw)).unsqueeze(0).float().mul(1.0 / 255))  # v2's arithmetic
    from torchvision.transforms import v2

    assert torch.equal(image, v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])(raw))
    default = repr(inspect.signature(helpers.fashion_mnist).parameters["transform"].default)
    assert default == "v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])"
