"""Tests for helpers/commands/classroom.py: the student edition and the HTML handouts."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request
from pathlib import Path

import nbformat
import pytest
from local_jupyter import local_jupyter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from helpers.commands import classroom
from helpers.commands.classroom import (
    EXERCISE_TAG,
    SOLUTION_TAG,
    exercise_source,
    html_main,
    notebook_info,
    student_main,
    student_notebook,
    write_handouts,
    write_student_edition,
)
from helpers.commands.runner import NOTEBOOKS_DIR, list_notebooks

SOLUTION = """# 提示: 先在 CPU 上生成, 再搬到 device
secret_total = 784 * 20 + 20  # the answer itself
print(secret_total)
# 检查 check
assert secret_total > 0
"""


def png_bytes(color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buffer, format="PNG")
    return buffer.getvalue()


def lesson(number: int, name: str, title: str, summary: str, solution: str = SOLUTION) -> nbformat.NotebookNode:
    """A small notebook shaped like the series' ones, with a stored figure and a solution cell."""
    figure = new_output(
        "display_data", data={"image/png": base64.b64encode(png_bytes()).decode(), "text/plain": "<Figure>"}
    )
    printed = new_output("stream", name="stdout", text="形状 shape: [3, 784]\n")
    cells = [
        new_markdown_cell(
            f"# {number:02d} {title}\n\n{summary}\n\n上一节: [前一节](00_prev.ipynb) | 下一节: [后一节](0{number + 1}_next.ipynb)"
            "\n\n## 学习目标 Learning objectives\n\n- 看懂 $y = f(Wx + b)$",
            id="md01",
        ),
        new_code_cell('device = "auto"  # 设备\nseed = 0  # 随机种子', id="c02", metadata={"tags": ["parameters"]}),
        new_code_cell("print('形状 shape: [3, 784]')", id="c03", execution_count=1, outputs=[printed]),
        new_markdown_cell(
            "公式 $$\\sigma(x) = \\frac{1}{1 + e^{-x}}$$ 以及 $\\mathrm{ReLU}(x) = \\max(0, x)$。\n\n"
            "![图](figure.png)\n\n"
            "<details><summary>答案</summary>\n\n1. `torch.nn.Module`\n\n</details>",
            id="md04",
        ),
        new_code_cell("plt.show()", id="c05", execution_count=2, outputs=[figure]),
        new_markdown_cell("## 练习 Exercises\n\n**练习 1.** 数一数参数。", id="md06"),
        new_code_cell(
            solution,
            id="c07",
            execution_count=3,
            metadata={"tags": [SOLUTION_TAG]},
            outputs=[new_output("stream", name="stdout", text="15700\n")],
        ),
        new_markdown_cell(
            "## 延伸阅读 Further reading\n\n- [docs](https://pytorch.org/docs/stable/nn.html)", id="md08"
        ),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nbformat.validate(nb)
    return nb


@pytest.fixture
def series(tmp_path) -> Path:
    """A folder with two small notebooks (and an image file the Markdown links to)."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(lesson(1, "first", "张量 Tensors", "认识 **张量**。"), folder / "01_first.ipynb")
    nbformat.write(lesson(2, "second", "模型 Model", "搭一个 `nn.Module`。"), folder / "02_second.ipynb")
    (folder / "figure.png").write_bytes(png_bytes("blue"))
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def meant_for_the_student(solution: str) -> set[str]:
    """The hint lines and the check below the check marker, found without asking the code under test."""
    lines = [line.strip() for line in solution.splitlines()]
    markers = [i for i, line in enumerate(lines) if line.lower().rstrip(":：") in ("# 检查 check", "# 检查", "# check")]
    check = set(lines[markers[0] + 1 :]) if markers else set()
    hints, in_hint = set(), False
    for line in lines[: markers[0]] if markers else lines:  # a hint line and the comment lines that continue it
        in_hint = bool(re.match(r"#\s*(提示|hint)", line, re.IGNORECASE)) or (in_hint and line.startswith("#"))
        if in_hint:
            hints.add(line)
    return check | hints


def solution_only_lines(nb: nbformat.NotebookNode) -> set[str]:
    """Lines that appear in a solution cell, in no other cell, and are not meant for the student."""
    elsewhere = {line.strip() for c in nb.cells if not classroom.is_solution(c) for line in c.source.splitlines()}
    found = set()
    for cell in nb.cells:
        if classroom.is_solution(cell):
            kept = meant_for_the_student(cell.source)
            found |= {line.strip() for line in cell.source.splitlines()} - elsewhere - kept - {""}
    return found


def assert_no_solution(student: nbformat.NotebookNode, source: nbformat.NotebookNode) -> None:
    nbformat.validate(student)
    assert not [c for c in student.cells if SOLUTION_TAG in c.metadata.get("tags", [])]
    student_lines = {line.strip() for c in student.cells for line in c.source.splitlines()}
    leaked = solution_only_lines(source) & student_lines
    assert not leaked, f"solution text survived: {sorted(leaked)[:3]}"
    for solution in (c.source for c in source.cells if classroom.is_solution(c)):
        assert not any(solution.strip() in c.source for c in student.cells)
    assert len(student.cells) == len(source.cells)
    for new, old in zip(student.cells, source.cells):
        if classroom.is_solution(old) and old.cell_type == "markdown":  # a written exercise's reference answer
            assert new.cell_type == "markdown" and new.source == classroom.WRITTEN_ANSWER and "attachments" not in new
            assert new.metadata["tags"] == [t for t in old.metadata["tags"] if t != SOLUTION_TAG]
        elif classroom.is_solution(old):
            assert EXERCISE_TAG in new.metadata["tags"] and new.outputs == [] and new.execution_count is None
            assert new.source.startswith("# TODO")
        elif old.cell_type == "code" and classroom.CHECK_TAG in old.metadata.get("tags", []):
            assert new.source == old.source and new.outputs == [] and new.execution_count is None
        else:
            assert new == old  # prose, code, outputs and figures as they were


# ------------------------------------------------------------------ student edition


def test_exercise_source_keeps_the_hint_and_the_check_only():
    text = exercise_source(SOLUTION)
    assert text.startswith("# TODO")
    assert "# 提示: 先在 CPU 上生成, 再搬到 device" in text
    assert "assert secret_total > 0" in text
    assert "784 * 20" not in text and "print(secret_total)" not in text and "# 检查 check" not in text


def test_a_hint_keeps_the_comment_lines_that_continue_it():
    text = exercise_source(
        "# 提示：先把层放进列表，\n#   再用 nn.Sequential 串起来\nlayers = []\n# not a hint\nx = 1\n"
    )
    assert "#   再用 nn.Sequential 串起来" in text and "先把层放进列表" in text
    assert "not a hint" not in text and "layers = []" not in text


def test_exercise_source_without_markers_is_just_the_todo():
    assert exercise_source("x = 1\nprint(x)  # 检查一下\n") == classroom.EXERCISE_TODO + "\n"


def test_student_notebook_replaces_solutions_and_keeps_the_rest():
    source = lesson(3, "x", "标题 Title", "一句话。")
    student = student_notebook(source)
    assert_no_solution(student, source)
    assert source.cells[6].outputs  # the source notebook object is not changed
    assert any("image/png" in out.get("data", {}) for c in student.cells if c.cell_type == "code" for out in c.outputs)


def test_student_notebook_empties_written_answers_and_keeps_checks():
    source = lesson(3, "x", "标题 Title", "一句话。", solution="total = 784 * 20 + 20")
    source.cells[6].metadata["tags"] = [SOLUTION_TAG, "exercise-1"]
    source.cells[7:7] = [
        new_code_cell(
            'assert total > 0\nprint("练习 1 通过 passed")',
            id="chk1",
            metadata={"tags": ["check", "exercise-1"]},
            execution_count=7,
            outputs=[new_output("stream", name="stdout", text="练习 1 通过 passed\n")],
        ),
        new_markdown_cell("**练习 2.** 解释一下。", id="md2"),
        new_markdown_cell(
            "参考答案：因为 secret_reason。", id="ans2", metadata={"tags": [SOLUTION_TAG, "exercise-2", "written"]}
        ),
    ]
    student = student_notebook(source, lesson="03")
    assert_no_solution(student, source)
    assert student.metadata[classroom.SERIES_METADATA] == {"lesson": "03", "edition": "student"}
    assert student.metadata["kernelspec"] == source.metadata["kernelspec"]
    assert student.cells[6].metadata["tags"] == ["exercise-1", EXERCISE_TAG]
    check = student.cells[7]  # the check cell: the same code, without the reference solution's "passed"
    assert check.source == source.cells[7].source and check.metadata == source.cells[7].metadata
    assert check.outputs == [] and check.execution_count is None and source.cells[7].outputs
    assert student.cells[9].source == classroom.WRITTEN_ANSWER and student.cells[9].metadata["tags"] == [
        "exercise-2",
        "written",
    ]
    assert "secret_reason" not in nbformat.writes(student)
    assert "secret_reason" not in nbformat.writes(classroom.without_solutions(source))  # hidden in handouts too


def test_write_student_edition_is_deterministic_and_leaves_sources_alone(series, tmp_path):
    before = snapshot(series)
    first = write_student_edition(tmp_path / "a", notebooks_dir=series)
    write_student_edition(tmp_path / "b", notebooks_dir=series)
    again = write_student_edition(tmp_path / "a", notebooks_dir=series)
    assert [p.name for p in first] == ["01_first.ipynb", "02_second.ipynb"]
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")  # byte for byte, and no temporary files left
    assert first == again and snapshot(series) == before
    for path in first:
        assert_no_solution(nbformat.read(path, as_version=4), nbformat.read(series / path.name, as_version=4))


def test_student_command_only_and_refusals(series, tmp_path, capsys):
    out = tmp_path / "student"
    assert student_main(["--out", str(out), "--only", "2", "--notebooks", str(series)]) == 0
    assert [p.name for p in out.iterdir()] == ["02_second.ipynb"]
    assert "1 exercise cell" in capsys.readouterr().out
    meta = nbformat.read(out / "02_second.ipynb", as_version=4).metadata
    assert meta[classroom.SERIES_METADATA] == {"lesson": "02", "edition": "student"}  # what `check` recognizes

    for inside in (series, series / "student"):
        assert student_main(["--out", str(inside), "--notebooks", str(series)]) == 2
        assert "inside the source folder" in capsys.readouterr().err
    assert not (series / "student").exists()
    assert student_main(["--out", str(out), "--only", "9", "--notebooks", str(series)]) == 2
    assert "no notebook '9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --out is required
        student_main(["--notebooks", str(series)])


def test_refuses_the_real_notebooks_folder(tmp_path):
    with pytest.raises(ValueError, match="inside the source folder"):
        write_student_edition(NOTEBOOKS_DIR / "student")
    with pytest.raises(ValueError, match="inside the source folder"):
        write_handouts(NOTEBOOKS_DIR)


@pytest.fixture(scope="module")
def series_student_edition(tmp_path_factory):
    """The student edition of the real series, written twice."""
    if not list_notebooks():
        pytest.skip("no notebooks in notebooks/ yet")
    before = {p.name: p.read_bytes() for p in list_notebooks()}
    root = tmp_path_factory.mktemp("series")
    written = write_student_edition(root / "student")
    write_student_edition(root / "again")
    assert {p.name: p.read_bytes() for p in list_notebooks()} == before
    return root, written


def test_student_edition_of_the_series(series_student_edition):
    root, written = series_student_edition
    assert [p.name for p in written] == [p.name for p in list_notebooks()]
    for path in written:
        assert path.read_bytes() == (root / "again" / path.name).read_bytes(), f"{path.name} differs between runs"
        assert_no_solution(nbformat.read(path, as_version=4), nbformat.read(NOTEBOOKS_DIR / path.name, as_version=4))


def test_jupyter_contents_api_serves_the_student_edition(series_student_edition):
    """What JupyterLab asks for when it opens a notebook: the server must read it as a valid notebook."""
    root, written = series_student_edition
    with local_jupyter(root, app="server") as (url, token):
        for path in written:
            request = urllib.request.Request(
                f"{url}/api/contents/student/{path.name}?type=notebook&content=1",
                headers={"Authorization": f"token {token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                model = json.load(response)
            assert model["type"] == "notebook" and model["format"] == "json"
            assert not model.get("message"), f"{path.name}: {model['message']}"  # set when validation fails
            assert len(model["content"]["cells"]) == len(nbformat.read(path, as_version=4).cells)


# ------------------------------------------------------------------ HTML handouts


def test_notebook_info_reads_title_and_summary(series):
    info = notebook_info(series / "01_first.ipynb")
    assert (info.name, info.title, info.summary) == ("01_first", "01 张量 Tensors", "认识 **张量**。")


def test_handouts_are_self_contained(series, tmp_path):
    before = snapshot(series)
    written = write_handouts(tmp_path / "html", notebooks_dir=series)
    assert [p.name for p in written] == ["01_first.html", "02_second.html", "index.html"]
    page = (tmp_path / "html" / "01_first.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8"' in page and "Noto Sans CJK SC" in page and '<html lang="zh">' in page
    assert "<title>01 张量 Tensors</title>" in page
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import", page), "a page must not load anything"
    assert "mathjax" not in page.lower()
    assert page.count('src="data:image/png;base64,') == 2  # the stored figure and the Markdown image file
    assert page.count("<math ") == 3 and "<mfrac>" in page and "$" not in page  # formulas as MathML
    assert 'href="02_next.html"' in page and 'href="00_prev.html"' in page  # series links point at pages
    assert re.search(r"<details><summary>答案</summary>\s*<ol>", page)  # answers stay folded
    assert "形状 shape: [3, 784]" in page and "secret_total" in page
    assert snapshot(series) == before


def test_handouts_are_deterministic_and_can_hide_solutions(series, tmp_path):
    write_handouts(tmp_path / "a", notebooks_dir=series)
    write_handouts(tmp_path / "b", notebooks_dir=series)
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
    assert html_main(["--out", str(tmp_path / "c"), "--hide-solutions", "--notebooks", str(series)]) == 0
    page = (tmp_path / "c" / "02_second.html").read_text(encoding="utf-8")
    assert "secret_total" not in page and "15700" not in page and "练习 1." in page


def test_index_lists_the_series_in_order(series, tmp_path):
    write_handouts(tmp_path / "html", only=["02"], notebooks_dir=series)
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in index
    items = re.findall(r"<li>.*</li>", index)
    assert len(items) == 2
    assert "01 张量 Tensors (未生成 not generated)" in items[0] and "<strong>张量</strong>" in items[0]
    assert '<a href="02_second.html">02 模型 Model</a>' in items[1] and "<code>nn.Module</code>" in items[1]


def test_tex_that_cannot_be_converted_is_shown_as_source():
    assert classroom.latex_to_html(r"\frac{1}{2}").startswith('<math alttext="\\frac{1}{2}"')
    assert classroom.latex_to_html("x^", display=True) == '<code class="tex-source">$$x^$$</code>'
    assert "<mtext>fan_in</mtext>" in classroom.latex_to_html(r"\sqrt{6/\text{fan\_in}}")  # as MathJax shows it


def test_the_sanitizer_keeps_allowed_styles_task_lists_and_formulas():
    clean = classroom.sanitize_html
    assert clean('<span style="color: red; position: fixed">r</span>') == '<span style="color: red;">r</span>'
    assert clean('<span style="position: fixed">r</span>') == "<span>r</span>"
    assert clean('<p style="color: red; background: url(https://x.example/y.png)">p</p>') == "<p>p</p>"
    assert clean('<p title="a &quot;b&quot; &amp; c">p</p>') == '<p title="a &quot;b&quot; &amp; c">p</p>'
    assert clean("<p>a<!-- note -->b</p>") == "<p>ab</p>" and clean("") == ""
    tasks = clean(classroom.markdown_to_html("- [x] done\n- [ ] todo\n"))
    assert tasks.count('type="checkbox"') == 2 and tasks.count("checked") == 1 and "done" in tasks
    form = clean('<form action="/x"><input name="q" value="v"><input type="password"><button>b</button></form>')
    assert not re.search(r"<form|<button|name=|value=|password", form)
    inputs = re.findall(r"<input[^>]*>", form)
    assert len(inputs) == 2 and all('type="checkbox"' in i and "disabled" in i for i in inputs)  # inert
    formula = clean(classroom.latex_to_html(r"\frac{1}{2}", display=True))
    assert formula.startswith('<math alttext="\\frac{1}{2}"') and "<mfrac>" in formula and 'display="block"' in formula


@pytest.fixture(scope="module")
def series_handouts(tmp_path_factory):
    if not list_notebooks():
        pytest.skip("no notebooks in notebooks/ yet")
    out = tmp_path_factory.mktemp("handouts")
    return out, write_handouts(out)


def test_handouts_of_the_series(series_handouts):
    out, written = series_handouts
    assert [p.stem for p in written] == [p.stem for p in list_notebooks()] + ["index"]
    index = (out / "index.html").read_text(encoding="utf-8")
    positions = [index.index(f'href="{p.stem}.html"') for p in list_notebooks()]
    assert positions == sorted(positions)
    for path in list_notebooks():
        page = (out / f"{path.stem}.html").read_text(encoding="utf-8")
        assert '<meta charset="utf-8"' in page
        assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import", page), f"{path.name} loads something"
        figures = sum(
            "image/png" in o.get("data", {})
            for c in nbformat.read(path, as_version=4).cells
            if c.cell_type == "code"
            for o in c.outputs
        )
        assert page.count('src="data:image/png;base64,') >= figures
        assert not re.search(r'href="(?!https?:)[^"]*\.ipynb', page), f"{path.name} links to a notebook file"


# ------------------------------------------------------------------ hostile and unlucky notebooks

SECRET = "TOP-SECRET-LINE-1234"
HOSTILE_MARKDOWN = """# 01 </title><script>alert("title")</script> 标题

<script>window.PWNED = alert(1)</script>
<iframe src="https://evil.example/frame"></iframe><object data="https://evil.example/x.swf"></object>
<embed src="https://evil.example/y.swf"><img src="https://evil.example/track.png" onerror="alert(2)">
<img src=x onerror=alert(3)> <a href="javascript:alert(4)">js link</a> [md link](javascript:alert(5))
<a href="jav&#x09;ascript:alert(6)">tab link</a> <a href="data:text/html,<script>alert(7)</script>">data link</a>
<link rel="stylesheet" href="https://evil.example/a.css">
<style>@import url(https://evil.example/b.css); body { background: url(https://evil.example/c.png) }</style>
<meta http-equiv="refresh" content="0; url=https://evil.example/">
<form action="https://evil.example/"><input name="q"><button>send</button></form><base href="https://evil.example/">
<div onclick="alert(8)" style="background:url(https://evil.example/d.png)">styled text</div>
<svg onload="alert(9)"><script>alert(10)</script></svg><math><mi xlink:href="javascript:alert(11)">x</mi></math>
<details><summary>kept</summary>answer</details> <span style="color: red">red text</span>

![leak](leak.png) ![leak2](leak2.png) ![fake](fake.png) ![vector](pic.svg) ![good](figure.png)
<img src="leak.png"> <img src='../outside.png'> ![missing](attachment:nope.png)
"""
EVIL_SVG = '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(12)"><script>alert(13)</script><rect/></svg>'


def hostile_series(tmp_path: Path, name: str = "01_hostile.ipynb") -> Path:
    """A notebook folder with every kind of active or remote content a handout must not carry."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (outside / "real.png").write_bytes(png_bytes("green"))
    (tmp_path / "outside.png").write_bytes(png_bytes("yellow"))
    (folder / "leak.png").symlink_to(outside / "secret.txt")  # a link to a text file elsewhere
    (folder / "leak2.png").symlink_to(outside / "real.png")  # a link to an image elsewhere
    (folder / "fake.png").write_text(SECRET)  # inside, but not an image
    (folder / "pic.svg").write_text(EVIL_SVG)
    (folder / "figure.png").write_bytes(png_bytes("blue"))
    outputs = [
        new_output(
            "display_data",
            data={
                "text/html": '<script>alert(14)</script><b onmouseover="alert(15)">bold</b>'
                '<img src="https://evil.example/e.png">'
            },
        ),
        new_output("display_data", data={"application/javascript": "alert(16)", "text/plain": "<js>"}),
        new_output("display_data", data={"image/svg+xml": EVIL_SVG}),
        new_output("execute_result", execution_count=1, data={"text/markdown": "[click](javascript:alert(17))"}),
        new_output("display_data", data={"image/png": 'AAAA" onerror="alert(18)'}),
    ]
    nb = new_notebook(
        cells=[
            new_markdown_cell(HOSTILE_MARKDOWN, id="md1"),
            new_code_cell("show()", id="c1", execution_count=1, outputs=outputs),
        ]
    )
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}}
    nbformat.write(nb, folder / name)
    return folder


