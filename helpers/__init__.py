"""Shared code for the PyTorch basics series (PyTorch 入门教程).

``from helpers import get_device, NeuralNetwork`` and so on; importing the
package also sets matplotlib up to draw Chinese text.
"""

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import CLASSES, CLASSES_ZH, RAW_FILES, DatasetDamagedError, DatasetMissingError, fashion_mnist
from .data import TensorLoader, load_tensors
from .device import get_device
from .files import atomic_write
from .fonts import use_chinese_font
from .model import NeuralNetwork
from .params import check_parameter, setup
from .plots import sample_grid, show_images
from .reproducibility import seed_everything
from .splits import split_validation
from .training import fit, predict, test_loop, train_loop

use_chinese_font()

__all__ = [
    "CLASSES",
    "CLASSES_ZH",
    "RAW_FILES",
    "CheckpointError",
    "DatasetDamagedError",
    "DatasetMissingError",
    "NeuralNetwork",
    "TensorLoader",
    "atomic_write",
    "check_parameter",
    "fashion_mnist",
    "fit",
    "get_device",
    "load_checkpoint",
    "load_tensors",
    "predict",
    "sample_grid",
    "save_checkpoint",
    "seed_everything",
    "setup",
    "show_images",
    "split_validation",
    "test_loop",
    "train_loop",
    "use_chinese_font",
]
