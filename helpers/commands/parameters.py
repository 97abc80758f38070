"""Parameter values as plain data: parse a ``-p NAME VALUE``, refuse anything else, and check what papermill injects."""

from __future__ import annotations

import ast
import keyword
import math
from typing import Any

PLAIN_VALUES = "a number, true/false, None, a string, or a list or dict (with string keys) of those"


def parse_value(text: str) -> Any:
    """Turn a command-line value into a Python value: numbers, True/False/None, lists and dicts, else the string.

    Anything else a Python literal can spell (a tuple, a set, bytes, a complex
    number, nan or infinity) is refused with ValueError: a parameter is data.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    problem = _plain_problem(value)
    if problem:
        raise ValueError(
            f"{_shown(text)} {problem}; a parameter can only be {PLAIN_VALUES} "
            "(put quotes around text to pass it as a string)"
        )
    return value


def check_parameter_value(name: str, value: Any) -> Any:
    """Return ``value`` if it is plain data a notebook can receive; else raise ValueError.

    Plain data: None, booleans, integers, finite floats, strings, and lists and
    dicts (with string keys) of those. Papermill writes parameters into the
    notebook as code, so nothing else may reach it.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"parameter name {name!r} is not a Python name; use letters, digits and _ only")
    problem = _plain_problem(value)
    if problem:
        raise ValueError(f"parameter {name} {problem}; a parameter can only be {PLAIN_VALUES}")
    return value


def _plain_problem(value: Any, depth: int = 0) -> str | None:
    """What keeps ``value`` from being plain data, or None."""
    if depth > 20:
        return "is nested more than 20 levels deep"
    if value is None or type(value) in (bool, int, str):
        return None
    if type(value) is float:
        return None if math.isfinite(value) else f"is {value!r}, not a finite number"
    if type(value) is list:
        return next((p for p in (_plain_problem(v, depth + 1) for v in value) if p), None)
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return f"has the dict key {_shown(key)}, which is not a string"
            problem = _plain_problem(item, depth + 1)
            if problem:
                return problem
        return None
    return f"holds a value of type {type(value).__name__}" if depth else f"is of type {type(value).__name__}"


def _same_value(a: Any, b: Any) -> bool:
    """Equal and of exactly the same types all the way down (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    return a == b


def injected_source(parameters: dict[str, Any], language: str = "python") -> str:
    """The code papermill puts into the notebook for ``parameters``, checked to assign exactly these values.

    Raises ValueError for a value that is not plain data or that papermill would
    not write back as exactly itself, so no parameter can ever become code.
    """
    from papermill.translators import PythonTranslator, papermill_translators, translate_parameters

    for name, value in parameters.items():
        check_parameter_value(name, value)
    try:
        translator = papermill_translators.find_translator("python3", language)
    except Exception:
        translator = None
    if parameters and not (isinstance(translator, type) and issubclass(translator, PythonTranslator)):
        raise ValueError(f"the notebook's language is {language!r}; only Python notebooks take parameters here")
    try:
        source = translate_parameters("python3", language, parameters, "Parameters")
        tree = ast.parse(source)
        assigned = []
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                raise ValueError("not a plain assignment")
            assigned.append((node.targets[0].id, ast.literal_eval(node.value)))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        assigned = None
    if assigned is None or [n for n, _ in assigned] != list(parameters):
        raise ValueError(
            f"the parameters {', '.join(parameters)} cannot be written into the notebook as plain "
            f"data; give {PLAIN_VALUES}"
        )
    for name, value in assigned:
        if not _same_value(value, parameters[name]):
            raise ValueError(
                f"parameter {name} would not reach the notebook as exactly {_shown(parameters[name])}; "
                f"give {PLAIN_VALUES}"
            )
    return source


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
