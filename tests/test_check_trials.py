"""The grader's own trials (helpers/commands/trials.py): a wrong answer fails even when its check cell is fooled.

The slow test below removes the check cells' teeth altogether: every check cell is
replaced by one that only says "reached the end", as if a student had found a way
around grading.py's hardening. The marks must still be right, because the trials
run the answers on new inputs and this process compares the results with the
answer key made from the teacher's solutions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import pytest
from reuse_class import WRONG as WRONG_06

from conftest import NOTEBOOKS, needs_data
from helpers.commands import grading, trial_lessons, trials
from helpers.commands.check import FAILED, PASSED, check_submissions
from helpers.commands.classroom import write_student_edition
from helpers.commands.submissions import Exercise, exercise_number

SMALL_06 = {"epochs": 1, "fast_epochs": 1, "n_seeds": 2, "compare_size": 5000, "timing_batches": 5}

# per lesson and exercise: a plausible mistake that runs without an error
WRONG = {
    "01": {
        1: "def standardize_channels(X):\n    return (X - X.mean()) / X.std()  # all channels together\n",
        2: "def cat_dim1(tensors):\n    return torch.stack(tensors, dim=0).reshape(tensors[0].shape[0], -1)\n",
        3: "def to_numpy_copy(t):\n    return t.detach().numpy()  # shares memory with t\n",
    },
    "02": {
        1: "class TwoClassDataset(Dataset):\n"
        "    def __init__(self, dataset, class_a, class_b):\n"
        "        self.dataset, self.class_a = dataset, class_a\n"
        "        keep = (dataset.targets == class_a) | (dataset.targets == class_b)\n"
        "        self.indices = keep.nonzero().squeeze(1).tolist()\n"
        "    def __len__(self):\n"
        "        return len(self.indices)\n"
        "    def __getitem__(self, idx):\n"
        "        image, label = self.dataset[self.indices[idx]]\n"
        "        return image, 1 if label == self.class_a else 0  # labels swapped\n",
        2: "def collate_pil(samples):\n"
        "    X = torch.stack([to_tensor_v2(image) * 255 for image, _ in samples])  # not scaled to [0, 1]\n"
        "    return X, torch.tensor([label for _, label in samples])\n",
    },
    "03": {
        1: "class MLP(nn.Module):\n"
        "    def __init__(self, hidden_sizes):\n"
        "        super().__init__()\n"
        "        widths = [28 * 28, *hidden_sizes, 10]\n"
        "        layers = [nn.Flatten()]\n"
        "        for a, b in zip(widths[:-1], widths[1:]):\n"
        "            layers += [nn.Linear(a, b), nn.ReLU()]  # a ReLU after the output layer too\n"
        "        self.stack = nn.Sequential(*layers)\n"
        "    def forward(self, x):\n"
        "        return self.stack(x)\n"
        "def build_model(hidden_sizes, device):\n"
        "    return MLP(hidden_sizes).to(device)\n",
        2: "def top2(model, image):\n"
        "    logits = model(image.unsqueeze(0))\n"
        "    values, indices = logits.topk(2, dim=1)  # logits, not probabilities\n"
        "    return [(helpers.CLASSES_ZH[k], p) for k, p in zip(indices[0].tolist(), values[0].tolist())]\n",
    },
    "04": {
        1: "def stable_log_softmax(z):\n"
        "    return z - torch.log(torch.exp(z).sum(dim=1, keepdim=True))  # no shift: overflows\n",
        2: "class MyLinear(nn.Module):\n"
        "    def __init__(self, in_features, out_features):\n"
        "        super().__init__()\n"
        "        self.weight = nn.Parameter(torch.rand(out_features, in_features))\n"
        "        self.bias = nn.Parameter(torch.zeros(out_features))\n"
        "    def forward(self, x):\n"
        "        return x @ self.weight.T  # the bias is forgotten\n"
        "my_layer = MyLinear(28 * 28, out_features).to(device)\n",
    },
    "05": {
        1: "def jacobian_by_rows(f, x):\n"
        "    leaf = x.detach().clone().requires_grad_(True)\n"
        "    y = f(leaf)\n"
        "    rows = []\n"
        "    for i in range(y.numel()):\n"
        "        v = torch.zeros_like(y)\n"
        "        v[i] = 1.0\n"
        "        y.backward(gradient=v, retain_graph=True)\n"
        "        rows.append(leaf.grad.clone())  # the gradient of the rows before is still in there\n"
        "    return torch.stack(rows)\n",
        2: "def leaky_he_init_(linear, negative_slope):\n"
        "    with torch.no_grad():\n"
        "        linear.weight.normal_(0.0, math.sqrt(2 / linear.in_features))  # ReLU's gain\n"
        "        linear.bias.zero_()\n",
    },
    "06": WRONG_06["06"],
    "07": {
        1: "def fit_early_stopping(model, optimizer, train_loader, val_loader, max_epochs, patience):\n"
        "    best_accuracy, best_epoch = None, 0\n"
        "    for epoch in range(1, max_epochs + 1):\n"
        "        helpers.train_loop(train_loader, model, loss_fn, optimizer)\n"
        "        _, accuracy = helpers.test_loop(val_loader, model, loss_fn)\n"
        "        if best_accuracy is None or accuracy > best_accuracy:\n"
        "            best_accuracy, best_epoch = accuracy, epoch\n"
        "        elif epoch - best_epoch >= patience:\n"
        "            break\n"
        "    return best_epoch  # the best parameters are not put back\n",
        2: "def load_matching(model, state_dict):\n"
        "    own = model.state_dict()\n"
        "    return [key for key in state_dict if key not in own or own[key].shape != state_dict[key].shape]\n"
        "five_class = helpers.NeuralNetwork()\n"
        "five_class.linear_relu_stack[4] = nn.Linear(512, 5)\n"
        "skipped = load_matching(five_class, model.state_dict())\n",
    },
}
# subtler mistakes for some exercises, each checked next to the right answers of the other exercises
SUBTLE = {
    "02": {
        2: "def collate_pil(samples):\n"
        "    X = torch.stack([to_tensor_v2(image) for image, _ in samples]).double()  # float64, not float32\n"
        "    return X, torch.tensor([label for _, label in samples])\n"
    },
    "06": {
        1: "def sgd_step(params, velocities, lr, momentum, weight_decay):\n"
        "    with torch.no_grad():\n"
        "        for i, p in enumerate(params):\n"
        "            g = p.grad + weight_decay * p if weight_decay else p.grad  # no decay: g is .grad itself\n"
        "            if velocities[i] is None:\n"
        "                velocities[i] = g  # shares memory with .grad, which the next backward overwrites\n"
        "            else:\n"
        "                velocities[i].mul_(momentum).add_(g)\n"
        "            p -= lr * velocities[i]\n"
    },
    "07": {
        2: "def load_matching(model, state_dict):\n"
        "    own = model.state_dict()\n"
        "    usable = {k: v for k, v in state_dict.items() if k in own and len(own[k]) == len(v)}  # first dim only\n"
        "    model.load_state_dict(usable, strict=False)\n"
        "    return [k for k in state_dict if k not in usable]\n"
        "five_class = helpers.NeuralNetwork()\n"
        "five_class.linear_relu_stack[4] = nn.Linear(512, 5)\n"
        "skipped = load_matching(five_class, model.state_dict())\n"
    },
}
# a wrong answer that also replaces the trial in its kernel with one that makes up a result
FORGER = (
    "import json, sys\n"
    "sys.modules['_helpers_grader'].trial = lambda *a: json.dumps({'ok': {'tensor': [2, 3], 'kind': 'float', "
    "'values': [0.0] * 6}})\n"
)


def _solutions(source: nbformat.NotebookNode) -> dict[int, str]:
    return {
        exercise_number(c): c.source
        for c in source.cells
        if c.cell_type == "code" and "solution" in c.metadata.get("tags", [])
    }


def _class(folder: Path, source_path: Path, answers: dict[str, dict[int, str]]) -> list[Path]:
    student_path = write_student_edition(folder / ".edition", [source_path.name], notebooks_dir=source_path.parent)[0]
    paths = []
    for name, code in answers.items():
        nb = nbformat.read(student_path, as_version=4)
        for cell in nb.cells:
            number = exercise_number(cell)
            if cell.cell_type == "code" and number in code and "check" not in cell.metadata.get("tags", []):
                cell.source = code[number]
        (folder / name).mkdir(parents=True)
        nbformat.write(nb, folder / name / student_path.name)
        paths.append(folder / name / student_path.name)
    return paths


@needs_data
@pytest.mark.parametrize("prefix", sorted(WRONG))
def test_wrong_answers_fail_even_when_every_check_cell_is_fooled(tmp_path, monkeypatch, prefix):
    source_path = next(NOTEBOOKS.glob(f"{prefix}_*.ipynb"))
    assert set(trial_lessons.TRIALS[source_path.stem]) == set(WRONG[prefix])  # every code exercise has a trial
    right = _solutions(nbformat.read(source_path, as_version=4))
    answers = {"right": right, "wrong": WRONG[prefix]}
    if prefix == "01":
        answers["forger"] = {n: FORGER + code for n, code in WRONG[prefix].items()}
    if prefix in SUBTLE:
        answers["subtle"] = {**right, **SUBTLE[prefix]}
    paths = _class(tmp_path / "class", source_path, answers)
    # a check cell that no longer checks anything: it only says it reached its end
    monkeypatch.setattr(grading, "harden_check", lambda source, token: f"{grading.NAME}.done({token!r})\n")
    lines: list[str] = []
    rows = check_submissions(
        paths,
        jobs=2,
        reuse_cells=True,
        announce=lines.append,
        parameters=SMALL_06 if prefix == "06" else {},
        cell_timeout=600,
    )
    marks = {r.path.parent.name: {n: e.status for n, e in r.exercises.items()} for r in rows}
    details = {r.path.parent.name: {n: e.detail for n, e in r.exercises.items()} for r in rows}
    assert any("answer key for" in line for line in lines), lines
    assert not any("no answer key" in line or "could not be made" in line for line in lines), lines
    assert marks["right"] == dict.fromkeys(right, PASSED), details["right"]
    for name in answers:
        if name == "subtle":
            assert marks[name] == {n: FAILED if n in SUBTLE[prefix] else PASSED for n in right}, details[name]
        elif name != "right":
            assert marks[name] == dict.fromkeys(right, FAILED), (name, details[name])
    # with the check cells fooled, only the trials can have caught the wrong answers
    assert all("grader's" in d for d in details["wrong"].values()), details["wrong"]


def _key(expected, rtol=1e-5, atol=1e-6):
    return trials.AnswerKey(1, {1: trials.Trial("result = 0", rtol, atol)}, {1: expected})


def _judged(got_text, expected, **tolerance):
    exercises = {1: Exercise(1, status=PASSED)}
    trials.judge(exercises, {1: got_text}, _key(expected, **tolerance))
    return exercises[1]


def _tensor(values, shape=None, kind="float"):
    return {"tensor": shape or [len(values)], "kind": kind, "values": values}


def test_judge_compares_outside_the_kernel():
    ok = json.dumps({"ok": [_tensor([1.0, 2.0]), "猫", 3]})
    assert _judged(ok, [_tensor([1.0, 2.0 + 1e-7]), "猫", 3]).status == PASSED
    cases = {
        "value": ([_tensor([1.0, 2.1]), "猫", 3], "element 1"),
        "shape": ([_tensor([1.0, 2.0], [2, 1]), "猫", 3], "shape"),
        "string": ([_tensor([1.0, 2.0]), "狗", 3], "result[1]"),
        "number": ([_tensor([1.0, 2.0]), "猫", 4], "result[2]"),
        "length": ([_tensor([1.0, 2.0]), "猫"], "a list of 2"),
    }
    for what, (expected, where) in cases.items():
        judged = _judged(ok, expected)
        assert judged.status == FAILED and where in judged.detail, (what, judged.detail)


def test_judge_refuses_what_is_not_a_result():
    expected = [_tensor([1.0])]
    for text in (None, "not json", json.dumps({"error": "ZeroDivisionError: division by zero"}), json.dumps([1])):
        judged = _judged(text, expected)
        assert judged.status == FAILED and "grader's own trial" in judged.detail, text
    # the kinds of values are not confused: True is not 1, an ndarray is not a tensor, a string is not a number
    assert _judged(json.dumps({"ok": True}), 1).status == FAILED
    assert (
        _judged(json.dumps({"ok": {"ndarray": [1], "kind": "float", "values": [1.0]}}), _tensor([1.0])).status == FAILED
    )
    assert _judged(json.dumps({"ok": "1"}), 1).status == FAILED
    assert _judged(json.dumps({"ok": float("nan")}), math.nan).status == PASSED  # NaN where the key has NaN
    assert _judged(json.dumps({"ok": float("nan")}), 1.0).status == FAILED
    # a loose tolerance for statistics
    assert _judged(json.dumps({"ok": 1.01}), 1.0, rtol=0.0, atol=0.02).status == PASSED


def test_judge_leaves_other_marks_alone():
    exercises = {1: Exercise(1, status=FAILED, detail="check: AssertionError"), 2: Exercise(2, status=PASSED)}
    trials.judge(exercises, {}, _key(1.0))
    assert exercises[1].detail == "check: AssertionError" and exercises[2].status == PASSED  # no trial for 2


def test_what_a_hostile_kernel_sends_never_breaks_the_judge():
    """Numbers too large for a float, JSON nested too deeply, replies of the wrong shape: a failed mark, no crash."""
    expected = [1.0]
    for text in (json.dumps({"ok": [10**400]}), "[" * 100_000, json.dumps({"ok": {"tensor": 5, "values": "x"}})):
        judged = _judged(text, expected)
        assert judged.status == FAILED and len(judged.detail) <= 300, judged.detail
    for reply in (
        {
            "content": {
                "status": "ok",
                "user_expressions": {"v": {"status": "ok", "data": {"text/plain": "1+" * 100_000 + "1"}}},
            }
        },
        {"content": {"status": "ok", "user_expressions": {"v": []}}},
        {"content": {"status": "ok", "user_expressions": []}},
        {"content": "ok"},
        {"content": {"status": "ok", "user_expressions": {"v": {"status": "ok", "data": {"text/plain": 5}}}}},
    ):
        assert grading.expression_value(reply, "v") is None
    good = {"content": {"status": "ok", "user_expressions": {"v": {"status": "ok", "data": {"text/plain": "'ok'"}}}}}
    assert grading.expression_value(good, "v") == "ok"


def test_a_run_that_breaks_half_way_shows_no_marks(tmp_path, monkeypatch):
    """If the grader itself fails after a check passed in the kernel, that pass is not reported."""
    import asyncio

    from test_check_hostile import hostile_lesson

    from helpers.commands import grade
    from helpers.commands.check import NOT_RUN, grade_submission

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nbformat.write(hostile_lesson(), notebooks / "01_tiny.ipynb")
    student = write_student_edition(tmp_path / "student", notebooks_dir=notebooks)[0]
    nb = nbformat.read(student, as_version=4)
    answers = {1: "def double(x):\n    return 2 * x", 2: "total = int(values.sum())"}
    for cell in nb.cells:
        if cell.cell_type == "code" and exercise_number(cell) and "check" not in cell.metadata.get("tags", []):
            cell.source = answers[exercise_number(cell)]
    nbformat.write(nb, student)

    async def breaks(nb, plan, exercises, *args, **kwargs):
        exercises[1].status = PASSED  # as run_graded does when the check cell passed in the kernel
        raise RuntimeError("the grader broke")

    monkeypatch.setattr(grade, "run_in_workspace", breaks)
    row = asyncio.run(grade_submission(student, notebooks_dir=notebooks))
    assert "could not be checked" in row.problem
    assert {n: e.status for n, e in row.exercises.items()} == {1: NOT_RUN, 2: NOT_RUN}
