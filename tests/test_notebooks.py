"""The notebooks as a whole: the series is complete, each follows the skeleton, stores clean
outputs, and runs end to end under papermill with small parameters."""

import ast
import re

import nbformat
import pytest

from conftest import NOTEBOOKS, needs_data
from helpers.commands import runner

SERIES = [
    "01_tensors.ipynb",
    "02_datasets_transforms.ipynb",
    "03_build_model.ipynb",
    "04_model_layers.ipynb",
    "05_model_parameters.ipynb",
    "06_training.ipynb",
    "07_save_load.ipynb",
]
# Small values for the papermill run; each notebook receives only those it declares.
SMALL = {"epochs": 1, "fast_epochs": 1, "plain_epochs": 1, "resume_epochs": 2}  # resume: 1 epoch, then 1 more
NOISE = {
    "a memory address": re.compile(r"0x[0-9a-fA-F]{6,}"),
    "an absolute path": re.compile(r"/tmp/|/root/|/home/|/work/|[A-Z]:\\\\"),
    "a timestamp": re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}"),
    "a warning": re.compile(r"Warning:|WARNING"),
}


# Typography (README, writing guide): full-width ，：；？！（） in Chinese text, in Markdown prose and in the
# string literals of code cells (printed strings, figure titles); glosses read 张量（tensor）, not 张量 (tensor).
CJK = "\u3400-\u4dbf\u4e00-\u9fff"
# half-width punctuation between Chinese characters: "数据, 然后" should read "数据，然后"
HALF_WIDTH = re.compile(rf"[{CJK}]\s*[,;:?!]\s*[{CJK}]|[{CJK}]\s*\(\s*[{CJK}]")
# in a Chinese string: half-width , ; : ? ! right after a Chinese character ("准确率: " -> "准确率："),
# or right before one ("a, 然后"); half-width parentheses holding Chinese ("(默认值)")
HALF_WIDTH_IN_STRING = re.compile(rf"[{CJK}]\s*[,;:?!]|[,;:?!]\s*[{CJK}]|\([^()\n]*[{CJK}][^()\n]*\)")
# a gloss in half-width parentheses after a Chinese word: "神经网络 (neural network)"; "第 (i, j) 个" is no gloss
HALF_WIDTH_GLOSS = re.compile(rf"[{CJK}]\s*\((?=[^()\n]*[A-Za-z]{{2}})[^()\n]*\)")
NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|<[^>]+>|\]\([^)]*\)", re.DOTALL)


def markdown_typography(source: str) -> list[str]:
    """Offending snippets in a Markdown cell's prose (code spans, math, HTML tags and link targets skipped)."""
    prose = NOT_PROSE.sub(" ", source)
    return [_snippet(prose, m) for pattern in (HALF_WIDTH, HALF_WIDTH_GLOSS) for m in pattern.finditer(prose)]


def _snippet(text: str, match: re.Match, context: int = 6) -> str:
    """The match with a few characters either side, so that a report can be found in the notebook."""
    return text[max(match.start() - context, 0) : match.end() + context].strip()


