"""The store's schema, versioned: migration N brings a database from version N-1 to N."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: studies, environments, drivers, runs and their records
    """
    CREATE TABLE environments (
        id INTEGER PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        data TEXT NOT NULL
    );
    CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        revision TEXT NOT NULL,
        source TEXT,
        spec TEXT NOT NULL,
        code_digest TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        environment_id INTEGER REFERENCES environments(id),
        created_at REAL NOT NULL,
        UNIQUE (name, revision)
    );
    CREATE TABLE drivers (
        id INTEGER PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat REAL NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id),
        key TEXT NOT NULL,
        variant TEXT NOT NULL,
        seed INTEGER NOT NULL,
        split_seed INTEGER,
        sensitivity TEXT,
        config TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'done', 'failed', 'interrupted')),
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 1,
        driver_id INTEGER,
        host TEXT,
        worker_pid INTEGER,
        started_at REAL,
        ended_at REAL,
        wall_seconds REAL,
        cpu_seconds REAL,
        peak_rss_mb REAL,
        peak_gpu_mb REAL,
        threads INTEGER,
        code_digest TEXT,
        environment_id INTEGER REFERENCES environments(id),
        error TEXT,
        traceback TEXT,
        created_at REAL NOT NULL,
        UNIQUE (study_id, key)
    );
    CREATE INDEX runs_status ON runs (study_id, status);
    CREATE TABLE metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE series (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        step INTEGER NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX series_run ON series (run_id, name, step);
    CREATE TABLE data_hashes (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        path TEXT NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

MIGRATIONS.append(
    # 2: verification records (reproduce, check-determinism)
    """
    CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('reproduce', 'determinism')),
        verdict TEXT NOT NULL,
        details TEXT NOT NULL,
        environment_id INTEGER REFERENCES environments(id),
        created_at REAL NOT NULL
    );
    CREATE INDEX verifications_run ON verifications (run_id);
    """
)
SCHEMA_VERSION = len(MIGRATIONS)

MIGRATIONS.append(
    # 3: the node a driver runs on (boot id / PID namespace), for judging its liveness by pid
    """
    ALTER TABLE drivers ADD COLUMN node TEXT;
    """
)

MIGRATIONS.append(
    # 4: per-run code fingerprint files (what the run imported) and execution order
    """
    ALTER TABLE runs ADD COLUMN code_files TEXT;
    ALTER TABLE runs ADD COLUMN run_order INTEGER
    """
)
SCHEMA_VERSION = len(MIGRATIONS)
