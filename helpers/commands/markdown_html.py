"""Markdown to offline HTML for the handouts: formulas as MathML, images beside the notebook as data URIs."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from latex2mathml.converter import convert
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from . import templates

_IMG_SRC = re.compile(r"""(<img\b[^<>]*?\bsrc=)(["'])([^"'<>]+)\2""", re.IGNORECASE)
_MTEXT = re.compile(r"(<mtext\b[^<>]*>)(.*?)(</mtext>)", re.DOTALL)
_TEXT_ESCAPE = re.compile(r"\\([_%&#$ {}])")
_ENTITY = re.compile(r"(&#x[0-9a-fA-F]+;)")


def _mtext(m: re.Match) -> str:
    """One <mtext> as latex2mathml writes it, its text escaped: it copies \\text{...} as it is (a < b, fan\\_in)."""
    parts = _ENTITY.split(m[2])  # the &#x000A0; it writes for spaces stay; every other part is plain text
    text = "".join(p if i % 2 else html.escape(_TEXT_ESCAPE.sub(r"\1", p), quote=False) for i, p in enumerate(parts))
    return f"{m[1]}{text}{m[3]}"


def latex_to_html(tex: str, display: bool = False) -> str:
    """MathML for a TeX formula; the escaped TeX source where it cannot be converted."""
    try:
        mathml = convert(tex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises many kinds of errors on input it does not know
        return templates.render("tex_source.html", tex=tex, delimiter="$$" if display else "$")
    mathml = _MTEXT.sub(_mtext, mathml)
    if not _only_mathml(mathml):  # \text{</mtext>...} or \unicode{<b>} slipped markup past the converter
        return templates.render("tex_source.html", tex=tex, delimiter="$$" if display else "$")
    return mathml.replace("<math ", f'<math alttext="{html.escape(tex.strip())}" ', 1)


def _only_mathml(mathml: str) -> bool:
    """Whether ``mathml`` is one well-formed XML element whose elements are all MathML."""
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(mathml)
    except ElementTree.ParseError:
        return False
    return all(str(e.tag).startswith("{http://www.w3.org/1998/Math/MathML}") for e in root.iter())


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
        if name is not None:
            bundle = self.attachments.get(name)
            if not isinstance(bundle, dict) or not bundle or not all(isinstance(v, str) for v in bundle.values()):
                return ""  # nbconvert raises for a missing or empty attachment; the page shows the alt text instead
        return super()._embed_image_or_attachment(src)


MAX_IMAGE_BYTES = 20 * 2**20
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_SVG_START = re.compile(
    rb"^(\xef\xbb\xbf)?\s*(<\?xml[^>]*>\s*)?(<!--(?:(?!-->).)*-->\s*)*(<!DOCTYPE[^>]*>\s*)?<svg[\s>]",
    re.IGNORECASE | re.DOTALL,
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


def markdown_to_html(source: str, path: str = "", attachments: dict | None = None) -> str:
    """Markdown (with math) to HTML as the handouts show it; images next to ``path`` are embedded."""
    renderer = MathMLRenderer(escape=False, embed_images=True, path=path, attachments=attachments)
    return MarkdownWithMath(renderer=renderer).render(source)
