"""Fashion-MNIST as tensors in memory, and a minimal loader over them: the fast data path of lessons 06 and 07."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from .data import fashion_mnist
from .params import check_parameter


def load_tensors(
    root: str | Path = "data",
    train: bool = True,
    device: torch.device | str = "cpu",
    mirror: str | Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Fashion-MNIST as two tensors on ``device``: X [N, 1, 28, 28] float32 in [0, 1], y [N] int64.

    X holds the same values as ``to_float_image()`` (``fashion_mnist``'s default transform) gives
    image by image: pixel * (1/255) in float32, bit for bit, converted once for the whole set
    instead of once per sample and epoch.
    Missing files are downloaded as ``fashion_mnist`` does (``mirror`` as there).
    """
    dataset = fashion_mnist(root, train=train, transform=None, mirror=mirror)
    # uint8 crosses to the device (4x fewer bytes); then the arithmetic of v2.ToDtype(float32, scale=True)
    X = dataset.data.unsqueeze(1).to(device).to(torch.float32).mul_(1.0 / 255)
    y = dataset.targets.to(device)
    return X, y


class TensorLoader:
    """Minibatches (X[i], y[i]) of tensors already in memory: a minimal DataLoader without per-sample work.

    With ``shuffle=True`` each pass uses a new order drawn from ``generator``
    (a seeded ``torch.Generator`` on the CPU makes the order reproducible).
    """

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        batch_size: int = 64,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ):
        if len(X) != len(y):
            raise ValueError(f"X and y must have the same length; got {len(X)} and {len(y)}")
        check_parameter("batch_size", batch_size, int, minimum=1)
        self.X, self.y = X, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)  # number of batches, the last one may be smaller

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        if self.shuffle:
            # drawn on the CPU, then moved: the same order on every device
            order = torch.randperm(n, generator=self.generator).to(self.y.device)
            for start in range(0, n, self.batch_size):
                index = order[start : start + self.batch_size]
                yield self.X[index], self.y[index]
        else:
            for start in range(0, n, self.batch_size):
                yield self.X[start : start + self.batch_size], self.y[start : start + self.batch_size]
