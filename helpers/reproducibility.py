"""Seeding every random number generator the series uses."""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and accelerators); return a seeded CPU generator.

    The returned generator is handy for a ``DataLoader(..., generator=g)``.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer between 0 and 2**32 - 1; got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA/MPS/XPU generators
    return torch.Generator().manual_seed(seed)
