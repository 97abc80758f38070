"""Tests for helpers/training.py and the tensor-resident data path in helpers/data.py (tiny data, seconds)."""

import ast
import copy
import inspect
import re

import nbformat
import pytest
import torch
from torch import nn

import helpers
from conftest import NOTEBOOKS, write_fake_fashion_mnist
from helpers import TensorLoader, fit, load_tensors, predict, train_loop, training

# helpers.test_loop is used through the module: imported bare, pytest would collect it as a test


def tiny_problem(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Four features, three classes that a linear layer separates easily."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = torch.randn(n, 4, generator=g) * 0.3
    X[torch.arange(n), y] += 2.0
    return X, y


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))


# --- the tensor-resident data path ---------------------------------------------------------------


def test_load_tensors_matches_the_default_transform_bit_for_bit(tmp_path):
    root = write_fake_fashion_mnist(tmp_path)
    X, y = load_tensors(root, train=True)
    assert X.shape == (96, 1, 28, 28) and X.dtype == torch.float32
    assert y.shape == (96,) and y.dtype == torch.int64
    assert 0.0 <= X.min().item() and X.max().item() <= 1.0
    dataset = helpers.fashion_mnist(root, train=True)  # v2.ToImage + v2.ToDtype(scale=True), image by image
    for i in range(len(dataset)):
        image, label = dataset[i]
        assert torch.equal(X[i], image), f"image {i} differs from the default transform"
        assert y[i].item() == label
    # the fake images use every grey level, and the old arithmetic (/ 255) differs in the last bit for some:
    # so the equality above really tells v2's (* 1/255) from ToTensor's
    levels = torch.unique(X)
    assert len(levels) == 256
    assert not torch.equal(levels, torch.arange(256, dtype=torch.float32).div(255))
    X_test, _ = load_tensors(root, train=False)
    assert X_test.shape == (48, 1, 28, 28)


def test_tensor_loader_without_shuffle_keeps_order_and_sizes():
    X, y = torch.arange(10).float().unsqueeze(1), torch.arange(10)
    loader = TensorLoader(X, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 == len(batches)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
    assert all(torch.equal(bx.squeeze(1).long(), by) for bx, by in batches)  # X and y stay paired


def test_tensor_loader_shuffles_reproducibly_and_covers_every_sample():
    X, y = torch.arange(50).float().unsqueeze(1), torch.arange(50)

    def orders(seed):
        loader = TensorLoader(X, y, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        return [torch.cat([b for _, b in loader]) for _ in range(2)]  # two epochs

    first, second = orders(0)
    assert sorted(first.tolist()) == list(range(50))
    assert not torch.equal(first, torch.arange(50))
    assert not torch.equal(first, second)  # a new order each epoch
    again = orders(0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert not torch.equal(first, orders(1)[0])
    for bx, by in TensorLoader(X, y, batch_size=8, shuffle=True):
        assert torch.equal(bx.squeeze(1).long(), by)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1"),
    ],
)
def test_tensor_loader_rejects_bad_batch_size(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TensorLoader(torch.zeros(4, 1), torch.zeros(4), **kwargs)


def test_tensor_loader_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="same length"):
        TensorLoader(torch.zeros(4, 1), torch.zeros(3))


# --- train_loop / test_loop / fit / predict -------------------------------------------------------


def test_train_loop_does_one_zero_grad_backward_step_per_batch():
    X, y = tiny_problem(8)
    model, reference = tiny_model(), tiny_model()
    model[2].p = reference[2].p = 0.0  # no dropout, so both compute the same thing
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ref_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    batches = [(X[:4], y[:4]), (X[4:], y[4:])]
    mean_loss = train_loop(batches, model, loss_fn, optimizer)
    losses = []
    for bx, by in batches:  # what train_loop must do, written out
        ref_optimizer.zero_grad()
        loss = loss_fn(reference(bx), by)
        loss.backward()
        ref_optimizer.step()
        losses.append(loss.item())
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q)
    assert mean_loss == pytest.approx(sum(losses) / 2)
    assert model.training


def test_train_loop_lowers_the_loss():
    X, y = tiny_problem()
    model, loss_fn = tiny_model(), nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loader = TensorLoader(X, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    losses = [train_loop(loader, model, loss_fn, optimizer) for _ in range(15)]
    assert isinstance(losses[0], float)
    assert losses[-1] < losses[0] / 3


def test_test_loop_evaluates_without_gradients_in_eval_mode():
    X = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    y = torch.tensor([0, 1, 2, 0])  # the last one will be predicted as class 1
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(3, 4) * 5)
    loss_fn = nn.CrossEntropyLoss()
    loss, accuracy = helpers.test_loop([(X[:2], y[:2]), (X[2:], y[2:])], model, loss_fn)
    assert accuracy == pytest.approx(0.75)
    assert loss == pytest.approx(loss_fn(X @ model[1].weight.T, y).item())  # Dropout was off
    assert not model.training
    assert model[1].weight.grad is None


