"""Resolve an entry point ``file.py:function`` or ``package.module:function`` to a callable."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ablab.errors import EntryError, did_you_mean


def entry_file(entry: str, root: Path) -> Path | None:
    """The source file of ``entry`` if it names a file (relative to ``root``), else None."""
    target = entry.rsplit(":", 1)[0]
    if target.endswith(".py"):
        p = Path(target)
        return (p if p.is_absolute() else root / p).resolve()
    return None


def load_entry(entry: str, root: Path) -> Callable[..., Any]:
    """Import the entry's module and return the named function.

    A file entry is imported as a module whose directory is put on ``sys.path`` (so it can import
    its neighbours); its module name is derived from its path, so two studies' ``train.py`` files
    do not collide.
    """
    if ":" not in entry:
        raise EntryError(
            f"entry '{entry}' has no ':function' part",
            hint="write 'file.py:function' or 'package.module:function'",
        )
    target, func = entry.rsplit(":", 1)
    path = entry_file(entry, root)
    if path is not None:
        if not path.is_file():
            raise EntryError(
                f"entry file '{target}' not found (looked for {path})",
                hint="entry paths are relative to the study file",
            )
        name = "ablab_entry_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(name)
        if module is None:
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as e:
            raise EntryError(
                f"entry module '{target}' cannot be imported: {e}",
                hint="check the module name, or give a file path 'train.py:train'",
            ) from None
    obj: Any = module
    for part in func.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise EntryError(
                f"entry '{entry}': '{target}' has no function '{func}'",
                hint=did_you_mean(func, names) or f"it defines: {', '.join(names[:12])}",
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise EntryError(f"entry '{entry}' is not callable")
    return obj
