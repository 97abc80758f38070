"""Training checkpoints: saved atomically, loaded with weights_only=True, with errors that say what to do."""

from __future__ import annotations

import collections
import errno
import io
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unsafe content, damaged, or made for another model."""


# What torch.load(weights_only=True) reads back (checked against torch in tests/test_checkpoints.py)
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes, bytearray, torch.dtype, torch.device)
_PLAIN_CONTAINERS = (list, tuple, set, dict, collections.OrderedDict, torch.Size)
# pickle opcodes that import or call something: the way a pickle runs code
_CODE_OPCODES = {
    "GLOBAL",
    "STACK_GLOBAL",
    "REDUCE",
    "INST",
    "OBJ",
    "NEWOBJ",
    "NEWOBJ_EX",
    "BUILD",
    "EXT1",
    "EXT2",
    "EXT3",
}
_WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the folder is read-only",
}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    **extra: Any,
) -> Path:
    """Save the model's (and optimizer's) state dict plus ``extra`` fields to ``path``; return the path.

    The data goes to a temporary file in the same folder, which then replaces
    ``path`` in one step (os.replace). A save that fails midway leaves the
    previous checkpoint as it was and no temporary file behind. ``extra`` must
    be tensors and plain data (numbers, strings, None, and lists, tuples, sets
    and dicts of those), so that load_checkpoint() can read it back with
    weights_only=True; anything else is refused before a byte is written.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"cannot save to {path}: it is a folder; give a file name, e.g. {path / 'checkpoint.pt'}"
        )
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save {path.name}: the folder {path.parent} does not exist; create it first")
    for key, value in extra.items():
        _check_plain(value, key)
    checkpoint = {"model": model.state_dict()}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    checkpoint.update(extra)  # "model" and "optimizer" cannot clash: they are this function's own parameters
    try:
        with atomic_write(path) as f:
            torch.save(checkpoint, f)
    except (OSError, RuntimeError) as exc:
        cause = _os_error(exc)
        if cause is None and not (isinstance(exc, RuntimeError) and re.search(r"inline_container|write", str(exc))):
            raise
        if cause is None:
            reason = "writing failed"
        else:
            reason = _WRITE_FAILURES.get(cause.errno or 0, cause.strerror or str(cause))
        error = OSError(
            f"could not save {path}: {reason}; the previous checkpoint there (if any) is unchanged, so free some "
            "disk space or choose a folder you can write to, then save again"
        )
        error.errno = cause.errno if cause else None
        raise error from exc
    return path


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (torch.save wraps a failed write in a RuntimeError), if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _check_plain(value: Any, where: str, seen: set | None = None) -> None:
    """Raise TypeError unless ``value`` is data that torch.load(weights_only=True) reads back."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, nn.Parameter):
        return
    if type(value) in _PLAIN_SCALARS:
        return
    if type(value) not in _PLAIN_CONTAINERS:
        kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
        raise TypeError(
            f"cannot save extra field {where}: a {kind} cannot be read back with weights_only=True; "
            "store plain data instead (str(path), float(x), array.tolist() or a tensor)"
        )
    if id(value) in seen:
        raise TypeError(f"cannot save extra field {where}: it contains itself; store plain data without cycles")
    seen.add(id(value))
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} (a key)", seen)
            _check_plain(item, f"{where}[{key!r}]", seen)
    else:
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", seen)
    seen.discard(id(value))


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) from a save_checkpoint() file; return its extra fields.

    Reads with ``torch.load(..., weights_only=True)``: a file holding anything but
    tensors and plain data is refused before any of its code can run. Raises
    FileNotFoundError for a missing file and CheckpointError for an unsafe or
    damaged file or one saved from a different model. Everything is checked
    before anything is loaded, so the model and optimizer are left exactly as
    they were when it raises.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file; give the path of the .pt file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}; check the path, or train and save_checkpoint() first")
    checkpoint = _read(path)
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        found = sorted(map(str, checkpoint)) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(
            f"{path.name} is not a save_checkpoint() file: it has no 'model' state dict (found: {found}). "
            "For a bare state dict use model.load_state_dict(torch.load(path, weights_only=True))."
        )
    _check_fits(path.name, checkpoint["model"], model)
    before = None
    if optimizer is not None:
        if "optimizer" not in checkpoint:
            raise CheckpointError(f"{path.name} holds no optimizer state; call load_checkpoint() without an optimizer")
        before = optimizer.state_dict()  # load_state_dict builds new state objects: this is a faithful snapshot
        try:
            _check_optimizer_state(checkpoint["optimizer"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        except Exception as exc:
            optimizer.load_state_dict(before)
            raise CheckpointError(
                f"the optimizer state in {path.name} does not fit this optimizer ({type(exc).__name__}: "
                f"{_first_line(exc)}); create the optimizer the same way as when the checkpoint was saved"
            ) from None
    try:
        model.load_state_dict(checkpoint["model"])
    except Exception as exc:  # everything was checked above; this is a last line of defence
        if optimizer is not None and before is not None:
            optimizer.load_state_dict(before)
        raise CheckpointError(f"{path.name} could not be loaded into this model ({_first_line(exc)})") from None
    return {key: value for key, value in checkpoint.items() if key not in ("model", "optimizer")}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else "no details"


def _read(path: Path) -> Any:
    """torch.load with weights_only=True, its many failure modes turned into one clear CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can fail in many ways (EOFError, KeyError, RuntimeError, ...)
        message = str(exc)
        if "Weights only load failed" in message and _holds_code(path):
            found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+", message)
            detail = f" ({found.group(0).strip()})" if found else ""
            raise CheckpointError(
                f"refused to load {path.name}: it holds something other than tensors and plain data{detail}. "
                "None of its code was run. A file like this (for example a whole-model pickle) can run any "
                "code when unpickled; load it with weights_only=False only if you made it yourself, "
                "never when it comes from someone else."
            ) from None
        if "Weights only load failed" in message:
            message = "not a valid pickle stream"
        raise CheckpointError(
            f"{path.name} is damaged or is not a PyTorch checkpoint ({type(exc).__name__}: "
            f"{message.strip().splitlines()[0][:200] if message.strip() else 'no details'}). "
            "A save that was cut short or an incomplete copy are typical causes: copy it again or "
            "use an older checkpoint."
        ) from None


