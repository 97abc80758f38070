"""Lesson 06's exercise checks, run in this process on small made-up data: right answers pass, plausible wrong ones fail.

The grader runs these checks inside the whole lesson (minutes of training); here the check cells are taken
from the notebook as they are and run against each answer with only the names they need.
"""

from __future__ import annotations

import ast
import copy

import nbformat
import pytest
import torch
from torch import nn

import helpers
from conftest import NOTEBOOKS

LESSON = nbformat.read(NOTEBOOKS / "06_training.ipynb", as_version=4)


def _cell(*tags: str) -> str:
    (cell,) = [c for c in LESSON.cells if set(tags) <= set(c.metadata.get("tags", []))]
    return cell.source


def _function(name: str) -> str:
    """The source of the lesson's ``def name``, taken out of the cell that defines it."""
    for cell in LESSON.cells:
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef) and node.name == name:
                    return ast.get_source_segment(cell.source, node)
    raise AssertionError(f"06 defines no function {name}")


def _run_check(answer: str, check: str, namespace: dict) -> None:
    exec(compile(answer, "<answer>", "exec"), namespace)
    exec(compile(check, "<check>", "exec"), namespace)


# ----------------------------------------------------------------- exercise 1: SGD with momentum by hand
SGD_RIGHT = _cell("solution", "exercise-1")
SGD_WRONG = {
    "calls torch.optim": "def sgd_step(params, velocities, lr, momentum, weight_decay):\n"
    "    torch.optim._functional.sgd(params, [p.grad for p in params], velocities, weight_decay=weight_decay,\n"
    "        momentum=momentum, lr=lr, dampening=0.0, nesterov=False, maximize=False)\n",
    "momentum fixed at 0.9": SGD_RIGHT.replace("mul_(momentum)", "mul_(0.9)"),
    "the first run's lr and momentum typed in": SGD_RIGHT.replace("mul_(momentum)", "mul_(0.8)").replace(
        "p -= lr * velocities[i]", "p -= 0.05 * velocities[i]"
    ),
    "no weight decay": SGD_RIGHT.replace("g = p.grad + weight_decay * p", "g = p.grad"),
    "velocity starts at zero": SGD_RIGHT.replace("velocities[i] = g.clone()", "velocities[i] = torch.zeros_like(g)"),
    "velocities made on the CPU": SGD_RIGHT.replace(
        "velocities[i] = g.clone()", "velocities[i] = torch.tensor(g.tolist())"
    ),
    "velocity is .grad itself when weight_decay is 0 (no clone)": "def sgd_step(params, velocities, lr, momentum, weight_decay):\n"
    "    with torch.no_grad():\n"
    "        for i, p in enumerate(params):\n"
    "            g = p.grad\n"
    "            if weight_decay:\n"
    "                g = g + weight_decay * p\n"
    "            if velocities[i] is None:\n"
    "                velocities[i] = g\n"
    "            else:\n"
    "                velocities[i].mul_(momentum).add_(g)\n"
    "            p -= lr * velocities[i]\n",
    "step outside no_grad, velocity not kept": "def sgd_step(params, velocities, lr, momentum, weight_decay):\n"
    "    with torch.no_grad():\n"
    "        for p in params:\n"
    "            p -= lr * (p.grad + weight_decay * p)\n",
}


def _namespace_1() -> dict:
    return {"torch": torch, "nn": nn, "copy": copy, "loss_fn": nn.CrossEntropyLoss(), "device": torch.device("cpu")}


def test_exercise_1_reference_answer_passes(capsys):
    _run_check(SGD_RIGHT, _cell("check", "exercise-1"), _namespace_1())
    assert "练习 1 通过" in capsys.readouterr().out


@pytest.mark.parametrize("why", sorted(SGD_WRONG))
def test_exercise_1_wrong_answers_fail(why):
    with pytest.raises(AssertionError):
        _run_check(SGD_WRONG[why], _cell("check", "exercise-1"), _namespace_1())


# ----------------------------------------------------------------- exercise 2: precision per class
PRECISION_RIGHT = _cell("solution", "exercise-2")
PRECISION_WRONG = {
    "recall (divides by the row sums)": "precision = (val_confusion.diag() / val_confusion.sum(1)).tolist()",
    "overall accuracy for every class": "precision = [(val_pred == val_true).float().mean().item()] * 10",
    "percent instead of a fraction": "precision = (100 * val_confusion.diag() / val_confusion.sum(0)).tolist()",
    "nine values": "precision = (val_confusion.diag() / val_confusion.sum(0)).tolist()[:9]",
    "empty answer": "precision = []",
    "zeros where no image was predicted as the class": "precision = (val_confusion.diag() / val_confusion.sum(0))"
    ".nan_to_num(0.0).tolist()",
}


def _namespace_2(never_predicted: bool) -> dict:
    generator = torch.Generator().manual_seed(0)
    val_true = torch.randint(0, 10, (500,), generator=generator)
    noise = torch.randint(0, 10, (500,), generator=generator)
    val_pred = torch.where(torch.rand(500, generator=generator) < 0.7, val_true, noise)  # right about 73% of the time
    if never_predicted:  # a short training may never predict some class: its precision is 0/0
        val_pred = torch.where(val_pred == 9, torch.tensor(7), val_pred)
    namespace = {"torch": torch, "helpers": helpers, "val_pred": val_pred, "val_true": val_true}
    exec(_function("per_class_accuracy") + "\n" + _function("confusion_matrix"), namespace)
    namespace["val_confusion"] = namespace["confusion_matrix"](val_pred, val_true)
    return namespace


@pytest.mark.parametrize("never_predicted", [False, True])
def test_exercise_2_reference_answer_passes(capsys, never_predicted):
    _run_check(PRECISION_RIGHT, _cell("check", "exercise-2"), _namespace_2(never_predicted))
    assert "练习 2 通过" in capsys.readouterr().out


@pytest.mark.parametrize("why", sorted(PRECISION_WRONG))
def test_exercise_2_wrong_answers_fail(why):
    namespace = _namespace_2(never_predicted="zeros" in why)
    with pytest.raises((AssertionError, RuntimeError)):
        _run_check(PRECISION_WRONG[why], _cell("check", "exercise-2"), namespace)


def test_exercise_2_percent_answer_is_told_to_use_fractions():
    with pytest.raises(AssertionError, match="不要乘 100"):
        _run_check(PRECISION_WRONG["percent instead of a fraction"], _cell("check", "exercise-2"), _namespace_2(False))
