"""Read a notebook's parameters cell and the setup cell after it, and check values against them without running code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .folders import read_notebook
from .parameters import _shown


def _code_cells(path: Path) -> tuple[str, str]:
    """The source of the ``parameters`` cell and of the code cell after it (the setup cell); "" when absent."""
    nb = read_notebook(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        if "parameters" in cell.metadata.get("tags", []):
            return cell.source, (code[i + 1].source if i + 1 < len(code) else "")
    return "", ""


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and default values in a notebook's ``parameters`` cell."""
    return {name: value for name, (value, _) in _declared(path).items()}


def _declared(path: Path) -> dict[str, tuple[Any, bool]]:
    """name -> (default, whether the default is a literal) from the ``parameters`` cell."""
    source, _ = _code_cells(path)
    values: dict[str, tuple[Any, bool]] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(
            f"{path.name}: the parameters cell is not valid Python ({exc.msg}, line {exc.lineno}); fix it first"
        ) from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = (ast.literal_eval(node.value), True)
            except ValueError:
                values[node.targets[0].id] = (ast.unparse(node.value), False)
    return values


_KINDS = {"int": int, "float": float, "str": str, "bool": bool}


def _kind_of(default: Any) -> tuple[type, str] | None:
    """The type a parameter's value must have, judged by its default, and how to name it."""
    if isinstance(default, bool):
        return bool, "true or false"
    if isinstance(default, int):
        return int, "an integer"
    if isinstance(default, float):
        return float, "a number"
    if isinstance(default, str):
        return str, "a string"
    if isinstance(default, list):
        return list, "a list"
    if isinstance(default, dict):
        return dict, "a dict"
    return None  # None or anything else: any plain value


def check_notebook_parameters(path: Path, parameters: dict[str, Any]) -> None:
    """Raise ValueError if a value for ``path`` is of another type than the default or fails the setup cell's checks.

    The setup cell (the code cell after ``parameters``) is read, never run: each
    ``helpers.check_parameter("name", name, kind, minimum=..., maximum=...)``
    with literal arguments (also inside ``for name in ("a", "b"):`` with
    ``globals()[name]``), and the seed given to ``helpers.setup(device, seed)``,
    is applied here, so a bad value is refused before any notebook runs. Checks
    written any other way still run in the notebook itself.
    """
    declared = _declared(path)
    values = {name: default for name, (default, _) in declared.items()}
    values.update({k: v for k, v in parameters.items() if k in declared})
    for name, value in parameters.items():
        if name not in declared or not declared[name][1]:
            continue
        kind = _kind_of(declared[name][0])
        if kind is None:
            continue
        wanted, noun = kind
        ok = isinstance(value, wanted) and not (wanted in (int, float) and isinstance(value, bool))
        if wanted is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok:
            hint = " (to pass text that looks like a number, quote it: -p NAME \"'text'\")" if wanted is str else ""
            raise ValueError(
                f"{path.name}: parameter {name} must be {noun}, like its default "
                f"{declared[name][0]!r}; got {_shown(value)}{hint}"
            )
    from ..params import check_parameter  # imports torch: not at module level, so --help starts fast

    _, setup_source = _code_cells(path)
    for name, check_kind, minimum, maximum, allow in _setup_checks(setup_source, values):
        try:
            check_parameter(name, values[name], check_kind, minimum=minimum, maximum=maximum, allow_nonfinite=allow)
        except ValueError as exc:
            raise ValueError(f"{path.name}: {exc}") from None


class _Unknown(Exception):
    """A check the runner cannot read without running code: left to the notebook."""


def _number(node: ast.AST, values: dict[str, Any]) -> Any:
    """Evaluate a small arithmetic expression of literals and parameter names, without running code."""
    if isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (int, float, bool)):
        return node.value
    if isinstance(node, ast.Name) and node.id in values and type(values[node.id]) in (int, float):
        return values[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(node.operand, values)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        left, right = _number(node.left, values), _number(node.right, values)
        if isinstance(node.op, ast.Pow) and (abs(right) > 128 or abs(left) > 2**64):
            raise _Unknown
        operations = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
            ast.Div: lambda a, b: a / b,
            ast.FloorDiv: lambda a, b: a // b,
            ast.Pow: lambda a, b: a**b,
        }
        if type(node.op) in operations:
            try:
                return operations[type(node.op)](left, right)
            except (ArithmeticError, ValueError, TypeError):
                raise _Unknown from None
    raise _Unknown


def _setup_checks(source: str, values: dict[str, Any]) -> Iterator[tuple[str, type, Any, Any, bool]]:
    """(name, kind, minimum, maximum, allow_nonfinite) for each parameter check the setup cell makes."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # IPython magics
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return
    for node in tree.body:
        if (
            isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, (ast.Tuple, ast.List))
        ):
            names = [e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if len(names) != len(node.iter.elts):
                continue
            for name in names:
                for statement in node.body:
                    yield from _check_call(statement, values, {node.target.id: name})
        else:
            yield from _check_call(node, values, {})


def _check_call(node: ast.AST, values: dict[str, Any], loop: dict[str, str]) -> Iterator[tuple]:
    call = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
    if not isinstance(call, ast.Call):
        return
    function = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    if function == "setup":  # helpers.setup(device, seed): the seed must suit seed_everything()
        seed = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "seed"), None)
        if isinstance(seed, ast.Name) and seed.id in values:
            yield seed.id, int, 0, 2**32 - 1, False
        return
    if function != "check_parameter" or len(call.args) < 2:
        return
    first, second = call.args[0], call.args[1]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        name = first.value
    elif isinstance(first, ast.Name) and first.id in loop:
        name = loop[first.id]
    else:
        return
    is_itself = isinstance(second, ast.Name) and second.id == name
    is_lookup = (
        isinstance(second, ast.Subscript)
        and isinstance(second.value, ast.Call)
        and getattr(second.value.func, "id", None) == "globals"
    )
    if name not in values or not (is_itself or is_lookup):
        return
    arguments = dict(zip(("kind", "minimum", "maximum", "allow_nonfinite"), call.args[2:]))
    arguments.update({k.arg: k.value for k in call.keywords if k.arg})
    kind_node = arguments.get("kind")
    kind = int if kind_node is None else _KINDS.get(getattr(kind_node, "id", ""))
    try:
        if kind is None:
            raise _Unknown
        bounds = [_number(arguments[k], values) if k in arguments else None for k in ("minimum", "maximum")]
        allow = bool(_number(arguments["allow_nonfinite"], values)) if "allow_nonfinite" in arguments else False
    except _Unknown:
        return
    yield name, kind, bounds[0], bounds[1], allow