def test_loops_refuse_an_empty_dataloader():
    model, loss_fn = tiny_model(), nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="no batches"):
        train_loop([], model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="no batches"):
        helpers.test_loop([], model, loss_fn)
    with pytest.raises(ValueError, match="no batches"):
        predict(model, [])


def run_fit(epochs=3, progress=True):
    X, y = tiny_problem()
    model = tiny_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    train = TensorLoader(X, y, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    return fit(
        model, train, TensorLoader(X, y, batch_size=32), nn.CrossEntropyLoss(), optimizer, epochs, progress=progress
    )


def test_fit_returns_the_history_per_epoch():
    history = run_fit(epochs=8, progress=False)
    assert set(history) == {"train_loss", "test_loss", "test_accuracy", "train_seconds"}
    assert all(len(values) == 8 for values in history.values())
    assert all(0.0 <= a <= 1.0 for a in history["test_accuracy"])
    assert history["test_accuracy"][-1] > 0.9
    assert history["train_loss"][-1] < history["train_loss"][0]


def test_fit_progress_bar_is_deterministic_and_can_be_turned_off(capsys):
    run_fit(progress=False)
    assert capsys.readouterr().out == ""
    run_fit()
    first = capsys.readouterr()
    run_fit()
    second = capsys.readouterr()
    assert first.out == second.out  # no elapsed time or rate in the bar
    assert first.err == ""
    final = first.out.split("\r")[-1]
    assert re.fullmatch(
        r"轮 epoch \|█{20}\| 3/3, train loss \d\.\d{4}, test loss \d\.\d{4}, "
        r"accuracy \d+\.\d%\n",
        final,
    )
    assert first.out.startswith("\r轮 epoch |" + " " * 20 + "| 0/3")


def test_fit_rejects_a_bad_epoch_count():
    with pytest.raises(ValueError, match="epochs must be an integer"):
        run_fit(epochs=-1)


def test_predict_returns_predictions_and_targets_on_the_cpu():
    X, y = tiny_problem(10)
    model = tiny_model()
    predicted, targets = predict(model, TensorLoader(X, y, batch_size=4))
    assert torch.equal(targets, y)
    assert predicted.shape == (10,) and predicted.device.type == "cpu"
    assert torch.equal(predicted, model(X).argmax(1))  # eval mode: Dropout off


# --- notebook 06 shows the same loops that helpers runs -------------------------------------------


def _function_node(source: str, name: str) -> ast.FunctionDef:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise AssertionError(f"no function {name} in source")


def _without_docstring_and_annotations(node: ast.FunctionDef) -> str:
    """The function's AST as text, ignoring its docstring and type hints (comments never reach the AST)."""
    node = copy.deepcopy(node)
    body = node.body
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        node.body = body[1:]
    node.returns = None
    for arg in node.args.args + node.args.kwonlyargs:
        arg.annotation = None
    return ast.dump(node)


@pytest.mark.parametrize("name", ["train_loop", "test_loop", "predict"])
def test_notebook_06_shows_the_loops_that_helpers_runs(name):
    nb = nbformat.read(NOTEBOOKS / "06_training.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and f"def {name}(" in c.source]
    assert len(cells) == 1, f"notebook 06 should define {name} in exactly one cell"
    in_notebook = _without_docstring_and_annotations(_function_node(cells[0], name))
    in_helpers = _without_docstring_and_annotations(_function_node(inspect.getsource(getattr(training, name)), name))
    assert in_notebook == in_helpers, f"notebook 06's {name} and helpers.{name} have drifted apart"


def test_loops_and_predict_follow_the_model_to_its_device():
    X, y = tiny_problem(8)
    model = tiny_model().to(torch.float64)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(X.double(), y)]
    assert isinstance(train_loop(batches, model, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)), float)
    loss, accuracy = helpers.test_loop(batches, model, loss_fn, device="cpu")
    assert 0.0 <= accuracy <= 1.0 and loss > 0
    predicted, _ = predict(model, batches)
    assert predicted.device.type == "cpu"


def test_notebook_06_trains_with_the_loops_it_writes():
    """The lesson's models are trained by its own train_epochs -> train_loop/test_loop; helpers.fit only in the check."""
    nb = nbformat.read(NOTEBOOKS / "06_training.ipynb", as_version=4)
    tree = ast.parse("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
    helper_calls = [
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "helpers"
    ]
    assert helper_calls.count("fit") == 1, "helpers.fit appears once: the check that it trains like train_epochs"
    assert "train_loop" not in helper_calls and "test_loop" not in helper_calls
    train_epochs = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "train_epochs")
    called = {n.func.id for n in ast.walk(train_epochs) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"train_loop", "test_loop"} <= called
    trained_by = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "train_epochs"
    ]
    assert len(trained_by) >= 4, "the plain run, the compared recipes, the fast recipe and the fit check"
