"""Runs that misbehave towards the driver never kill or block it (issue 14, "crashes that
loop"): NaN/inf values and huge steps, garbage written to the result channel, outcomes that
cannot be pickled, KeyboardInterrupt raised by the entry. One study holds them all, run once
through the real ``ablab run``."""

from __future__ import annotations

import math
import sqlite3

import pytest

pytestmark = pytest.mark.slow

ENTRY = """\
import os
import stat
import time


def _socket_fds():
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and stat.S_ISSOCK(os.fstat(fd).st_mode):
                yield fd
        except OSError:
            pass


def train(config, run):
    mode = config["mode"]
    if mode == "lognan":  # a diverging training loop
        run.log(step=0, loss=1.0)
        run.log(step=1, loss=float("nan"))
        run.log(step=2, loss=float("inf"))
    if mode == "extranan":
        run.log(step=0, acc=0.5)
        return {"score": 1.0, "extra": float("nan"), "low": float("-inf")}
    if mode == "hugestep":
        run.log(step=2**70, loss=1.0)
    if mode == "lastnan":  # the declared metric reduced from a series ends in NaN
        run.log(step=0, acc=0.5)
        run.log(step=1, acc=float("nan"))
    if mode == "garbage":  # a 4-byte "length" then silence: multiprocessing's recv waits forever
        for fd in _socket_fds():
            os.write(fd, b"\\x00\\x00\\x10\\x00")
        time.sleep(float(config["sleep"]))
    if mode == "unpicklable":
        run.artifacts["bad"] = lambda: 1
    if mode == "kbint":
        raise KeyboardInterrupt("pressed inside the entry")
    run.log(step=0, acc=0.9)
    return {"score": 1.0}
"""

STUDY = """\
name = "hostile"
entry = "entry.py:train"
seeds = [0]
[metrics]
score = "max"
acc = { direction = "max", reduce = "last" }
[baseline]
mode = "ok"
sleep = 0
[ablations]
lognan = { mode = "lognan" }
extranan = { mode = "extranan" }
hugestep = { mode = "hugestep" }
lastnan = { mode = "lastnan" }
garbage = { mode = "garbage", sleep = 600 }
unpicklable = { mode = "unpicklable" }
kbint = { mode = "kbint" }
[run]
timeout = "40s"
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tools):
    root = tmp_path_factory.mktemp("hostile")
    (root / "entry.py").write_text(ENTRY)
    (root / "study.toml").write_text(STUDY)
    res = tools.cli("run", root / "study.toml", "-j", "2", "--quiet", cwd=root, timeout=400)
    return {
        "dir": root,
        "result": res,
        "runs": {r["variant"]: r for r in tools.store_runs(root, "hostile")},
    }


def test_the_driver_survives_and_the_rest_of_the_study_runs(hostile):
    res, runs = hostile["result"], hostile["runs"]
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert {v: r["status"] for v, r in runs.items()} == {
        "baseline": "done",
        "lognan": "done",
        "extranan": "done",
        "hugestep": "failed",
        "lastnan": "failed",
        "garbage": "failed",
        "unpicklable": "failed",
        "kbint": "failed",
    }
    assert "3/8 done, 5 failed" in res.stdout


def test_non_finite_values_are_stored_faithfully(hostile):
    runs = hostile["runs"]
    m = runs["extranan"]["metrics"]
    assert m["score"] == 1.0 and math.isnan(m["extra"]) and m["low"] == -math.inf
    db = sqlite3.connect(hostile["dir"] / ".ablab" / "ablab.db")
    rows = db.execute(
        "SELECT s.step, s.value, typeof(s.value) FROM series s JOIN runs r ON r.id = s.run_id "
        "WHERE r.variant = 'lognan' AND s.name = 'loss' ORDER BY s.step"
    ).fetchall()
    assert rows == [(0, 1.0, "real"), (1, "NaN", "text"), (2, math.inf, "real")]


def test_show_reads_non_finite_series(hostile, tools):
    key = hostile["runs"]["lognan"]["key"]
    res = tools.cli("show", key, "--json", "--store", hostile["dir"] / ".ablab")
    assert res.returncode == 0, res.stderr
    assert '"loss",\n      1,\n      null' in res.stdout  # JSON has no NaN: null


def test_huge_steps_and_non_finite_declared_metrics_fail_with_a_message(hostile):
    runs = hostile["runs"]
    assert "does not fit in a 64-bit integer" in runs["hugestep"]["error"]
    assert runs["lastnan"]["error"].startswith("declared metric 'acc' (reduce = \"last\") is nan")


def test_garbage_on_the_result_channel_fails_the_run_without_blocking(hostile):
    r = hostile["runs"]["garbage"]
    assert "wrote to ablab's result channel" in r["error"]
    assert r["ended_at"] - r["started_at"] < 35  # detected, not left to the 40 s timeout


def test_unpicklable_outcomes_and_keyboard_interrupt_name_the_real_cause(hostile):
    runs = hostile["runs"]
    assert runs["unpicklable"]["error"].startswith("the run's outcome cannot be sent to the driver")
    assert runs["kbint"]["error"] == "KeyboardInterrupt: pressed inside the entry"
    assert "raise KeyboardInterrupt" in runs["kbint"]["traceback"]


def test_a_second_run_does_not_crash_on_what_the_first_left(hostile, tools):
    res = tools.cli("status", hostile["dir"] / "study.toml", cwd=hostile["dir"])
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