def assert_inert(page: str) -> None:
    """Checks of our own, independent of classroom.unsafe_parts: nothing runs, nothing loads, nothing leaks."""
    lowered = page.lower()
    assert not re.search(r"<[^>]*alert\(", page), "code in a tag"  # as visible, escaped text it is harmless
    assert "pwned" not in lowered
    assert "evil.example" not in page
    for tag in (
        "<script",
        "<iframe",
        "<object",
        "<embed",
        "<link",
        "<form",
        "<base",
        "<svg",
        "<input>",
        "<input name",
        "<button",
    ):
        assert tag not in lowered, tag
    assert set(re.findall(r"<meta[^>]*http-equiv=\"([^\"]*)\"", lowered)) <= {"content-security-policy"}  # no refresh
    assert not re.search(r"\son\w+\s*=", page), "an event attribute survived"
    assert not re.search(r"(href|src)\s*=\s*[\"']?\s*(javascript|data:text)", lowered)
    assert SECRET not in page and base64.b64encode(SECRET.encode()).decode()[:12] not in page
    assert base64.b64encode(png_bytes("green")).decode()[:60] not in page, "an image from outside the folder"
    assert base64.b64encode(png_bytes("yellow")).decode()[:60] not in page, "an image from outside the folder"
    assert not re.search(r"<img[^>]*src=\"(?!data:image/(png|svg\+xml);base64,)", page), "an <img> that loads"


