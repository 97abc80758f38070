"""Choosing the device (CPU or an accelerator) that tensors and models live on."""

from __future__ import annotations

import os
import re

import torch

ACCEPTED = ("auto", "cpu", "cuda", "cuda:N", "mps", "xpu")
# What "auto" means can be pinned from outside, e.g. HELPERS_AUTO_DEVICE=cpu: the test suite
# sets it for nbval's kernels, whose stored outputs were made on the CPU.
AUTO_ENV = "HELPERS_AUTO_DEVICE"
_PATTERN = re.compile(r"^(cpu|cuda|mps|xpu)(?::(\d+))?$")


def _accelerator_available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if kind == "xpu":
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    return False


def _device_count(kind: str) -> int:
    if kind == "cuda":
        return torch.cuda.device_count()
    if kind == "xpu":
        return torch.xpu.device_count()
    return 1


def get_device(preference: str = "auto") -> torch.device:
    """Return the device to use: the current accelerator for "auto", else the one named.

    Accepted names: "auto", "cpu", "cuda", "cuda:N", "mps", "xpu".
    Raises ValueError for an unknown name and RuntimeError for a known
    accelerator that this machine does not have. When the environment variable
    HELPERS_AUTO_DEVICE names a device (for example "cpu"), "auto" picks that one.
    """
    if not isinstance(preference, str):
        raise ValueError(f"device must be a string, one of {', '.join(repr(a) for a in ACCEPTED)}; got {preference!r}")
    name = preference.strip().lower()
    if name == "auto":
        pinned = os.environ.get(AUTO_ENV, "").strip()
        if pinned:
            if pinned.lower() == "auto":
                raise ValueError(f"{AUTO_ENV} must name a device such as 'cpu', not 'auto'; got {pinned!r}")
            return get_device(pinned)
        if torch.accelerator.is_available():
            accelerator = torch.accelerator.current_accelerator()
            if accelerator is not None:
                return accelerator
        return torch.device("cpu")
    match = _PATTERN.match(name)
    if match is None or (match.group(1) in ("cpu", "mps") and match.group(2) not in (None, "0")):
        raise ValueError(f"device must be one of {', '.join(repr(a) for a in ACCEPTED)}; got {preference!r}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    if not _accelerator_available(kind):
        raise RuntimeError(
            f"device {preference!r} was requested, but no {kind.upper()} device is available "
            "on this machine. Use device='auto' (picks the CPU when there is no accelerator) "
            "or device='cpu'."
        )
    if index is not None and int(index) >= _device_count(kind):
        count = _device_count(kind)
        raise RuntimeError(
            f"device {preference!r} was requested, but this machine has only {count} "
            f"{kind.upper()} device(s) (indices 0 to {count - 1})."
        )
    return torch.device(kind, int(index)) if index is not None else torch.device(kind)
