"""Tests for helpers/checkpoints.py: round trip, atomic saving and every failure path (tiny models)."""

import builtins
import collections
import contextlib
import errno
import io
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from helpers import CheckpointError, files, load_checkpoint, save_checkpoint


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    """A small model and an Adam optimizer after two steps, so the optimizer has state to save."""
    model = small_model(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        optimizer.step()
    return model, optimizer


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


class Payload:
    """Unpickling this creates the marker file: the kind of code a malicious checkpoint runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.open, (self.marker, "w"))


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_restores_model_optimizer_and_extra_fields(tmp_path):
    model, optimizer = trained()
    rng_state = torch.get_rng_state()
    path = save_checkpoint(
        tmp_path / "ckpt.pt",
        model,
        optimizer,
        epoch=3,
        rng_state=rng_state,
        metrics={"test_accuracy": [0.5, 0.75], "note": "ok"},
    )
    assert path == tmp_path / "ckpt.pt"
    fresh_model = small_model(seed=1)
    fresh_optimizer = torch.optim.Adam(fresh_model.parameters(), lr=0.01)
    assert not same_weights(model, fresh_model)
    extra = load_checkpoint(path, fresh_model, fresh_optimizer)
    assert same_weights(model, fresh_model)
    assert set(extra) == {"epoch", "rng_state", "metrics"}
    assert extra["epoch"] == 3 and extra["metrics"] == {"test_accuracy": [0.5, 0.75], "note": "ok"}
    assert torch.equal(extra["rng_state"], rng_state)
    saved, restored = optimizer.state_dict(), fresh_optimizer.state_dict()
    assert saved["param_groups"] == restored["param_groups"]
    for key, state in saved["state"].items():
        assert all(torch.equal(state[name], restored["state"][key][name]) for name in state)


def test_model_only_checkpoint_and_an_optimizer_that_wants_state(tmp_path):
    model, _ = trained()
    path = save_checkpoint(tmp_path / "weights.pt", model)
    fresh = small_model(seed=1)
    assert load_checkpoint(path, fresh) == {}
    assert same_weights(model, fresh)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_checkpoint(path, fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))


def test_saving_again_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, small_model(0), epoch=1)
    save_checkpoint(path, small_model(1), epoch=2)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert load_checkpoint(path, small_model(5))["epoch"] == 2


# --- atomic saving -------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_save_keeps_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch, error):
    path = tmp_path / "ckpt.pt"
    old_model = small_model(0)
    save_checkpoint(path, old_model, epoch=1)
    real_save = torch.save

    def save_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(100)  # half-written file, as when the process dies midway
        raise error

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(type(error)):
        save_checkpoint(path, small_model(1), epoch=2)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    restored = small_model(7)
    assert load_checkpoint(path, restored)["epoch"] == 1
    assert same_weights(restored, old_model)


def test_saving_into_a_missing_folder_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        save_checkpoint(tmp_path / "nowhere" / "ckpt.pt", small_model())


# --- unsafe files --------------------------------------------------------------------------------


def test_the_payload_really_runs_code_when_unpickled(tmp_path):
    """Control for the next test: plain pickle.loads runs the payload and creates the marker."""
    marker = tmp_path / "marker"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_malicious_pickle_is_refused_and_its_code_never_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    content = {"model": Payload(marker), "epoch": 1}
    if writer == "torch.save":
        torch.save(content, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(content, f, protocol=2)
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model)
    assert not marker.exists()
    message = str(info.value)
    assert "refused to load evil.pt" in message
    assert "something other than tensors and plain data" in message
    assert "None of its code was run" in message
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_whole_model_pickle_is_refused(tmp_path):
    model = small_model()
    torch.save({"model": model}, tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match="refused to load whole.pt.*Sequential"):
        load_checkpoint(tmp_path / "whole.pt", small_model())


# --- wrong or damaged files ----------------------------------------------------------------------


def test_a_checkpoint_of_another_architecture_names_the_keys(tmp_path):
    path = save_checkpoint(tmp_path / "ckpt.pt", small_model())
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    before = [p.clone() for p in other.parameters()]
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, other)
    message = str(info.value)
    assert "different model architecture" in message
    assert "missing keys: ['4.weight', '4.bias']" in message
    assert "shape mismatches: ['2.weight: checkpoint (3, 8) vs model (8, 8)'" in message
    assert all(torch.equal(p, q) for p, q in zip(before, other.parameters()))  # left unchanged

    renamed = nn.Sequential()
    renamed.add_module("first", nn.Linear(4, 8))
    with pytest.raises(
        CheckpointError,
        match=r"missing keys: \['first.weight', 'first.bias'\]; "
        r"unexpected keys: \['0.weight', '0.bias', '2.weight', '2.bias'\]",
    ):
        load_checkpoint(path, renamed)


def test_an_optimizer_of_another_shape_is_reported(tmp_path):
    model, optimizer = trained()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, optimizer)
    fresh = small_model()
    only_first_layer = torch.optim.Adam(fresh[0].parameters(), lr=0.01)
    with pytest.raises(CheckpointError, match="does not fit this optimizer"):
        load_checkpoint(path, fresh, only_first_layer)


def test_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*absent.pt; check the path"):
        load_checkpoint(tmp_path / "absent.pt", small_model())


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_a_damaged_file_says_it_is_damaged(tmp_path, damage):
    path = save_checkpoint(tmp_path / "ckpt.pt", small_model())
    data = path.read_bytes()
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"this is not a checkpoint at all"}[damage]
    )
    with pytest.raises(
        CheckpointError,
        match="ckpt.pt is damaged or is not a PyTorch checkpoint .*copy it again or use an older checkpoint",
    ):
        load_checkpoint(path, small_model())


@pytest.mark.parametrize("content", [small_model().state_dict(), {"model": torch.zeros(3)}, [1, 2]])
def test_a_file_without_a_model_state_dict_is_not_taken_for_a_checkpoint(tmp_path, content):
    torch.save(content, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="no 'model' state dict .*model.load_state_dict"):
        load_checkpoint(tmp_path / "weights.pt", small_model())


# --- nothing changes when a load fails -----------------------------------------------------------


def optimizer_snapshot(optimizer: torch.optim.Optimizer) -> dict:
    state = optimizer.state_dict()
    return {
        "groups": state["param_groups"],
        "state": {
            k: {n: v.clone() if isinstance(v, torch.Tensor) else v for n, v in s.items()}
            for k, s in state["state"].items()
        },
    }


def same_optimizer(optimizer: torch.optim.Optimizer, snapshot: dict) -> bool:
    state = optimizer.state_dict()
    if state["param_groups"] != snapshot["groups"] or state["state"].keys() != snapshot["state"].keys():
        return False
    return all(
        torch.equal(v, snapshot["state"][k][n]) if isinstance(v, torch.Tensor) else v == snapshot["state"][k][n]
        for k, s in state["state"].items()
        for n, v in s.items()
    )


def tampered(tmp_path, change) -> "Path":
    """A save_checkpoint() file (model and Adam state) after ``change(checkpoint)``."""
    model, optimizer = trained(seed=3)
    path = save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, epoch=1)
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["model"].__setitem__("2.bias", "not a tensor"), "2.bias holds a str, not a tensor"),
        (
            lambda c: c["model"].__setitem__("2.weight", {"nested": torch.zeros(3, 8)}),
            "2.weight holds a dict, not a tensor",
        ),
        (lambda c: c["model"].__setitem__("0.bias", torch.zeros(8, dtype=torch.int64)), "0.bias holds a torch.int64"),
        (
            lambda c: c["model"].__setitem__("2.bias", torch.zeros(3, dtype=torch.complex64)),
            "2.bias holds a torch.complex64",
        ),
    ],
)
def test_a_bad_model_entry_leaves_model_and_optimizer_exactly_as_they_were(tmp_path, change, message):
    path = tampered(tmp_path, change)
    model, optimizer = trained(seed=9)  # an optimizer with state of its own, which must survive
    weights, state = {k: v.clone() for k, v in model.state_dict().items()}, optimizer_snapshot(optimizer)
    with pytest.raises(
        CheckpointError,
        match=f"ckpt.pt cannot be loaded into this model: {re.escape(message)}.*"
        "use an intact copy or an older checkpoint",
    ):
        load_checkpoint(path, model, optimizer)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert same_optimizer(optimizer, state)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["optimizer"]["state"][0].__setitem__("exp_avg", "not a tensor"),
        lambda c: c["optimizer"].__setitem__("state", "not a dict"),
        lambda c: c.__setitem__("optimizer", "not an optimizer state"),
        lambda c: c["optimizer"]["param_groups"][0].__setitem__("params", [0, 1, 2, 3, 4, 5, 6]),
    ],
)
def test_a_bad_optimizer_state_leaves_model_and_optimizer_exactly_as_they_were(tmp_path, change):
    path = tampered(tmp_path, change)
    model, optimizer = trained(seed=9)
    weights, state = {k: v.clone() for k, v in model.state_dict().items()}, optimizer_snapshot(optimizer)
    with pytest.raises(CheckpointError, match="does not fit this optimizer"):
        load_checkpoint(path, model, optimizer)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert same_optimizer(optimizer, state)


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path, small_model())
    with pytest.raises(IsADirectoryError, match="it is a folder; give a file name"):
        save_checkpoint(tmp_path, small_model())


# --- extra fields: refused at save time exactly when load would refuse them -------------------------


class Custom:
    pass


REFUSED_EXTRA = [
    Path("runs/ckpt.pt"),
    Custom(),
    np.array([1.0]),
    np.float64(0.5),
    collections.defaultdict(int),
    {"nested": [1, {"deep": Path("x")}]},
    frozenset({1}),
    range(3),
]
ACCEPTED_EXTRA = [
    None,
    True,
    3,
    0.5,
    float("nan"),
    1 + 2j,
    "text",
    b"bytes",
    (1, "a"),
    [1, [2.5]],
    {1, 2},
    {1: "int key", (1, 2): "tuple key", None: 0},
    collections.OrderedDict(a=1),
    torch.Size([2, 3]),
    torch.float16,
    torch.device("cpu"),
]


@pytest.mark.parametrize("value", REFUSED_EXTRA, ids=lambda v: type(v).__name__)
def test_extra_values_that_load_would_refuse_are_refused_before_writing(tmp_path, value):
    torch.save({"x": value}, tmp_path / "control.pt")  # control: torch itself cannot read this back safely
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(tmp_path / "control.pt", weights_only=True)
    path = save_checkpoint(tmp_path / "ckpt.pt", small_model(0), epoch=1)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"cannot save extra field note.*cannot be read back with weights_only=True"):
        save_checkpoint(path, small_model(1), note=value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "control.pt"]


@pytest.mark.parametrize("value", ACCEPTED_EXTRA, ids=lambda v: type(v).__name__)
def test_extra_plain_values_round_trip(tmp_path, value):
    path = save_checkpoint(tmp_path / "ckpt.pt", small_model(), note=value)
    back = load_checkpoint(path, small_model())["note"]
    assert type(back) is type(value)
    assert back == value or (value != value and back != back)  # nan


def test_a_cyclic_extra_value_is_refused(tmp_path):
    loop = [1]
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        save_checkpoint(tmp_path / "ckpt.pt", small_model(), note=loop)
    assert list(tmp_path.iterdir()) == []


# --- damaged, not unsafe --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_are_reported_as_damaged_not_unsafe(tmp_path, seed):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="ckpt.pt is damaged or is not a PyTorch checkpoint"):
        load_checkpoint(path, small_model())


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_malicious_pickle_of_any_protocol_is_still_called_unsafe(tmp_path, protocol):
    marker = tmp_path / "marker"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": Payload(marker)}, f, protocol=protocol)
    with pytest.warns() if protocol > 2 else contextlib.nullcontext():  # torch warns about the protocol
        with pytest.raises(CheckpointError, match="refused to load evil.pt"):
            load_checkpoint(tmp_path / "evil.pt", small_model())
    assert not marker.exists()


# --- a full disk ----------------------------------------------------------------------------------


class FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes and then fails as a full disk does."""

    def __init__(self, real, room: int):
        self.real, self.room = real, room

    def writable(self):
        return True

    def write(self, data):
        if self.room < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.real.write(data)

    def flush(self):
        self.real.flush()

    def fileno(self):
        return self.real.fileno()

    def close(self):
        if not self.closed:
            super().close()  # flushes
            self.real.close()


@pytest.mark.parametrize("room", [0, 600])
def test_a_full_disk_is_one_clear_sentence_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, room):
    path = save_checkpoint(tmp_path / "ckpt.pt", small_model(0), epoch=1)
    before = path.read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda fd, *a, **k: FullDisk(real_fdopen(fd, *a, **k), room))
    with pytest.raises(OSError) as info:
        save_checkpoint(path, small_model(1), epoch=2)
    monkeypatch.undo()
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert message.startswith(f"could not save {path}: the disk is full; the previous checkpoint there")
    assert "free some disk space" in message and "inline_container" not in message and "\n" not in message
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_a_read_only_folder_is_one_clear_sentence(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match=r"^could not save .*ckpt.pt: the folder is read-only; the previous checkpoint"):
        save_checkpoint(tmp_path / "ckpt.pt", small_model())
