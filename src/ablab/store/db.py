"""SQLite store: the only module that speaks SQL.

WAL mode; every state change is one ``BEGIN IMMEDIATE`` transaction, so two drivers on one
study claim each run exactly once and a ``kill -9`` at any moment leaves either the whole
result or none of it.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablab.errors import StoreError
from ablab.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "ablab.db"
CLAIMABLE = ("pending", "interrupted")
STALE_HEARTBEAT_S = 120.0


class Store:
    """A study store in ``directory`` (``ablab.db`` plus ``runs/<key>/`` artifact folders).

    Artifact paths inside the directory are recorded relative to it, so a store that is moved or
    copied (rsync from a cluster, a renamed project folder) still finds its checkpoints.
    """

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self._root = Path(os.path.abspath(self.dir))  # artifact paths are relative to this
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store directory {self.dir}: {e}") from None
        self.path = self.dir / DB_NAME
        try:
            self.conn = sqlite3.connect(
                self.path, timeout=60, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"{self.path}: not a usable ablab store ({e})",
                hint="point --store at another directory, or move the broken file away",
            ) from None

    # -- plumbing -------------------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
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

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_dir(self, key: str, revision: str = "main") -> Path:
        """A run's artifact folder (absolute, so workers in another directory write it too)."""
        return self._root / "runs" / (key if revision == "main" else f"{revision}/{key}")

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
                "INSERT INTO drivers (host, pid, started_at, heartbeat) VALUES (?, ?, ?, ?)",
                (socket.gethostname(), os.getpid(), now, now),
            )
            return int(cur.lastrowid or 0)

    def heartbeat(self, driver_id: int) -> None:
        with self.tx() as c:
            c.execute("UPDATE drivers SET heartbeat = ? WHERE id = ?", (time.time(), driver_id))

    def unregister_driver(self, driver_id: int) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM drivers WHERE id = ?", (driver_id,))

    def requeue_orphans(self, study_id: int) -> int:
        """Runs left ``running`` by a driver that is gone go back to the queue as ``interrupted``."""
        host = socket.gethostname()
        now = time.time()
        with self.tx() as c:
            rows = c.execute(
                "SELECT r.id, r.driver_id, d.host, d.pid, d.started_at, d.heartbeat "
                "FROM runs r LEFT JOIN drivers d ON d.id = r.driver_id "
                "WHERE r.study_id = ? AND r.status = 'running'",
                (study_id,),
            ).fetchall()
            dead = [
                r["id"]
                for r in rows
                if r["host"] is None
                or (r["host"] == host and not _alive(r["pid"], r["started_at"]))
                or now - r["heartbeat"] > STALE_HEARTBEAT_S
            ]
            c.executemany(
                "UPDATE runs SET status = 'interrupted', error = 'driver died while the run "
                "was executing', max_attempts = MAX(max_attempts, attempts + 1) WHERE id = ?",
                [(i,) for i in dead],
            )
            return len(dead)

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
                    [(run_id, k, v) for k, v in (metrics or {}).items()],
                )
                c.executemany(
                    "INSERT INTO series (run_id, name, step, value) VALUES (?, ?, ?, ?)",
                    [(run_id, n, s, v) for n, s, v in (series or [])],
                )
                c.executemany(
                    "INSERT INTO data_hashes (run_id, name, kind, sha256) VALUES (?, ?, ?, ?)",
                    [(run_id, n, k, h) for n, (k, h) in (data or {}).items()],
                )
                c.executemany(
                    "INSERT INTO artifacts (run_id, name, path) VALUES (?, ?, ?)",
                    [(run_id, n, self.artifact_to_record(p)) for n, p in (artifacts or {}).items()],
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
            metrics.setdefault(r[0], {})[r[1]] = r[2]
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
            r[0]: r[1]
            for r in c.execute("SELECT name, value FROM metrics WHERE run_id = ?", (rid,))
        }
        d["series"] = [
            (r[0], r[1], r[2])
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
            tuple(r)
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


def _alive(pid: int, started_at: float) -> bool:
    try:
        import psutil

        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and p.create_time() <= started_at + 1.0
    except Exception:
        return False


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
