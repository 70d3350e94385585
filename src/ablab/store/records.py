"""Store operations for verification records and for importing recorded runs (bundles)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from ablab.store.db import Store, _study_dict, to_sql


def add_verification(
    store: Store,
    run_id: int,
    kind: str,
    verdict: str,
    details: dict[str, Any],
    environment_id: int | None,
) -> None:
    with store.tx() as c:
        c.execute(
            "INSERT INTO verifications (run_id, kind, verdict, details, environment_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, kind, verdict, json.dumps(details, default=str), environment_id, time.time()),
        )


def verifications(
    store: Store, *, study_id: int | None = None, key: str | None = None
) -> list[dict[str, Any]]:
    """Verification records of one study or one run key, oldest first."""
    sql = (
        "SELECT v.*, r.key, r.variant, r.seed FROM verifications v JOIN runs r ON r.id = v.run_id WHERE "
        + ("r.study_id = ?" if study_id is not None else "r.key = ?")
        + " ORDER BY v.id"
    )
    out = []
    for row in store.conn.execute(sql, (study_id if study_id is not None else key,)):
        d = dict(row)
        d["details"] = json.loads(d["details"])
        out.append(d)
    return out


def import_study(
    store: Store,
    study: dict[str, Any],
    environments: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """Load a study revision and its run records (as exported) in ONE transaction.

    ``environments``: hash -> environment dict; each run names its environment by hash.
    Refuses (raising StoreError, writing nothing) when the store already holds that study
    revision with different runs.
    """
    from ablab.errors import StoreError

    with store.tx() as c:
        env_ids: dict[str, int] = {}
        for h, env in environments.items():
            c.execute(
                "INSERT OR IGNORE INTO environments (hash, data) VALUES (?, ?)",
                (h, json.dumps(env)),
            )
            env_ids[h] = c.execute("SELECT id FROM environments WHERE hash = ?", (h,)).fetchone()[0]
        row = c.execute(
            "SELECT * FROM studies WHERE name = ? AND revision = ?",
            (study["name"], study["revision"]),
        ).fetchone()
        if row is not None:
            existing = {
                r[0] for r in c.execute("SELECT key FROM runs WHERE study_id = ?", (row["id"],))
            }
            if existing and existing != {r["key"] for r in runs}:
                raise StoreError(
                    f"the store already holds study '{study['name']}' revision "
                    f"'{study['revision']}' with other runs",
                    hint="import into another --store directory",
                )
            study_id = row["id"]
        else:
            cur = c.execute(
                "INSERT INTO studies (name, revision, source, spec, code_digest, fingerprint, "
                "environment_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    study["name"],
                    study["revision"],
                    study.get("source"),
                    json.dumps(study["spec"]),
                    study["code_digest"],
                    json.dumps(study["fingerprint"]),
                    env_ids.get(study.get("environment_hash", "")),
                    study["created_at"],
                ),
            )
            study_id = cur.lastrowid
        for r in runs:
            if c.execute(
                "SELECT 1 FROM runs WHERE study_id = ? AND key = ?", (study_id, r["key"])
            ).fetchone():
                continue
            cur = c.execute(
                "INSERT INTO runs (study_id, key, variant, seed, split_seed, sensitivity, config, status, "
                "attempts, max_attempts, host, started_at, ended_at, wall_seconds, cpu_seconds, peak_rss_mb, "
                "peak_gpu_mb, threads, code_digest, environment_id, error, traceback, created_at, "
                "code_files, run_order) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    study_id,
                    r["key"],
                    r["variant"],
                    r["seed"],
                    r.get("split_seed"),
                    r.get("sensitivity"),
                    json.dumps(r["config"], sort_keys=True),
                    r["status"],
                    r.get("attempts", 1),
                    r.get("attempts", 1),
                    r.get("host"),
                    r.get("started_at"),
                    r.get("ended_at"),
                    r.get("wall_seconds"),
                    r.get("cpu_seconds"),
                    r.get("peak_rss_mb"),
                    r.get("peak_gpu_mb"),
                    r.get("threads"),
                    r.get("code_digest"),
                    env_ids.get(r.get("environment_hash") or ""),
                    r.get("error"),
                    r.get("traceback"),
                    r.get("created_at") or time.time(),
                    _code_files(r.get("code_files")),
                    r.get("run_order") if isinstance(r.get("run_order"), int) else None,
                ),
            )
            rid = cur.lastrowid
            c.executemany(
                "INSERT INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
                [(rid, k, _value(v)) for k, v in r.get("metrics", {}).items()],
            )
            c.executemany(
                "INSERT INTO series (run_id, name, step, value) VALUES (?, ?, ?, ?)",
                [(rid, n, s, _value(v)) for n, s, v in r.get("series", [])],
            )
            c.executemany(
                "INSERT INTO data_hashes (run_id, name, kind, sha256) VALUES (?, ?, ?, ?)",
                [(rid, n, kd[0], kd[1]) for n, kd in r.get("data", {}).items()],
            )
        srow = c.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
    return _study_dict(srow)


def _value(v: Any) -> float | str:
    """A value from records.json (JSON writes NaN/inf as null) as the store keeps it."""
    return to_sql(math.nan if v is None else float(v))


def revisions_with_key(store: Store, key: str) -> list[dict[str, Any]]:
    """Every study revision holding a run whose key equals (or starts with) ``key``, oldest
    first: ``{"study", "revision", "study_id", "key", "status"}``."""
    rows = store.conn.execute(
        "SELECT s.name, s.revision, s.id, r.key, r.status FROM runs r JOIN studies s "
        "ON s.id = r.study_id WHERE r.key = ? ORDER BY s.id",
        (key,),
    ).fetchall()
    if not rows:
        rows = store.conn.execute(
            "SELECT s.name, s.revision, s.id, r.key, r.status FROM runs r JOIN studies s "
            "ON s.id = r.study_id WHERE r.key LIKE ? ORDER BY s.id",
            (key.replace("%", "") + "%",),
        ).fetchall()
    return [
        {"study": r[0], "revision": r[1], "study_id": r[2], "key": r[3], "status": r[4]}
        for r in rows
    ]


def _code_files(v: Any) -> str | None:
    """A bundle's per-run code file list, kept only when it is ``{path: sha256}`` strings."""
    ok = isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(h, str) for k, h in v.items()
    )
    return json.dumps(v) if ok else None


