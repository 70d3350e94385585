"""A store opened read-only, for readers that must never write or block a driver (``ablab
serve``): SQLite's ``mode=ro`` URI plus ``PRAGMA query_only``. In WAL mode readers do not block
the writer, so a dashboard polling every second leaves running studies alone."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from ablab.errors import StoreError
from ablab.store.db import DB_NAME, Store


class ReadOnlyStore(Store):
    """:class:`Store`'s queries over a read-only connection (no directory created, no
    migration, no write possible)."""

    def __init__(self, directory: str | Path) -> None:  # noqa: D107 - no super().__init__: it writes
        self.dir = Path(directory)
        self._root = Path(os.path.abspath(self.dir))
        self.path = self.dir / DB_NAME
        if not self.path.is_file():
            raise StoreError(
                f"{self.dir}: no ablab store here (no {DB_NAME})",
                hint="give the .ablab folder beside a study file, or run a study first",
            )
        try:
            self.conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro",
                uri=True,
                timeout=10,
                isolation_level=None,
                check_same_thread=False,
            )
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA query_only=ON")
            self.fresh = not self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'"
            ).fetchone()  # a store a driver is creating right now: no tables yet
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path}: cannot read it as an ablab store ({e})") from None

    def _migrate(self) -> None:  # a reader never migrates
        return None

    def studies(self) -> list[dict[str, Any]]:
        return [] if self.fresh else super().studies()

    def status_counts(self) -> dict[int, dict[str, int]]:
        """study id -> {status: number of runs}."""
        out: dict[int, dict[str, int]] = {}
        if self.fresh:
            return out
        for sid, status, n in self.conn.execute(
            "SELECT study_id, status, count(*) FROM runs GROUP BY study_id, status"
        ):
            out.setdefault(sid, {})[status] = n
        return out

    def change_marker(self, study_id: int) -> tuple[Any, ...]:
        """Changes whenever a run of the study changes state or a verification is added."""
        row = self.conn.execute(
            "SELECT count(*), sum(status = 'done'), sum(status = 'failed'), "
            "sum(status = 'running'), max(ended_at), max(started_at), sum(attempts) "
            "FROM runs WHERE study_id = ?",
            (study_id,),
        ).fetchone()
        try:
            ver = self.conn.execute(
                "SELECT count(*) FROM verifications v JOIN runs r ON r.id = v.run_id "
                "WHERE r.study_id = ?",
                (study_id,),
            ).fetchone()[0]
        except sqlite3.OperationalError:  # an old schema without verifications
            ver = 0
        return (*tuple(row), ver)
