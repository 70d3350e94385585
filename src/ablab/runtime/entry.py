"""Resolve a task's entry to the callable a worker runs.

``file.py:function`` and ``package.module:function`` are imported here; functions sent by value
(``entry_pickled``) and programs (``entry_command``) live in their own modules, all behind
:func:`resolve_entry`.
"""

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
    if entry.startswith("command:"):
        return None
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


def entry_payload(spec: Any) -> dict[str, Any] | None:
    """What a task carries to rebuild a command or by-value entry in the worker (None for a
    ``file.py:function`` entry, which the worker imports by name)."""
    from ablab.spec.entry import CommandEntry, FunctionEntry

    e = spec.entry_spec
    if isinstance(e, CommandEntry):
        return {"kind": "command", "tokens": list(e.tokens), "args": e.args}
    if isinstance(e, FunctionEntry):
        return {"kind": "function", "name": e.name, "payload": e.payload}
    return None


def resolve_entry(task: dict[str, Any]) -> Callable[..., Any]:
    """The one way workers get the ``(config, run) -> metrics`` callable of a task, whatever the
    entry's kind: imported by name (this module), unpickled (``entry_pickled``) or a program to
    run (``entry_command``)."""
    root = Path(task["root"])
    payload = task.get("entry_spec")
    if payload is None:
        return load_entry(task["entry"], root)
    if payload["kind"] == "function":
        from ablab.runtime.entry_pickled import load_function

        return load_function(payload["payload"])
    if payload["kind"] == "command":
        from ablab.runtime.entry_command import command_entry

        return command_entry(
            payload, root, task["metrics"], task.get("timeout"), task.get("threads", 1)
        )
    raise EntryError(f"unknown entry kind {payload['kind']!r}")


def spec_fingerprint(spec: Any) -> dict[str, Any]:
    """The code fingerprint of a study: its folder's Python files, ``[run] code``, the entry file,
    and for a by-value function the source of the function and the cells/files it came from."""
    from ablab.runtime.provenance import code_fingerprint
    from ablab.spec.entry import FunctionEntry

    e = spec.entry_spec
    items = dict(e.sources) if isinstance(e, FunctionEntry) else None
    return code_fingerprint(spec.root, spec.run.code, entry_file(spec.entry, spec.root), items)
