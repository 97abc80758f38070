"""A seeded validation set split off the training set, the same way in every lesson (06 and 07)."""

from __future__ import annotations

import torch

from .params import check_parameter

VALIDATION_SIZE = 5000  # Fashion-MNIST: 55,000 images to train on, 5,000 to choose with
SPLIT_SEED = 0


def split_validation(
    X: torch.Tensor,
    y: torch.Tensor,
    val_size: int = VALIDATION_SIZE,
    seed: int = SPLIT_SEED,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``X_train, y_train, X_val, y_val``: ``val_size`` samples drawn at random go to validation.

    The draw uses a generator of its own seeded with ``seed`` (on the CPU), so the split is the same
    whatever the global seed is: runs with different training seeds are judged on the same images.
    Inputs are not modified; the outputs are new tensors on the inputs' device.
    """
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
    if len(y) < 2:
        raise ValueError(f"need at least 2 samples to split off a validation set; got {len(y)}")
    check_parameter("val_size", val_size, int, minimum=1, maximum=len(y) - 1)
    check_parameter("seed", seed, int, minimum=0)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed)).to(y.device)
    val, train = order[:val_size], order[val_size:]
    return X[train], y[train], X[val], y[val]
