"""The driver under stress: `kill -9` mid-study then resume, two concurrent drivers on one
study, Ctrl-C. Runs in mode "gate" block until the test opens the gate, so the moment of each
interruption is exact."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = pytest.mark.slow


def gated_starts(d, tools, n):
    return tools.wait_for(
        lambda: len(tools.starts(d)) >= n and tools.calls(d), timeout=120, what=f"{n} runs to start"
    )


def test_kill_9_of_the_driver_then_resume(study_dir, tools, drivers):
    path = tools.write_study(  # variant by variant: the quick runs finish before the gated
        study_dir,
        variants={"quick": {"hidden": 5}, "gated": {"mode": "gate"}},
        run={"order": "variant"},
    )
    p = drivers.start("run", path, "-j", "2", "--quiet", cwd=study_dir)
    gated_starts(study_dir, tools, 6)  # 4 quick runs recorded, then both gated runs claimed
    runs = {r["key"]: r for r in tools.store_runs(study_dir)}
    worker_pids = {int(c[3]) for c in tools.calls(study_dir) if c[0] == "start"}
    p.kill()  # SIGKILL, no chance to clean up
    assert p.wait(timeout=30) == -signal.SIGKILL
    tools.wait_for(tools.gone(worker_pids), timeout=30, what="the workers to die with their driver")
    done_before = {k: r for k, r in runs.items() if r["status"] == "done"}
    assert (
        len(done_before) == 4 and sorted(r["status"] for r in runs.values()).count("running") == 2
    )

    (study_dir / "open").touch()
    res = tools.cli("run", study_dir / "study.toml", "-j", "2", cwd=study_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6/6 done, 0 failed (4 already done before)" in res.stdout
    after = tools.store_runs(study_dir)
    assert sorted(r["key"] for r in after) == sorted(runs)  # every key exactly once
    assert all(r["status"] == "done" for r in after)
    starts = tools.starts(study_dir)
    for r in after:
        if r["key"] in done_before:  # nothing completed was lost or run again
            assert r["metrics"] == done_before[r["key"]]["metrics"] and r["attempts"] == 1
            assert starts.count(r["key"]) == 1
        else:  # the two runs the dead driver left running were re-queued and run again
            assert r["variant"] == "gated" and r["attempts"] == 2 and starts.count(r["key"]) == 2


def test_two_concurrent_drivers_run_each_run_once(study_dir, tools, drivers):
    variants = {f"v{i}": {"hidden": i} for i in range(1, 4)}
    path = tools.write_study(
        study_dir, variants=variants, baseline={**tools.BASELINE, "mode": "gate"}
    )
    procs = [drivers.start("run", path, "-j", "1", "--quiet", cwd=study_dir) for _ in range(2)]
    # each driver's single worker takes one gated baseline run; open the gate when both have one
    gated_starts(study_dir, tools, 2)
    (study_dir / "open").touch()
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    runs = tools.store_runs(study_dir)
    assert len(runs) == 8 and all(r["status"] == "done" and r["attempts"] == 1 for r in runs)
    starts = tools.starts(study_dir)
    assert sorted(starts) == sorted(r["key"] for r in runs)  # each run executed exactly once
    assert len({r["driver_id"] for r in runs}) == 2  # both drivers did work
    assert len({r["worker_pid"] for r in runs}) == 2


def test_ctrl_c_marks_running_runs_interrupted_and_rerun_completes_them(study_dir, tools, drivers):
    path = tools.write_study(
        study_dir, variants={"gated": {"mode": "gate"}}, run={"order": "variant"}
    )
    p = drivers.start("run", path, "-j", "2", "--quiet", cwd=study_dir)
    gated_starts(study_dir, tools, 4)
    worker_pids = {int(c[3]) for c in tools.calls(study_dir) if c[0] == "start"}
    os.kill(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    tools.wait_for(tools.gone(worker_pids), timeout=30, what="the workers to stop")
    runs = {r["variant"] + str(r["seed"]): r for r in tools.store_runs(study_dir)}
    assert {k: r["status"] for k, r in runs.items()} == {
        "baseline0": "done",
        "baseline1": "done",
        "gated0": "interrupted",
        "gated1": "interrupted",
    }
    assert runs["gated0"]["error"] == "interrupted by the user"
    status = tools.cli("status", path, cwd=study_dir)
    assert status.returncode == 0

    (study_dir / "open").touch()
    t0 = time.monotonic()
    res = tools.cli("run", path, "-j", "2", cwd=study_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4/4 done, 0 failed (2 already done before)" in res.stdout
    after = {r["variant"] + str(r["seed"]): r for r in tools.store_runs(study_dir)}
    assert all(r["status"] == "done" and r["error"] is None for r in after.values())
    assert after["gated0"]["attempts"] == 2 and after["baseline0"]["attempts"] == 1
    assert time.monotonic() - t0 < 170
