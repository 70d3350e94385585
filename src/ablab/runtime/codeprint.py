"""Which source files a run actually used, and whether they changed since.

The worker lists the ``.py`` files of every module imported into it that lies outside the Python
installation and its site-packages (the study's own code, wherever it lives: a model package in
another folder counts, an unrelated plotting script beside the study file does not). The driver
joins them with the entry file and ``[run] code`` paths into the run's code fingerprint.
Installed packages are versioned by the environment record instead.
"""

from __future__ import annotations

import hashlib
import os
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any

_CACHE: dict[str, tuple[int, int, str]] = {}  # path -> (mtime, size, sha256)


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file (cached by mtime and size within a process); None when unreadable."""
    p = str(path)
    try:
        st = os.stat(p)
    except OSError:
        return None
    hit = _CACHE.get(p)
    if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
        return hit[2]
    try:
        with open(p, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None
    _CACHE[p] = (st.st_mtime_ns, st.st_size, digest)
    return digest


def _environment_dirs() -> tuple[str, ...]:
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, getattr(sys, "base_exec_prefix", "")}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            dirs.add(sysconfig.get_paths()[key])
        except KeyError:
            pass
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # virtualenv's old site module
        pass
    import ablab

    dirs.add(str(Path(ablab.__file__).parent))
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


def imported_sources() -> dict[str, str]:
    """``{absolute path: sha256}`` of the ``.py`` files of modules imported into this process that
    lie outside the Python installation, site-packages and ablab itself."""
    skip = _environment_dirs()
    out: dict[str, str] = {}
    for mod in list(sys.modules.values()):
        f = getattr(mod, "__file__", None)
        if not isinstance(f, str) or not f.endswith(".py"):
            continue
        real = os.path.realpath(f)
        if real.startswith(skip) or "site-packages" in real or "dist-packages" in real:
            continue
        digest = file_sha256(real)
        if digest is not None:
            out[real] = digest
    return dict(sorted(out.items()))


def relative_files(files: dict[str, str], root: Path) -> dict[str, str]:
    """Absolute paths made relative to the study folder (``../lib/model.py`` for code beside it),
    as :func:`ablab.runtime.provenance.code_fingerprint` names them."""
    from ablab.runtime.provenance import _rel

    return dict(sorted((_rel(Path(p), root), h) for p, h in files.items()))


def run_fingerprint(base: dict[str, str], imported: dict[str, str]) -> dict[str, Any]:
    """A run's code fingerprint: the study's declared code (entry file, ``[run] code``) plus what
    the run imported; ``{"digest", "files"}``."""
    from ablab.plan.expand import canonical_json

    files = dict(sorted({**base, **imported}.items()))
    return {
        "digest": hashlib.sha256(canonical_json(files).encode()).hexdigest()[:16],
        "files": files,
    }


def changed_files(files: dict[str, str], root: Path) -> tuple[list[str], list[str]]:
    """(modified, removed) among recorded ``{path: sha256}`` (relative paths are to ``root``)."""
    modified, removed = [], []
    for rel, digest in files.items():
        p = Path(rel) if os.path.isabs(rel) else root / rel
        now = file_sha256(p)
        if now is None:
            removed.append(rel)
        elif now != digest:
            modified.append(rel)
    return modified, removed
