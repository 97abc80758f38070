"""The handouts' HTML sanitizer (an allowlist on nh3, the binding of Rust's Ammonia) and a scanner for what is left.

Ammonia parses the fragment as a browser would (html5ever), keeps the tags and
attributes of html_allowlist.py, drops the elements of _DROPPED_WITH_CONTENT
with everything inside them, and writes the result back out; _attribute_filter
adds our checks on URLs and keeps only allowed CSS properties in style
attributes (with tinycss2, as bleach's CSS sanitizer did). Ammonia cannot drop
an element because of an attribute, so every <input> left becomes a disabled
check box, which is what Markdown task lists are (a text box shows as one).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import nh3
import tinycss2

from .html_allowlist import (
    _ATTRIBUTES,
    _CSS_PROPERTIES,
    _DROPPED_WITH_CONTENT,
    _MATHML_ATTRIBUTES,
    _MATHML_TAGS,
    _TEXT_TAGS,
)

_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[a-z0-9+/=\s]*$", re.IGNORECASE)
_CSS_DANGER = re.compile(
    r"url\s*\(|image\s*\(|image-set|expression|@|\\|javascript|behavior|-moz-binding|&", re.IGNORECASE
)
_URL_NOISE = re.compile(r"[`\x00-\x20\x7f-\xa0\s]+")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """Whether an attribute may stay: the allowlist of html_allowlist.py, plus checks on URLs and styles."""
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
        if url.startswith("//") or "\\" in url:
            return False  # //host/x and \\host\x open a file share (file://host) from a page opened from disk
        scheme = re.match(r"^([a-z][a-z0-9+.-]*):", url)
        return scheme is None or scheme.group(1) in ("http", "https", "mailto")
    if name == "type" and tag == "input":
        return value.strip().lower() == "checkbox"  # Markdown task lists
    return True


def _style(value: str) -> str:
    """A style attribute with only the declarations of allowed properties (as bleach's CSS sanitizer writes them)."""
    kept: list = []
    for token in tinycss2.parse_declaration_list(value):
        if token.type == "declaration" and token.lower_name in _CSS_PROPERTIES:
            kept.append(token)
        elif token.type in ("comment", "whitespace") and kept and kept[-1].type != token.type:
            kept.append(token)
    written = tinycss2.serialize(kept).strip()
    # tinycss2 writes a quote inside a CSS string as \" and a backslash is never allowed: drop the whole attribute
    return "" if _CSS_DANGER.search(written) else written


def _attribute_filter(tag: str, name: str, value: str) -> str | None:
    """nh3's attribute callback: the attribute's value to keep, None to drop it."""
    if not _allowed_attribute(tag, name, value):
        return None
    if name == "style":
        return _style(value) or None
    return value


def _attributes() -> dict[str, set[str]]:
    allowed = {tag: set(_ATTRIBUTES["*"] | _ATTRIBUTES.get(tag, set())) for tag in _TEXT_TAGS}
    allowed.update({tag: _ATTRIBUTES["*"] | _MATHML_ATTRIBUTES for tag in _MATHML_TAGS})
    return allowed


_SANITIZER = nh3.Cleaner(
    tags=_TEXT_TAGS | _MATHML_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    attributes=_attributes(),
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=None,
    url_schemes={"http", "https", "mailto", "data"},  # data: only passes _allowed_attribute for <img src>
    set_tag_attribute_values={"input": {"type": "checkbox", "disabled": ""}},  # see the module's docstring
)


# the text-level elements: a summary line of the handouts' index keeps these and nothing that starts a block
_INLINE_TAGS = _TEXT_TAGS & {
    "a", "abbr", "b", "bdi", "bdo", "br", "cite", "code", "del", "dfn", "em", "i", "ins", "kbd",
    "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var", "wbr",
}  # fmt: skip
_INLINE_SANITIZER = nh3.Cleaner(
    tags=_INLINE_TAGS | _MATHML_TAGS,
    clean_content_tags=_DROPPED_WITH_CONTENT,
    # no style, class or id: a summary must not be able to dress itself up as an entry of the list (display: list-item)
    attributes={
        tag: allowed - {"style", "class", "id"}
        for tag, allowed in _attributes().items()
        if tag in _INLINE_TAGS | _MATHML_TAGS
    },
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel=None,
    url_schemes={"http", "https", "mailto"},
)


def sanitize_inline(fragment: str) -> str:
    """Like sanitize_html, but only text-level elements stay (paragraphs, lists, headings, tables keep their text)."""
    return _INLINE_SANITIZER.clean(fragment)


def sanitize_html(fragment: str) -> str:
    """An HTML fragment with only the allowlisted tags and attributes: no scripts, no styles, nothing remote."""
    return _SANITIZER.clean(fragment)


_BODY = re.compile(r"(<body\b[^>]*>)(.*)(</body>)", re.DOTALL | re.IGNORECASE)


class UnsafePage(RuntimeError):
    """A page that still holds something unsafe after sanitizing (a gap in the template or the sanitizer)."""


def sanitize_page(page: str) -> str:
    """A whole page from our template with its body sanitized; raise UnsafePage if anything unsafe is left."""
    match = _BODY.search(page)
    if match is None:
        raise UnsafePage("the exported page has no <body>; the HTML template has changed")
    page = page[: match.start(2)] + sanitize_html(match.group(2)) + page[match.end(2) :]
    problems = unsafe_parts(page)
    if problems:
        raise UnsafePage(f"the page still holds {problems[0]}; the HTML template or sanitizer has a gap")
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
        if tag == "meta" and any(
            k == "http-equiv" and (v or "").lower() != "content-security-policy" for k, v in attrs
        ):
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
