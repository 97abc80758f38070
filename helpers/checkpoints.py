"""Training checkpoints: saved atomically, loaded with weights_only=True, with errors that say what to do."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .files import atomic_write


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: unsafe content, damaged, or made for another model."""


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    **extra: Any,
) -> Path:
    """Save the model's (and optimizer's) state dict plus ``extra`` fields to ``path``; return the path.

    The data goes to a temporary file in the same folder, which then replaces
    ``path`` in one step (os.replace). A save that fails midway leaves the
    previous checkpoint as it was and no temporary file behind. Keep ``extra``
    to tensors and plain data (numbers, strings, lists, dicts), so that
    load_checkpoint() can read it back with weights_only=True.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save {path.name}: the folder {path.parent} does not exist; create it first")
    checkpoint = {"model": model.state_dict()}
    if optimizer is not None:
        checkpoint["optimizer"] = optimizer.state_dict()
    checkpoint.update(extra)  # "model" and "optimizer" cannot clash: they are this function's own parameters
    with atomic_write(path) as f:
        torch.save(checkpoint, f)
    return path


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
) -> dict[str, Any]:
    """Restore ``model`` (and ``optimizer``) from a save_checkpoint() file; return its extra fields.

    Reads with ``torch.load(..., weights_only=True)``: a file holding anything but
    tensors and plain data is refused before any of its code can run. Raises
    FileNotFoundError for a missing file and CheckpointError for an unsafe or
    damaged file or one saved from a different model; the model and optimizer are
    left unchanged when it raises.
    """
    path = Path(path)
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
    if optimizer is not None:
        if "optimizer" not in checkpoint:
            raise CheckpointError(f"{path.name} holds no optimizer state; call load_checkpoint() without an optimizer")
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CheckpointError(
                f"the optimizer state in {path.name} does not fit this optimizer ({exc}); "
                "create the optimizer the same way as when the checkpoint was saved"
            ) from None
    model.load_state_dict(checkpoint["model"])
    return {key: value for key, value in checkpoint.items() if key not in ("model", "optimizer")}


def _read(path: Path) -> Any:
    """torch.load with weights_only=True, its many failure modes turned into one clear CheckpointError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file can fail in many ways (EOFError, KeyError, RuntimeError, ...)
        message = str(exc)
        if "Weights only load failed" in message:
            found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+", message)
            detail = f" ({found.group(0).strip()})" if found else ""
            raise CheckpointError(
                f"refused to load {path.name}: it holds something other than tensors and plain data{detail}. "
                "None of its code was run. A file like this (for example a whole-model pickle) can run any "
                "code when unpickled; load it with weights_only=False only if you made it yourself, "
                "never when it comes from someone else."
            ) from None
        raise CheckpointError(
            f"{path.name} is damaged or is not a PyTorch checkpoint ({type(exc).__name__}: "
            f"{message.strip().splitlines()[0][:200] if message.strip() else 'no details'}). "
            "A save that was cut short or an incomplete copy are typical causes: copy it again or "
            "use an older checkpoint."
        ) from exc


def _check_fits(name: str, state_dict: dict[str, Any], model: nn.Module) -> None:
    """Raise CheckpointError naming missing, unexpected and mis-shaped keys, before the model changes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and isinstance(state_dict[k], torch.Tensor) and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = [f"missing keys: {missing}" if missing else "", f"unexpected keys: {unexpected}" if unexpected else "",
                 f"shape mismatches: {shapes}" if shapes else ""]
        raise CheckpointError(
            f"{name} was saved from a different model architecture; "
            + "; ".join(p for p in parts if p)
            + ". Create the same model class (same layers and sizes) that saved it, then load again."
        )
