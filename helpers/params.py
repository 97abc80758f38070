"""Checking a notebook's parameters and setting it up (seed, device) in one call."""

from __future__ import annotations

from numbers import Real
from typing import Optional

import torch

from .device import get_device
from .reproducibility import seed_everything


def check_parameter(
    name: str,
    value,
    kind: type = int,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
):
    """Return ``value`` if it is a ``kind`` within [minimum, maximum]; else raise ValueError saying what is allowed."""
    if kind is float:
        ok_type = isinstance(value, Real) and not isinstance(value, bool)
    else:
        ok_type = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    wanted = f"{'a number' if kind is float else 'an integer' if kind is int else kind.__name__}" + (
        f" {' and '.join(bounds)}" if bounds else ""
    )
    if not ok_type:
        raise ValueError(f"parameter {name} must be {wanted}; got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"parameter {name} must be {wanted}; got {value!r}")
    return float(value) if kind is float else value


def setup(device: str = "auto", seed: int = 0) -> torch.device:
    """Seed every generator with ``seed`` and return the device chosen by ``get_device(device)``."""
    seed_everything(seed)
    return get_device(device)
