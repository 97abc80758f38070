"""The reference kernel's side of reuse.py: compare the names a cell may change, and save a slow cell's results.

``KERNEL`` runs (after the grader's bootstrap) only in the kernel of a reference run, where no student
code runs. It defines the module ``_helpers_reuse`` with ``before(names)`` (checksums of the values a
cell may change: the names it mentions and the globals the notebook's own functions among them read)
and ``save(path, bound, deleted, defined)`` (one torch.save file: the values the cell bound or changed,
the names it removed, the random generators' states; "ok" or why not).
"""

from __future__ import annotations

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
        return "ok"

    def save(path, bound, deleted, defined):
        changed = []
        for name, old in state["before"].items():
            if name in bound or name not in ns:
                continue
            if old is None:
                return f"cannot tell whether {name} changed (it cannot be pickled)"
            if digest(ns[name])[0] != old:
                changed.append(name)
        values = {n: ns[n] for n in sorted(set(bound) | set(changed)) if n in ns and n not in defined}
        total, graph = digest(values)
        if total is None or graph:
            return "its values cannot be pickled" if total is None else "it keeps an autograd graph"
        absent = sorted(n for n in set(bound) | set(deleted) if n not in ns)
        rng = {"torch": torch.get_rng_state(), "random": random.getstate(), "numpy": numpy.random.get_state()}
        try:
            torch.save({"values": values, "absent": absent, "rng": rng}, path)
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
