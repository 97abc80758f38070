"""Fashion-MNIST: the class names and a loader with a clear error when offline."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch
from torchvision import datasets
from torchvision.transforms import ToTensor

from .params import check_parameter

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CLASSES_ZH = ("T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴")

RAW_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
DOWNLOAD_TIMEOUT_S = 10.0


class DatasetMissingError(RuntimeError):
    """Fashion-MNIST is not on disk and could not be downloaded."""


def _missing_message(raw_dir: Path, reason: str) -> str:
    files = "\n".join(f"  - {name}" for name in RAW_FILES)
    raw_dir = raw_dir.resolve()  # relative paths such as ../data are ambiguous in a message
    return (
        f"Fashion-MNIST is not in {raw_dir} and could not be downloaded ({reason}).\n"
        f"Put these four files (the official Fashion-MNIST release) into {raw_dir}:\n{files}\n"
        "They are published at https://github.com/zalandoresearch/fashion-mnist ; "
        "on a machine with internet access download=True fetches them automatically. "
        "Then run the same code again."
    )


def fashion_mnist(
    root: str | Path = "data",
    train: bool = True,
    transform: Optional[Callable] = ToTensor(),
    target_transform: Optional[Callable] = None,
    download: bool = True,
) -> datasets.FashionMNIST:
    """Return the Fashion-MNIST training (or test) set stored under ``root``.

    With the files in ``root/FashionMNIST/raw`` this works offline. When they are
    missing and cannot be downloaded, raises DatasetMissingError within seconds,
    naming the folder and the four files that belong there.
    """
    root = Path(root)
    raw_dir = root / "FashionMNIST" / "raw"

    def build(dl: bool) -> datasets.FashionMNIST:
        return datasets.FashionMNIST(
            root=str(root),
            train=train,
            transform=transform,
            target_transform=target_transform,
            download=dl,
        )

    try:
        return build(False)
    except RuntimeError:
        pass  # not on disk (or not unpacked yet): fall through to the download
    if not download:
        raise DatasetMissingError(_missing_message(raw_dir, "download=False"))
    existed = {p for p in (root, root / "FashionMNIST", raw_dir) if p.exists()}
    if raw_dir.is_dir():
        existed.update(raw_dir.iterdir())
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # fail fast when the network is unreachable
    try:
        return build(True)
    except Exception as exc:  # urllib raises several kinds; all mean "no files"
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        _remove_partial(raw_dir, existed)
        raise DatasetMissingError(_missing_message(raw_dir, reason)) from None
    finally:
        socket.setdefaulttimeout(old_timeout)


def _remove_partial(raw_dir: Path, existed: set) -> None:
    """Delete what a failed download created: partial files and empty folders."""
    if raw_dir.is_dir():
        for path in raw_dir.iterdir():
            if path not in existed and path.is_file():
                path.unlink()
    for folder in (raw_dir, raw_dir.parent, raw_dir.parent.parent):
        if folder not in existed and folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder)


def load_tensors(
    root: str | Path = "data",
    train: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Fashion-MNIST as two tensors on ``device``: X [N, 1, 28, 28] float32 in [0, 1], y [N] int64.

    X holds the same values as ``ToTensor()`` gives image by image (pixel / 255),
    converted once for the whole set instead of once per sample and epoch.
    """
    dataset = fashion_mnist(root, train=train, transform=None)
    X = dataset.data.unsqueeze(1).to(device).float().div_(255)  # uint8 crosses to the device: 4x fewer bytes
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
        generator: Optional[torch.Generator] = None,
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
                index = order[start:start + self.batch_size]
                yield self.X[index], self.y[index]
        else:
            for start in range(0, n, self.batch_size):
                yield self.X[start:start + self.batch_size], self.y[start:start + self.batch_size]
