"""Fault injection (issue 14): kill -9 of the driver at random moments (seeded), a SIGSTOPped
driver, SIGTERM/SIGHUP, a second Ctrl-C during clean-up, concurrent first opens of a store,
a dead driver's runs in `ablab status`, a full disk (tmpfs, root only)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time

import pytest

pytestmark = pytest.mark.slow


def _worker_pids(d, tools):
    return {int(c[3]) for c in tools.calls(d) if c[0] == "start"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_the_driver_like_ctrl_c(study_dir, tools, drivers, sig):
    path = tools.write_study(study_dir, seeds=1, variants={"gated": {"mode": "gate"}})
    p = drivers.start("run", path, "-j", "2", "--quiet", cwd=study_dir)
    tools.wait_for(lambda: len(tools.starts(study_dir)) >= 2, timeout=180, what="both runs")
    tools.wait_for(
        lambda: any(r["status"] == "done" for r in tools.store_runs(study_dir)),
        timeout=120,
        what="the quick run to finish",
    )
    workers = _worker_pids(study_dir, tools)
    os.kill(p.pid, sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, out + err
    assert f"interrupted ({signal.Signals(sig).name})" in err and "Traceback" not in err
    assert "The 1 run(s) that were running are marked interrupted" in " ".join(err.split())
    tools.wait_for(tools.gone(workers), timeout=30, what="the workers to exit")
    runs = {r["variant"]: r for r in tools.store_runs(study_dir)}
    assert runs["baseline"]["status"] == "done"
    assert runs["gated"]["status"] == "interrupted"


def test_a_second_ctrl_c_during_clean_up_says_what_it_leaves(study_dir, tools, drivers):
    path = tools.write_study(
        study_dir, seeds=1, variants={}, baseline={**tools.BASELINE, "mode": "gate"}
    )
    p = drivers.start("run", path, "-j", "1", "--quiet", cwd=study_dir)
    tools.wait_for(lambda: tools.starts(study_dir), timeout=180, what="the run to start")
    workers = _worker_pids(study_dir, tools)
    holder = sqlite3.connect(study_dir / ".ablab" / "ablab.db", isolation_level=None, timeout=60)
    holder.execute("BEGIN IMMEDIATE")  # the driver's clean-up must wait for the store
    try:
        os.kill(p.pid, signal.SIGINT)
        tools.wait_for(tools.gone(workers), timeout=60, what="the worker to be killed")
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGINT)
        time.sleep(1.0)
    finally:
        holder.execute("COMMIT")
        holder.close()
    out, err = p.communicate(timeout=120)
    flat = " ".join(err.split())
    assert p.returncode == 130, out + err
    assert "still stopping (SIGINT ignored)" in flat and "being marked interrupted" in flat
    assert "Traceback" not in err
    assert [r["status"] for r in tools.store_runs(study_dir)] == ["interrupted"]


def test_a_stopped_driver_keeps_its_runs_and_the_other_exits_0(study_dir, tools, drivers):
    """SIGSTOP driver A mid-run and age its heartbeat: driver B on the same host must not take
    A's run over (today it does after 120 s of silence and runs it twice); B does the rest,
    says A still works on its run, and exits 0."""
    path = tools.write_study(
        study_dir,
        seeds=1,
        variants={"v1": {"hidden": 3}},
        baseline={**tools.BASELINE, "mode": "gate"},
    )
    a = drivers.start("run", path, "-j", "1", "--quiet", cwd=study_dir)
    tools.wait_for(lambda: tools.starts(study_dir), timeout=180, what="A's run to start")
    os.kill(a.pid, signal.SIGSTOP)
    try:
        db = sqlite3.connect(study_dir / ".ablab" / "ablab.db", isolation_level=None, timeout=60)
        db.execute("UPDATE drivers SET heartbeat = heartbeat - 100000")
        db.close()
        (study_dir / "open").touch()
        b = tools.cli("run", path, "-j", "1", cwd=study_dir)
    finally:
        os.kill(a.pid, signal.SIGCONT)
    flat = " ".join(b.stdout.split())
    assert b.returncode == 0, b.stdout + b.stderr
    assert "1/2 done, 0 failed" in flat
    assert f"1 run(s) are still running under another ablab driver (pid {a.pid}" in flat
    out, err = a.communicate(timeout=180)
    assert a.returncode == 0, out + err
    starts = tools.starts(study_dir)
    assert len(starts) == len(set(starts)) == 2  # each run executed once
    assert all(r["status"] == "done" for r in tools.store_runs(study_dir))


def test_status_never_shows_runs_of_a_dead_driver_as_running(study_dir, tools, cli):
    from ablab.execute.engine import prepare_study
    from ablab.plan.designs_bridge import plan_for
    from ablab.spec.load import load_study
    from ablab.store.db import Store

    path = tools.write_study(study_dir, seeds=1)
    spec = load_study(path)
    with Store(study_dir / ".ablab") as st:
        study = prepare_study(spec, st)
        st.add_runs(study["id"], plan_for(spec).runs)
        st.reset_for_new_invocation(study["id"], [r.key for r in plan_for(spec).runs], 0)
    code = (  # a driver that claims the run and dies without a word (kill -9)
        "import os; from ablab.store.db import Store; s = Store('.ablab'); d = s.register_driver();"
        f" s.claim({study['id']}, d); os._exit(0)"
    )
    subprocess.run([tools.ABLAB.with_name("python"), "-c", code], cwd=study_dir, check=True)
    assert [r["status"] for r in tools.store_runs(study_dir)] == ["running"]
    code, out, err = cli("status", path)
    assert code == 0, err
    row = next(line for line in out.splitlines() if "baseline" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == ["baseline", "0", "0", "0", "0", "1"]
    with Store(study_dir / ".ablab") as st:
        assert st.conn.execute("SELECT count(*) FROM drivers").fetchone()[0] == 0


def test_concurrent_first_runs_of_the_cli_on_a_fresh_store(study_dir, tools):
    path = tools.write_study(study_dir, seeds=1)
    procs = [
        subprocess.Popen(
            [str(tools.ABLAB), "status", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=study_dir,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=240), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results


def test_kill_9_at_random_moments_loses_nothing(study_dir, tools, drivers):
    """Seeded: kill -9 the driver twice at random moments, then let it finish. Every run
    ends done once in the store; a run recorded done is never executed again; every execution
    was a claim counted in the run's attempts."""
    rng = random.Random(14)
    path = tools.write_study(
        study_dir,
        seeds=2,
        variants={"slow": {"mode": "sleep", "sleep": 0.4}},
        baseline={**tools.BASELINE, "mode": "sleep", "sleep": 0.3},
    )
    done_seen: dict[str, int] = {}
    for _ in range(2):
        p = drivers.start("run", path, "-j", "2", "--quiet", cwd=study_dir)
        tools.wait_for(lambda p=p: tools.starts(study_dir) or p.poll() is not None, timeout=180)
        time.sleep(rng.uniform(0.0, 2.5))
        p.kill()
        p.wait(timeout=30)
        tools.wait_for(
            tools.gone(_worker_pids(study_dir, tools)), timeout=30, what="workers to die"
        )
        starts = tools.starts(study_dir)
        for r in tools.store_runs(study_dir):
            if r["status"] == "done":
                done_seen.setdefault(r["key"], starts.count(r["key"]))
    res = tools.cli("run", path, "-j", "2", cwd=study_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    runs = tools.store_runs(study_dir)
    starts = tools.starts(study_dir)
    assert len(runs) == 4 and all(r["status"] == "done" for r in runs)
    for r in runs:
        # a claim counts an attempt even when the kill comes before the entry starts
        assert r["attempts"] >= starts.count(r["key"]) >= 1
        if r["key"] in done_seen:  # recorded done -> never executed again
            assert starts.count(r["key"]) == done_seen[r["key"]]


FILL_ENTRY = """
import os
from pathlib import Path

def train(config, run):
    fill = Path(config["fill_dir"])
    if config["mode"] == "fill" and not (fill / "filled").exists():
        (fill / "filled").touch()
        with open(fill / "filler", "wb") as f:  # take every free byte of the small disk
            try:
                while True:
                    f.write(b"x" * 65536)
                    f.flush()
            except OSError:
                pass
        try:
            os.truncate(fill / "filler", os.path.getsize(fill / "filler") - 4096)
        except OSError:
            pass
    for step in range(3000):  # records large enough to need new pages in the log
        run.log(step=step, loss=1.0 / (step + 1))
    return {"score": 1.0}
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_disk_full_keeps_finished_runs_and_redoes_those_in_flight(tmp_path, tools):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        study = tmp_path / "study"
        study.mkdir()
        (study / "entry.py").write_text(FILL_ENTRY)
        (study / "study.toml").write_text(
            'name = "full"\nentry = "entry.py:train"\nseeds = [0, 1]\n[metrics]\nscore = "max"\n'
            f'[baseline]\nmode = "ok"\nfill_dir = "{mnt}"\n[ablations]\nfill = {{ mode = "fill" }}\n'
            '[run]\norder = "variant"\n'  # both baseline runs finish before the disk fills
        )
        store = mnt / "store"
        res = tools.cli("run", study / "study.toml", "-j", "1", "--store", store, cwd=study)
        flat = " ".join(res.stderr.split())
        assert res.returncode == 2, res.stdout + res.stderr
        assert "is full" in flat and "Traceback" not in res.stderr
        assert "run again on the next `ablab run`" in flat
        (mnt / "filler").unlink()
        res = tools.cli("run", study / "study.toml", "-j", "1", "--store", store, cwd=study)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "4/4 done, 0 failed (2 already done before)" in " ".join(res.stdout.split())
    finally:
        subprocess.run(["umount", "-l", str(mnt)])
