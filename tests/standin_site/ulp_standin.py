"""The rounding stand-in (``pytest --stand-in ulp-K``): every matrix product and convolution
comes out one unit in the last place (ulp) off, on a seeded pattern K.

Another CPU, another BLAS or a GPU adds up the same products in another order, so their last bits
differ; after a few hundred training steps such tiny differences grow into the drift a second
machine shows. This module makes that happen on this machine, whatever its CPU: a
``torch.overrides.TorchFunctionMode`` moves each float result of ``linear``/``matmul``/``mm``/
``bmm``/``addmm``/``baddbmm``/``conv*`` by one ulp up or down on a pseudo-random mask
(about a third of the elements each way). The pattern is a hash of each result's bits and K, so the
same product always comes out the same (as on a real machine), and no random number generator is
used: every shuffle and initialisation is untouched. The result is changed in place under no_grad,
so autograd and ``grad_fn`` are as before. Integer results, and float results that are whole numbers,
are left alone.

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
        torch: [
            "matmul",
            "mm",
            "bmm",
            "addmm",
            "baddbmm",
            "addmv",
            "mv",
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
            "einsum",
        ],
        F: [
            "linear",
            "bilinear",
            "conv1d",
            "conv2d",
            "conv3d",
            "conv_transpose1d",
            "conv_transpose2d",
            "conv_transpose3d",
        ],
        torch.Tensor: ["matmul", "mm", "bmm", "addmm", "baddbmm", "addmv", "mv", "__matmul__", "__rmatmul__"],
    }
    return {getattr(owner, name) for owner, names_ in names.items() for name in names_ if hasattr(owner, name)}


_INT_VIEW = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
_MASK32 = 0xFFFFFFFF


def _mix(h: torch.Tensor) -> torch.Tensor:
    """One round of a 32-bit integer hash (on int64 tensors holding values below 2**32)."""
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & _MASK32
    return h ^ (h >> 16)


class UlpPerturbation(TorchFunctionMode):
    """Move float results of matrix products and convolutions by one ulp, on a pattern seeded with ``seed``.

    Like a real machine, the change is a function of the value only: the same product gives the same
    result however often it is computed (so "resume gives the same weights" still holds), and results
    that are whole numbers (small integers multiply exactly on every machine) are left as they are.
    The result is changed in place, under no_grad: ``grad_fn`` stays ``AddmmBackward0`` and so on.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)
        self.salt = _mix(torch.tensor(self.seed * 0x9E3779B1 & _MASK32, dtype=torch.int64)).item()
        self.functions = _functions()
        self.count = 0  # results perturbed so far (the tests read it)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in self.functions:
            target = kwargs.get("out", result)
            if isinstance(target, torch.Tensor):
                self.perturb(target)
        return result

    def perturb(self, result: torch.Tensor) -> torch.Tensor:
        """Move ``result`` (in place) by one ulp up, down or not at all, by a hash of its bits and the seed."""
        if result.dtype not in _INT_VIEW or result.numel() == 0 or result.device.type == "meta" or result._is_view():
            return result
        with torch.no_grad():
            value = result.detach()
            bits = value.contiguous().view(_INT_VIEW[value.dtype]).to(torch.int64)
            h = (bits & _MASK32) ^ ((bits >> 32) & _MASK32) if value.dtype == torch.float64 else bits & _MASK32
            choice = _mix(_mix(h ^ self.salt)) % 3  # 0: stay, 1: up, 2: down
            up = torch.nextafter(value, torch.full_like(value, float("inf")))
            down = torch.nextafter(value, torch.full_like(value, float("-inf")))
            moved = torch.where(choice == 1, up, torch.where(choice == 2, down, value))
            keep = ~torch.isfinite(value) | (value == value.round())  # inf/nan, and exact whole numbers
            result.data.copy_(torch.where(keep, value, moved))
        self.count += 1
        return result


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
