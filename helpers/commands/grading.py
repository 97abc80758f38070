"""The grader's side of a check: a check passes only when the grader, not the student's code, agrees.

A check cell runs in the kernel where the student's code ran, so anything the
student's code left behind could fake a pass: an input transformer that turns
every later cell into ``pass``, ``torch.allclose = lambda *a, **k: True``, an
``int`` subclass whose ``==`` is always true, a rebound ``torch`` name... The
grader therefore does three things the student's code cannot skip by ordinary
means:

1. ``BOOTSTRAP`` runs first in every kernel, before any lesson or student code: it
   records the pristine state (the functions and classes of ``builtins``, ``sys``,
   ``math``, ``operator``, ``numpy``, ``torch``, ``torch.nn``,
   ``torch.nn.functional``, the class dictionaries of ``torch.Tensor`` and of every
   ``torch.nn`` class, IPython's input/AST transformers, event callbacks and trace
   hooks).
2. Right before an exercise's first answer cell the lesson's names are recorded;
   right before its check the pristine state and those names are put back
   (through ``user_expressions``, which IPython evaluates without input
   transformers). Only the names the teacher's reference solution binds keep the
   student's values.
3. The check cell itself is rewritten (``harden_check``) so that every comparison,
   every ``assert`` and every call argument sees plain values: subclasses of
   ``int``/``float``/``str``/``list``/``tuple``/``dict`` become the exact built-in
   type, tensor or array subclasses (other than ``nn.Parameter``) and objects
   whose class defines its own ``==``/``bool``/``len`` are refused. The rewritten
   check ends by recording a random token; afterwards the grader asks whether the
   token was recorded and whether the pristine state is still intact (a student's
   function that patched ``torch`` while the check called it is caught here).

A check passes only when its cell ran without error *and* this verification says
"ok". This defeats the tricks above and their obvious variants; it is not a proof
against code written against this very module (CPython cannot isolate code
running in the same interpreter: a determined student can walk frames or the
garbage collector). README's safety paragraph says so. That is why a check that
passes here is followed by the grader's trial (trials.py): the answer runs on new
inputs and the results are compared with the answer key outside the kernel.
"""

from __future__ import annotations

import ast
import re
import secrets
from typing import Any

MODULE = "_helpers_grader"  # the kernel-side module's name in sys.modules
NAME = "__helpers_grader__"  # the name the rewritten check cells use; rebound before every check
_GET = f"__import__('sys').modules[{MODULE!r}]"
_MAX_REPLY = 40_000_000  # characters of a user expression's text/plain that are read at all
_STRING_REPR = re.compile(r"'(?:[^'\\\n]|\\.)*'" + r'|"(?:[^"\\\n]|\\.)*"', re.DOTALL)  # one str's repr

