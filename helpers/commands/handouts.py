"""The HTML handouts: one sanitized, self-contained page per notebook (nbconvert's lab template) and an index."""

from __future__ import annotations

import copy
import re
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import nbformat
from markupsafe import Markup
from nbconvert import HTMLExporter

from . import templates
from .markdown_html import markdown_to_html
from .runner import NOTEBOOKS_DIR, check_out_dir, list_notebooks, make_out_dir, select_notebooks
from .sanitize import UnsafePage, sanitize_html, sanitize_inline, sanitize_page
from .student import read_notebook, without_solutions, write_atomic

_SERIES_LINK = re.compile(r'href="(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')
_NAV_LINE = re.compile(r"^(上一节|下一节)")

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
<meta http-equiv="Content-Security-Policy" content="{{ resources.handout_csp }}">
<style type="text/css">{{ resources.handout_css }}</style>
{%- endblock html_head_css -%}
"""

# A second line of defence behind the sanitizer: the page may load nothing and run nothing (images are data: URIs).
HANDOUT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"


class HandoutExporter(HTMLExporter):
    """The lab HTML template, offline: MathML formulas, embedded images, no scripts from a CDN."""

    @jinja2.pass_context
    def markdown2html(self, context: jinja2.runtime.Context, source: str) -> str:
        """The template's Markdown filter: formulas as MathML, local images and attachments embedded."""
        cell = context.get("cell", {})
        path = context.get("resources", {}).get("metadata", {}).get("path", "")
        # sanitized cell by cell: an unclosed <style> or <plaintext> in one cell cannot swallow the cells after it
        return sanitize_html(markdown_to_html(source, path, cell.get("attachments", {})))


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


_RAW_HTML_OUTPUTS = ("text/html",)  # output types the lab template copies into the page as they are (SVG: <img>)
_CELL_DIV = re.compile(r'<div\b[^<>]*\bclass="jp-Cell[ "]')


def _sanitized_cells(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` whose raw HTML (raw cells, HTML outputs) is sanitized cell by cell, without widgets."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)  # ipywidgets state (saved by JupyterLab): nbconvert would emit it as a <script>
    for cell in nb.cells:
        if cell.cell_type == "raw":
            cell.source = sanitize_html(cell.source)
        for output in cell.get("outputs", []):
            for mime in _RAW_HTML_OUTPUTS:
                if mime in output.get("data", {}):
                    value = output.data[mime]
                    output.data[mime] = sanitize_html("".join(value) if isinstance(value, list) else value)
    return nb


def notebook_html(nb: nbformat.NotebookNode, title: str, notebook_dir: Path) -> str:
    """One self-contained HTML page for a notebook; links to sibling notebooks point at their pages."""
    resources = {
        "metadata": {"name": title, "path": str(notebook_dir)},
        "handout_css": HANDOUT_CSS,
        "handout_csp": HANDOUT_CSP,
    }
    body, _ = _exporter().from_notebook_node(_sanitized_cells(nb), resources=resources)
    page = sanitize_page(_SERIES_LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body))
    shown, cells = len(_CELL_DIV.findall(page)), sum(c.cell_type != "raw" for c in nb.cells)  # raw cells: no <div>
    if shown < cells:  # something in a cell still hid the cells after it (a cell's own markup may add more)
        raise UnsafePage(f"the page shows {shown} of the notebook's {cells} Markdown and code cells")
    return page


def _inline_html(markdown: str) -> str:
    """A summary line for the index: inline elements only, so it cannot add list items or headings of its own."""
    return sanitize_inline(markdown_to_html(markdown)).strip()


def index_html(infos: Sequence[NotebookInfo], available: set[str]) -> str:
    """The handouts' index page: the series in order, one line per notebook (linked where its page exists)."""
    items = [
        {
            "title": info.title,
            "href": urllib.parse.quote(f"{info.name}.html") if info.name in available else None,  # a name may hold #
            # the one value the template does not escape: it is the sanitizer's output
            "summary": Markup(_inline_html(info.summary)) if info.summary else None,
        }
        for info in infos
    ]
    page = templates.render(
        "handouts_index.html",
        items=items,
        font_stack=FONT_STACK,
        code_font_stack=CODE_FONT_STACK,
        math_font_stack=MATH_FONT_STACK,
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
    folder = check_out_dir(out_dir, notebooks_dir, example="--out build/handouts")
    pages = {}  # every page is made before anything is written: a damaged or unsafe notebook leaves no half set
    for path in notebooks:
        nb = read_notebook(path)
        if hide_solutions:
            nb = without_solutions(nb)
        try:
            pages[f"{path.stem}.html"] = notebook_html(nb, notebook_info(path, nb).title, path.parent)
        except UnsafePage as exc:
            raise UnsafePage(f"{path.name}: {exc}") from None
    series = list_notebooks(notebooks_dir)
    infos = [notebook_info(p, read_notebook(p)) for p in series]
    out = make_out_dir(folder)
    available = {p.stem for p in series if f"{p.stem}.html" in pages or (out / f"{p.stem}.html").is_file()}
    pages["index.html"] = index_html(infos, available)
    written = []
    for name, page in pages.items():
        write_atomic(out / name, page)
        written.append(out / name)
    return written
