"""SQLite store: the only module that speaks SQL.

WAL mode; every state change is one ``BEGIN IMMEDIATE`` transaction, so two drivers on one
study claim each run exactly once and a ``kill -9`` at any moment leaves either the whole
result or none of it.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablab.errors import StoreError
from ablab.store.connect import (
    BUSY_TIMEOUT_S,
    Conn,
    check_database_file,
    connect,
    journal_mode,
    opening_lock,
    translate,
)
from ablab.store.liveness import driver_alive, node_id
from ablab.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "ablab.db"
CLAIMABLE = ("pending", "interrupted")


class Store:
    """A study store in ``directory`` (``ablab.db`` plus ``runs/<key>/`` artifact folders).

    Artifact paths inside the directory are recorded relative to it, so a store that is moved or
    copied (rsync from a cluster, a renamed project folder) still finds its checkpoints.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self._root = Path(os.path.abspath(self.dir))  # artifact paths are relative to this
        self.path = self.dir / DB_NAME
        mode = journal_mode(self.dir)  # before anything is created: refuses WAL on NFS & co
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store directory {self.dir}: {e}") from None
        with opening_lock(self.dir):
            check_database_file(self.path)
            try:
                raw = connect(self.path, mode)
            except sqlite3.Error as e:
                raise translate(e, self.path) from None
            self.conn = Conn(raw, self.path)
            try:
                self._migrate()
            except BaseException:
                raw.close()
                raise
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[Any]:
        """An immediate (write-locking) transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except StoreError:
                pass  # SQLite rolled back already (e.g. disk full); the original error matters
            raise
        else:
            self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.tx() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}, newer than this ablab "
                    f"understands ({SCHEMA_VERSION})",
                    hint="upgrade ablab",
                )
            for v in range(version, SCHEMA_VERSION):
                for stmt in MIGRATIONS[v].split(";"):
                    if stmt.strip():
                        c.execute(stmt)
            if version != SCHEMA_VERSION:
                c.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy the write-ahead log into ``ablab.db`` (``PASSIVE``: as far as readers allow,
        without waiting; ``TRUNCATE`` on close also empties the log). Best effort: a busy or
        failing checkpoint loses nothing, the log still holds the records."""
        raw = getattr(self.conn, "_conn", self.conn)
        try:
            if mode != "PASSIVE":  # waits for other processes' transactions: briefly, not 60 s
                raw.execute("PRAGMA busy_timeout = 2000")
            raw.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except sqlite3.Error:
            pass
        finally:
            if mode != "PASSIVE":
                raw.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")

    def close(self) -> None:
        """Checkpoint the log into ``ablab.db`` (so the file alone holds every record), close."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if isinstance(self.conn, Conn):  # opened for writing by __init__ (not a reader's)
            self.checkpoint("TRUNCATE")
        self.conn.close()

    @property
    def _artifacts(self) -> Path:
        """Where run folders go: ``$ABLAB_ARTIFACTS`` (e.g. shared storage), else the store."""
        env = os.environ.get("ABLAB_ARTIFACTS")
        return Path(os.path.abspath(env)) if env else self._root

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, key: str, revision: str = "main") -> Path:
        """A run's artifact folder (absolute, so workers in another directory write it too)."""
        return self._artifacts / "runs" / (key if revision == "main" else f"{revision}/{key}")

    def artifact_to_record(self, path: str | Path) -> str:
        """An artifact path as the store records it: relative to the store directory (with ``/``
        separators) when the file lies inside it, else absolute. A relative ``path`` is taken
        relative to the current directory, as the worker that wrote it saw it."""
        p = Path(os.path.abspath(path))
        if p.is_relative_to(self._root):
            return p.relative_to(self._root).as_posix()
        real, root = p.resolve(), self._root.resolve()  # e.g. /tmp vs /private/tmp on macOS
        return real.relative_to(root).as_posix() if real.is_relative_to(root) else str(p)

    def artifact_path(self, recorded: str) -> str:
        """A recorded artifact path made absolute: relative ones are joined to the store directory
        (wherever it is now); absolute ones (outside the store, or from older stores) stay as they are."""
        return recorded if os.path.isabs(recorded) else os.path.normpath(self._root / recorded)

    # -- environments and studies ---------------------------------------------------------
    def environment_id(self, env: dict[str, Any], env_hash: str) -> int:
        with self.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO environments (hash, data) VALUES (?, ?)",
                (env_hash, json.dumps(env, default=str)),
            )
            return c.execute("SELECT id FROM environments WHERE hash = ?", (env_hash,)).fetchone()[
                0
            ]

    def environment(self, env_id: int | None) -> dict[str, Any] | None:
        if env_id is None:
            return None
        row = self.conn.execute("SELECT data FROM environments WHERE id = ?", (env_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def study(self, name: str, revision: str | None = None) -> dict[str, Any] | None:
        """A study row (the newest revision when ``revision`` is None)."""
        if revision is None:
            row = self.conn.execute(
                "SELECT * FROM studies WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT * FROM studies WHERE name = ? AND revision = ?", (name, revision)
            ).fetchone()
        return _study_dict(row) if row else None

    def studies(self) -> list[dict[str, Any]]:
        return [_study_dict(r) for r in self.conn.execute("SELECT * FROM studies ORDER BY id")]

    def create_study(
        self,
        name: str,
        revision: str,
        source: str | None,
        spec: dict[str, Any],
        fingerprint: dict[str, Any],
        environment_id: int,
    ) -> dict[str, Any]:
        with self.tx() as c:
            c.execute(
                "INSERT OR IGNORE INTO studies (name, revision, source, spec, code_digest, "
                "fingerprint, environment_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    revision,
                    source,
                    json.dumps(spec, default=str),
                    fingerprint["digest"],
                    json.dumps(fingerprint),
                    environment_id,
                    time.time(),
                ),
            )
        found = self.study(name, revision)
        assert found is not None
        return found

    def update_study(
        self, study_id: int, spec: dict[str, Any], fingerprint: dict[str, Any], environment_id: int
    ) -> None:
        with self.tx() as c:
            c.execute(
                "UPDATE studies SET spec = ?, code_digest = ?, fingerprint = ?, environment_id = ? "
                "WHERE id = ?",
                (
                    json.dumps(spec, default=str),
                    fingerprint["digest"],
                    json.dumps(fingerprint),
                    environment_id,
                    study_id,
                ),
            )

    # -- the run queue --------------------------------------------------------------------
    def add_runs(self, study_id: int, runs: Iterable[Any]) -> int:
        """Insert planned runs that are not in the store yet; returns how many were new."""
        now = time.time()
        with self.tx() as c:
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO runs (study_id, key, variant, seed, split_seed, sensitivity, "
                "config, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        study_id,
                        r.key,
                        r.variant,
                        r.seed,
                        r.split_seed,
                        r.sensitivity,
                        json.dumps(r.config, sort_keys=True, default=str),
                        now,
                    )
                    for r in runs
                ],
            )
            return c.total_changes - before

    def reset_for_new_invocation(self, study_id: int, keys: list[str], retries: int) -> None:
        """Give failed, interrupted and pending runs of this plan a fresh attempt budget."""
        with self.tx() as c:
            c.executemany(
                "UPDATE runs SET status = CASE status WHEN 'failed' THEN 'pending' ELSE status END, "
                "max_attempts = attempts + 1 + ? WHERE study_id = ? AND key = ? "
                "AND status IN ('pending', 'failed', 'interrupted')",
                [(retries, study_id, k) for k in keys],
            )

    def register_driver(self) -> int:
        now = time.time()
        with self.tx() as c:
            cur = c.execute(
                "INSERT INTO drivers (host, pid, started_at, heartbeat, node) "
                "VALUES (?, ?, ?, ?, ?)",
                (socket.gethostname(), os.getpid(), now, now, node_id()),
            )
            return int(cur.lastrowid or 0)

    def heartbeat(self, driver_id: int) -> None:
        with self.tx() as c:
            c.execute("UPDATE drivers SET heartbeat = ? WHERE id = ?", (time.time(), driver_id))

    def unregister_driver(self, driver_id: int) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM drivers WHERE id = ?", (driver_id,))

    def requeue_orphans(self, study_id: int | None = None) -> int:
        """Runs left ``running`` by a driver that is gone go back to the queue as
        ``interrupted`` (in every study: an orphan is an orphan), and the rows of dead drivers
        are deleted; :mod:`ablab.store.liveness` says how a driver is judged. Returns how many
        runs of ``study_id`` (of all studies when None) were re-queued."""
        with self.tx() as c:
            drivers = c.execute("SELECT * FROM drivers").fetchall()
            live = {d["id"] for d in drivers if driver_alive(d)}
            rows = c.execute("SELECT id, study_id, driver_id FROM runs WHERE status = 'running'")
            orphans = [r for r in rows.fetchall() if r["driver_id"] not in live]
            c.executemany(
                "UPDATE runs SET status = 'interrupted', error = 'driver died while the run "
                "was executing', max_attempts = MAX(max_attempts, attempts + 1) WHERE id = ?",
                [(r["id"],) for r in orphans],
            )
            c.executemany(
                "DELETE FROM drivers WHERE id = ?",
                [(d["id"],) for d in drivers if d["id"] not in live],
            )
            return sum(study_id is None or r["study_id"] == study_id for r in orphans)

    def drivers_of(self, run_ids: list[int]) -> list[dict[str, Any]]:
        """The drivers (host, pid, started_at, heartbeat) that own these runs."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        return [
            dict(r)
            for r in self.conn.execute(
                "SELECT DISTINCT d.id, d.host, d.pid, d.started_at, d.heartbeat FROM drivers d "
                f"JOIN runs r ON r.driver_id = d.id WHERE r.id IN ({marks})",
                tuple(run_ids),
            )
        ]

    def claim(
        self, study_id: int, driver_id: int, keys: set[str] | None = None
    ) -> dict[str, Any] | None:
        """Atomically take the next runnable run of the study (restricted to ``keys``), or None."""
        with self.tx() as c:
            rows = c.execute(
                "SELECT * FROM runs WHERE study_id = ? AND status IN ('pending', 'interrupted') "
                "AND attempts < max_attempts ORDER BY COALESCE(run_order, id), id",
                (study_id,),
            )
            row = next((r for r in rows if keys is None or r["key"] in keys), None)
            if row is None:
                return None
            c.execute(
                "UPDATE runs SET status = 'running', driver_id = ?, attempts = attempts + 1, "
                "started_at = ?, ended_at = NULL WHERE id = ?",
                (driver_id, time.time(), row["id"]),
            )
        d = _run_dict(row)
        d["attempts"] += 1
        d["status"] = "running"
        return d

    def finish(
        self,
        run_id: int,
        driver_id: int,
        *,
        status: str,
        metrics: dict[str, float] | None = None,
        series: list[tuple[str, int, float]] | None = None,
        data: dict[str, tuple[str, str]] | None = None,
        artifacts: dict[str, str] | None = None,
        resources: dict[str, Any] | None = None,
        error: str | None = None,
        traceback: str | None = None,
        code_digest: str | None = None,
        environment_id: int | None = None,
        code_files: dict[str, str] | None = None,
    ) -> str | None:
        """Record a run's outcome in one transaction. A failed run with attempts left goes back to
        ``pending``. Returns the status recorded, or None (recording nothing) when this driver no
        longer owns the run."""
        res = resources or {}
        if status == "done":
            metrics, series, data, artifacts = check_outcome(metrics, series, data, artifacts)
        with self.tx() as c:
            row = c.execute(
                "SELECT attempts, max_attempts FROM runs WHERE id = ? AND driver_id = ? "
                "AND status = 'running'",
                (run_id, driver_id),
            ).fetchone()
            if row is None:
                return None
            if status == "failed" and row["attempts"] < row["max_attempts"]:
                status = "pending"
            c.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM series WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM data_hashes WHERE run_id = ?", (run_id,))
            c.execute("DELETE FROM artifacts WHERE run_id = ?", (run_id,))
            c.execute(
                "UPDATE runs SET status = ?, ended_at = ?, wall_seconds = ?, cpu_seconds = ?, "
                "peak_rss_mb = ?, peak_gpu_mb = ?, threads = ?, host = ?, worker_pid = ?, error = ?, "
                "traceback = ?, code_digest = COALESCE(?, code_digest), "
                "environment_id = COALESCE(?, environment_id), "
                "code_files = COALESCE(?, code_files) WHERE id = ?",
                (
                    status,
                    time.time(),
                    res.get("wall_seconds"),
                    res.get("cpu_seconds"),
                    res.get("peak_rss_mb"),
                    res.get("peak_gpu_mb"),
                    res.get("threads"),
                    res.get("host"),
                    res.get("pid"),
                    error,
                    traceback,
                    code_digest,
                    environment_id,
                    json.dumps(code_files) if code_files is not None else None,
                    run_id,
                ),
            )
            if status == "done":
                c.executemany(
                    "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
                    [(run_id, k, to_sql(v)) for k, v in metrics.items()],
                )
                c.executemany(
                    "INSERT INTO series (run_id, name, step, value) VALUES (?, ?, ?, ?)",
                    [(run_id, n, s, to_sql(v)) for n, s, v in series],
                )
                c.executemany(
                    "INSERT INTO data_hashes (run_id, name, kind, sha256) VALUES (?, ?, ?, ?)",
                    [(run_id, n, k, h) for n, (k, h) in data.items()],
                )
                c.executemany(
                    "INSERT INTO artifacts (run_id, name, path) VALUES (?, ?, ?)",
                    [(run_id, n, self.artifact_to_record(p)) for n, p in artifacts.items()],
                )
        return status

    def set_order(self, study_id: int, order: dict[str, int]) -> None:
        """Record the execution order (``run_order``) of runs not done yet."""
        with self.tx() as c:
            c.executemany(
                "UPDATE runs SET run_order = ? WHERE study_id = ? AND key = ? AND status != 'done'",
                [(i, study_id, k) for k, i in order.items()],
            )

    def mark_interrupted(self, run_ids: Iterable[int], driver_id: int) -> None:
        with self.tx() as c:
            c.executemany(
                "UPDATE runs SET status = 'interrupted', ended_at = ?, error = 'interrupted by the user', "
                "max_attempts = MAX(max_attempts, attempts + 1) "
                "WHERE id = ? AND driver_id = ? AND status = 'running'",
                [(time.time(), i, driver_id) for i in run_ids],
            )

    # -- queries --------------------------------------------------------------------------
    def runs(self, study_id: int, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Run rows of a study (in plan order) with their metrics."""
        rows = [
            _run_dict(r)
            for r in self.conn.execute(
                "SELECT * FROM runs WHERE study_id = ? ORDER BY id", (study_id,)
            )
        ]
        metrics: dict[int, dict[str, float]] = {}
        for r in self.conn.execute(
            "SELECT m.run_id, m.name, m.value FROM metrics m JOIN runs r "
            "ON r.id = m.run_id WHERE r.study_id = ?",
            (study_id,),
        ):
            metrics.setdefault(r[0], {})[r[1]] = from_sql(r[2])
        for d in rows:
            d["metrics"] = metrics.get(d["id"], {})
        if keys is not None:
            order = {k: i for i, k in enumerate(keys)}
            rows = sorted((d for d in rows if d["key"] in order), key=lambda d: order[d["key"]])
        return rows

    def find_run(self, key: str, study_id: int | None = None) -> dict[str, Any] | None:
        """The newest run whose key equals (or uniquely starts with) ``key``, with all its records
        (only among the runs of ``study_id``, one study revision, when given)."""
        where, args = ("AND study_id = ? ", (study_id,)) if study_id is not None else ("", ())
        rows = self.conn.execute(
            f"SELECT * FROM runs WHERE key = ? {where}ORDER BY id DESC", (key, *args)
        ).fetchall()
        if not rows:
            rows = self.conn.execute(
                f"SELECT * FROM runs WHERE key LIKE ? {where}ORDER BY id DESC",
                (key.replace("%", "") + "%", *args),
            ).fetchall()
            if len({r["key"] for r in rows}) > 1:
                raise StoreError(
                    f"run key prefix '{key}' is ambiguous: it matches "
                    f"{', '.join(sorted({r['key'] for r in rows})[:5])}",
                    hint="give more characters of the key",
                )
        if not rows:
            return None
        d = _run_dict(rows[0])
        rid = d["id"]
        c = self.conn
        d["metrics"] = {
            r[0]: from_sql(r[1])
            for r in c.execute("SELECT name, value FROM metrics WHERE run_id = ?", (rid,))
        }
        d["series"] = [
            (r[0], r[1], from_sql(r[2]))
            for r in c.execute(
                "SELECT name, step, value FROM series WHERE run_id = ? ORDER BY name, step, rowid",
                (rid,),
            )
        ]
        d["data"] = {
            r[0]: (r[1], r[2])
            for r in c.execute(
                "SELECT name, kind, sha256 FROM data_hashes WHERE run_id = ?", (rid,)
            )
        }
        d["artifacts"] = {
            r[0]: self.artifact_path(r[1])
            for r in c.execute("SELECT name, path FROM artifacts WHERE run_id = ?", (rid,))
        }
        srow = c.execute("SELECT * FROM studies WHERE id = ?", (d["study_id"],)).fetchone()
        d["study"] = _study_dict(srow)
        d["environment"] = self.environment(d["environment_id"])
        return d

    def series(self, study_id: int) -> list[tuple[str, str, int, str, int, float]]:
        """(key, variant, seed, name, step, value) of every done run's logged series."""
        return [
            (*tuple(r)[:5], from_sql(r[5]))
            for r in self.conn.execute(
                "SELECT r.key, r.variant, r.seed, s.name, s.step, s.value FROM series s JOIN runs r "
                "ON r.id = s.run_id WHERE r.study_id = ? AND r.status = 'done' "
                "ORDER BY r.id, s.name, s.step, s.rowid",
                (study_id,),
            )
        ]

    def data_hashes(self, study_id: int) -> list[tuple[str, str, str, str]]:
        return [
            tuple(r)
            for r in self.conn.execute(
                "SELECT r.key, d.name, d.kind, d.sha256 FROM data_hashes d JOIN runs r ON r.id = d.run_id "
                "WHERE r.study_id = ? ORDER BY r.id, d.name",
                (study_id,),
            )
        ]


