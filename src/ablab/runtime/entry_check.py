"""Check an entry point before any worker starts, without running the user's code.

``check_entry`` is the one place that decides whether an entry can be called; it dispatches on
the entry's kind. For ``file.py:function`` and ``package.module:function`` strings it checks,
statically (nothing of the user's module is executed in the driver: module top-level code may
start CUDA or take minutes):

- the file or module exists and is a Python source file (not a directory or a data file);
- it is UTF-8 text and compiles (a ``SyntaxError`` names the line);
- its top-level ``import`` statements name modules that can be found (``importlib.util.find_spec``,
  which locates a module without importing it; imports inside ``try`` blocks are optional and
  skipped);
- it defines the function at top level, and a plain ``def`` accepts ``(config, run)``: two
  positional arguments, no other required ones.

Anything that can only be known by running the module (a decorator that changes the signature,
names made by ``globals()`` or ``from x import *``) is left to the first run.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ablab.errors import EntryError, did_you_mean
from ablab.runtime.entry import entry_file

_HINT = "write 'file.py:function' (relative to the study file) or 'package.module:function'"


def check_entry(entry: Any, root: Path) -> None:
    """Raise :class:`EntryError` if ``entry`` certainly cannot be called as ``fn(config, run)``.

    Entry kinds other than ``file.py:function``/``module:function`` strings are accepted here
    unchanged (their own modules check them).
    """
    if not isinstance(entry, str):
        return
    if ":" not in entry:
        raise EntryError(f"entry '{entry}' has no ':function' part", hint=_HINT)
    target, func = entry.rsplit(":", 1)
    if target in sys.modules:
        return  # already imported in this process (a function given to the Python API)
    if not func or not all(p.isidentifier() for p in func.split(".")):
        raise EntryError(f"entry '{entry}': '{func}' is not a function name", hint=_HINT)
    path = entry_file(entry, root)
    if path is None:
        if "/" in target or "\\" in target or Path(target).suffix.lower() in _DATA_SUFFIXES:
            raise EntryError(
                f"entry '{entry}': '{target}' is not a Python file (entry files end in .py)",
                hint=_HINT,
            )
        path = _module_file(entry, target, root)
        if path is None:
            return
        _check_source(entry, path, func, str(root))
        return
    elif not path.exists():
        raise EntryError(
            f"entry file '{target}' not found (looked for {path})",
            hint="entry paths are relative to the study file",
        )
    elif not path.is_file():
        raise EntryError(f"entry '{entry}': {path} is a directory, not a Python file", hint=_HINT)
    _check_source(entry, path, func, str(path.parent))


_DATA_SUFFIXES = {
    ".csv",
    ".json",
    ".txt",
    ".toml",
    ".yaml",
    ".yml",
    ".npy",
    ".pt",
    ".pkl",
    ".ipynb",
}


def _module_file(entry: str, target: str, root: Path) -> Path | None:
    added = str(root) not in sys.path
    if added:
        sys.path.insert(0, str(root))
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError) as e:
        spec, err = None, e
    else:
        err = None
    finally:
        if added:
            sys.path.remove(str(root))
    if spec is None:
        raise EntryError(
            f"entry module '{target}' cannot be found" + (f" ({err})" if err else ""),
            hint="check the module name (is its package installed?), or give a file path "
            "'train.py:train'",
        )
    origin = spec.origin
    if origin and origin.endswith(".py"):
        return Path(origin)
    return None  # a compiled or namespace module: checked when a worker imports it


def _check_source(entry: str, path: Path, func: str, search: str) -> None:
    data = path.read_bytes()
    if b"\x00" in data:
        raise EntryError(f"entry '{entry}': {path} is a binary file, not Python source", hint=_HINT)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise EntryError(
            f"entry '{entry}': {path} is not UTF-8 text (offset {e.start})",
            hint="save the entry file as UTF-8",
        ) from None
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as e:
        raise EntryError(
            f"entry '{entry}': {path} line {e.lineno}: {e.msg}",
            hint="fix the syntax error (python -m py_compile FILE shows it)",
        ) from None
    except (ValueError, RecursionError, MemoryError) as e:
        raise EntryError(f"entry '{entry}': {path} cannot be compiled ({e})") from None
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    if not ({"sys", "importlib", "__import__"} & names):  # no sys.path games before imports
        _check_imports(entry, path, tree, search)
    if {"globals", "exec", "vars", "setattr"} & names:
        return  # names made at run time: left to the first run
    _check_function(entry, path, tree, func.split(".")[0], nested="." in func)


def _check_imports(entry: str, path: Path, tree: ast.Module, search: str) -> None:
    added = [search] if search not in sys.path else []
    sys.path[:0] = added
    try:
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.modules:
                    continue
                try:
                    found = importlib.util.find_spec(top)
                except (ImportError, ValueError):
                    found = None
                if found is None:
                    raise EntryError(
                        f"entry '{entry}': {path.name} line {node.lineno} imports '{name}', "
                        "which is not installed in this environment",
                        hint=f"install it (pip install {top}) or fix the import",
                    )
    finally:
        for p in added:
            sys.path.remove(p)


def _check_function(entry: str, path: Path, tree: ast.Module, name: str, nested: bool) -> None:
    defined: dict[str, ast.AST] = {}
    dynamic = False
    for node in tree.body:
        for n, d in _defines(node):
            if n == "*":
                dynamic = True
            else:
                defined[n] = d
    if name == "__getattr__" or "__getattr__" in defined:
        dynamic = True
    if name not in defined:
        if dynamic:
            return
        names = [n for n in defined if not n.startswith("_")]
        raise EntryError(
            f"entry '{entry}': {path.name} defines no function '{name}'",
            hint=did_you_mean(name, names) or f"it defines: {', '.join(names[:12]) or 'nothing'}",
        )
    d = defined[name]
    if nested or not isinstance(d, (ast.FunctionDef, ast.AsyncFunctionDef)) or d.decorator_list:
        return
    a = d.args
    pos = [*a.posonlyargs, *a.args]
    required = len(pos) - len(a.defaults)
    kw_required = [k.arg for k, v in zip(a.kwonlyargs, a.kw_defaults, strict=True) if v is None]
    if (len(pos) < 2 and a.vararg is None) or required > 2 or kw_required:
        params = ast.unparse(a)
        raise EntryError(
            f"entry '{entry}': {name}({params}) cannot be called as {name}(config, run)",
            hint=f"define it as: def {name}(config, run): ... and return a dict of metrics",
        )


def _defines(node: ast.stmt) -> list[tuple[str, ast.AST]]:
    """Top-level names a statement binds (for if/try blocks: the names of every branch)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [(node.name, node)]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [((a.asname or a.name).split(".")[0], node) for a in node.names]
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return [(n.id, node) for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
        out: list[tuple[str, ast.AST]] = []
        blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
        blocks += [h.body for h in getattr(node, "handlers", [])]
        for block in blocks:
            for child in block:
                out += _defines(child)
        return out
    if isinstance(node, ast.Expr) or isinstance(node, ast.Pass):
        return []
    return [("*", node)] if isinstance(node, ast.Global) else []
