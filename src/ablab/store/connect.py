"""Opening the store's SQLite database safely, and turning SQLite's errors into user messages.

Following SQLite's own guidance (https://sqlite.org/wal.html, https://sqlite.org/useovernet.html,
https://sqlite.org/howtocorrupt.html):

- WAL needs shared memory between every process that opens the database, so all of them must
  be on one host and the file on a local file system. A store on NFS, Lustre, GPFS, CIFS/SMB or
  FUSE is refused (``ABLAB_STORE_JOURNAL=delete`` opts into the rollback journal for a file
  system whose POSIX locks are known to work and that one machine uses).
- Creating a database and switching it to WAL takes an exclusive lock that ``busy_timeout``
  does not wait for, so processes opening a store that does not exist yet serialise on an
  ``flock`` of ``ablab.lock`` in the store directory, and the switch is retried while busy.
- A file that exists but is empty or is not SQLite is never treated as a new store.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablab.errors import StoreError

LOCK_NAME = "ablab.lock"
BUSY_TIMEOUT_S = 60.0
SQLITE_HEADER = b"SQLite format 3\x00"
# file systems on which SQLite's WAL (shared memory, POSIX locks) is not safe
NETWORK_FS = {
    "nfs",
    "nfs4",
    "lustre",
    "gpfs",
    "cifs",
    "smb",
    "smb2",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "beegfs",
    "afs",
    "panfs",
    "ncpfs",
    "fuse",
    "fuseblk",
}


def mount_of(path: Path) -> tuple[str, str] | None:
    """``(mount point, file system type)`` holding ``path`` (the nearest existing parent), from
    ``/proc/mounts`` (or the file named by ``$ABLAB_MOUNTS``, which tests use); None off Linux."""
    table = Path(os.environ.get("ABLAB_MOUNTS") or "/proc/mounts")
    try:
        lines = table.read_text().splitlines()
    except OSError:
        return None
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    real = str(p.resolve())
    best: tuple[str, str] | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = _unescape(parts[1])
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, parts[2])
    return best


def _unescape(s: str) -> str:
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    for code in ("040", "011", "012", "134"):
        s = s.replace("\\" + code, chr(int(code, 8)))
    return s


def is_network_fs(fstype: str) -> bool:
    return fstype in NETWORK_FS or fstype.startswith("fuse.") or fstype.startswith("nfs")


def journal_mode(directory: Path) -> str:
    """``wal``, or ``delete`` when ``ABLAB_STORE_JOURNAL=delete``; refuses WAL on a network FS."""
    wanted = (os.environ.get("ABLAB_STORE_JOURNAL") or "wal").lower()
    if wanted not in ("wal", "delete"):
        raise StoreError(
            f"ABLAB_STORE_JOURNAL={wanted!r} is not a journal mode", hint="use wal or delete"
        )
    if wanted == "delete":
        return wanted
    found = mount_of(directory)
    if found and is_network_fs(found[1]):
        point, fstype = found
        raise StoreError(
            f"the store {directory} is on a {fstype} file system (mounted at {point}); SQLite's "
            "write-ahead log needs memory shared by every process using the database, which "
            "network and FUSE file systems do not provide, so concurrent drivers could corrupt it",
            hint="keep the store on a local disk (--store /local/dir or $ABLAB_STORE); run "
            "artifacts may stay on shared storage with $ABLAB_ARTIFACTS=/shared/dir. If only one "
            "machine ever uses this file system and its locks work, ABLAB_STORE_JOURNAL=delete "
            "uses SQLite's rollback journal instead",
        )
    return wanted


@contextmanager
def opening_lock(directory: Path) -> Iterator[None]:
    """Exclusive ``flock`` on ``directory/ablab.lock`` while a store is created or opened."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise StoreError(
            f"cannot write in the store directory {directory}: {e.strerror}",
            hint="ablab records runs there: make it writable, or choose another with --store",
        ) from None
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"the store {directory} is busy: another process has held {LOCK_NAME} "
                        f"for {BUSY_TIMEOUT_S:g} s",
                        hint="wait for it, or find it with: fuser " + str(path),
                    ) from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # releases the lock


