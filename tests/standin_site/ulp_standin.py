"""The rounding stand-in (``pytest --stand-in ulp-K``): every matrix product and convolution
comes out one unit in the last place (ulp) off, on a seeded pattern K.

Another CPU, another BLAS or a GPU adds up the same products in another order, so their last bits
differ; after a few hundred training steps such tiny differences grow into the drift a second
machine shows. This module makes that happen on this machine, whatever its CPU: a
``torch.overrides.TorchFunctionMode`` moves each float result of ``linear``/``matmul``/``mm``/
``bmm``/``addmm``/``baddbmm``/``conv*`` by one ulp up or down on a pseudo-random mask
(about a third of the elements each way). The mask comes from the mode's OWN ``torch.Generator``,
seeded with K: the global random number generator, and so every shuffle and initialisation, is
untouched. The change is added as a constant, so autograd still works. Integer results are left alone.

Only tests use it (tests/standin_site/sitecustomize.py installs it in a kernel when the environment
variable HELPERS_ULP_SEED is set); the lessons and helpers/ never import it.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

SEED_ENV = "HELPERS_ULP_SEED"
FLOATS = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _functions() -> set:
    names = {
        torch: ["matmul", "mm", "bmm", "addmm", "baddbmm", "addmv", "mv", "conv1d", "conv2d", "conv3d",
                "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "einsum"],
        F: ["linear", "bilinear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
            "conv_transpose3d"],
        torch.Tensor: ["matmul", "mm", "bmm", "addmm", "baddbmm", "addmv", "mv", "__matmul__", "__rmatmul__"],
    }
    return {getattr(owner, name) for owner, names_ in names.items() for name in names_ if hasattr(owner, name)}


class UlpPerturbation(TorchFunctionMode):
    """Move float results of matrix products and convolutions by one ulp, on a pattern seeded with ``seed``."""

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)
        self.functions = _functions()
        self.count = 0  # results perturbed so far (the tests read it)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in self.functions and "out" not in kwargs and isinstance(result, torch.Tensor):
            result = self.perturb(result)
        return result

    def perturb(self, result: torch.Tensor) -> torch.Tensor:
        if result.dtype not in FLOATS or result.numel() == 0:
            return result
        # the pattern is drawn on the CPU, so it is the same whatever the device
        draw = torch.randint(0, 3, result.shape, generator=self.generator, dtype=torch.int8)
        draw = draw.to(result.device)
        value = result.detach()
        up, down = torch.nextafter(value, torch.full_like(value, float("inf"))), \
            torch.nextafter(value, torch.full_like(value, float("-inf")))
        moved = torch.where(draw == 1, up, torch.where(draw == 2, down, value))
        delta = torch.where(torch.isfinite(value), moved - value, torch.zeros_like(value))
        self.count += 1
        return result + delta  # exact: the difference of neighbouring floats is representable


_active: UlpPerturbation | None = None


def install(seed: int | None = None) -> UlpPerturbation:
    """Enter the perturbation for the rest of the process (once); seed defaults to $HELPERS_ULP_SEED."""
    global _active
    if _active is None:
        _active = UlpPerturbation(int(os.environ[SEED_ENV]) if seed is None else seed)
        _active.__enter__()
    return _active


def active() -> UlpPerturbation | None:
    return _active