def test_a_hostile_notebook_gives_an_inert_self_contained_handout(tmp_path):
    folder = hostile_series(tmp_path)
    written = write_handouts(tmp_path / "html", notebooks_dir=folder)
    page = (tmp_path / "html" / "01_hostile.html").read_text(encoding="utf-8")
    assert_inert(page)
    assert classroom.unsafe_parts(page) == []
    assert base64.b64encode(png_bytes("blue")).decode()[:60] in page, "an image inside the folder is embedded"
    svg = base64.b64encode(EVIL_SVG.encode()).decode()
    assert page.count(f'src="data:image/svg+xml;base64,{svg}"') == 2, "SVG only ever as an <img> data URI"
    assert "<details><summary>kept</summary>" in page and "styled text" in page and "js link" in page
    assert '<span style="color: red;">red text</span>' in page or '<span style="color: red">red text</span>' in page
    assert "<b>bold</b>" in page
    assert "&lt;/title&gt;&lt;script&gt;" in page.split("</title>")[0]  # the title, escaped
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert_inert(index)
    assert [p.name for p in written] == ["01_hostile.html", "index.html"]


def test_a_notebook_file_name_is_escaped_in_the_index(tmp_path):
    name = '01_a"><img src=x onerror=alert(19)>#.ipynb'
    folder = hostile_series(tmp_path, name)
    write_handouts(tmp_path / "html", notebooks_dir=folder)
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert_inert(index)
    href = re.search(r'<a href="([^"]*)">', index).group(1)
    assert urllib.request.url2pathname(href.replace("&amp;", "&")) == name.replace(".ipynb", ".html")
    assert (tmp_path / "html" / name.replace(".ipynb", ".html")).is_file()


