"""The handouts' HTML sanitizer (an allowlist on bleach) and the scanner that finds anything left that runs or loads."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import bleach
from bleach.css_sanitizer import CSSSanitizer

from .html_allowlist import _ATTRIBUTES, _DROPPED_WITH_CONTENT, _MATHML_ATTRIBUTES, _MATHML_TAGS, _TEXT_TAGS

_DATA_IMAGE = re.compile(r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[a-z0-9+/=\s]*$", re.IGNORECASE)
_CSS_DANGER = re.compile(
    r"url\s*\(|image\s*\(|image-set|expression|@|\\|javascript|behavior|-moz-binding|&", re.IGNORECASE
)
_URL_NOISE = re.compile(r"[`\x00-\x20\x7f-\xa0\s]+")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    """The attribute filter of the sanitizer: the allowlist of html_allowlist.py, plus checks on URLs and styles."""
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
