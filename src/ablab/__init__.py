"""ablab: trustworthy model experiments.

Public API (imported lazily so ``import ablab`` stays fast)::

    import ablab
    study = ablab.Study.load("study.toml")     # or ablab.Study(name=..., entry=..., ...)
    ablab.run(study)                            # run every variant over every seed
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ablab._version import __version__
from ablab.errors import AblabError

_LAZY = {
    "Study": "ablab.api",
    "run": "ablab.api",
    "open_store": "ablab.api",
    "Run": "ablab.runtime.run",
    "seed_worker": "ablab.runtime.seeding",
    "seed_everything": "ablab.runtime.seeding",
    "diagnose": "ablab.mdtree",
    "probe_model": "ablab.probe",
}

__all__ = ["__version__", "AblabError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ablab' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
