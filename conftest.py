"""pytest loads this file whatever path it is given (``pytest notebooks/04_model_layers.ipynb`` too),
so nbval always runs with the project's extensions and the --stand-in option (tests/nbval_plugin.py).
Fixtures and helpers for the unit tests live in tests/conftest.py."""

from tests.nbval_plugin import pytest_addoption, pytest_configure, pytest_report_header  # noqa: F401