def chinese_strings(source: str) -> list[str]:
    """The string literals of a code cell that contain Chinese (the literal parts of f-strings included)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell with IPython magics: no literal is checked rather than a wrong one
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(f"[{CJK}]", node.value)
    ]


def string_typography(source: str) -> list[str]:
    """Offending snippets in the Chinese string literals of a code cell."""
    return [_snippet(text, m) for text in chinese_strings(source) for m in HALF_WIDTH_IN_STRING.finditer(text)]


def load(name):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def text_of(output) -> str:
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    return data.get("text/plain", "") + data.get("text/html", "")


def test_the_series_is_complete_and_ordered():
    assert [p.name for p in runner.list_notebooks()] == SERIES


@pytest.fixture(params=SERIES)
def notebook(request):
    path = NOTEBOOKS / request.param
    if not path.exists():
        pytest.fail(f"{request.param} is missing")
    return request.param, load(request.param)


def test_skeleton(notebook):
    name, nb = notebook
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {name[:2]} ")
    links = re.findall(r"\]\((\d\d_[a-z_]+\.ipynb)\)", nb.cells[0].source)
    index = SERIES.index(name)
    expected = ([SERIES[index - 1]] if index > 0 else []) + ([SERIES[index + 1]] if index < len(SERIES) - 1 else [])
    assert links == expected, "the navigation line links to the neighbouring notebooks"
    for heading in ("学习目标", "## 小结", "## 知识检查", "## 练习", "## 延伸阅读"):
        assert heading in markdown, f"missing {heading}"
    assert "<details>" in markdown, "answers to 知识检查 are folded in <details>"
    tagged = [c.metadata.get("tags", []) for c in code]
    assert tagged[0] == ["parameters"], "the first code cell is the parameters cell"
    assert "helpers.setup(" in code[1].source, "the cell after the parameters sets up seed and device"
    assert sum("solution" in t for t in tagged) >= 1, "each exercise has a reference solution tagged 'solution'"
    params = runner.notebook_parameters(NOTEBOOKS / name)
    assert params.get("device") == "auto" and params.get("seed") == 0


def test_stored_outputs_are_clean(notebook):
    name, nb = notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom (helpers refresh)"
    for i, cell in enumerate(code, 1):
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i} stores an error"
            assert not (out.output_type == "stream" and out.name == "stderr"), f"code cell {i} writes to stderr"
            body = text_of(out)
            for what, pattern in NOISE.items():
                assert not pattern.search(body), f"code cell {i} shows {what}: {pattern.search(body).group(0)!r}"
    with_output = [c for c in code if c.outputs]
    ignored = [c for c in with_output if runner.IGNORE_TAG in c.metadata.get("tags", [])]
    assert len(ignored) * 5 < max(len(with_output), 1), "fewer than one in five cells may skip nbval's comparison"
    for cell in ignored:
        following = code[code.index(cell) + 1]
        assert "assert" in following.source, "a cell tagged nbval-ignore-output is followed by an assert cell"
    assert set(nb.metadata) == {"kernelspec", "language_info"}, "clean metadata (helpers refresh)"


@needs_data
@pytest.mark.parametrize("name", SERIES)
def test_runs_under_papermill_with_small_parameters(name, tmp_path):
    path = NOTEBOOKS / name
    if not path.exists():
        pytest.fail(f"{name} is missing")
    # the default device: the GPU on a machine with one (nbval meanwhile compares on the CPU)
    result = runner.run_notebook(path, tmp_path, {"device": "auto", **SMALL}, progress_bar=False)
    assert result.status == "ok", result.error
    executed = nbformat.read(result.output, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'device = "auto"' in injected[0].source


def test_chinese_sentences_use_full_width_punctuation(notebook):
    """README, writing guide: full-width ，。：；？！（） in Chinese prose and Chinese strings, glosses 张量（tensor）."""
    name, nb = notebook
    found = []
    for i, cell in enumerate(nb.cells):  # i: the cell's index in nb.cells
        check = markdown_typography if cell.cell_type == "markdown" else string_typography
        found += [f"{name} cell {i}: {snippet!r}" for snippet in check(cell.source)]
    assert not found, "half-width punctuation in Chinese text:\n" + "\n".join(found[:20])


@pytest.mark.parametrize(
    "bad",
    [
        'print(f"准确率: {acc:.1%}")',
        'print("就地操作后还是同一块内存:", ok)',
        'print(f"{n} 张图像, 共 {k} 类")',
        'plt.title("损失 (训练集)")',
        'raise ValueError("参数不对; 请检查")',
        'print("真的吗?")',
    ],
)
def test_typography_flags_half_width_punctuation_in_chinese_strings(bad):
    assert string_typography(bad), f"not flagged: {bad}"


@pytest.mark.parametrize(
    "good",
    [
        'print(f"准确率：{acc:.1%}")',
        'print("设备 device:", device)',  # the colon follows an English word
        'print(f"训练集：{len(data):,} 张图像")',  # the format spec :, is code
        'print("形状 shape:", x.shape, "(N, C, H, W)")',
        'x = {"a": 1, "b": (2, 3)}  # 注释里的 a, b: 不是字符串',
        '"找不到 helpers 包。" " (helpers not found: run pip install)"',
    ],
)
def test_typography_accepts_full_width_chinese_strings_and_half_width_code(good):
    assert not string_typography(good), string_typography(good)


def test_typography_in_markdown_flags_half_width_glosses_and_punctuation():
    assert markdown_typography("一个神经网络 (neural network) 由层组成。") == [
        "一个神经网络 (neural network) 由层组成。"
    ]
    assert markdown_typography("先读数据, 然后训练。")
    assert markdown_typography("默认值(自动)就够了。")
    for good in (
        "一个神经网络（neural network）由层组成。",
        "结果的第 (i, j) 个元素",
        "调用 `f(x)` 时",
        "见 [文档](https://a.b/(c))",
    ):
        assert not markdown_typography(good), good


def test_readme_lists_every_parameter_with_its_default(notebook):
    name, _ = notebook
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    row = next((line for line in readme.splitlines() if line.startswith(f"| {name[:2]} ")), "")
    assert row, f"the README's parameter table has no row for {name[:2]}"
    for key, value in runner.notebook_parameters(NOTEBOOKS / name).items():
        if key in ("device", "seed"):
            continue  # listed once for all notebooks
        shown = re.search(rf"`{key}=([^`]+)`", row)
        assert shown, f"README row {name[:2]} should list `{key}={value!r}`"
        assert ast.literal_eval(shown.group(1)) == value, f"README row {name[:2]}: the default of {key} is {value!r}"
