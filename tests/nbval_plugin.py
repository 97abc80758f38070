"""The project's extensions of nbval, and other machines on this one (loaded by the root conftest.py).

1. nbval's kernels run with HELPERS_AUTO_DEVICE=cpu: on a machine with a GPU the notebooks
   are still compared with their stored outputs, which were made on the CPU. (The papermill
   tests in tests/test_notebooks.py run them on the default device, the GPU if there is one.)

2. ``pytest --stand-in NAME`` runs as on another kind of machine. The CPU stand-ins set MKL's
   code path (MKL_CBWR), torch's CPU vector kernels (ATEN_CPU_CAPABILITY) and the number of
   threads (OMP_NUM_THREADS) for the test process and every kernel it starts (see STAND_INS).
   The rounding stand-ins ``ulp-K`` (K = 1, 2, 3, ...) perturb rounding itself, whatever this
   CPU: every kernel starts with tests/standin_site on PYTHONPATH and HELPERS_ULP_SEED=K, and
   its sitecustomize.py moves every matrix product and convolution result by one ulp on a
   pattern seeded with K (tests/standin_site/ulp_standin.py).

3. Numbers from training, compared within a stated tolerance.

A code cell tagged ``nbval-tolerance=R`` (relative, for example ``nbval-tolerance=0.02``)
and/or ``nbval-tolerance-abs=A`` (absolute, for example ``nbval-tolerance-abs=1.5``) has
its text outputs compared token by token instead of character by character:

- everything that is not a number must be the same, character for character;
- integers (no decimal point) must be the same: counts, epochs, shapes;
- a decimal number may differ from the stored one by at most
  ``R * |stored| + A + one unit in the stored number's last printed digit``
  (a missing tag counts as 0; so ``85.2`` with R = 0.01 accepts 84.3 .. 86.1, ``0.4312``
  accepts 0.4268 .. 0.4356, and ``13.5`` with A = 1.5 accepts 11.9 .. 15.1).

Any other tag that starts with ``nbval-tolerance`` is an error, as is a malformed value.
tests/calibrate.py measures the drift of tagged cells and suggests their tags.

Every other cell is compared exactly, as nbval does (after tests/nbval_sanitize.cfg).
"""

from __future__ import annotations

import contextlib
import math
import os
import re

TAG_PREFIX = "nbval-tolerance="
ABS_TAG_PREFIX = "nbval-tolerance-abs="
# a number as Python and torch print them: -1, 0.5, 85.2, 1.5e-03; not the digits inside a name like "x1"
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")


def _tag_value(tags, prefix: str, example: str) -> float | None:
    found = [t for t in tags if t.startswith(prefix)]
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"one {prefix} tag per cell; got {found}")
    try:
        value = float(found[0][len(prefix) :])
    except ValueError:
        raise ValueError(f"{found[0]!r}: the value must be a number such as {example}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{found[0]!r}: the value must be a finite number >= 0")
    return value


def tolerances_of(tags) -> tuple[float, float] | None:
    """(R, A) from a cell's ``nbval-tolerance=R`` and ``nbval-tolerance-abs=A`` tags (a missing one is 0),
    or None when the cell has neither; a malformed or unknown ``nbval-tolerance...`` tag is an error."""
    for tag in tags:
        if tag.startswith("nbval-tolerance") and not tag.startswith((TAG_PREFIX, ABS_TAG_PREFIX)):
            raise ValueError(f"{tag!r}: unknown tag; use {TAG_PREFIX}R (relative) or {ABS_TAG_PREFIX}A (absolute)")
    rel = _tag_value(tags, TAG_PREFIX, "0.02")
    if rel is not None and rel > 0.1:
        raise ValueError(
            f"{TAG_PREFIX}{rel:g}: R must lie between 0 and 0.1 (a relative tolerance); "
            f"for larger drift use {ABS_TAG_PREFIX}A"
        )
    absolute = _tag_value(tags, ABS_TAG_PREFIX, "1.5")
    if rel is None and absolute is None:
        return None
    return (rel or 0.0, absolute or 0.0)


def tolerance_of(tags) -> float | None:
    """The R of a cell's ``nbval-tolerance=R`` tag, or None; a malformed tag is an error, not a silent pass."""
    found = tolerances_of(tags)
    return None if found is None or not any(t.startswith(TAG_PREFIX) for t in tags) else found[0]


