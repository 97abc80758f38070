import os
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib import font_manager

import helpers  # noqa: F401  (sets the font)
from helpers.fonts import FONT_NAME, cjk_font_path, use_chinese_font


def test_font_file_ships_with_requirements():
    path = cjk_font_path()
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert font_manager.FontProperties(fname=str(path)).get_name() == FONT_NAME


def test_import_makes_the_cjk_font_the_default():
    assert matplotlib.rcParams["font.sans-serif"][0] == FONT_NAME
    found = font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]), fallback_to_default=False)
    assert found == str(cjk_font_path())


def test_chinese_text_renders_without_missing_glyph_warnings():
    use_chinese_font()  # calling it again is harmless
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font" would fail here
        fig, ax = plt.subplots()
        ax.set_title("运动鞋 短靴 T恤/上衣 -1.5")
        ax.set_xlabel("输入 x")
        ax.plot([-1, 1], [-1, 1])
        fig.canvas.draw()
        plt.close(fig)


# A fresh interpreter, as a lesson's kernel is: ``import helpers`` does not import matplotlib, so the
# font must be set when matplotlib is imported later (or at once, if it already was).
FRESH_FIGURE = """
import sys, warnings
{imports}
from matplotlib import font_manager
warnings.simplefilter("error")  # "Glyph ... missing from font" would fail here
fig, ax = plt.subplots()
title = ax.set_title("运动鞋 短靴 T恤/上衣 -1.5")
fig.canvas.draw()
print(font_manager.findfont(title.get_fontproperties(), fallback_to_default=False))
print(matplotlib_before_helpers, type(sys.meta_path[0]).__name__)
"""


@pytest.mark.parametrize(
    "imports",
    [
        "import helpers\nmatplotlib_before_helpers = 'matplotlib' in sys.modules\nimport matplotlib.pyplot as plt",
        "import helpers\nmatplotlib_before_helpers = 'matplotlib' in sys.modules\nfrom matplotlib import pyplot as plt",
        "import matplotlib\nmatplotlib_before_helpers = 'matplotlib' in sys.modules\nimport helpers\n"
        "import matplotlib.pyplot as plt",
    ],
    ids=["helpers-then-pyplot", "helpers-then-from-matplotlib", "matplotlib-then-helpers"],
)
def test_a_fresh_process_draws_with_the_cjk_font(imports):
    code = FRESH_FIGURE.format(imports=imports)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no missing-glyph or other warnings
    font, line = result.stdout.splitlines()
    assert font == str(cjk_font_path())
    before, first_finder = line.split()
    assert before == str(imports.startswith("import matplotlib"))  # import helpers alone left matplotlib out
    assert first_finder != "_FontOnImport"  # the one-shot import hook removed itself