# runs in the kernel before anything else; defines the kernel-side module
BOOTSTRAP = r'''
def __helpers_grader_install():
    import ast, builtins, copy, inspect, linecache, math, operator, re, sys, textwrap, types
    import numpy, torch, torch.nn, torch.nn.functional, torch.optim, torch.overrides, torch.autograd
    import torch.autograd.functional, torch.func, torch.utils.data
    import torch._dynamo  # importing it rebinds torch.manual_seed; do that now, not in a check (a false alarm)
    from IPython import get_ipython

    shell = get_ipython()
    module = types.ModuleType("_helpers_grader")
    Tensor, Parameter, ndarray = torch.Tensor, torch.nn.Parameter, numpy.ndarray
    exact_scalars = (int, float, bool, str, bytes, complex, type(None), numpy.bool_, torch.Size, torch.dtype, torch.device)
    trusted_prefixes = ("torch", "torchvision", "numpy", "builtins", "collections", "math", "fractions", "decimal",
                        "helpers")  # torchvision: v2 transforms return tv_tensors.Image, a tensor subclass
    function_type = types.FunctionType
    watched_sys = ("settrace", "setprofile", "gettrace", "getprofile", "_getframe", "audit", "exit", "modules")
    # what check cells use to judge (inspect.getsource, re.search, copy.deepcopy, torch.optim as the reference...)
    watched_modules = [builtins, math, operator, numpy, torch, torch.nn, torch.nn.functional, ast, copy, inspect, linecache, re,
                       textwrap, torch.optim, torch.overrides, torch.autograd, torch.autograd.functional, torch.func,
                       torch.utils.data]
    # ... and `import torch` in a check must give the real module, not one a student put into sys.modules
    imported = {m.__name__: m for m in watched_modules}
    watched_classes = [Tensor, torch.nn.Module] + [v for v in vars(torch.nn).values() if isinstance(v, type)]
    watched_classes += [c for c in type(shell).__mro__ if c is not object]

    def keep(value):
        return callable(value) or isinstance(value, types.ModuleType)

    snapshot_modules = [(m.__dict__, {k: v for k, v in m.__dict__.items() if keep(v)}) for m in watched_modules]
    snapshot_modules.append((sys.__dict__, {k: getattr(sys, k) for k in watched_sys}))
    snapshot_classes = [(c, dict(c.__dict__)) for c in watched_classes]
    codes = {}
    for _, items in snapshot_modules:
        for value in items.values():
            if type(value) is function_type:
                codes[value] = value.__code__
    lists = [(shell.input_transformers_cleanup, list(shell.input_transformers_cleanup)),
             (shell.input_transformers_post, list(shell.input_transformers_post)),
             (shell.ast_transformers, list(shell.ast_transformers))]
    callbacks = {event: list(funcs) for event, funcs in shell.events.callbacks.items()}
    # the source that inspect.getsource shows for a cell's function lives in linecache: keep a private copy of
    # every cell's lines as IPython compiles it, and put it back before each check (a student's cell could
    # otherwise rewrite its own entry to show a permitted body)
    compiler = shell.compile
    real_cache = compiler.cache
    cell_lines = {}

    def recording_cache(*args, **kwargs):
        name = real_cache(*args, **kwargs)
        entry = linecache.cache.get(name)
        if entry is not None:
            cell_lines[name] = (entry[0], entry[1], tuple(entry[2]), entry[3])
        return name

    compiler.cache = recording_cache
    shell_attrs = {k: v for k, v in vars(shell).items() if callable(v)}
    state = {"names": {}, "done": set()}
    tensor_hooks = ("__torch_function__", "__torch_dispatch__", "__array_function__", "__array_ufunc__", "__eq__",
                    "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__", "__getattribute__")

    def inherited(cls, name):
        """What ``cls.name`` would be without an entry in cls's own dictionary (a check may put that back)."""
        for klass in cls.__mro__[1:]:
            if name in klass.__dict__:
                return klass.__dict__[name]
        return None

    def differences():
        found = []
        for d, items in snapshot_modules:
            found += [k for k, v in items.items() if d.get(k) is not v]
        for cls, items in snapshot_classes:
            now = cls.__dict__
            found += [f"{cls.__name__}.{k}" for k, v in items.items() if now.get(k) is not v]
            # __slotnames__: a cache copyreg writes on a class the first time one of its objects is pickled
            # (torch.save to a BytesIO in a correct answer); it changes no behaviour
            found += [f"{cls.__name__}.{k}" for k in set(now) - set(items) - {"__slotnames__"}
                      if now[k] is not inherited(cls, k)]
        found += [f.__name__ for f, code in codes.items() if f.__code__ is not code]
        found += [f"sys.modules[{k!r}]" for k, m in imported.items() if sys.modules.get(k) is not m]
        found += ["IPython transformers" for lst, items in lists if lst != items]
        if any(shell.events.callbacks.get(e) != funcs for e, funcs in callbacks.items()):
            found.append("IPython event callbacks")
        found += ["shell." + k for k, v in vars(shell).items() if callable(v) and shell_attrs.get(k) is not v]
        if vars(compiler).get("cache") is not recording_cache:
            found.append("shell.compile.cache")
        if sys.gettrace() is not None or sys.getprofile() is not None:
            found.append("a trace function")
        return found

    def restore():
        for d, items in snapshot_modules:
            for k, v in items.items():
                if d.get(k) is not v:
                    d[k] = v
        for cls, items in snapshot_classes:
            now = cls.__dict__
            for k in [k for k in now if k not in items]:
                try:
                    type.__delattr__(cls, k)
                except (TypeError, AttributeError):
                    pass
            for k, v in items.items():
                if now.get(k) is not v:
                    try:
                        type.__setattr__(cls, k, v)
                    except (TypeError, AttributeError):
                        pass
        for f, code in codes.items():
            if f.__code__ is not code:
                f.__code__ = code
        for k, m in imported.items():
            if sys.modules.get(k) is not m:
                sys.modules[k] = m
        for lst, items in lists:
            lst[:] = items
        for event, funcs in callbacks.items():
            shell.events.callbacks[event] = list(funcs)
        for k, v in list(vars(shell).items()):
            if callable(v) and shell_attrs.get(k) is not v:
                if k in shell_attrs:
                    setattr(shell, k, shell_attrs[k])
                else:
                    delattr(shell, k)
        compiler.cache = recording_cache
        for name, (size, mtime, lines, full) in cell_lines.items():
            linecache.cache[name] = (size, mtime, list(lines), full)
        sys.settrace(None)
        sys.setprofile(None)
        for name, value in state["names"].items():
            shell.user_ns[name] = value
        shell.user_ns["__helpers_grader__"] = module
        return "ok"

    def remember(exercise_names):
        """Record the lesson's names (all but the exercise's own) before the student's answer runs."""
        skip = set(exercise_names) | {"__helpers_grader__"}
        state["names"] = {k: v for k, v in shell.user_ns.items() if not k.startswith("_") and k not in skip}
        return "ok"

    def trusted_type(cls):
        return cls.__module__.split(".")[0] in trusted_prefixes and cls.__module__ != "__main__"

    def own_behaviour(cls, names):
        for klass in cls.__mro__:
            if klass is object:
                return False
            if any(n in klass.__dict__ for n in names) and not trusted_type(klass):
                return True
        return False

    def plain(value, depth=0, strict=False):
        kind = type(value)
        if kind in exact_scalars or kind is Tensor or kind is Parameter or kind is ndarray:
            return value
        if isinstance(value, (Tensor, ndarray)):
            if own_behaviour(kind, tensor_hooks):
                raise AssertionError(f"the check got a {kind.__name__} (a tensor or array subclass that changes how "
                                     "torch, numpy or comparisons treat it); return a plain tensor")
            return value
        if isinstance(value, int):
            return int.__int__(value)
        if isinstance(value, float):
            return float.__float__(value)
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, (list, tuple, dict)) and depth < 4:
            if kind not in (list, tuple, dict) and trusted_type(kind):
                return value  # OrderedDict, torch.return_types, ...
            if isinstance(value, dict):
                items = [(plain(k, depth + 1), plain(v, depth + 1)) for k, v in dict.items(value)]
                same = kind is dict and all(a is b and c is d for (a, c), (b, d) in zip(items, dict.items(value)))
                return value if same else dict(items)
            base = list if isinstance(value, list) else tuple
            items = [plain(v, depth + 1) for v in base.__iter__(value)]
            same = kind is base and all(a is b for a, b in zip(items, base.__iter__(value)))
            return value if same else base(items)
        if strict and own_behaviour(kind, ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
                                           "__bool__", "__len__", "__contains__", "__hash__")):
            raise AssertionError(f"the check compared an object of type {kind.__name__} that defines its own "
                                 "comparison or truth value; return plain values (numbers, strings, lists, tensors)")
        return value

    def arg(value):
        return plain(value)

    def compare(value):
        return plain(value, strict=True)

    def truth(value):
        value = plain(value, strict=True)
        if type(value) is numpy.bool_:
            return bool(value)
        return value

    def done(token):
        state["done"].add(token)

    def verify(token):
        if token not in state["done"]:
            return "the check did not run to its end"
        found = differences()
        return "ok" if not found else "changed while the check ran: " + ", ".join(sorted(set(found))[:5])

    for fn in (restore, remember, arg, compare, truth, done, verify):
        setattr(module, fn.__name__, fn)
    sys.modules["_helpers_grader"] = module
    shell.user_ns["__helpers_grader__"] = module


__helpers_grader_install()
del __helpers_grader_install
'''


