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
of every page passes an allowlist sanitizer (bleach) that keeps text formatting,
tables, ``<details>``, MathML and links, and drops everything else (``<script>``,
``<style>``, ``<iframe>``, forms, inline SVG, event attributes, ``javascript:``
links, remote images, ...). Only image files (PNG, JPEG, GIF, WebP, SVG, judged by
their content) that resolve inside the notebook's folder are embedded, as
``<img>`` data URIs, in which browsers run no scripts.
"""

from __future__ import annotations

import argparse
import base64
import copy
import html
import re
import sys
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import bleach
import jinja2
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from latex2mathml.converter import convert
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from ..files import atomic_write
from .runner import NOTEBOOKS_DIR, check_out_dir, list_notebooks, make_out_dir, select_notebooks

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"
EXERCISE_TODO = "# TODO：按上面的练习说明，在这里写你的代码 (write your code for the exercise above)"
CHECK_INTRO = "# 写完后运行本单元格: 下面的检查通过, 说明结果对了 (the check below passes when your result is right)"
CHECK_TAG = "check"  # a check cell: kept in the student edition; `python -m helpers check` runs the teacher's copy
WRITTEN_TAG = "written"  # a Markdown reference answer to a written exercise (read by the teacher)
WRITTEN_ANSWER = "**你的回答 Your answer:** （在这里写下你的回答 write your answer here）"
# notebook metadata of a student edition: {"pytorch_basics": {"lesson": "03", "edition": "student"}}
SERIES_METADATA = "pytorch_basics"

_HINT_LINE = re.compile(r"^\s*#\s*(提示|hint)\b.*?[:：]", re.IGNORECASE)
_CHECK_MARKER = re.compile(r"^\s*#\s*(检查(\s*check)?|check)\s*[:：]?\s*$", re.IGNORECASE)
_SERIES_LINK = re.compile(r'href="(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')
_IMG_SRC = re.compile(r"""(<img\b[^>]*?\bsrc=)(["'])([^"']+)\2""", re.IGNORECASE)
_MTEXT = re.compile(r"<mtext>.*?</mtext>", re.DOTALL)
_TEXT_ESCAPE = re.compile(r"\\([_%&#$ {}])")
_NAV_LINE = re.compile(r"^(上一节|下一节)")


# ---------------------------------------------------------------- student edition


def exercise_source(solution: str) -> str:
    """The student's version of a solution cell: a TODO line, the author's hints, the author's check."""
    lines = solution.splitlines()
    check_at = next((i for i, line in enumerate(lines) if _CHECK_MARKER.match(line)), len(lines))
    hints, in_hint = [], False
    for line in lines[:check_at]:
        # a hint is a "# 提示：" line and the comment lines right after it (a hint may wrap)
        in_hint = bool(_HINT_LINE.match(line)) or (in_hint and line.lstrip().startswith("#"))
        if in_hint:
            hints.append(line.strip())
    check = "\n".join(lines[check_at + 1 :]).strip("\n")
    parts = [EXERCISE_TODO, *hints]
    if check:
        parts += ["", "", CHECK_INTRO, check]
    return "\n".join(parts) + "\n"


def _is_solution_tag(tag: object) -> bool:
    return str(tag).strip().lower() == SOLUTION_TAG  # `Solution`, `SOLUTION ` count too


def is_solution(cell: nbformat.NotebookNode) -> bool:
    """True for a cell tagged ``solution`` (any case, any cell type): a reference solution or a written answer."""
    tags = cell.get("metadata", {}).get("tags", [])
    return isinstance(tags, list) and any(_is_solution_tag(t) for t in tags)


def student_notebook(nb: nbformat.NotebookNode, lesson: str | None = None) -> nbformat.NotebookNode:
    """A copy of ``nb`` in which every solution cell is an empty exercise (or written-answer) cell.

    Code solutions become a TODO cell (tags kept, ``exercise`` added) and check cells lose
    their stored outputs (they showed the reference solution passing); a written
    exercise's Markdown answer becomes an empty answer cell (tags kept but
    ``solution``). The notebook metadata says it is a student edition (of ``lesson``).
    """
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and CHECK_TAG in cell.metadata.get("tags", []):
            cell.outputs = []  # the stored "passed" belongs to the reference solution, not to the student
            cell.execution_count = None
        if not is_solution(cell):
            continue
        tags = [t for t in cell.metadata.get("tags", []) if not _is_solution_tag(t)]
        if cell.cell_type == "raw":  # a raw cell tagged solution: nothing of it reaches the student
            cell.source = ""
            cell.metadata["tags"] = tags
            continue
        if cell.cell_type == "markdown":
            cell.source = WRITTEN_ANSWER
            cell.pop("attachments", None)
            cell.metadata["tags"] = tags
            continue
        cell.source = exercise_source(cell.source)
        cell.outputs = []
        cell.execution_count = None
        cell.metadata["tags"] = tags + ([EXERCISE_TAG] if EXERCISE_TAG not in tags else [])
    edition = {"lesson": lesson, "edition": "student"} if lesson else {"edition": "student"}
    nb.metadata[SERIES_METADATA] = edition
    return nb


def without_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with the solution cells removed."""
    nb = copy.deepcopy(nb)
    nb.cells = [cell for cell in nb.cells if not is_solution(cell)]
    return nb


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook; raise ValueError naming the file when it is not a valid notebook."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # NotJSONError, ValidationError, UnicodeDecodeError, OSError, ...
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{path} is not a readable notebook ({text}); fix it or move it out of the folder") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_student_edition(
    out_dir: Path, only: Sequence[str] | None = None, notebooks_dir: Path = NOTEBOOKS_DIR
) -> list[Path]:
    """Write the student edition of the selected notebooks into ``out_dir``; return the files written."""
    notebooks = select_notebooks(only, notebooks_dir)
    out = make_out_dir(check_out_dir(out_dir, notebooks_dir, example="--out student"))
    written = []
    for path in notebooks:
        nb = student_notebook(read_notebook(path), lesson=path.name[:2])
        nbformat.validate(nb)
        target = out / path.name
        write_atomic(target, nbformat.writes(nb) + "\n")  # as nbformat.write ends a file
        written.append(target)
    return written


# ---------------------------------------------------------------- HTML handouts

FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", '
    '"Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", sans-serif'
)
CODE_FONT_STACK = (
    'ui-monospace, Menlo, Consolas, "DejaVu Sans Mono", "Noto Sans Mono CJK SC", '
    '"Microsoft YaHei", "PingFang SC", monospace'
)
MATH_FONT_STACK = '"Latin Modern Math", "STIX Two Math", "Cambria Math", "DejaVu Math TeX Gyre", math'

HANDOUT_CSS = f"""
:root {{
  --jp-content-font-family: {FONT_STACK};
  --jp-ui-font-family: {FONT_STACK};
  --jp-code-font-family: {CODE_FONT_STACK};
}}
body {{ font-family: {FONT_STACK}; }}
.jp-RenderedHTMLCommon pre, .jp-OutputArea-output .highlight pre {{ font-family: var(--jp-code-font-family); }}
math {{ font-family: {MATH_FONT_STACK}; font-size: 1.1em; }}
math[display="block"] {{ margin: 0.6em 0; }}
code.tex-source {{ white-space: pre-wrap; }}
main {{ max-width: 1100px; margin: 0 auto; }}
"""

# The lab template without anything fetched from the network (require.js, MathJax, Mermaid, widgets).
HANDOUT_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">{{ resources.handout_css }}</style>
{%- endblock html_head_css -%}
"""


def latex_to_html(tex: str, display: bool = False) -> str:
    """MathML for a TeX formula; the escaped TeX source where it cannot be converted."""
    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds of errors on input it does not know
        delim = "$$" if display else "$"
        return f'<code class="tex-source">{html.escape(delim + tex + delim)}</code>'
    # latex2mathml leaves TeX escapes such as \_ inside \text{...} as they are: fan\_in -> fan_in
    mathml = _MTEXT.sub(lambda m: _TEXT_ESCAPE.sub(lambda e: "&amp;" if e[1] == "&" else e[1], m[0]), mathml)
    return mathml.replace("<math ", f'<math alttext="{html.escape(tex.strip())}" ', 1)


class MathMLRenderer(IPythonRenderer):
    """nbconvert's Markdown renderer, with formulas turned into MathML instead of left for MathJax."""

    def block_math(self, body: str) -> str:
        """``$$...$$``."""
        return latex_to_html(body, display=True)

    def inline_math(self, body: str) -> str:
        """``$...$``."""
        return latex_to_html(body, display=False)

    def latex_environment(self, name: str, body: str) -> str:
        """``\\begin{name}...\\end{name}`` outside dollar signs."""
        return latex_to_html(f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)

    def _html_embed_images(self, html_text: str) -> str:
        # nbconvert re-parses the whole HTML block here, which closes an open <details> early;
        # only the src of <img> tags needs changing
        def embed(m: re.Match) -> str:
            return f"{m.group(1)}{m.group(2)}{image_data_uri(m.group(3), self.path) or m.group(3)}{m.group(2)}"

        return _IMG_SRC.sub(embed, html_text)

    def _src_to_base64(self, src: str) -> str | None:
        # nbconvert's own version checks the path without resolving symbolic links and embeds any file
        return image_data_uri(src, self.path)

    def _embed_image_or_attachment(self, src: str) -> str:
        name = src[len("attachment:") :] if src.startswith("attachment:") else None
        if name is not None and name not in self.attachments:
            return ""  # nbconvert raises for a missing attachment; the page shows the alt text instead
        return super()._embed_image_or_attachment(src)


MAX_IMAGE_BYTES = 20 * 2**20
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_SVG_START = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.IGNORECASE | re.DOTALL
)


def image_type(data: bytes) -> str | None:
    """The MIME type of image ``data`` judged by its content (PNG, JPEG, GIF, WebP, SVG); None for anything else."""
    for magic, mime in _IMAGE_MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if _SVG_START.match(data[:4096]):
        return "image/svg+xml"  # shown through <img>, where browsers run no scripts and load nothing
    return None


def image_data_uri(src: str, folder: str) -> str | None:
    """A data URI for an image file ``src`` that resolves inside ``folder``; None for anything else.

    Symbolic links are followed before the check, so a link to a file elsewhere is
    refused; the type comes from the file's content, not its name.
    """
    if not folder or re.match(r"^[a-z][a-z0-9+.-]*:", src, re.IGNORECASE):
        return None  # no folder, or a URL (https:, data:, ...)
    try:
        base = Path(folder).resolve()
        path = (base / src).resolve()
        if base not in path.parents or not path.is_file() or path.stat().st_size > MAX_IMAGE_BYTES:
            return None
        data = path.read_bytes()
    except (OSError, RuntimeError, ValueError):  # a loop of links, a NUL in the name, no permission, ...
        return None
    mime = image_type(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}" if mime else None


# ---------------------------------------------------------------- sanitizing the pages

_TEXT_TAGS = {
    "a",
    "abbr",
    "address",
    "article",
    "aside",
    "b",
    "bdi",
    "bdo",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "dfn",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "li",
    "main",
    "mark",
    "nav",
    "ol",
    "p",
    "pre",
    "q",
    "rp",
    "rt",
    "ruby",
    "s",
    "samp",
    "section",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "u",
    "ul",
    "var",
    "wbr",
}
_MATHML_TAGS = {
    "math",
    "maction",
    "annotation",
    "menclose",
    "merror",
    "mfenced",
    "mfrac",
    "mi",
    "mmultiscripts",
    "mn",
    "mo",
    "mover",
    "mpadded",
    "mphantom",
    "mprescripts",
    "mroot",
    "mrow",
    "ms",
    "mspace",
    "msqrt",
    "mstyle",
    "msub",
    "msubsup",
    "msup",
    "mtable",
    "mtd",
    "mtext",
    "mtr",
    "munder",
    "munderover",
    "none",
    "semantics",
}
_MATHML_ATTRIBUTES = {
    "accent",
    "accentunder",
    "alttext",
    "close",
    "columnalign",
    "columnlines",
    "columnspacing",
    "columnspan",
    "depth",
    "display",
    "displaystyle",
    "fence",
    "form",
    "frame",
    "height",
    "largeop",
    "linethickness",
    "lspace",
    "mathbackground",
    "mathcolor",
    "mathsize",
    "mathvariant",
    "maxsize",
    "minsize",
    "movablelimits",
    "notation",
    "open",
    "rowalign",
    "rowlines",
    "rowspacing",
    "rowspan",
    "rspace",
    "scriptlevel",
    "separator",
    "separators",
    "stretchy",
    "symmetric",
    "voffset",
    "width",
    "xmlns",
}
_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir", "style"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "input": {"type", "checked", "disabled"},
    "ol": {"start", "type", "reversed"},
    "li": {"value"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign", "scope"},
    "table": {"border"},
    "col": {"span"},
    "colgroup": {"span"},
    "details": {"open"},
    "div": {"data-mime-type", "data-type", "tabindex"},
    "time": {"datetime"},
}
# elements dropped together with everything inside them (the rest of a disallowed element's text is kept)
_DROPPED_WITH_CONTENT = {
    "script",
    "style",
    "template",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "noscript",
    "noembed",
    "noframes",
    "xmp",
    "textarea",
    "select",
    "title",
    "svg",
    "audio",
    "video",
    "canvas",
    "head",
    "link",
    "meta",
    "base",
    "button",
    "option",
    "plaintext",
    "portal",
    "param",
    "source",
    "track",
}
_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[a-z0-9+/=\s]*$", re.IGNORECASE)
_CSS_DANGER = re.compile(
    r"url\s*\(|image\s*\(|image-set|expression|@|\\|javascript|behavior|-moz-binding|&", re.IGNORECASE
)
_URL_NOISE = re.compile(r"[`\x00-\x20\x7f-\xa0\s]+")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """The attribute filter of the sanitizer: the allowlist above, plus checks on URLs and styles."""
    if name not in _ATTRIBUTES["*"] | _ATTRIBUTES.get(tag, set()) and not (
        tag in _MATHML_TAGS and name in _MATHML_ATTRIBUTES
    ):
        return False
    if name == "style":
        return not _CSS_DANGER.search(value)
    if name == "src":  # only images carried inside the page itself
        return bool(_DATA_IMAGE.match(value.strip()))
    if name == "href":
        url = _URL_NOISE.sub("", html.unescape(value)).lower()
        scheme = re.match(r"^([a-z][a-z0-9+.-]*):", url)
        return scheme is None or scheme.group(1) in ("http", "https", "mailto")
    if name == "type" and tag == "input":
        return value.strip().lower() == "checkbox"  # Markdown task lists
    return True


class _DropWithContent(bleach.html5lib_shim.Filter):
    """Drops the elements in _DROPPED_WITH_CONTENT and everything inside them, before the allowlist runs."""

    def __iter__(self):
        depth = 0
        for token in super().__iter__():
            kind = token["type"]
            if depth:
                if kind == "StartTag":
                    depth += 1
                elif kind == "EndTag":
                    depth -= 1
                continue
            if kind == "StartTag" and token["name"] in _DROPPED_WITH_CONTENT:
                depth = 1
                continue
            if kind in ("EmptyTag", "EndTag") and token["name"] in _DROPPED_WITH_CONTENT:
                continue
            if (
                token.get("name") == "input"
                and kind in ("StartTag", "EmptyTag")
                and not any(
                    name == "type" and value.strip().lower() == "checkbox" for (_, name), value in token["data"].items()
                )
            ):
                continue  # only the check boxes of Markdown task lists; a text box would be an empty form field
            yield token


class _Sanitizer(bleach.Cleaner):
    """bleach's Cleaner with the elements of _DROPPED_WITH_CONTENT removed before the allowlist.

    bleach's own parser turns disallowed tags into text while it reads, which would
    keep the text of a <script> or <style>; this one builds the whole tree first, so
    those elements can go with their content. Every raw-text element (script, style,
    xmp, iframe, noembed, noframes, noscript, plaintext) is dropped, so the
    serializer escapes all remaining text.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.parser = bleach.html5lib_shim.BleachHTMLParser(
            tags=None, strip=True, consume_entities=False, namespaceHTMLElements=False
        )

    def clean(self, text: str) -> str:
        """Sanitize an HTML fragment."""
        if not text:
            return ""
        dom = self.parser.parseFragment(text)
        filtered = bleach.sanitizer.BleachSanitizerFilter(
            source=_DropWithContent(self.walker(dom)),
            allowed_tags=self.tags,
            attributes=self.attributes,
            strip_disallowed_tags=True,
            strip_html_comments=True,
            css_sanitizer=self.css_sanitizer,
            allowed_protocols=self.protocols,
        )
        return self.serializer.render(filtered)


_SANITIZER = _Sanitizer(
    tags=_TEXT_TAGS | _MATHML_TAGS,
    attributes=_allowed_attribute,
    protocols={"http", "https", "mailto", "data"},  # data: only passes _allowed_attribute for <img src>
    strip=True,
    strip_comments=True,
    css_sanitizer=CSSSanitizer(
        allowed_css_properties=[
            "background-color",
            "border",
            "border-bottom",
            "border-collapse",
            "border-left",
            "border-right",
            "border-top",
            "color",
            "display",
            "font-family",
            "font-size",
            "font-style",
            "font-weight",
            "height",
            "margin",
            "margin-bottom",
            "margin-left",
            "margin-right",
            "margin-top",
            "max-width",
            "min-width",
            "padding",
            "padding-bottom",
            "padding-left",
            "padding-right",
            "padding-top",
            "text-align",
            "text-decoration",
            "vertical-align",
            "white-space",
            "width",
        ],
        allowed_svg_properties=[],
    ),
)


def sanitize_html(fragment: str) -> str:
    """An HTML fragment with only the allowlisted tags and attributes: no scripts, no styles, nothing remote."""
    return _SANITIZER.clean(fragment)


_BODY = re.compile(r"(<body\b[^>]*>)(.*)(</body>)", re.DOTALL | re.IGNORECASE)


def sanitize_page(page: str) -> str:
    """A whole page from our template with its body sanitized; raise RuntimeError if anything unsafe is left."""
    match = _BODY.search(page)
    if match is None:
        raise RuntimeError("the exported page has no <body>; the HTML template has changed")
    page = page[: match.start(2)] + sanitize_html(match.group(2)) + page[match.end(2) :]
    problems = unsafe_parts(page)
    if problems:
        raise RuntimeError(f"the page still holds {problems[0]}; the HTML template or sanitizer has a gap")
    return page


class _Scanner(HTMLParser):
    """Collects what a handout must not contain: scripts, frames, active attributes and anything loaded from elsewhere."""

    ACTIVE = {
        "script",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "link",
        "base",
        "form",
        "svg",
        "portal",
        "audio",
        "video",
        "source",
        "track",
        "input:not-checkbox",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.ACTIVE:
            self.problems.append(f"a <{tag}> element")
        if tag == "meta" and any(k == "http-equiv" for k, _ in attrs):
            self.problems.append("a <meta http-equiv>")
        for name, value in attrs:
            value = value or ""
            url = _URL_NOISE.sub("", value).lower()
            if name.startswith("on"):
                self.problems.append(f"an event attribute {name}")
            elif name in (
                "src",
                "srcset",
                "poster",
                "background",
                "data",
                "action",
                "formaction",
                "xlink:href",
            ) and not (name == "src" and _DATA_IMAGE.match(value.strip())):
                self.problems.append(f"a {name}={value[:40]!r} that loads something")
            elif name == "href" and re.match(r"^(javascript|vbscript|data|file):", url):
                self.problems.append(f"a link to {value[:40]!r}")
            elif name == "style" and _CSS_DANGER.search(value):
                self.problems.append(f"a style attribute {value[:40]!r}")
        self.in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self.in_style = False

    def handle_data(self, data: str) -> None:
        if self.in_style:
            for found in re.finditer(r"@import|url\s*\(\s*['\"]?\s*(?!data:)[^)]*\)", data, re.IGNORECASE):
                self.problems.append(f"a style that loads {found.group(0)[:40]!r}")


def unsafe_parts(page: str) -> list[str]:
    """What in an HTML page could run a script or load something from elsewhere; empty when it is safe to hand out."""
    scanner = _Scanner()
    scanner.feed(page)
    scanner.close()
    return scanner.problems


def markdown_to_html(source: str, path: str = "", attachments: dict | None = None) -> str:
    """Markdown (with math) to HTML as the handouts show it; images next to ``path`` are embedded."""
    renderer = MathMLRenderer(escape=False, embed_images=True, path=path, attachments=attachments)
    return MarkdownWithMath(renderer=renderer).render(source)


class HandoutExporter(HTMLExporter):
    """The lab HTML template, offline: MathML formulas, embedded images, no scripts from a CDN."""

    @jinja2.pass_context
    def markdown2html(self, context: jinja2.runtime.Context, source: str) -> str:
        """The template's Markdown filter: formulas as MathML, local images and attachments embedded."""
        cell = context.get("cell", {})
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        return markdown_to_html(source, path, cell.get("attachments", {}))


def _exporter() -> HandoutExporter:
    return HandoutExporter(
        template_name="lab",
        template_file="handout.html.j2",
        extra_loaders=[jinja2.DictLoader({"handout.html.j2": HANDOUT_TEMPLATE})],
        embed_images=True,
        language_code="zh",
    )


@dataclass
class NotebookInfo:
    """What the index shows for one notebook."""

    name: str  # file stem, e.g. 03_build_model
    title: str  # from the first heading, e.g. 03 构建神经网络 Build the Model
    summary: str  # the first paragraph after the heading, Markdown


def notebook_info(path: Path, nb: nbformat.NotebookNode | None = None) -> NotebookInfo:
    """Title and one-line summary from the notebook's first Markdown cell."""
    nb = nb if nb is not None else nbformat.read(path, as_version=4)
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title, summary = path.stem, ""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", first) if p.strip()]
    if paragraphs and paragraphs[0].startswith("#"):
        title = paragraphs.pop(0).splitlines()[0].lstrip("#").strip()
    for p in paragraphs:
        if not p.startswith("#") and not _NAV_LINE.match(p):
            summary = " ".join(line.strip() for line in p.splitlines())
            break
    return NotebookInfo(path.stem, title, summary)


def notebook_html(nb: nbformat.NotebookNode, title: str, notebook_dir: Path) -> str:
    """One self-contained HTML page for a notebook; links to sibling notebooks point at their pages."""
    resources = {
        "metadata": {"name": title, "path": str(notebook_dir)},
        "handout_css": HANDOUT_CSS,
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return sanitize_page(_SERIES_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body))


def _inline_html(markdown: str) -> str:
    rendered = sanitize_html(markdown_to_html(markdown)).strip()
    return re.sub(r"^<p>(.*)</p>$", r"\1", rendered, flags=re.DOTALL)


def index_html(infos: Sequence[NotebookInfo], available: set[str]) -> str:
    """The handouts' index page: the series in order, one line per notebook (linked where its page exists)."""
    items = []
    for info in infos:
        title = html.escape(info.title)
        link = html.escape(urllib.parse.quote(f"{info.name}.html"))  # a file name may hold <, " or #
        head = f'<a href="{link}">{title}</a>' if info.name in available else f"{title} (未生成 not generated)"
        summary = f'<span class="summary">{_inline_html(info.summary)}</span>' if info.summary else ""
        items.append(f"  <li>{head}{' — ' + summary if summary else ''}</li>")
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="zh">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1.0">',
            "<title>PyTorch 入门教程 讲义 Handouts</title>",
            "<style>",
            f"body {{ font-family: {FONT_STACK}; max-width: 60em; margin: 2em auto; padding: 0 1em; "
            "line-height: 1.7; color: #222; }",
            f"code {{ font-family: {CODE_FONT_STACK}; background: #f3f3f3; padding: 0 0.2em; }}",
            f"math {{ font-family: {MATH_FONT_STACK}; }}",
            "li { margin: 0.5em 0; } a { font-weight: bold; } .summary { color: #444; }",
            "</style>",
            "</head>",
            "<body>",
            "<h1>PyTorch 入门教程 讲义 Handouts</h1>",
            "<p>按顺序学习; 每页是一节完整的课 (含输出和图), 不需要联网即可阅读。</p>",
            "<ol>",
            *items,
            "</ol>",
            "</body>",
            "</html>",
            "",
        ]
    )
    return sanitize_page(page)


def write_handouts(
    out_dir: Path,
    only: Sequence[str] | None = None,
    hide_solutions: bool = False,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> list[Path]:
    """Write HTML pages for the selected notebooks and an index of the whole series; return the files written."""
    notebooks = select_notebooks(only, notebooks_dir)
    out = make_out_dir(check_out_dir(out_dir, notebooks_dir, example="--out build/handouts"))
    written = []
    for path in notebooks:
        nb = read_notebook(path)
        if hide_solutions:
            nb = without_solutions(nb)
        page = notebook_html(nb, notebook_info(path, nb).title, path.parent)
        target = out / f"{path.stem}.html"
        write_atomic(target, page)
        written.append(target)
    series = list_notebooks(notebooks_dir)
    available = {p.stem for p in series if (out / f"{p.stem}.html").is_file()}
    index = out / "index.html"
    write_atomic(index, index_html([notebook_info(p, read_notebook(p)) for p in series], available))
    written.append(index)
    return written


# ---------------------------------------------------------------- command line


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _parser(command: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m helpers {command}", description=description)
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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_write_failure(exc)}", file=sys.stderr)
        return 1


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