NAN_TEXT = "NaN"
INT64 = 2**63


def to_sql(value: float) -> float | str:
    """How a metric or series value is stored. SQLite keeps +-inf as REAL but turns NaN into
    NULL, so NaN is stored as the text ``'NaN'`` in the REAL column (``typeof(value) = 'text'``);
    :func:`from_sql` reads it back as ``float('nan')``."""
    return NAN_TEXT if math.isnan(value) else value


def from_sql(value: Any) -> float:
    return math.nan if value == NAN_TEXT else value


class BadOutcome(ValueError):
    """A run's outcome that cannot be recorded as it is (the engine records the run failed)."""


def check_outcome(
    metrics: dict[str, Any] | None,
    series: list[Any] | None,
    data: dict[str, Any] | None,
    artifacts: dict[str, Any] | None,
) -> tuple[
    dict[str, float], list[tuple[str, int, float]], dict[str, tuple[str, str]], dict[str, str]
]:
    """Validate what a run sent back (it is untrusted: an entry may put anything into its
    records) before any SQL: names are strings, values floats, steps 64-bit integers."""
    try:
        m = {_name(k): _real(v) for k, v in (metrics or {}).items()}
        s = [(_name(n), _step(st), _real(v)) for n, st, v in (series or [])]
        d = {_name(n): (_name(k), _name(h)) for n, (k, h) in (data or {}).items()}
        a = {_name(n): os.fspath(p) for n, p in (artifacts or {}).items()}
    except (TypeError, ValueError, OverflowError) as e:
        raise BadOutcome(f"the run's records cannot be stored: {e}") from None
    return m, s, d, a


def _name(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string name, got {type(v).__name__} {v!r}"[:200])
    return v


def _real(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"expected a number, got {type(v).__name__} {v!r}"[:200])
    return float(v)


def _step(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -INT64 <= v < INT64:
        raise ValueError(f"step {v!r} is not a 64-bit integer"[:200])
    return v


def _run_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["config"] = json.loads(d["config"])
    if d.get("code_files"):
        d["code_files"] = json.loads(d["code_files"])
    return d


def _study_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["spec"] = json.loads(d["spec"])
    d["fingerprint"] = json.loads(d["fingerprint"])
    return d