def restore_expression() -> str:
    """Put the pristine state back (evaluated as a user expression: no input transformers run)."""
    return f"{_GET}.restore()"


def remember_expression(names: set[str]) -> str:
    """Record the lesson's names except ``names`` (the exercise's own) before the student's answer."""
    return f"{_GET}.remember({sorted(names)!r})"


def verify_expression(token: str) -> str:
    return f"{_GET}.verify({token!r})"


def bound_names(source: str) -> set[str]:
    """The top-level names a cell binds (assignments, def, class, import, for targets): the exercise's names."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _wrap(kind: str, node: ast.expr) -> ast.expr:
    call = ast.Call(ast.Attribute(ast.Name(NAME, ast.Load()), kind, ast.Load()), [node], [])
    return ast.copy_location(call, node)


class _Harden(ast.NodeTransformer):
    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        node.left = _wrap("compare", node.left)
        node.comparators = [_wrap("compare", c) for c in node.comparators]
        return node

    def visit_Assert(self, node: ast.Assert) -> ast.AST:
        self.generic_visit(node)
        node.test = _wrap("truth", node.test)
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        node.args = [a if isinstance(a, ast.Starred) else _wrap("arg", a) for a in node.args]
        for keyword in node.keywords:
            if keyword.arg is not None:
                keyword.value = _wrap("arg", keyword.value)
        return node


def harden_check(source: str, token: str) -> str:
    """The check cell rewritten to compare plain values and to record ``token`` when it reaches its end.

    A check that is not valid Python is returned as it is (it fails on its own).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    tree = _Harden().visit(tree)
    tree.body.append(
        ast.Expr(ast.Call(ast.Attribute(ast.Name(NAME, ast.Load()), "done", ast.Load()), [ast.Constant(token)], []))
    )
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def new_token() -> str:
    return secrets.token_hex(16)


def expression_value(reply: dict[str, Any] | None, key: str) -> str | None:
    """The string a user expression returned, from an execute_reply; None when it failed or was not evaluated."""
    if not reply:
        return None
    try:  # the kernel wrote this reply: any level may be of any type, the text of any size or depth
        value = reply["content"]["user_expressions"][key] if reply["content"]["status"] == "ok" else {}
        text = value["data"]["text/plain"] if value["status"] == "ok" else ""
        if not isinstance(text, str) or len(text) > _MAX_REPLY or not _STRING_REPR.fullmatch(text):
            return None  # only the repr of one string is parsed (a list of millions of items would take GBs)
        result = ast.literal_eval(text)
    except Exception:  # KeyError, TypeError, SyntaxError, RecursionError, MemoryError, ...
        return None
    return result if isinstance(result, str) else None
