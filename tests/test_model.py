import ast
import inspect

import nbformat
import torch
from torch import nn

from conftest import NOTEBOOKS
from helpers import NeuralNetwork, seed_everything
from helpers.model import NeuralNetwork as ModelClass


def test_structure_and_print():
    model = NeuralNetwork()
    text = str(model)
    assert text.startswith(
        "NeuralNetwork(\n  (flatten): Flatten(start_dim=1, end_dim=-1)\n  (linear_relu_stack): Sequential("
    )
    layers = list(model.linear_relu_stack)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [(m.in_features, m.out_features) for m in layers if isinstance(m, nn.Linear)] == [
        (784, 512),
        (512, 512),
        (512, 10),
    ]


def test_logits_can_be_negative():
    seed_everything(0)
    logits = NeuralNetwork()(torch.rand(8, 28, 28))
    assert logits.shape == (8, 10)
    assert (logits < 0).any(), "the last layer must not be followed by an activation such as ReLU"


def test_parameter_count():
    assert sum(p.numel() for p in NeuralNetwork().parameters()) == 669_706


def _class_node(source: str, name: str) -> ast.ClassDef:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"no class {name} in source")


def test_notebook_03_defines_the_same_network_as_helpers():
    nb = nbformat.read(NOTEBOOKS / "03_build_model.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "class NeuralNetwork" in c.source]
    assert len(cells) == 1, "notebook 03 should define NeuralNetwork in exactly one cell"
    in_notebook = ast.dump(_class_node(cells[0], "NeuralNetwork"))
    in_helpers = ast.dump(_class_node(inspect.getsource(ModelClass), "NeuralNetwork"))
    assert in_notebook == in_helpers


def test_notebook_03_builds_its_model_from_the_class_the_reader_wrote():
    nb = nbformat.read(NOTEBOOKS / "03_build_model.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "model = NeuralNetwork().to(device)" in code
    assert "helpers.NeuralNetwork" not in code, "notebook 03 uses the NeuralNetwork class it defines, not the helper's"
