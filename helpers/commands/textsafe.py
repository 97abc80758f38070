"""Text from a submission (names, paths, error lines) made safe to show on a terminal, in CSV and in HTML.

- bytes that are not UTF-8 (a GBK zip unpacked on Linux gives file names with lone
  surrogates under Python's ``surrogateescape``) are shown as ``\\xNN``;
- control characters (terminal escape sequences), bidirectional overrides (which
  reorder what the teacher sees) and other invisible format characters (a zero-width
  space makes two names look alike) are shown as ``\\x1b``, ``\\u202e``, ``\\u200b``, ...;
- a CSV cell that a spreadsheet would read as a formula (``= + - @``, tab, CR at
  the start) gets a leading ``'``.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _escape_char(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: object, keep_newlines: bool = False) -> str:
    """``text`` with undecodable bytes, control and format characters (bidi overrides, zero-width) shown as escapes."""
    text = str(text)
    if any("\udc80" <= ch <= "\udcff" for ch in text) or any("\ud800" <= ch <= "\udfff" for ch in text):
        text = text.encode("utf-8", "surrogateescape" if _only_escapes(text) else "backslashreplace").decode(
            "utf-8", "backslashreplace"
        )
        text = "".join(_escape_char(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    out = []
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cf", "Cs") or ch in "\u2028\u2029":
            out.append(_escape_char(ch))
        else:
            out.append(ch)
    return "".join(out)


def _only_escapes(text: str) -> bool:
    """True when every surrogate in ``text`` is one surrogateescape makes from a non-UTF-8 byte."""
    return all("\udc80" <= ch <= "\udcff" for ch in text if "\ud800" <= ch <= "\udfff")


def csv_cell(text: object) -> str:
    """A CSV cell that no spreadsheet reads as a formula (and with the same escapes as safe_text)."""
    text = safe_text(text, keep_newlines=True)
    return "'" + text if text.startswith(_FORMULA) else text


def strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", text)
