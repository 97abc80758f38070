import ast

import nbformat
import pytest
import torch

from conftest import NOTEBOOKS
from helpers import get_device


def test_auto_is_current_accelerator_or_cpu():
    device = get_device("auto")
    if torch.accelerator.is_available():
        assert device == torch.accelerator.current_accelerator()
    else:
        assert device == torch.device("cpu")
    assert get_device() == device


@pytest.mark.parametrize("name", ["cpu", "CPU", " cpu "])
def test_cpu_names(name):
    assert get_device(name) == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:1", "", "auto:0", "cuda0"])
def test_unknown_or_malformed_name_lists_accepted(name):
    with pytest.raises(ValueError) as info:
        get_device(name)
    message = str(info.value)
    for accepted in ("'auto'", "'cpu'", "'cuda'", "'cuda:N'", "'mps'", "'xpu'"):
        assert accepted in message
    assert repr(name) in message


def test_non_string_is_a_value_error():
    with pytest.raises(ValueError, match="must be a string"):
        get_device(0)


@pytest.mark.parametrize("kind", ["cuda", "mps", "xpu"])
def test_unavailable_accelerator_is_a_plain_runtime_error(kind, monkeypatch):
    import helpers.device as device_module

    monkeypatch.setattr(device_module, "_accelerator_available", lambda k: False)
    with pytest.raises(RuntimeError) as info:
        get_device(kind)
    message = str(info.value)
    assert f"no {kind.upper()} device is available" in message
    assert "device='cpu'" in message


def test_index_out_of_range(monkeypatch):
    import helpers.device as device_module

    monkeypatch.setattr(device_module, "_accelerator_available", lambda k: True)
    monkeypatch.setattr(device_module, "_device_count", lambda k: 2)
    assert get_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(RuntimeError, match="only 2 CUDA device"):
        get_device("cuda:2")


def test_available_accelerator_without_index(monkeypatch):
    import helpers.device as device_module

    monkeypatch.setattr(device_module, "_accelerator_available", lambda k: True)
    assert get_device("mps") == torch.device("mps")


def test_auto_follows_the_pinning_variable(monkeypatch):
    import helpers.device as device_module

    # a machine with an accelerator ...
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("cuda"))
    monkeypatch.delenv(device_module.AUTO_ENV, raising=False)
    assert get_device("auto") == torch.device("cuda")
    # ... where the test suite pins "auto" to the CPU for nbval's kernels
    monkeypatch.setenv(device_module.AUTO_ENV, "cpu")
    assert get_device("auto") == torch.device("cpu")
    monkeypatch.setattr(device_module, "_accelerator_available", lambda k: True)
    assert get_device("cuda") == torch.device("cuda")  # an explicit name is not affected
    monkeypatch.setenv(device_module.AUTO_ENV, "tpu")
    with pytest.raises(ValueError, match="'tpu'"):
        get_device("auto")
    monkeypatch.setenv(device_module.AUTO_ENV, "auto")
    with pytest.raises(ValueError, match="HELPERS_AUTO_DEVICE"):
        get_device("auto")


def _notebook_03_pick_device():
    """The pick_device function exactly as lesson 03 shows it, compiled from the notebook's own cell."""
    nb = nbformat.read(NOTEBOOKS / "03_build_model.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "def pick_device" in c.source]
    assert len(cells) == 1, "notebook 03 should define pick_device in exactly one cell"
    functions = [n for n in ast.parse(cells[0]).body if isinstance(n, ast.FunctionDef) and n.name == "pick_device"]
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=functions, type_ignores=[]), "03_build_model.ipynb", "exec"), namespace)
    return namespace["pick_device"]


@pytest.mark.parametrize("current", [None, "cuda", "mps", "xpu"])
def test_notebook_03_pick_device_agrees_with_auto(current, monkeypatch):
    """Lesson 03 says get_device("auto") follows the rule of its pick_device when HELPERS_AUTO_DEVICE is unset."""
    import helpers.device as device_module

    pick_device = _notebook_03_pick_device()
    monkeypatch.delenv(device_module.AUTO_ENV, raising=False)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: current is not None)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device(current) if current else None)
    assert pick_device() == get_device("auto") == (torch.device(current) if current else torch.device("cpu"))
    # the one difference the lesson names: the variable pins "auto", pick_device does not read it
    monkeypatch.setenv(device_module.AUTO_ENV, "cpu")
    assert get_device("auto") == torch.device("cpu")