def _holds_code(path: Path) -> bool:
    """True when the file is a well-formed pickle that imports or calls something (never run here)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
                streams = [archive.read(names[0])] if names else []
        else:
            streams = [path.read_bytes()]
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    for data in streams:
        start = 0
        for _ in range(5):  # the legacy format is several pickles in a row (magic number, version, ..., object)
            opcodes: set[str] = set()
            end = None
            try:
                for opcode, _arg, position in pickletools.genops(io.BytesIO(data[start:])):
                    opcodes.add(opcode.name)
                    end = position
            except Exception:  # not a pickle from here on: random bytes, a truncated file, raw tensor data
                break
            if opcodes & _CODE_OPCODES:
                return True
            if end is None or start + end + 1 >= len(data):
                break
            start += end + 1
    return False


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    if tensor.is_floating_point():
        return "floating point"
    return "boolean" if tensor.dtype == torch.bool else "integer"


def _check_fits(name: str, state_dict: dict[Any, Any], model: nn.Module) -> None:
    """Raise CheckpointError naming missing, unexpected, mis-shaped or non-tensor entries, before the model changes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes, broken = [], []
    for key, target in expected.items():
        if key not in state_dict or not isinstance(target, torch.Tensor):
            continue  # missing, or a module's own extra state (not a tensor)
        value = state_dict[key]
        if not isinstance(value, torch.Tensor):
            broken.append(f"{key} holds a {type(value).__name__}, not a tensor")
        elif value.shape != target.shape:
            shapes.append(f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(target.shape)}")
        elif _kind(value) != _kind(target) or value.layout != target.layout:
            broken.append(
                f"{key} holds a {value.dtype} {str(value.layout).removeprefix('torch.')} tensor, "
                f"the model a {target.dtype} {str(target.layout).removeprefix('torch.')} one"
            )
    if missing or unexpected or shapes:
        parts = [
            f"missing keys: {missing}" if missing else "",
            f"unexpected keys: {unexpected}" if unexpected else "",
            f"shape mismatches: {shapes}" if shapes else "",
        ]
        raise CheckpointError(
            f"{name} was saved from a different model architecture; "
            + "; ".join(p for p in parts if p)
            + ". Create the same model class (same layers and sizes) that saved it, then load again."
        )
    if broken:
        raise CheckpointError(
            f"{name} cannot be loaded into this model: {'; '.join(broken)}. The file is damaged or was not "
            "written by save_checkpoint(); use an intact copy or an older checkpoint."
        )


def _check_optimizer_state(state: Any) -> None:
    """Raise TypeError unless ``state`` is shaped like Optimizer.state_dict(): a state dict and a list of groups."""
    if (
        not isinstance(state, dict)
        or not isinstance(state.get("state"), dict)
        or not isinstance(state.get("param_groups"), list)
    ):
        raise TypeError("expected a dict with 'state' (a dict) and 'param_groups' (a list)")
    if not all(isinstance(group, dict) and isinstance(group.get("params"), list) for group in state["param_groups"]):
        raise TypeError("every parameter group must be a dict with a 'params' list")

    def plain(value: Any) -> bool:
        if isinstance(value, (torch.Tensor, bool, int, float, type(None))):
            return True
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return isinstance(value, dict) and all(plain(v) for v in value.values())

    for key, entry in state["state"].items():
        if not isinstance(entry, dict) or not plain(entry):
            raise TypeError(f"the state of parameter {key!r} holds something other than tensors and numbers")
