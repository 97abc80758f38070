import warnings

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import font_manager

import helpers
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


def test_public_names():
    assert helpers.use_chinese_font is use_chinese_font
