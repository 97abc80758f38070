"""Classroom kit: the student edition (solutions removed) and self-contained HTML handouts.

``python -m helpers student --out DIR`` writes every notebook with each code cell
tagged ``solution`` replaced by an empty exercise cell; everything else (prose,
stored outputs, figures) stays as it is. An author can leave something for the
student inside a solution cell:

- a comment line ``# 提示: ...`` (or ``# Hint: ...``) is kept as a hint;
- everything after a line that reads only ``# 检查 check`` is kept as a check the
  student runs after writing their code (asserts on the result; it must not give
  the answer away).

``python -m helpers html --out DIR`` writes one HTML page per notebook plus an
``index.html``. Pages need nothing from the network: figures are data URIs, the
styles are inlined, and formulas are converted to MathML on our side (with
``latex2mathml``), which browsers draw natively; nbconvert's default would load
MathJax from a CDN and show raw ``$...$`` offline. A formula that cannot be
converted is shown as its TeX source.

Pages never run scripts or load anything, whatever a notebook holds: the body
of every page passes an allowlist sanitizer (nh3, the Ammonia library) that keeps text formatting,
tables, ``<details>``, MathML and links, and drops everything else (``<script>``,
``<style>``, ``<iframe>``, forms, inline SVG, event attributes, ``javascript:``
links, remote images, ...). Only image files (PNG, JPEG, GIF, WebP, SVG, judged by
their content) that resolve inside the notebook's folder are embedded, as
``<img>`` data URIs, in which browsers run no scripts.

This module holds the two commands; the work is done in student.py (the student
edition), handouts.py (the pages and the index), markdown_html.py (formulas and
images), sanitize.py and html_allowlist.py (the sanitizer).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import nbformat

from helpers.commands.errors import CommandError, reports_errors

from ..files import atomic_write
from .handouts import (
    _NAV_LINE,
    _SERIES_LINK,
    CODE_FONT_STACK,
    FONT_STACK,
    HANDOUT_CSS,
    HANDOUT_TEMPLATE,
    MATH_FONT_STACK,
    HandoutExporter,
    NotebookInfo,
    _exporter,
    _inline_html,
    index_html,
    notebook_html,
    notebook_info,
    write_handouts,
)
from .html_allowlist import (
    _ATTRIBUTES,
    _DROPPED_WITH_CONTENT,
    _MATHML_ATTRIBUTES,
    _MATHML_TAGS,
    _TEXT_TAGS,
)
from .markdown_html import (
    _IMAGE_MAGIC,
    _IMG_SRC,
    _MTEXT,
    _SVG_START,
    _TEXT_ESCAPE,
    MAX_IMAGE_BYTES,
    MathMLRenderer,
    image_data_uri,
    image_type,
    latex_to_html,
    markdown_to_html,
)
from .runner import NOTEBOOKS_DIR, check_out_dir, list_notebooks, make_out_dir, select_notebooks
from .sanitize import (
    _BODY,
    _CSS_DANGER,
    _DATA_IMAGE,
    _SANITIZER,
    _URL_NOISE,
    UnsafePage,
    _allowed_attribute,
    _Scanner,
    sanitize_html,
    sanitize_page,
    unsafe_parts,
)
from .student import (
    _CHECK_MARKER,
    _HINT_LINE,
    CHECK_INTRO,
    CHECK_TAG,
    EXERCISE_TAG,
    EXERCISE_TODO,
    SERIES_METADATA,
    SOLUTION_TAG,
    WRITTEN_ANSWER,
    WRITTEN_TAG,
    _is_solution_tag,
    exercise_source,
    is_solution,
    read_notebook,
    student_notebook,
    without_solutions,
    write_atomic,
    write_student_edition,
)

# the commands, and (re-exported) every name this module held before its parts moved to the modules above
__all__ = [
    "html_main",
    "student_main",
    "CHECK_INTRO",
    "CHECK_TAG",
    "CODE_FONT_STACK",
    "EXERCISE_TAG",
    "EXERCISE_TODO",
    "FONT_STACK",
    "HANDOUT_CSS",
    "HANDOUT_TEMPLATE",
    "HandoutExporter",
    "MATH_FONT_STACK",
    "MAX_IMAGE_BYTES",
    "MathMLRenderer",
    "NOTEBOOKS_DIR",
    "NotebookInfo",
    "SERIES_METADATA",
    "SOLUTION_TAG",
    "WRITTEN_ANSWER",
    "WRITTEN_TAG",
    "_ATTRIBUTES",
    "_BODY",
    "_CHECK_MARKER",
    "_CSS_DANGER",
    "_DATA_IMAGE",
    "_DROPPED_WITH_CONTENT",
    "_HINT_LINE",
    "_IMAGE_MAGIC",
    "_IMG_SRC",
    "_MATHML_ATTRIBUTES",
    "_MATHML_TAGS",
    "_MTEXT",
    "_NAV_LINE",
    "_SANITIZER",
    "_SERIES_LINK",
    "_SVG_START",
    "_Scanner",
    "_TEXT_ESCAPE",
    "_TEXT_TAGS",
    "_URL_NOISE",
    "_allowed_attribute",
    "_exporter",
    "_inline_html",
    "_is_solution_tag",
    "atomic_write",
    "check_out_dir",
    "exercise_source",
    "image_data_uri",
    "image_type",
    "index_html",
    "is_solution",
    "latex_to_html",
    "list_notebooks",
    "make_out_dir",
    "markdown_to_html",
    "notebook_html",
    "notebook_info",
    "read_notebook",
    "sanitize_html",
    "sanitize_page",
    "select_notebooks",
    "student_notebook",
    "unsafe_parts",
    "without_solutions",
    "write_atomic",
    "write_handouts",
    "write_student_edition",
]


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m helpers {command}", description=description, allow_abbrev=False)
    parser.add_argument("--out", type=Path, required=True, help="output folder (must not be inside notebooks/)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="only these notebooks (e.g. --only 03 06)")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS_DIR, help="source folder (default: notebooks/)")
    return parser


def _write_failure(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    return (
        f"could not write{where}: {exc.strerror or exc}; files written before it are complete, "
        "so choose a folder you can write to (with free space) and run again"
    )


def _write_or_explain(write, *args):
    """Call ``write(*args)``; on failure print one sentence and return the exit code (2 usage, 1 writing)."""
    try:
        return write(*args)
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    except UnsafePage as exc:  # a gap in the sanitizer: no page with it is written
        raise CommandError(f"{exc}; no page was written for it. Remove that HTML from the notebook", 1) from None
    except OSError as exc:
        raise CommandError(f"{_write_failure(exc)}", 1) from None


@reports_errors
def student_main(argv: Sequence[str]) -> int:
    """``python -m helpers student``."""
    parser = _parser("student", "Write the student edition: solution cells become empty exercise cells.")
    args = parser.parse_args(list(argv))
    written = _write_or_explain(write_student_edition, args.out, args.only, args.notebooks)
    if isinstance(written, int):
        return written
    for path in written:
        nb = nbformat.read(path, as_version=4)
        count = sum(EXERCISE_TAG in c.metadata.get("tags", []) for c in nb.cells)
        print(f"wrote {_relative(path)} ({count} exercise cell{'s' if count != 1 else ''})")
    out = Path(args.out).resolve()
    data = Path(args.notebooks).resolve().parent / "data"
    if written and data.is_dir() and not (out.parent / "data").is_dir():
        print(
            f"note: the notebooks read their data from ../data; copy or link {_relative(data)} next to "
            f"{_relative(out)} (or use an --out folder beside notebooks/, e.g. --out student)"
        )
    return 0


@reports_errors
def html_main(argv: Sequence[str]) -> int:
    """``python -m helpers html``."""
    parser = _parser("html", "Write self-contained HTML handouts (one page per notebook) and an index.html.")
    parser.add_argument("--hide-solutions", action="store_true", help="leave out the cells tagged solution")
    args = parser.parse_args(list(argv))
    written = _write_or_explain(write_handouts, args.out, args.only, args.hide_solutions, args.notebooks)
    if isinstance(written, int):
        return written
    for path in written:
        print(f"wrote {_relative(path)}")
    return 0
