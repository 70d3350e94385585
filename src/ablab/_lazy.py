"""Lazy re-exports for package ``__init__`` modules (``import ablab`` stays fast)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(
    package: str, exports: Mapping[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` on first access and caches the value
    in ``namespace``. A name the module does not define is the module itself (a submodule export)."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        mod = import_module(module)
        value = getattr(mod, name, mod) if module == f"{package}.{name}" else getattr(mod, name)
        namespace[name] = value
        return value

    return __getattr__
