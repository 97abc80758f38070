"""Tests for helpers/commands/templates: the jinja2 templates of results.html, the handouts' index and fragments.

Every page is read back with Python's HTML parser, so a value that escaped its
element or attribute shows up as a wrong tag, attribute or text.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import pytest

from helpers.commands import templates
from helpers.commands.handouts import NotebookInfo, index_html
from helpers.commands.markdown_html import latex_to_html
from helpers.commands.report import results_html
from helpers.commands.submissions import FAILED, PASSED, WRITTEN, Exercise, Submission
from helpers.commands.textsafe import safe_text

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = REPO_ROOT / "helpers" / "commands" / "templates"

SCRIPT = "<script>alert(1)</script>"
QUOTES = '"\' onmouseover="alert(2)" x=\''
JINJA = "{{ 7*7 }}{% if true %}JINJA-RAN{% endif %}{# c #}"
HOSTILE = [SCRIPT, QUOTES, JINJA, "a & b &amp; &lt;i&gt;", "</td></tr></table><b>x</b>", "{{ cycler.__init__ }}"]


class Page(HTMLParser):
    """Tags with their attributes and the text of each element, as a browser would read them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)


def submission(name: str, detail: str = "", file: str = "01_x.ipynb", problem: str = "", notes=()) -> Submission:
    exercises = {
        1: Exercise(1, status=FAILED if detail else PASSED, detail=detail),
        2: Exercise(2, status=WRITTEN, detail=detail or "answer", written=True),
    }
    return Submission(Path("class") / file, name, "01", exercises, problem=problem, notes=list(notes))


# ------------------------------------------------------------------ the environment


def test_html_templates_are_autoescaped_and_strict():
    env = templates.environment()
    names = sorted(p.name for p in TEMPLATES.iterdir() if p.suffix in (".html", ".css"))
    assert {"results.html", "handouts_index.html", "tex_source.html"} <= set(names)
    for name in names:
        assert env.autoescape(name) is (name.endswith(".html")), name  # type: ignore[operator]
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "autoescape" not in text, f"{name} turns escaping off"
    assert env.autoescape("unknown.txt") is True  # type: ignore[operator]  # anything else is escaped too
    assert env.undefined is jinja2.StrictUndefined
    with pytest.raises(jinja2.UndefinedError):
        templates.render("results.html", title="t", numbers=[], rows=[])  # totals missing: an error, not ""
    with pytest.raises(jinja2.UndefinedError):
        templates.render("tex_source.html", tex="x")


def test_the_css_templates_are_only_used_inside_style():
    for name in ("results.html", "handouts_index.html"):
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        css = name.replace(".html", ".css")
        assert f'<style>\n{{% include "{css}" %}}\n</style>' in text


