"""Isolation: a run that raises, kills its worker (os._exit, SIGKILL), hangs past its timeout or
returns bad metrics is recorded failed with its cause; the study goes on (exit code 1)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_exit_code_and_statuses(failure_study):
    res, runs = failure_study["result"], failure_study["runs"]
    assert res.returncode == 1, res.stdout + res.stderr
    assert {v: r["status"] for v, r in runs.items()} == {
        "baseline": "done",
        "raise": "failed",
        "exit": "failed",
        "sigkill": "failed",
        "hang": "failed",
        "nometric": "failed",
        "nan": "failed",
        "late-ok": "done",
    }
    assert all(r["attempts"] == 1 for r in runs.values())  # retries = 0
    assert "7/8 done" not in res.stdout and "2/8 done, 6 failed" in res.stdout
    assert "Traceback" not in res.stderr


def test_raising_run_records_its_traceback(failure_study):
    r = failure_study["runs"]["raise"]
    assert r["error"] == "ValueError: boom in raise"
    assert (
        "Traceback (most recent call last)" in r["traceback"]
        and 'raise ValueError(f"boom' in r["traceback"]
    )
    assert r["metrics"] == {}


def test_os_exit_and_sigkill_are_failed_with_the_cause(failure_study):
    runs = failure_study["runs"]
    assert "exited with code 3" in runs["exit"]["error"]
    assert "killed by SIGKILL" in runs["sigkill"]["error"]
    assert runs["exit"]["traceback"] is None and runs["sigkill"]["traceback"] is None


def test_hang_past_timeout_is_killed(failure_study):
    r = failure_study["runs"]["hang"]
    assert r["error"] == "timed out after 3 s: the run was killed"
    # started_at is the claim; a replacement worker may still be importing torch then (tens of
    # seconds on a loaded machine), and the timeout counts from the run's real start
    assert r["ended_at"] - r["started_at"] < 150


def test_bad_metrics_fail_with_a_clear_message(failure_study):
    runs = failure_study["runs"]
    assert "did not return declared metric(s) score" in runs["nometric"]["error"]
    assert "non-finite metric(s): score=nan" in runs["nan"]["error"]


def test_failures_are_reported_by_the_cli(failure_study):
    err = failure_study["result"].stderr
    for variant in ("raise", "exit", "sigkill", "hang", "nometric", "nan"):
        assert f"failed {variant} seed 0 [{failure_study['runs'][variant]['key']}]" in err
    assert "ablab show KEY" in err


def test_dead_workers_are_replaced(failure_study):
    """A worker that crashed or was killed never runs anything again; later runs executed in
    replacement workers."""
    calls = failure_study["calls"]
    start_pids = [int(c[3]) for c in calls if c[0] == "start"]
    by_key = {c[1]: int(c[3]) for c in calls if c[0] == "start"}
    runs = failure_study["runs"]
    assert set(by_key) == {r["key"] for r in runs.values()}
    assert len(start_pids) == len(runs)  # every run started exactly once (retries = 0)
    dead = {by_key[runs[v]["key"]] for v in ("exit", "sigkill", "hang")}
    assert len(dead) == 3
    starts = [(c[1], int(c[3])) for c in calls if c[0] == "start"]
    for v in ("exit", "sigkill", "hang"):
        key = runs[v]["key"]
        i = [k for k, _ in starts].index(key)
        assert by_key[key] not in [pid for _, pid in starts[i + 1 :]], (
            f"the worker of '{v}' ran again"
        )
    assert runs["late-ok"]["status"] == "done" and runs["late-ok"]["worker_pid"] not in dead
    assert len(set(start_pids)) >= 4  # 2 initial workers + replacements
