"""Make matplotlib draw Chinese text with Noto Sans CJK SC (shipped by the mplfonts package).

matplotlib is imported only when it is needed: ``import helpers`` calls
``use_chinese_font_on_import()``, which sets the font at once if matplotlib is
already loaded, and otherwise right after matplotlib's first import.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
        raise RuntimeError(
            f"{FONT_FILE} is missing from the mplfonts package; reinstall it: pip install --force-reinstall mplfonts"
        )
    return path


def use_chinese_font() -> str:
    """Register Noto Sans CJK SC with matplotlib and make it the default font; return its name.

    ``import helpers`` arranges for this to run (see ``use_chinese_font_on_import``),
    so figures show Chinese labels without tofu boxes or missing-glyph warnings.
    """
    import matplotlib
    from matplotlib import font_manager

    path = cjk_font_path()
    if FONT_NAME not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = [FONT_NAME, "DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = False  # plain '-' renders in every font
    return FONT_NAME


class _FontOnImport:
    """A meta-path finder that calls ``use_chinese_font()`` right after ``matplotlib`` is first imported.

    It finds nothing itself: it asks the finders behind it for matplotlib's spec and
    wraps that spec's loader's ``exec_module``; once matplotlib has run, it restores
    the loader, leaves ``sys.meta_path`` and sets the font.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "matplotlib":
            return None
        spec = None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or isinstance(finder, _FontOnImport) or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec

        def exec_module(module, _original=loader.exec_module):
            try:
                _original(module)
            finally:
                loader.__dict__.pop("exec_module", None)
                _remove_hooks()
            use_chinese_font()

        loader.exec_module = exec_module
        return spec


def _remove_hooks() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _FontOnImport)]


def use_chinese_font_on_import() -> None:
    """Make Noto Sans CJK SC matplotlib's default font without importing matplotlib early.

    If matplotlib is loaded, set the font now; otherwise install a one-shot import hook
    that sets it right after matplotlib's first import. Either way the font file is
    looked up now, so a missing mplfonts package is reported by ``import helpers``.
    """
    cjk_font_path()
    if "matplotlib" in sys.modules:
        use_chinese_font()
    elif not any(isinstance(finder, _FontOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FontOnImport())
