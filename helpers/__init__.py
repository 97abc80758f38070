"""Shared code for the PyTorch basics series (PyTorch 入门教程).

``from helpers import get_device, NeuralNetwork`` and so on; importing the
package also sets matplotlib up to draw Chinese text.
"""

from .data import CLASSES, CLASSES_ZH, RAW_FILES, DatasetMissingError, fashion_mnist
from .device import get_device
from .fonts import use_chinese_font
from .model import NeuralNetwork
from .params import check_parameter, setup
from .plots import sample_grid, show_images
from .reproducibility import seed_everything

use_chinese_font()

__all__ = [
    "CLASSES",
    "CLASSES_ZH",
    "RAW_FILES",
    "DatasetMissingError",
    "NeuralNetwork",
    "check_parameter",
    "fashion_mnist",
    "get_device",
    "sample_grid",
    "seed_everything",
    "setup",
    "show_images",
    "use_chinese_font",
]
