"""Shared code for the PyTorch basics series (PyTorch 入门教程).

``from helpers import get_device, NeuralNetwork`` and so on; importing the
package also sets matplotlib up to draw Chinese text (at once if matplotlib is
loaded, otherwise right after its first import; see helpers/fonts.py).

The package is lazy (PEP 562): ``import helpers`` loads no torch, torchvision
or matplotlib; a submodule is imported when one of its names is first used.
"""

import importlib as _importlib

from .fonts import use_chinese_font_on_import as _use_chinese_font_on_import

# public name -> the submodule that defines it
_EXPORTS = {
    "CheckpointError": "checkpoints",
    "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
    "CLASSES": "data",
    "CLASSES_ZH": "data",
    "RAW_FILES": "data",
    "DatasetDamagedError": "data",
    "DatasetMissingError": "data",
    "fashion_mnist": "data",
    "to_float_image": "data",
    "TensorLoader": "tensors",
    "load_tensors": "tensors",
    "get_device": "device",
    "atomic_write": "files",
    "use_chinese_font": "fonts",
    "NeuralNetwork": "model",
    "check_parameter": "params",
    "setup": "params",
    "sample_grid": "plots",
    "show_images": "plots",
    "seed_everything": "reproducibility",
    "split_validation": "splits",
    "fit": "training",
    "predict": "training",
    "test_loop": "training",
    "train_loop": "training",
}
# the submodules the package used to import eagerly: ``helpers.data`` and so on keep working
_SUBMODULES = frozenset(_EXPORTS.values())


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)


_use_chinese_font_on_import()

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
    "to_float_image",
    "train_loop",
    "use_chinese_font",
]
