"""Checking a notebook's parameters and setting it up (seed, device) in one call."""

from __future__ import annotations

import math
from numbers import Real

import torch

from .device import get_device
from .reproducibility import seed_everything


def check_parameter(
    name: str,
    value,
    kind: type = int,
    minimum: float | None = None,
    maximum: float | None = None,
    allow_nonfinite: bool = False,
):
    """Return ``value`` if it is a ``kind`` within [minimum, maximum]; else raise ValueError saying what is allowed.

    NaN and infinities are refused unless ``allow_nonfinite=True`` (a learning
    rate of nan trains nothing and reports a loss of nan).
    """
    if kind is float:
        ok_type = isinstance(value, Real) and not isinstance(value, bool)
    else:
        ok_type = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    finite = kind is float and not allow_nonfinite
    noun = {float: "a finite number" if finite else "a number", int: "an integer"}.get(kind, kind.__name__)
    wanted = noun + (f" {' and '.join(bounds)}" if bounds else "")
    if not ok_type:
        raise ValueError(f"parameter {name} must be {wanted}; got {_shown(value)}")
    if finite and not _finite(value):
        raise ValueError(f"parameter {name} must be {wanted}, not nan or infinity; got {_shown(value)}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"parameter {name} must be {wanted}; got {_shown(value)}")
    return float(value) if kind is float else value


def _finite(value: Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _shown(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def setup(device: str = "auto", seed: int = 0) -> torch.device:
    """Seed every generator with ``seed`` and return the device chosen by ``get_device(device)``."""
    seed_everything(seed)
    return get_device(device)