def check_database_file(path: Path) -> None:
    """Refuse an ``ablab.db`` that exists but is empty or not an SQLite database."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size == 0:
        wal = path.with_name(path.name + "-wal")
        if wal.exists() and wal.stat().st_size > 0:
            return  # the records are in the write-ahead log; SQLite reads them from there
        raise StoreError(
            f"{path} is empty (0 bytes): it is not an ablab store, and treating it as a new one "
            "would run the study again over its recorded artifacts",
            hint=f"if it was a store, restore it from a backup; to start afresh, move it away "
            f"(mv {path} {path}.broken)",
        )
    with open(path, "rb") as f:
        head = f.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        raise StoreError(
            f"{path} is not an SQLite database (it starts with {head[:16]!r}), so not an ablab store",
            hint=f"point --store at another directory, or move the file away (mv {path} {path}.broken)",
        )


def connect(path: Path, mode: str) -> sqlite3.Connection:
    """Open ``path`` (inside :func:`opening_lock`) in ``mode``, retrying the switch while busy."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            got = conn.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
            break
        except sqlite3.OperationalError as e:
            if not is_busy(e) or time.monotonic() > deadline:
                conn.close()
                raise
            time.sleep(0.05)
    if got.lower() != mode:
        conn.close()
        raise StoreError(
            f"{path}: SQLite could not switch the store to journal mode {mode} (it stayed {got})",
            hint="keep the store on a local disk",
        )
    conn.execute("PRAGMA synchronous=NORMAL" if mode == "wal" else "PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def is_busy(e: BaseException) -> bool:
    name = getattr(e, "sqlite_errorname", "") or ""
    return (
        name.startswith("SQLITE_BUSY")
        or name.startswith("SQLITE_LOCKED")
        or ("database is locked" in str(e) or "database table is locked" in str(e))
    )


def translate(e: sqlite3.Error, path: Path) -> StoreError:
    """A :class:`StoreError` that says what happened to the store and what to do."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    if is_busy(e):
        return StoreError(
            f"the store {path} is busy: another process kept it locked for {BUSY_TIMEOUT_S:g} s "
            f"(SQLite: {text})",
            hint="this is not damage; try again when the other ablab process is done",
        )
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return StoreError(
            f"the disk holding the store {path} is full (SQLite: {text})",
            hint="free space and run the same command again: recorded runs are kept, runs that "
            "were in flight run again",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text or name == "SQLITE_CANTOPEN":
        return StoreError(
            f"cannot write the store {path} (SQLite: {text}); is its directory or file system "
            "read-only?",
            hint="make it writable, or copy the store folder to a writable place and use --store",
        )
    if name.startswith("SQLITE_CORRUPT") or name == "SQLITE_NOTADB" or "malformed" in text:
        return StoreError(
            f"the store's database {path} is damaged (SQLite: {text})",
            hint=f"recover what SQLite can: sqlite3 {path} .recover | sqlite3 recovered.db, then "
            f"move recovered.db to {path} (keep the damaged file); or restore a backup",
        )
    if name.startswith("SQLITE_IOERR"):
        return StoreError(
            f"the disk failed while ablab used the store {path} (SQLite: {text})",
            hint="check the disk (dmesg), free space and permissions, then run again",
        )
    return StoreError(f"the store {path} cannot be used (SQLite: {text})")


class Conn:
    """The connection, with every SQLite error raised as a :class:`StoreError` (a clear message
    and exit 2 from the CLI, never a traceback)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._path = path

    def execute(self, sql: str, params: Any = ()) -> Cursor:
        try:
            return Cursor(self._conn.execute(sql, params), self._path)
        except sqlite3.Error as e:
            raise translate(e, self._path) from e

    def executemany(self, sql: str, params: Any) -> Cursor:
        try:
            return Cursor(self._conn.executemany(sql, params), self._path)
        except sqlite3.Error as e:
            raise translate(e, self._path) from e

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class Cursor:
    def __init__(self, cur: sqlite3.Cursor, path: Path) -> None:
        self._cur = cur
        self._path = path

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except sqlite3.Error as e:
            raise translate(e, self._path) from e

    def fetchone(self) -> Any:
        return self._call(self._cur.fetchone)

    def fetchall(self) -> list[Any]:
        return self._call(self._cur.fetchall)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)
