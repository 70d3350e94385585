"""ablab: trustworthy model experiments.

Public API (imported lazily so ``import ablab`` stays fast)::

    import ablab
    study = ablab.Study.load("study.toml")     # or ablab.Study(name=..., entry=..., ...)
    ablab.run(study)                            # run every variant over every seed
    res = ablab.load(study)                     # res.runs(), res.series(key), res.report()
"""

from __future__ import annotations

from ablab._lazy import lazy_getattr
from ablab._version import __version__
from ablab.errors import AblabError

_LAZY = {
    "Study": "ablab.api",
    "run": "ablab.api",
    "open_store": "ablab.api",
    "load": "ablab.results_api",
    "Run": "ablab.runtime.run",
    "seed_worker": "ablab.runtime.seeding",
    "seed_everything": "ablab.runtime.seeding",
    "diagnose": "ablab.mdtree",
    "probe_model": "ablab.probe",
}

__all__ = ["__version__", "AblabError", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY, globals())
