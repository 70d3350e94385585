"""Entries passed as Python functions that a fresh worker cannot import by name.

A function defined in a notebook cell, in the running script (``__main__``), in ``python -`` on
stdin or inside another function has no module a worker could import it from. Like Ray and loky,
ablab serialises it *by value* with cloudpickle (its code, and the globals it uses, travel with
it) and each worker unpickles it once.

The code fingerprint covers what the function is made of: the source (or, where no source is
kept, e.g. ``python -``, the compiled code) of the entry and of every function and class of the
same module it reaches through its globals, plus the script file or notebook cell each came
from, keyed by stable labels (a notebook's cell file names change with every kernel).
"""

from __future__ import annotations

import hashlib
import inspect
import linecache
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablab.errors import EntryError
from ablab.spec.entry import FunctionEntry

_LOADED: dict[str, Callable[..., Any]] = {}


def needs_by_value(fn: Callable[..., Any]) -> bool:
    """True when a worker could not import ``fn`` by ``module:qualname``."""
    module = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", "")
    if not module or module == "__main__" or "<" in qual or module not in sys.modules:
        return True
    import importlib.util

    try:  # a module loaded from a file path (not from sys.path) cannot be imported by name
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def function_entry(fn: Callable[..., Any]) -> FunctionEntry | Callable[..., Any]:
    """``fn`` as a :class:`FunctionEntry` when it must travel by value, else ``fn`` itself."""
    if not callable(fn):
        raise EntryError(f"entry {fn!r} is not callable")
    if not needs_by_value(fn):
        return fn
    import cloudpickle

    try:
        payload = cloudpickle.dumps(fn)
    except Exception as e:  # noqa: BLE001 - any pickling failure is the user's to fix
        raise EntryError(
            f"entry function {getattr(fn, '__qualname__', fn)!r} cannot be sent to the workers: "
            f"{type(e).__name__}: {e}",
            hint="it (or a global it uses) holds something that cannot be pickled, e.g. an open "
            "file, a lock or a database connection: create it inside the function instead",
        ) from None
    name = f"{getattr(fn, '__module__', None) or '__main__'}:{getattr(fn, '__qualname__', 'entry')}"
    return FunctionEntry(name, payload, function_sources(fn))


def load_function(payload: bytes) -> Callable[..., Any]:
    """Unpickle a by-value entry (once per worker)."""
    digest = hashlib.sha256(payload).hexdigest()
    fn = _LOADED.get(digest)
    if fn is None:
        import cloudpickle

        try:
            fn = cloudpickle.loads(payload)
        except Exception as e:  # noqa: BLE001
            raise EntryError(
                f"the entry function could not be loaded in the worker: {type(e).__name__}: {e}",
                hint="a module it uses may be missing here, or the Python version differs",
            ) from None
        _LOADED[digest] = fn
    return fn


def function_sources(fn: Callable[..., Any]) -> dict[str, str]:
    """Stable label -> SHA-256 of every piece of code ``fn`` is made of (see the module doc)."""
    out: dict[str, str] = {}
    seen: set[int] = set()
    module = getattr(fn, "__module__", None)

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        label = f"{getattr(obj, '__module__', None)}:{getattr(obj, '__qualname__', '?')}"
        code = getattr(obj, "__code__", None)
        try:
            text = inspect.getsource(obj)
        except (OSError, TypeError):
            text = None
        if text is not None:
            out[f"entry source {label}"] = _sha(text.encode())
        elif code is not None:
            out[f"entry code {label}"] = _code_digest(code)
        origin = _origin(obj, code)
        if origin is not None:
            out[origin[0]] = origin[1]
        for ref in _referenced(obj, code):
            if getattr(ref, "__module__", None) == module:
                visit(ref)

    visit(fn)
    return dict(sorted(out.items()))


def _referenced(obj: Any, code: types.CodeType | None) -> list[Any]:
    """Functions and classes ``obj`` reaches through its globals (and a class's methods)."""
    if isinstance(obj, type):
        return [v for v in vars(obj).values() if isinstance(v, types.FunctionType)]
    if code is None:
        return []
    glb = getattr(obj, "__globals__", {})
    names: set[str] = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack += [k for k in c.co_consts if isinstance(k, types.CodeType)]
    return [glb[n] for n in sorted(names) if isinstance(glb.get(n), (types.FunctionType, type))]


def _origin(obj: Any, code: types.CodeType | None) -> tuple[str, str] | None:
    """(label, sha256) of the script file or notebook cell ``obj`` was defined in."""
    if code is None:
        return None
    filename = code.co_filename
    path = Path(filename)
    if path.is_file():
        return f"entry file {path.resolve().as_posix()}", _sha(path.read_bytes())
    lines = linecache.getlines(filename)  # IPython/Jupyter keep each cell's text here
    if lines:
        qual = getattr(obj, "__qualname__", "?")
        return f"entry cell of {qual}", _sha("".join(lines).encode())
    return None


def _code_digest(code: types.CodeType) -> str:
    """SHA-256 of compiled code (bytecode, constants, names; nested code objects recursively),
    for functions whose source text is not kept (``python -``)."""
    h = hashlib.sha256()

    def feed(c: types.CodeType) -> None:
        h.update(c.co_code)
        h.update(repr(c.co_names).encode())
        h.update(repr(c.co_varnames).encode())
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                feed(k)
            else:
                h.update(repr(k).encode())

    feed(code)
    return h.hexdigest()


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()
