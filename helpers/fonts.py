"""Make matplotlib draw Chinese text with Noto Sans CJK SC (shipped by the mplfonts package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
from matplotlib import font_manager

FONT_FILE = "NotoSansCJKsc-Regular.otf"
FONT_NAME = "Noto Sans CJK SC"


def cjk_font_path() -> Path:
    """Return the path of the Noto Sans CJK SC font file that ``pip install mplfonts`` provides."""
    spec = importlib.util.find_spec("mplfonts")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The package 'mplfonts' (it ships the Chinese font Noto Sans CJK SC) is not "
            "installed. Run: pip install -r requirements.txt"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "fonts" / FONT_FILE
    if not path.is_file():
        raise RuntimeError(f"{FONT_FILE} is missing from the mplfonts package; reinstall it: "
                           "pip install --force-reinstall mplfonts")
    return path


def use_chinese_font() -> str:
    """Register Noto Sans CJK SC with matplotlib and make it the default font; return its name.

    ``import helpers`` calls this once, so figures show Chinese labels without
    tofu boxes or missing-glyph warnings.
    """
    path = cjk_font_path()
    if FONT_NAME not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = [FONT_NAME, "DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = False  # plain '-' renders in every font
    return FONT_NAME
