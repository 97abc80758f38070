"""Shared test set-up: a non-interactive matplotlib backend and paths into the repo."""

from pathlib import Path

import matplotlib
import pytest

# Only this test process draws off-screen. (Setting MPLBACKEND instead would leak into the
# kernels that nbval and papermill start, and their figures would silently vanish.)
matplotlib.use("Agg")

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO_ROOT / "notebooks"
DATA_ROOT = REPO_ROOT / "data"


def have_fashion_mnist() -> bool:
    raw = DATA_ROOT / "FashionMNIST" / "raw"
    return all((raw / name).exists() for name in (
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


needs_data = pytest.mark.skipif(
    not have_fashion_mnist(),
    reason="Fashion-MNIST is not in data/FashionMNIST/raw (see README: offline use)",
)