def _unit(token: str) -> float:
    """One unit in the last printed digit of a decimal token: 85.2 -> 0.1, 1.5e-03 -> 1e-4."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def _padding(text: str) -> str:
    """``text`` with every run of spaces as one space: a right-aligned 9.8 that drifts to 10.2 takes one space less."""
    return re.sub(r" +", " ", text)


def numbers_close(stored: str, fresh: str, rel: float, absolute: float = 0.0) -> bool:
    """True when ``fresh`` equals ``stored`` except for decimal numbers within the tolerance
    (``rel * |stored| + absolute + one unit in the stored number's last printed digit``)."""
    stored_parts, fresh_parts = NUMBER.split(stored), NUMBER.split(fresh)
    if [_padding(p) for p in stored_parts] != [_padding(p) for p in fresh_parts]:  # the words and punctuation
        return False
    for a, b in zip(NUMBER.findall(stored), NUMBER.findall(fresh)):
        if a == b:
            continue
        is_decimal = ("." in a or "e" in a.lower()) and ("." in b or "e" in b.lower())
        if not is_decimal:
            return False
        x, y = float(a), float(b)
        if not (math.isfinite(x) and math.isfinite(y)) or abs(x - y) > (rel * abs(x) + absolute + _unit(a)) * (
            1 + 1e-9
        ):
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


def align_within_tolerance(fresh_outputs, stored_outputs, rel: float, absolute: float = 0.0) -> None:
    """Where a fresh text matches its stored text within the tolerance, replace it by the stored text (in place).

    nbval then compares as usual: texts within the tolerance compare equal, and
    anything else (a missing output, other words, a number too far off) still fails
    with nbval's own report.
    """
    fresh = list(_text_fields(fresh_outputs))
    stored = list(_text_fields(stored_outputs))
    if len(fresh) != len(stored):
        return
    for (holder, key, new_text), (_, _, old_text) in zip(fresh, stored):
        if new_text != old_text and numbers_close(old_text, new_text, rel, absolute):
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
# the rounding stand-ins ulp-1, ulp-2, ...: see tests/standin_site/
ULP = re.compile(r"ulp-([1-9]\d{0,5})")
ULP_SEED_ENV = "HELPERS_ULP_SEED"
STANDIN_SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin_site")


def stand_in_name(text: str) -> str:
    """Check a --stand-in value: a name in STAND_INS or ulp-K (K a positive integer)."""
    if text in STAND_INS or ULP.fullmatch(text):
        return text
    import argparse

    raise argparse.ArgumentTypeError(
        f"{text!r}: choose one of {', '.join(sorted(STAND_INS))}, or ulp-K "
        "(K = 1, 2, 3, ...: rounding perturbed with seed K)"
    )


def stand_in_settings(name: str, environ=os.environ) -> dict:
    """The environment variables stand-in ``name`` sets (for this process and every kernel it starts)."""
    match = ULP.fullmatch(name)
    if not match:
        return dict(STAND_INS[name])
    paths = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != STANDIN_SITE]
    return {ULP_SEED_ENV: match.group(1), "PYTHONPATH": os.pathsep.join([STANDIN_SITE, *paths])}


def pytest_addoption(parser):
    parser.addoption(
        "--stand-in",
        default="native",
        type=stand_in_name,
        metavar="NAME",
        help=f"run as on another kind of machine: {', '.join(sorted(STAND_INS))} set MKL_CBWR, "
        "ATEN_CPU_CAPABILITY and OMP_NUM_THREADS for this process and every kernel it starts; "
        "ulp-K (K = 1, 2, ...) makes every kernel perturb the last bit of each matrix product "
        "with seed K (tests/nbval_plugin.py)",
    )
    parser.addoption(
        "--mutations-only",
        default="",
        metavar="NN,NN",
        help="with --mutations: only the mutations of these lessons (for example 06,07)",
    )
    parser.addoption(
        "--mutations",
        action="store_true",
        help="also run tests/test_mutations.py: one-line changes to the lessons that nbval must catch (slow)",
    )


def pytest_configure(config):
    name = config.getoption("--stand-in")
    if not ULP.fullmatch(name):
        os.environ.pop(ULP_SEED_ENV, None)  # the rounding stand-in is on only when asked for
    os.environ.update(stand_in_settings(name))  # before torch does any work
    extend_nbval()


def pytest_report_header(config):
    name = config.getoption("--stand-in")
    settings = " ".join(f"{k}={v}" for k, v in stand_in_settings(name).items()) or "this machine as it is"
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
        tolerances = tolerances_of(self.cell.metadata.get("tags", []))
        if tolerances is not None:
            align_within_tolerance(test, ref, *tolerances)
        return compare(self, test, ref, skip_compare)

    IPyNbFile.setup, IPyNbCell.compare_outputs = setup, compare_outputs
    IPyNbFile._helpers_extended = True