@pytest.mark.parametrize(
    "src",
    [
        "leak.png",
        "leak2.png",
        "fake.png",
        "../outside.png",
        "/etc/passwd",
        "figure.png/../../private/secret.txt",
        "nul\0.png",
        "https://x/y.png",
    ],
)
def test_only_images_inside_the_folder_are_embedded(tmp_path, src):
    folder = hostile_series(tmp_path)
    assert classroom.image_data_uri(src, str(folder)) is None
    assert classroom.image_data_uri("figure.png", str(folder)).startswith("data:image/png;base64,")
    assert classroom.image_data_uri("pic.svg", str(folder)).startswith("data:image/svg+xml;base64,")


def test_html_and_student_refuse_every_spelling_of_the_source_folder(series, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(series)
    (tmp_path / "a_file").write_text("not a folder")
    for main in (html_main, student_main):
        for out, message in (
            (link, "inside the source folder"),
            (series / ".." / series.name, "inside the source folder"),
            (tmp_path / "a_file", "is a file"),
            (tmp_path / "a_file" / "sub", "is a file"),
        ):
            before = snapshot(series)
            assert main(["--out", str(out), "--notebooks", str(series)]) == 2
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, err
            assert snapshot(series) == before


def test_a_mistyped_notebooks_folder_is_an_error(tmp_path, capsys):
    for main in (html_main, student_main):
        assert main(["--out", str(tmp_path / "out"), "--notebooks", str(tmp_path / "notebokos")]) == 2
        assert "notebokos does not exist; check the --notebooks path" in capsys.readouterr().err
        (tmp_path / "empty").mkdir(exist_ok=True)
        assert main(["--out", str(tmp_path / "out"), "--notebooks", str(tmp_path / "empty")]) == 2
        assert "no notebooks (NN_name.ipynb) found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing is written, not even an empty index"


def test_an_unwritable_out_folder_is_one_sentence(series, tmp_path, monkeypatch, capsys):
    import errno

    from helpers import files
    from helpers.commands import runner

    monkeypatch.setattr(runner.os, "access", lambda path, mode: False)
    assert html_main(["--out", str(tmp_path / "html"), "--notebooks", str(series)]) == 2
    assert "is read-only for you; choose a folder you can write to" in capsys.readouterr().err
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    for main in (html_main, student_main):
        assert main(["--out", str(tmp_path / "out"), "--notebooks", str(series)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: could not write: Read-only file system;") and err.count("\n") == 1, err


def test_a_broken_notebook_is_named(series, tmp_path, capsys):
    (series / "03_broken.ipynb").write_text("{ this is not json")
    assert html_main(["--out", str(tmp_path / "html"), "--notebooks", str(series)]) == 2
    err = capsys.readouterr().err
    assert "03_broken.ipynb is not a readable notebook" in err and err.count("\n") == 1


def test_a_handout_of_a_notebook_with_widget_state_is_written_without_it(series, tmp_path):
    """JupyterLab saves ipywidgets state in the metadata; nbconvert would put it in a <script>, which html refuses."""
    path = series / "01_first.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    nbformat.write(nb, path)
    before = path.read_bytes()
    written = write_handouts(tmp_path / "html", notebooks_dir=series)
    page = (tmp_path / "html" / "01_first.html").read_text(encoding="utf-8")
    assert (tmp_path / "html" / "01_first.html") in written
    assert "widget-state" not in page and "<script" not in page.lower()
    assert path.read_bytes() == before  # the source keeps its metadata


def test_an_unclosed_element_in_one_cell_hides_nothing_after_it(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    cells = [new_markdown_cell("# 01 Unclosed\n\nsummary")]
    for i, opener in enumerate(["<style>", "<script>", "<plaintext>", "<textarea>", "<title>", "<xmp>", "<!--"]):
        cells.append(new_markdown_cell(f"before {i} {opener} hidden {i}", id=f"m{i}"))
        cells.append(new_markdown_cell(f"after {i} shows", id=f"a{i}"))
    raw = nbformat.v4.new_raw_cell("<plaintext> raw", id="r1")
    html_out = new_output("display_data", data={"text/html": "<style>swallow", "text/plain": "x"})
    cells += [raw, new_code_cell("1", id="c1", execution_count=1, outputs=[html_out]), new_markdown_cell("the end")]
    nbformat.write(new_notebook(cells=cells), folder / "01_unclosed.ipynb")
    write_handouts(tmp_path / "html", notebooks_dir=folder)
    page = (tmp_path / "html" / "01_unclosed.html").read_text(encoding="utf-8")
    for i in range(7):
        assert f"after {i} shows" in page, i  # before: everything after the first <style> was gone
    assert "the end" in page and page.count('class="jp-Cell ') == len(cells) - 1  # a raw cell has no <div>
    assert classroom.unsafe_parts(page) == []


def test_links_that_open_file_shares_are_dropped():
    for href in ("//evil.example/x", "\\\\evil.example\\x", "/\\evil.example", "&#47;/evil.example/x", " //x"):
        assert "href" not in classroom.sanitize_html(f'<a href="{href}">x</a>'), href
    for href in ("https://pytorch.org/docs/", "#section", "02_datasets.html", "/docs/x.html", "mailto:a@b.example"):
        assert "href" in classroom.sanitize_html(f'<a href="{href}">x</a>'), href


def test_a_css_string_with_a_quote_is_dropped_not_a_traceback(tmp_path, capsys):
    assert classroom.sanitize_html("<span style=\"font-family: 'Say &quot;hi&quot;'\">q</span>") == "<span>q</span>"
    folder = tmp_path / "notebooks"
    folder.mkdir()
    md = "# 01 Q\n\n<span style=\"font-family: 'Say &quot;hi&quot;'\">quoted font</span>"
    nbformat.write(new_notebook(cells=[new_markdown_cell(md)]), folder / "01_q.ipynb")
    assert html_main(["--notebooks", str(folder), "--out", str(tmp_path / "html")]) == 0
    assert "quoted font" in (tmp_path / "html" / "01_q.html").read_text(encoding="utf-8")


def test_text_in_a_formula_is_escaped():
    shown = classroom.latex_to_html(r"\text{a<b & c} + \textbf{<img/src=x/onerror=alert(1)>} + \text{fan\_in \& x}")
    assert "<mtext>a&lt;b&#x000A0;&amp;&#x000A0;c</mtext>" in shown
    assert '<mtext mathvariant="bold">&lt;img/src=x/onerror=alert(1)&gt;</mtext>' in shown
    assert "<mtext>fan_in&#x000A0;&amp;&#x000A0;x</mtext>" in shown
    for sneaky in (r"\text{a</mtext></math><b>x</b>}", r"\unicode{<b>}"):  # markup past the converter: source
        assert classroom.latex_to_html(sneaky).startswith('<code class="tex-source">$'), sneaky


def test_a_summary_cannot_add_entries_to_the_index(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    summary = (
        'real summary</p></li><li><a href="https://evil.example">02 fake lesson</a></li><h1>big</h1><p>'
        '<span style="display:list-item;margin-left:-1.2em" class="x" id="y"><a href="https://e.example">08 fake</a></span>'
    )
    nbformat.write(new_notebook(cells=[new_markdown_cell(f"# 01 A\n\n{summary}")]), folder / "01_a.ipynb")
    write_handouts(tmp_path / "html", notebooks_dir=folder)
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert index.count("<li>") == 1 and "<h1>big" not in index and "real summary" in index
    assert "list-item" not in index and 'class="x"' not in index and 'id="y"' not in index
    assert "default-src 'none'" in index  # the index has a Content-Security-Policy too


def test_handouts_forbid_loading_anything_even_past_the_sanitizer(series, tmp_path):
    write_handouts(tmp_path / "html", only=["01"], notebooks_dir=series)
    page = (tmp_path / "html" / "01_first.html").read_text(encoding="utf-8")
    csp = re.search(r'<meta content="([^"]*)" http-equiv="Content-Security-Policy"/>', page)  # as nbconvert writes it
    assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)


def test_image_tags_and_svg_comments_are_scanned_in_linear_time():
    import time

    start = time.perf_counter()
    classroom.markdown_to_html("<div>" + "<img " * 20000 + "</div>")
    assert classroom.image_type(b"<!---->" * 60 + b"x") is None  # was exponential: 40 comments hung
    assert time.perf_counter() - start < 10  # was quadratic: minutes


def test_a_gap_in_the_sanitizer_is_one_sentence_and_no_page(series, tmp_path, monkeypatch, capsys):
    from helpers.commands import handouts

    def gap(page):
        raise classroom.UnsafePage("the page still holds a <script> element; the HTML template or sanitizer has a gap")

    monkeypatch.setattr(handouts, "sanitize_page", gap)
    assert html_main(["--notebooks", str(series), "--out", str(tmp_path / "html")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 01_first.ipynb: the page still holds a <script>") and "Traceback" not in err
    assert not list((tmp_path / "html").glob("*.html"))


def test_an_empty_or_odd_attachment_shows_its_alt_text_instead_of_failing():
    """A notebook may carry {"x.png": {}} (valid nbformat); the handout shows the alt text, not a traceback."""
    from helpers.commands.markdown_html import markdown_to_html

    for bundle in ({}, {"image/png": 5}, [], "x"):
        html = markdown_to_html("![a picture](attachment:x.png) after", "", {"x.png": bundle})
        assert 'src="" alt="a picture"' in html and "after" in html, (bundle, html)  # as for a missing one
    good = markdown_to_html("![a picture](attachment:x.png)", "", {"x.png": {"image/png": "iVBORw0KGgo="}})
    assert "data:image/png;base64,iVBORw0KGgo=" in good
