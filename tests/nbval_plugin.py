"""The project's extensions of nbval, and other machines on this one (loaded by the root conftest.py).

1. nbval's kernels run with HELPERS_AUTO_DEVICE=cpu: on a machine with a GPU the notebooks
   are still compared with their stored outputs, which were made on the CPU. (The papermill
   tests in tests/test_notebooks.py run them on the default device, the GPU if there is one.)

2. ``pytest --stand-in NAME`` runs as on another kind of machine: it sets MKL's code path
   (MKL_CBWR), torch's CPU vector kernels (ATEN_CPU_CAPABILITY) and the number of threads
   (OMP_NUM_THREADS) for the test process and every kernel it starts. See STAND_INS.

3. Numbers from training, compared within a stated tolerance.

A code cell tagged ``nbval-tolerance=R`` (for example ``nbval-tolerance=0.02``) has
its text outputs compared token by token instead of character by character:

- everything that is not a number must be the same, character for character;
- integers (no decimal point) must be the same: counts, epochs, shapes;
- a decimal number may differ from the stored one by at most
  ``R * |stored| + one unit in the stored number's last printed digit``
  (so ``85.2`` with R = 0.01 accepts 84.3 .. 86.1, and ``0.4312`` accepts 0.4268 .. 0.4356).

Every other cell is compared exactly, as nbval does (after tests/nbval_sanitize.cfg).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from typing import Optional

TAG_PREFIX = "nbval-tolerance="
# a number as Python and torch print them: -1, 0.5, 85.2, 1.5e-03; not the digits inside a name like "x1"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def tolerance_of(tags) -> Optional[float]:
    """The R of a cell's ``nbval-tolerance=R`` tag, or None; a malformed tag is an error, not a silent pass."""
    found = [t for t in tags if t.startswith(TAG_PREFIX)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"one {TAG_PREFIX}R tag per cell; got {found}")
    text = found[0][len(TAG_PREFIX):]
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{found[0]!r}: R must be a number such as 0.02") from None
    if not (0 <= value <= 0.1) or math.isnan(value):
        raise ValueError(f"{found[0]!r}: R must lie between 0 and 0.1 (a relative tolerance)")
    return value


def _unit(token: str) -> float:
    """One unit in the last printed digit of a decimal token: 85.2 -> 0.1, 1.5e-03 -> 1e-4."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def numbers_close(stored: str, fresh: str, rel: float) -> bool:
    """True when ``fresh`` equals ``stored`` except for decimal numbers within the tolerance."""
    stored_parts, fresh_parts = NUMBER.split(stored), NUMBER.split(fresh)
    if stored_parts != fresh_parts:  # the words, punctuation and layout around the numbers
        return False
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(fresh)):
        if a == b:
            continue
        is_decimal = ("." in a or "e" in a.lower()) and ("." in b or "e" in b.lower())
        if not is_decimal:
            return False
        x, y = float(a), float(b)
        if not (math.isfinite(x) and math.isfinite(y)) or abs(x - y) > rel * abs(x) + _unit(a) * (1 + 1e-9):
            return False
    return True


def _text_fields(outputs):
    """(output, key, text) for every text in a list of outputs, in order."""
    for out in outputs:
        if out.get("output_type") == "stream":
            yield out, "text", out.get("text", "")
        else:
            data = out.get("data", {})
            if "text/plain" in data:
                yield data, "text/plain", data["text/plain"]


def align_within_tolerance(fresh_outputs, stored_outputs, rel: float) -> None:
    """Where a fresh text matches its stored text within ``rel``, replace it by the stored text (in place).

    nbval then compares as usual: texts within the tolerance compare equal, and
    anything else (a missing output, other words, a number too far off) still fails
    with nbval's own report.
    """
    fresh = list(_text_fields(fresh_outputs))
    stored = list(_text_fields(stored_outputs))
    if len(fresh) != len(stored):
        return
    for (holder, key, new_text), (_, _, old_text) in zip(fresh, stored):
        if new_text != old_text and numbers_close(old_text, new_text, rel):
            holder[key] = old_text


# ------------------------------------------------------------------ other machines, on this one
STAND_INS = {
    "native": {},
    "compat-1": {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"},
    "avx2-3": {"MKL_CBWR": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "OMP_NUM_THREADS": "3"},
    "avx512-4": {"MKL_CBWR": "AVX512", "ATEN_CPU_CAPABILITY": "avx512", "OMP_NUM_THREADS": "4"},
    "default-2": {"MKL_CBWR": "AUTO", "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2"},
}
NBVAL_KERNEL_ENV = {"HELPERS_AUTO_DEVICE": "cpu"}


def pytest_addoption(parser):
    parser.addoption(
        "--stand-in", default="native", choices=sorted(STAND_INS),
        help="run as on another kind of machine: sets MKL_CBWR, ATEN_CPU_CAPABILITY and OMP_NUM_THREADS "
             "for this process and every kernel it starts (tests/nbval_plugin.py)",
    )
    parser.addoption(
        "--mutations", action="store_true",
        help="also run tests/test_mutations.py: one-line changes to the lessons that nbval must catch (slow)",
    )


def pytest_configure(config):
    os.environ.update(STAND_INS[config.getoption("--stand-in")])  # before torch does any work
    extend_nbval()


def pytest_report_header(config):
    name = config.getoption("--stand-in")
    settings = " ".join(f"{k}={v}" for k, v in STAND_INS[name].items()) or "this machine as it is"
    return f"stand-in: {name} ({settings})"


@contextlib.contextmanager
def environment(values: dict):
    """Set environment variables for the duration of the block, then restore them."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def extend_nbval() -> None:
    """Patch nbval once: kernels start with NBVAL_KERNEL_ENV; tolerance-tagged cells compare numbers loosely."""
    try:
        from nbval.plugin import IPyNbCell, IPyNbFile
    except ImportError:  # nbval not installed: nothing to extend
        return
    if getattr(IPyNbFile, "_helpers_extended", False):
        return
    start_kernel, compare = IPyNbFile.setup, IPyNbCell.compare_outputs

    def setup(self):
        with environment(NBVAL_KERNEL_ENV):  # the kernel inherits it; this process keeps its own
            start_kernel(self)

    def compare_outputs(self, test, ref, skip_compare=None):
        rel = tolerance_of(self.cell.metadata.get("tags", []))
        if rel is not None:
            align_within_tolerance(test, ref, rel)
        return compare(self, test, ref, skip_compare)

    IPyNbFile.setup, IPyNbCell.compare_outputs = setup, compare_outputs
    IPyNbFile._helpers_extended = True
