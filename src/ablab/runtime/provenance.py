"""Provenance: the environment a study ran in, and a fingerprint of its code."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ENV_PREFIXES = (
    "CUDA",
    "CUBLAS",
    "CUDNN",
    "OMP_",
    "MKL_",
    "OPENBLAS",
    "PYTHONHASHSEED",
    "TORCH",
    "ABLAB_",
    "NCCL",
    "KMP_",
    "PYTORCH",
    "CONDA_PREFIX",  # conda: ablab export then writes an environment.yml
    "CONDA_DEFAULT_ENV",
)
_SKIP_DIRS = {
    ".git",
    ".ablab",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info() -> list[dict[str, Any]]:
    """Names, memory, driver and CUDA version of visible GPUs (only if torch is already imported)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append(
            {
                "name": p.name,
                "memory_gb": round(p.total_memory / 2**30, 1),
                "capability": f"{p.major}.{p.minor}",
                "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version(),
            }
        )
    try:
        drv = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        for g, d in zip(out, drv, strict=False):
            g["driver"] = d
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def packages() -> dict[str, str]:
    """Every installed distribution and its version."""
    from importlib import metadata

    out = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if name:
            out[name] = d.version
    return dict(sorted(out.items(), key=lambda kv: kv[0].lower()))


def git_state(path: Path) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and a SHA-256 of ``git diff HEAD`` for the repo holding ``path``."""

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", "-C", str(path), *args], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.decode(errors="replace") if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    diff = git("diff", "HEAD") or ""
    status = git("status", "--porcelain", "--untracked-files=no") or ""
    return {
        "commit": commit.strip(),
        "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "dirty": bool(status.strip()),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest(),
    }


def environment(root: Path | None = None) -> dict[str, Any]:
    """Everything about where a study runs, recorded once per study revision."""
    from ablab._version import __version__

    torch = sys.modules.get("torch")
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpus": gpu_info(),
        "torch": getattr(torch, "__version__", None) if torch else _dist_version("torch"),
        "ablab": __version__,
        "packages": packages(),
        "git": git_state(root or Path.cwd()),
        "command": sys.argv,
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
    }


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_hash(env: dict[str, Any]) -> str:
    """Hash of the parts of an environment that can change results (not the command line)."""
    from ablab.plan.expand import canonical_json

    keep = {k: v for k, v in env.items() if k not in ("command", "hostname")}
    return hashlib.sha256(canonical_json(keep).encode()).hexdigest()[:16]


def code_fingerprint(
    root: Path,
    extra: tuple[str, ...] = (),
    entry_file: Path | None = None,
    items: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Fingerprint of the study's declared code: SHA-256 of the entry file and of every ``*.py``
    file under each ``extra`` path (``[run] code``, relative to ``root``, the study's directory);
    ``items`` (label -> SHA-256) adds code that is not a file there, e.g. a notebook function's
    source. Each run's fingerprint adds the source files the run actually imported
    (:mod:`ablab.runtime.codeprint`), so unrelated scripts beside the study file do not count.

    Returns ``{"digest": ..., "files": {relative path: sha256}}`` so a change can be explained
    file by file. Content-based, so it works inside and outside git; the git state is recorded
    separately in the environment.
    """
    files: dict[str, str] = {}
    for base in [(root / e).resolve() for e in extra]:
        paths = [base] if base.is_file() else _py_files(base)
        for f in paths:
            files[_rel(f, root)] = hashlib.sha256(f.read_bytes()).hexdigest()
    if entry_file is not None and entry_file.is_file():
        files[_rel(entry_file, root)] = hashlib.sha256(entry_file.read_bytes()).hexdigest()
    files.update(items or {})
    from ablab.plan.expand import canonical_json

    digest = hashlib.sha256(canonical_json(files).encode()).hexdigest()[:16]
    return {"digest": digest, "files": dict(sorted(files.items()))}


def describe_code_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'modified: train.py; added: model.py' for two fingerprints."""
    a, b = old.get("files", {}), new.get("files", {})
    parts = []
    for label, names in (
        ("modified", [f for f in a if f in b and a[f] != b[f]]),
        ("added", [f for f in b if f not in a]),
        ("removed", [f for f in a if f not in b]),
    ):
        if names:
            parts.append(
                f"{label}: {', '.join(sorted(names)[:8])}" + (" ..." if len(names) > 8 else "")
            )
    return "; ".join(parts) or "fingerprint differs"


def _py_files(base: Path) -> list[Path]:
    out = []
    if not base.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py")]
    return out


def _rel(p: Path, root: Path) -> str:
    """``p`` relative to ``root``; a file outside it as ``../lib/x.py`` (so a study moved together
    with the code beside it keeps its fingerprint), or absolute on another drive."""
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        try:
            return Path(os.path.relpath(p.resolve(), root.resolve())).as_posix()
        except ValueError:
            return p.resolve().as_posix()


def study_files(root: Path, max_file: int, max_total: int) -> tuple[list[Path], list[str]]:
    """Every file of a study directory (hidden, store and cache folders left out), smallest
    budget first: (files kept, relative paths left out because they exceed the size limits)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    kept, skipped, total = [], [], 0
    for f in files:
        size = f.stat().st_size
        if size > max_file or total + size > max_total:
            skipped.append(_rel(f, root))
            continue
        total += size
        kept.append(f)
    return kept, skipped
