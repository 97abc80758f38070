"""Shared test set-up: a non-interactive matplotlib backend and paths into the repo."""

import gzip
import struct
from pathlib import Path

import matplotlib
import numpy as np
import pytest

# Only this test process draws off-screen. (Setting MPLBACKEND instead would leak into the
# kernels that nbval and papermill start, and their figures would silently vanish.)
matplotlib.use("Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
DATA_ROOT = REPO_ROOT / "data"


def have_fashion_mnist() -> bool:
    raw = DATA_ROOT / "FashionMNIST" / "raw"
    return all(
        (raw / name).exists()
        for name in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    )


needs_data = pytest.mark.skipif(
    not have_fashion_mnist(),
    reason="Fashion-MNIST is not in data/FashionMNIST/raw (see README: offline use)",
)


def write_fake_fashion_mnist(root: Path, n_train: int = 96, n_test: int = 48, seed: int = 0) -> Path:
    """Write a tiny dataset in the Fashion-MNIST file format under root/FashionMNIST/raw; return root."""
    rng = np.random.default_rng(seed)
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
            data = header + array.tobytes()
            (raw / f"{prefix}-{kind}").write_bytes(data)  # what torchvision reads
            (raw / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(data))
    return root
