"""The reference kernel's side of reuse.py: compare the names a cell may change, and save a slow cell's results.

``KERNEL`` runs (after the grader's bootstrap) only in the kernel of a reference run, where no student
code runs. It defines the module ``_helpers_reuse`` with ``before(names)`` (checksums of the values a
cell may change: the names it mentions and the globals the notebook's own functions among them read)
and ``save(path, bound, deleted, defined)`` (one torch.save file: the values the cell bound or changed,
the names it removed, the random generators' states; "ok" or why not).
"""

from __future__ import annotations

# Walks a value as pickle would and lists its tensors in the order met: the reference kernel records each
# saved tensor's .grad by that order (torch.save drops .grad) and the loader cell walks the loaded value alike.
# Indented for the body of a function (both use it there); needs pickle and torch imported.
WALKER = """\
    class Null:
        def write(self, data):
            pass

    class Tensors(pickle.Pickler):
        def __init__(self):
            super().__init__(Null(), protocol=4)
            self.found = []

        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                self.found.append(obj)
                return tuple, ((),)
            return NotImplemented
"""

# runs in the reference kernel only (never in a graded one), after the grader's bootstrap
KERNEL = r'''
def __helpers_reuse_install():
    import hashlib, io, os, pickle, random, sys, types, zlib
    import numpy, torch
    from IPython import get_ipython

    ns = get_ipython().user_ns
    module = types.ModuleType("_helpers_reuse")
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)
    state = {"before": {}}

    class Digester(pickle.Pickler):
        """Pickles a value with every tensor replaced by a checksum of its data (and of its gradient)."""
        def __init__(self, file):
            super().__init__(file, protocol=4)
            self.sums, self.graph = {}, False

        def checksum(self, t):
            t = t.detach()
            key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if key not in self.sums:
                self.sums[key] = zlib.crc32(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
            return self.sums[key]

        def reducer_override(self, obj):
            if not isinstance(obj, torch.Tensor):
                return NotImplemented
            self.graph |= obj.grad_fn is not None
            grad = obj.grad if obj.is_leaf else None
            summary = (str(obj.dtype), tuple(obj.shape), obj.requires_grad, self.checksum(obj),
                       None if grad is None else self.checksum(grad), type(obj).__name__)
            return tuple, (summary,)

    def digest(value):
        buffer = io.BytesIO()
        digester = Digester(buffer)
        try:
            digester.dump(value)
        except Exception:
            return None, False
        return hashlib.sha1(buffer.getvalue()).hexdigest(), digester.graph

    def watched(names):
        """``names`` and the globals that the notebook's own functions among them read, transitively."""
        todo, found = list(names), set()
        while todo:
            name = todo.pop()
            if name in found:
                continue
            found.add(name)
            value = ns.get(name)
            if isinstance(value, types.FunctionType) and value.__module__ == "__main__":
                codes = [value.__code__]
                while codes:
                    code = codes.pop()
                    todo += code.co_names
                    codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        return {n for n in found if n in ns and not n.startswith("_") and not isinstance(ns[n], skip)}

    def before(names):
        state["before"] = {n: digest(ns[n])[0] for n in watched(names)}
        state["names"] = set(ns)
        return "ok"

    immutable = (str, bytes, int, float, complex, bool, type(None), tuple, frozenset, range, type,
                 types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
                 torch.device, torch.dtype, torch.Size)

    # WALKER
    class Reach(pickle.Pickler):
        """Walks a value as pickle would: the ids of the mutable objects in it and the storages of its tensors."""
        def __init__(self):
            super().__init__(Null(), protocol=4)
            self.storages = set()

        def reducer_override(self, obj):
            if isinstance(obj, torch.Tensor):
                storage = obj.untyped_storage()
                if storage.nbytes():
                    self.storages.add((storage.device.type, storage.data_ptr()))
                return tuple, ((),)  # its data is not walked
            return NotImplemented

    def reach(value, alive):
        """``alive`` keeps every object walked (temporaries of __reduce__ too) until the caller is done comparing:
        otherwise a freed temporary's id could be reused by another and look like a shared object."""
        walker = Reach()
        try:
            walker.dump(value)
        except Exception:
            pass  # what was walked before the failure still counts
        memo = walker.memo.copy()
        alive.append(memo)
        ids = {key for key, (_, obj) in memo.items() if not isinstance(obj, immutable)}
        return ids | walker.storages

    hidden = {"In", "Out", "exit", "quit", "get_ipython"}

    def travelling(values, defined):
        """Other globals that share an object or a tensor storage with ``values`` join them (as a real run
        would leave them sharing); None and why when a notebook function holds one in a default or closure."""
        alive = []
        target = reach(values, alive)
        others = {n: v for n, v in ns.items() if n not in values and n not in defined and n not in hidden
                  and not n.startswith("_") and not isinstance(v, types.ModuleType)}
        grown = True
        while grown:
            grown = False
            for name, value in list(others.items()):
                if isinstance(value, types.FunctionType):
                    if value.__module__ != "__main__":
                        continue
                    held = (value.__defaults__, value.__kwdefaults__,
                            [c.cell_contents for c in value.__closure__ or () if c.cell_contents is not c])
                    if reach(held, alive) & target:
                        return None, f"the function {name}() holds, as a default or in a closure, what the cell changes"
                    continue
                if isinstance(value, immutable):
                    continue
                ids = reach(value, alive)
                if ids & target:
                    values[name] = value
                    target |= ids
                    del others[name]
                    grown = True
        return values, None

    def save(path, bound, deleted, defined):
        # names that appeared without a top-level assignment (a function's `global x`) are bound by the cell too
        bound = set(bound) | {n for n in ns if n not in state.get("names", ns) and not n.startswith("_")}
        changed = []
        for name, old in state["before"].items():
            if name in bound or name not in ns:
                continue
            if old is None:
                return f"cannot tell whether {name} changed (it cannot be pickled)"
            if digest(ns[name])[0] != old:
                changed.append(name)
        values = {n: ns[n] for n in sorted(set(bound) | set(changed)) if n in ns and n not in defined}
        values, why = travelling(values, set(defined))
        if values is None:
            return why
        total, graph = digest(values)
        if total is None or graph:
            return "its values cannot be pickled" if total is None else "it keeps an autograd graph"
        absent = sorted(n for n in set(bound) | set(deleted) if n not in ns)
        rng = {"torch": torch.get_rng_state(), "random": random.getstate(), "numpy": numpy.random.get_state()}
        walker = Tensors()
        walker.dump(values)  # torch.save drops .grad: kept by the tensors' order in this walk (the loader walks alike)
        grads = [(i, t.grad) for i, t in enumerate(walker.found) if t.is_leaf and t.grad is not None]
        try:
            torch.save({"values": values, "absent": absent, "rng": rng, "grads": grads}, path)
        except Exception as exc:
            if os.path.exists(path):
                os.unlink(path)
            return f"torch.save failed ({type(exc).__name__})"
        os.chmod(path, 0o400)
        return "ok"

    module.before, module.save = before, save
    sys.modules["_helpers_reuse"] = module


__helpers_reuse_install()
del __helpers_reuse_install
'''
KERNEL = KERNEL.replace("    # WALKER\n", WALKER, 1)
