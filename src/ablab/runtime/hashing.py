"""Content hashes of data (arrays, tensors, files, directories) for provenance."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ablab.errors import DataError

_CHUNK = 1 << 20


def _file_digest(path: Path, h: Any) -> None:
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


def hash_data(obj: Any) -> tuple[str, str]:
    """Return ``(kind, sha256 hex)`` of ``obj``.

    - NumPy array / torch tensor: dtype, shape and the C-contiguous bytes (tensors are moved to
      the CPU), so equal values of equal shape and dtype hash equal on any device.
    - File path: its bytes. Directory path: every file's relative POSIX path and bytes, in sorted
      order (hidden files included, symlinks followed).
    - bytes / str: their bytes (UTF-8).
    """
    import numpy as np

    h = hashlib.sha256()
    if isinstance(obj, (str, os.PathLike)) and Path(obj).exists():
        p = Path(obj)
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                h.update(f.relative_to(p).as_posix().encode() + b"\0")
                _file_digest(f, h)
                h.update(b"\0")
            return "directory", h.hexdigest()
        _file_digest(p, h)
        return "file", h.hexdigest()
    if isinstance(obj, bytes):
        h.update(obj)
        return "bytes", h.hexdigest()
    if type(obj).__module__.startswith("torch"):
        obj = obj.detach().cpu().contiguous().numpy() if hasattr(obj, "detach") else obj
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        h.update(f"{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
        return "array", h.hexdigest()
    if isinstance(obj, (str, os.PathLike)):
        raise DataError(
            f"track_data: path '{obj}' does not exist",
            hint="pass an existing file or directory, an array or a tensor",
        )
    raise DataError(
        f"track_data: cannot hash an object of type {type(obj).__name__}",
        hint="pass a NumPy array, a torch tensor, bytes, or a file/directory path",
    )