def environment_hash_of(store: Store, env_id: int | None) -> str | None:
    if env_id is None:
        return None
    row = store.conn.execute("SELECT hash FROM environments WHERE id = ?", (env_id,)).fetchone()
    return row[0] if row else None


def run_artifacts(store: Store, study_id: int) -> dict[int, dict[str, str]]:
    """Run id -> {artifact name: absolute path} for every recorded artifact of a study's runs."""
    out: dict[int, dict[str, str]] = {}
    for row in store.conn.execute(
        "SELECT a.run_id, a.name, a.path FROM artifacts a JOIN runs r "
        "ON r.id = a.run_id WHERE r.study_id = ?",
        (study_id,),
    ):
        out.setdefault(row[0], {})[row[1]] = store.artifact_path(row[2])
    return out


def attach_metrics(store: Store, metrics: dict[int, dict[str, float]]) -> None:
    """Add (or replace) metrics on existing runs, all in ONE transaction: numbers computed after
    the runs finished, e.g. MD tree's pair features of two seeds. Values must be finite (SQLite
    would store NaN as NULL); a run that is re-run later loses them with its other metrics."""
    import math

    from ablab.errors import StoreError

    bad = [
        f"run {rid}: {k}={v}"
        for rid, m in metrics.items()
        for k, v in m.items()
        if not math.isfinite(float(v))
    ]
    if bad:
        raise StoreError(
            f"cannot record non-finite metric(s): {', '.join(bad[:5])}",
            hint="leave undefined values out",
        )
    with store.tx() as c:
        c.executemany(
            "INSERT OR REPLACE INTO metrics (run_id, name, value) VALUES (?, ?, ?)",
            [(rid, k, float(v)) for rid, m in metrics.items() for k, v in m.items()],
        )
