"""The SQLite store: schema, atomic claims, outcomes, interruptions, orphans and artifact paths."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest

from ablab.errors import StoreError
from ablab.plan.expand import expand
from ablab.spec import parse_study
from ablab.store.db import Store
from ablab.store.records import run_artifacts
from ablab.store.schema import SCHEMA_VERSION

SPEC = parse_study(
    {
        "name": "s",
        "entry": "e.py:f",
        "seeds": 3,
        "metrics": {"acc": "max"},
        "baseline": {"h": 1},
        "ablations": {"b": {"h": 2}},
    }
)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "st") as st:
        yield st


def setup(st, retries=0):
    env_id = st.environment_id({"python": "3"}, "envhash")
    study = st.create_study("s", "main", None, {}, {"digest": "d1", "files": {}}, env_id)
    plan = expand(SPEC)
    assert st.add_runs(study["id"], plan.runs) == 6
    assert st.add_runs(study["id"], plan.runs) == 0  # idempotent
    st.reset_for_new_invocation(study["id"], [r.key for r in plan.runs], retries)
    return study, plan


def test_schema_is_versioned_and_wal(store):
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store(store.dir).close()  # reopening migrates nothing and keeps data


def test_not_a_database_and_newer_schema(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ablab.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        Store(bad)
    new = tmp_path / "new"
    Store(new).close()
    c = sqlite3.connect(new / "ablab.db")
    c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    c.close()
    with pytest.raises(StoreError, match="newer than this ablab understands"):
        Store(new)


def test_claim_finish_and_queries(store):
    study, plan = setup(store)
    d = store.register_driver()
    r = store.claim(study["id"], d)
    assert r["key"] == plan.runs[0].key and r["status"] == "running" and r["attempts"] == 1
    assert (
        store.finish(
            r["id"],
            d,
            status="done",
            metrics={"acc": 0.5},
            series=[("loss", 0, 1.0)],
            data={"x": ("array", "ab")},
            artifacts={"model": "/m.pt"},
            resources={"wall_seconds": 1.5, "pid": 42},
            code_digest="d1",
            environment_id=study["environment_id"],
        )
        == "done"
    )
    rows = store.runs(study["id"])
    assert (
        rows[0]["status"] == "done"
        and rows[0]["metrics"] == {"acc": 0.5}
        and rows[0]["wall_seconds"] == 1.5
    )
    full = store.find_run(r["key"][:6])
    assert full["series"] == [("loss", 0, 1.0)] and full["data"] == {"x": ("array", "ab")}
    assert full["artifacts"] == {"model": "/m.pt"} and full["environment"] == {"python": "3"}
    assert store.find_run("0123456789abcdef") is None
    # a second finish of the same run (no longer running) records nothing
    assert store.finish(r["id"], d, status="failed", error="late") is None
    assert store.runs(study["id"])[0]["status"] == "done"


def test_only_the_owner_records(store):
    study, _ = setup(store)
    d1, d2 = store.register_driver(), store.register_driver()
    r = store.claim(study["id"], d1)
    assert store.finish(r["id"], d2, status="done", metrics={"acc": 1.0}) is None
    assert store.runs(study["id"])[0]["status"] == "running"


def test_failed_runs_with_attempts_left_return_to_the_queue(store):
    study, plan = setup(store, retries=1)
    d = store.register_driver()
    keys = {plan.runs[0].key}
    r = store.claim(study["id"], d, keys)
    assert store.finish(r["id"], d, status="failed", error="boom") == "pending"
    r2 = store.claim(study["id"], d, keys)
    assert r2["id"] == r["id"] and r2["attempts"] == 2
    assert store.finish(r2["id"], d, status="failed", error="boom", traceback="tb") == "failed"
    assert store.claim(study["id"], d, keys) is None
    row = store.runs(study["id"])[0]
    assert (row["status"], row["attempts"], row["error"], row["traceback"]) == (
        "failed",
        2,
        "boom",
        "tb",
    )
    # a new invocation gives it a fresh budget
    store.reset_for_new_invocation(study["id"], list(keys), 0)
    assert store.claim(study["id"], d, keys)["attempts"] == 3


def test_interrupted_and_orphaned_runs_are_requeued(store):
    study, _ = setup(store)
    d = store.register_driver()
    a, b = store.claim(study["id"], d), store.claim(study["id"], d)
    store.mark_interrupted([a["id"]], d)
    assert store.requeue_orphans(study["id"]) == 0  # b's driver (this process) is alive
    # a driver process that has exited leaves b running: the next start re-queues it
    dead = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from ablab.store.db import Store; s = Store({str(store.dir)!r}); "
            f"print(s.register_driver())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_id = int(dead.stdout)
    store.conn.execute("UPDATE runs SET driver_id = ? WHERE id = ?", (dead_id, b["id"]))
    assert store.requeue_orphans(study["id"]) == 1
    rows = {r["id"]: r for r in store.runs(study["id"])}
    assert (
        rows[a["id"]]["status"] == "interrupted"
        and rows[a["id"]]["error"] == "interrupted by the user"
    )
    assert rows[b["id"]]["status"] == "interrupted" and "driver died" in rows[b["id"]]["error"]
    again = {store.claim(study["id"], d)["id"], store.claim(study["id"], d)["id"]}
    assert again == {a["id"], b["id"]}


def test_concurrent_claims_take_each_run_once(tmp_path):
    with Store(tmp_path / "st") as st:
        study, _ = setup(st)
    claimed: list[str] = []
    lock = threading.Lock()

    def worker():
        with Store(tmp_path / "st") as s:
            d = s.register_driver()
            while (r := s.claim(study["id"], d)) is not None:
                with lock:
                    claimed.append(r["key"])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 6 and len(set(claimed)) == 6


def test_revisions_keep_separate_run_folders(store):
    assert store.run_dir("abc") == store.dir / "runs" / "abc"
    assert store.run_dir("abc", "r2") == store.dir / "runs" / "r2" / "abc"


def test_artifact_paths_inside_the_store_are_recorded_relative(store, tmp_path, monkeypatch):
    study, plan = setup(store)
    d = store.register_driver()
    a, b = store.claim(study["id"], d), store.claim(study["id"], d)
    inside = store.run_dir(a["key"]) / "model.pt"
    outside = tmp_path / "elsewhere" / "probe.json"
    store.finish(
        a["id"],
        d,
        status="done",
        metrics={"acc": 1.0},
        artifacts={"model": str(inside), "probe": str(outside)},
    )
    raw = dict(
        store.conn.execute(
            "SELECT name, path FROM artifacts WHERE run_id = ?", (a["id"],)
        ).fetchall()
    )
    assert raw == {"model": f"runs/{a['key']}/model.pt", "probe": str(outside)}
    assert store.find_run(a["key"])["artifacts"] == {"model": str(inside), "probe": str(outside)}
    # a worker's relative path is relative to the current directory, like a relative store directory
    monkeypatch.chdir(tmp_path)
    store.finish(
        b["id"],
        d,
        status="done",
        metrics={"acc": 1.0},
        artifacts={"model": "st/runs/x/model.pt", "log": "elsewhere/log.txt"},
    )
    raw = dict(
        store.conn.execute(
            "SELECT name, path FROM artifacts WHERE run_id = ?", (b["id"],)
        ).fetchall()
    )
    assert raw == {"model": "runs/x/model.pt", "log": str(tmp_path / "elsewhere" / "log.txt")}
    # an old store's absolute path reads back as it is
    store.conn.execute(
        "INSERT INTO artifacts (run_id, name, path) VALUES (?, 'old', '/old/place/model.pt')",
        (b["id"],),
    )
    expected = {
        a["id"]: {"model": str(inside), "probe": str(outside)},
        b["id"]: {
            "model": str(store.dir / "runs" / "x" / "model.pt"),
            "log": str(tmp_path / "elsewhere" / "log.txt"),
            "old": "/old/place/model.pt",
        },
    }
    assert run_artifacts(store, study["id"]) == expected
    with Store("st") as relative:  # the same store opened by a relative path reads absolute paths
        assert relative.run_dir("k") == store.dir / "runs" / "k"
        assert run_artifacts(relative, study["id"]) == expected
        assert relative.find_run(b["key"])["artifacts"] == expected[b["id"]]


def test_a_moved_study_finds_its_artifacts(ok_study, tools, tmp_path, cli):
    import torch

    cluster = tools.copy_study(ok_study["dir"], tmp_path / "cluster" / "study")
    moved = tmp_path / "laptop" / "study"
    moved.parent.mkdir()
    shutil.move(cluster, moved)
    assert not cluster.exists()
    with Store(moved / ".ablab") as st:
        study = st.study("tiny")
        runs, artifacts = st.runs(study["id"]), run_artifacts(st, study["id"])
        assert len(runs) == 6 and {r["id"] for r in runs} == set(artifacts)
        for r in runs:
            path = moved / ".ablab" / "runs" / r["key"] / "model.pt"
            assert artifacts[r["id"]] == {"model": str(path)} == st.find_run(r["key"])["artifacts"]
            assert set(torch.load(path, weights_only=True)) == {
                "0.weight",
                "0.bias",
                "2.weight",
                "2.bias",
            }
    code, out, _ = cli("show", runs[0]["key"], "--store", moved / ".ablab")
    assert (
        code == 0
        and f"artifact model: {moved / '.ablab' / 'runs' / runs[0]['key'] / 'model.pt'}" in out
    )


def test_finish_refuses_records_it_cannot_store_before_any_sql(store):
    from ablab.store.db import BadOutcome

    study, _ = setup(store)
    d = store.register_driver()
    r = store.claim(study["id"], d)
    for bad in (
        {"series": [("loss", 2**70, 1.0)]},
        {"metrics": {"acc": "high"}},
        {"artifacts": {"model": object()}},
    ):
        with pytest.raises(BadOutcome):
            store.finish(r["id"], d, status="done", **bad)
    assert (
        store.finish(
            r["id"],
            d,
            status="done",
            metrics={"acc": float("nan"), "inf": float("inf")},
            series=[("loss", 0, float("nan")), ("loss", 1, -float("inf"))],
        )
        == "done"
    )
    got = store.find_run(r["key"])
    assert got["metrics"]["inf"] == float("inf") and got["metrics"]["acc"] != got["metrics"]["acc"]
    assert (
        got["series"][1] == ("loss", 1, -float("inf"))
        and got["series"][0][2] != got["series"][0][2]
    )


def test_liveness_by_pid_on_this_node_and_by_heartbeat_elsewhere(store):
    """A stopped driver on this node keeps its runs however old its heartbeat; a driver in
    another PID namespace (same host name) is judged by its heartbeat, never by a pid here."""
    import os
    import socket
    import time

    study, _ = setup(store)
    me = store.register_driver()
    runs = [store.claim(study["id"], me) for _ in range(3)]
    old = time.time() - 10_000
    # 1: this process, as if SIGSTOPped for hours: alive by pid
    store.conn.execute("UPDATE drivers SET heartbeat = ? WHERE id = ?", (old, me))
    host = socket.gethostname()
    with store.tx() as c:  # 2, 3: same host name, another PID namespace
        fresh = c.execute(
            "INSERT INTO drivers (host, pid, started_at, heartbeat, node) VALUES (?, ?, ?, ?, ?)",
            (host, 999_999_999, old, time.time(), "other-boot/4026531836"),
        ).lastrowid
        stale = c.execute(
            "INSERT INTO drivers (host, pid, started_at, heartbeat, node) VALUES (?, ?, ?, ?, ?)",
            (host, os.getpid(), old, old, "other-boot/4026531836"),
        ).lastrowid
        c.execute("UPDATE runs SET driver_id = ? WHERE id = ?", (fresh, runs[1]["id"]))
        c.execute("UPDATE runs SET driver_id = ? WHERE id = ?", (stale, runs[2]["id"]))
    assert store.requeue_orphans(study["id"]) == 1
    status = {r["id"]: r["status"] for r in store.runs(study["id"])}
    assert [status[r["id"]] for r in runs] == ["running", "running", "interrupted"]
    ids = {r[0] for r in store.conn.execute("SELECT id FROM drivers").fetchall()}
    assert ids == {me, fresh}  # the dead driver's row is cleaned up
