"""Keep each run's output: its stdout and stderr go to files in its run folder, never to ablab's.

The redirection is at the file-descriptor level (``os.dup2`` on fds 1 and 2), so prints from C
extensions, subprocesses the entry starts and ``faulthandler`` land in the files too, not only
Python's ``print``. Entry kinds that run another program (command entries) reuse
:func:`capture_output` around it, or pass :func:`log_paths` to the child as its stdout/stderr.

``ablab logs KEY`` reads the files back; ``ablab run --show-output`` follows them while the runs
execute (:class:`LogTailer`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STDOUT_LOG = "stdout.log"
STDERR_LOG = "stderr.log"
LOG_NAMES = (STDOUT_LOG, STDERR_LOG)


def log_paths(run_dir: str | Path) -> tuple[Path, Path]:
    """The (stdout, stderr) log files of a run folder."""
    d = Path(run_dir)
    return d / STDOUT_LOG, d / STDERR_LOG


def _flush_all() -> None:
    for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if s is not None:
                s.flush()
        except (OSError, ValueError):
            pass
    try:  # C stdio buffers (printf from an extension), fully buffered when fd 1 is a file
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except Exception:
        pass


@contextmanager
def capture_output(
    run_dir: str | Path, *, append: bool = False, header: str = ""
) -> Iterator[None]:
    """Send this process's fds 1 and 2 to ``run_dir/stdout.log`` and ``run_dir/stderr.log`` for
    the duration of the block (``append``: keep what earlier attempts wrote; ``header``: a line
    written to both files first). Restores the previous fds afterwards, also on error."""
    out_path, err_path = log_paths(run_dir)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _flush_all()
    mode = "ab" if append else "wb"
    with open(out_path, mode) as fo, open(err_path, mode) as fe:
        if header:
            for f in (fo, fe):
                f.write(header.encode() + b"\n")
                f.flush()
        saved = os.dup(1), os.dup(2)
        try:
            os.dup2(fo.fileno(), 1)
            os.dup2(fe.fileno(), 2)
            yield
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def quiet_worker_stdout() -> None:
    """Point a worker process's fd 1 at its fd 2, so nothing it prints outside a run (a warning
    while importing libraries) can reach the driver's stdout, which ``--json`` keeps clean."""
    _flush_all()
    os.dup2(2, 1)


def read_tail(path: Path, lines: int | None = None, max_bytes: int = 1 << 20) -> str:
    """The last ``lines`` lines of a log (all when None), reading at most ``max_bytes`` from its end."""
    if not path.is_file():
        return ""
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size > max_bytes:
            f.seek(size - max_bytes)
        data = f.read().decode("utf-8", errors="replace")
    if lines is None:
        return data
    if lines <= 0:
        return ""
    parts = data.splitlines(keepends=True)
    return "".join(parts[-lines:])


class LogTailer:
    """Follows the log files of run folders: :meth:`poll` returns what was appended since the
    last call, as ``(label, stream, text)``; a folder no longer passed in gets one final read."""

    def __init__(self) -> None:
        self._offsets: dict[Path, int] = {}
        self._dirs: dict[Path, str] = {}

    def poll(self, dirs: dict[str, Path]) -> list[tuple[str, str, str]]:
        current = {Path(d): label for label, d in dirs.items()}
        out = []
        for d, label in {**self._dirs, **current}.items():
            for stream, path in zip(("stdout", "stderr"), log_paths(d), strict=True):
                text = self._read_new(path)
                if text:
                    out.append((label, stream, text))
        for d in set(self._dirs) - set(current):  # finished: read once more above, then forget
            for p in log_paths(d):
                self._offsets.pop(p, None)
        self._dirs = current
        return out

    def skip_to_end(self, path: Path) -> None:
        """Report only what is appended to ``path`` from now on."""
        try:
            self._offsets[path] = path.stat().st_size
        except OSError:
            pass

    def _read_new(self, path: Path) -> str:
        try:
            size = path.stat().st_size
        except OSError:
            return ""
        start = self._offsets.get(path, 0)
        if size < start:  # truncated (a new attempt): start over
            start = 0
        if size == start:
            return ""
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
        self._offsets[path] = size
        return data.decode("utf-8", errors="replace")