def test_templates_are_found_from_another_working_directory(tmp_path):
    code = (
        "from pathlib import Path; from helpers.commands import templates; "
        "from helpers.commands.report import results_html; from helpers.commands.handouts import index_html; "
        "print(Path(templates.environment().get_template('results.html').filename).parent); "
        "print(results_html([]).count('<table>'), index_html([], set()).count('<ol>'))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    folder, counts = result.stdout.splitlines()
    assert Path(folder).resolve() == TEMPLATES.resolve()
    assert counts == "1 1"


# ------------------------------------------------------------------ results.html


@pytest.mark.parametrize("text", HOSTILE)
def test_results_page_shows_every_value_as_text(text):
    file = f"01_{text.replace('/', '_')}.ipynb"
    results = [submission(text, detail=text, file=file, notes=[text]), submission("ok", problem=text)]
    page = results_html(results, title=text)
    parsed = Page(page)
    assert parsed.count("script") == 0 and parsed.count("b") == 0 and parsed.count("i") == 0
    assert parsed.count("table") == 1 and parsed.count("tr") == 4  # head, two rows, total
    assert all(
        set(attrs) <= {"lang", "charset", "http-equiv", "content", "class", "colspan"} for _, attrs in parsed.tags
    )
    shown = safe_text(text, keep_newlines=True)
    assert parsed.texts.count(shown) >= 6  # title, heading, name, detail, notes, problem: each as it was written
    assert safe_text(file, keep_newlines=True) in parsed.texts  # the file name under the student's name
    assert "49" not in page  # jinja syntax in a value is text, never evaluated
    assert (
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        in page
    )


def test_results_page_escapes_attribute_values():
    hostile = Exercise(1, status='failed" onclick="alert(3)', detail="x")
    page = results_html([Submission(Path("class/01_x.ipynb"), "s", "01", {1: hostile})])
    classes = [attrs.get("class") for tag, attrs in Page(page).tags if tag == "td"]
    assert 'failed"-onclick="alert(3)' in classes  # one class attribute, quotes and all
    assert not any("onclick" in attrs for _, attrs in Page(page).tags)


def test_results_page_keeps_its_layout():
    results = [submission("张三", detail="ValueError: 形状不对\n第二行"), submission("李四")]
    page = results_html(results)
    assert page.startswith('<!DOCTYPE html>\n<html lang="zh">\n<head>\n<meta charset="utf-8">\n')
    assert page.endswith("</table>\n</body>\n</html>\n")
    assert "<p>2 份作业 submissions。</p>" in page
    assert '<div class="detail">ValueError: 形状不对\n第二行</div>' in page
    assert "<td>1/2 passed</td><td>2/2 已作答 answered</td>" in page
    assert page.count("<tr>") == 4 and page.count("\n<tr><td>") == 2  # one line per submission
    assert 'body { font-family: system-ui, -apple-system, "Segoe UI"' in page  # quotes in <style> stay quotes
    assert "it&#39;s" in results_html([submission("it's")])  # an apostrophe in a name is escaped


# ------------------------------------------------------------------ the handouts' index and fragments


@pytest.mark.parametrize("text", HOSTILE)
def test_index_shows_titles_as_text_and_links_to_the_file(text):
    name = f"01_{text.replace('/', '_')}"
    infos = [NotebookInfo(name, text, f"认识 **张量** {text}"), NotebookInfo("02_b", text, "")]
    page = index_html(infos, {name})
    parsed = Page(page)
    assert parsed.count("script") == 0 and parsed.count("li") == 2 and parsed.count("a") == 1
    href = next(attrs["href"] for tag, attrs in parsed.tags if tag == "a")
    assert href is not None and urllib.parse.unquote(href) == f"{name}.html"
    assert parsed.texts.count(text) == 1 and f"{text} (未生成 not generated)" in parsed.texts  # both titles
    assert "49" not in page  # jinja syntax in a value is text, never evaluated
    assert any(tag == "strong" for tag, _ in parsed.tags), "the summary's Markdown is rendered"
    assert 'font-family: system-ui, -apple-system, "Segoe UI"' in page


def test_index_summary_is_sanitized_not_trusted():
    summary = f'认识 {SCRIPT} <img src=x onerror="alert(4)"> [a](javascript:alert(5)) <b onclick="alert(6)">b</b>'
    page = index_html([NotebookInfo("01_a", "t", summary)], set())
    parsed = Page(page)
    assert parsed.count("script") == 0 and parsed.count("b") == 1 and parsed.count("img") == 0  # text-level only
    assert not any(name.startswith("on") or name == "src" for _, attrs in parsed.tags for name in attrs)
    assert not any("javascript" in (value or "") for _, attrs in parsed.tags for value in attrs.values())
    assert "alert(1)" not in page and '<span class="summary">认识' in page


def test_tex_that_cannot_be_converted_is_escaped_text():
    assert latex_to_html("<script>x^", display=True) == '<code class="tex-source">$$&lt;script&gt;x^$$</code>'
    assert latex_to_html("{{ 7*7 }}^") == '<code class="tex-source">${{ 7*7 }}^$</code>'
