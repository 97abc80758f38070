"""Python imports this file at start-up when tests/standin_site is on PYTHONPATH, which
``pytest --stand-in ulp-K`` arranges for every kernel it starts (tests/nbval_plugin.py).

If HELPERS_ULP_SEED is set, the rounding stand-in (ulp_standin.py, beside this file) is installed
the moment the process first imports torch: nothing else changes, and a process that never
imports torch pays nothing. Then the next sitecustomize on the path, if any, runs as usual.
"""

import importlib.abc
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


class _AfterTorch(importlib.abc.MetaPathFinder):
    """Wrap the loader of the top-level ``torch`` package so the stand-in is installed right after it loads."""

    def find_spec(self, name, path=None, target=None):
        if name != "torch":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            sys.path.insert(0, _HERE)
            try:
                import ulp_standin
            finally:
                sys.path.remove(_HERE)
            ulp_standin.install()

        spec.loader.exec_module = exec_module
        return spec


def _chain() -> None:
    """Run the sitecustomize this file hides (one later on sys.path), as Python would have."""
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == _HERE:
            continue
        candidate = os.path.join(entry, "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_sitecustomize_next", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return


if os.environ.get("HELPERS_ULP_SEED"):
    if "torch" in sys.modules:  # unusual, but then there is nothing to wait for
        sys.path.insert(0, _HERE)
        import ulp_standin

        ulp_standin.install()
    else:
        sys.meta_path.insert(0, _AfterTorch())
_chain()
