"""The Ray executor against a real local Ray cluster (ray.init(num_cpus=2))."""

import json
import os
import textwrap

import pytest

pytest.importorskip("ray")

from ablab.cli.main import main  # noqa: E402

ENTRY = """
import os, signal
def train(config, run):
    if config["mode"] == "raise":
        raise ValueError("boom")
    if config["mode"] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    marker = os.path.join(os.path.dirname(__file__), "calls.log")
    with open(marker, "a") as f:
        f.write(run.key + "\\n")
    run.log(step=0, loss=1.0 / (1 + run.seed))
    return {"score": config["x"] + run.seed * 0.1}
"""


@pytest.mark.slow
def test_ray_study_failures_and_resume(tmp_path, capsys):
    d = tmp_path / "s"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent("""
        name = "ray"
        entry = "entry.py:train"
        seeds = 2
        [metrics]
        score = "max"
        [baseline]
        x = 1
        mode = "ok"
        [ablations]
        more = { x = 2 }
        bad = { mode = "raise" }
        dies = { mode = "kill" }
    """)
    )
    study = str(d / "study.toml")
    assert main(["run", study, "--executor", "ray", "-j", "2", "-q"]) == 1
    capsys.readouterr()
    main(["runs", study, "--format", "json"])
    runs = {(r["variant"], r["seed"]): r for r in json.loads(capsys.readouterr().out)}
    assert all(runs[(v, s)]["status"] == "done" for v in ("baseline", "more") for s in (0, 1))
    assert runs[("more", 1)]["metrics"]["score"] == pytest.approx(2.1)
    assert (
        runs[("bad", 0)]["status"] == "failed" and "ValueError: boom" in runs[("bad", 0)]["error"]
    )
    assert runs[("dies", 0)]["status"] == "failed" and "Ray worker" in runs[("dies", 0)]["error"]
    calls = (d / "calls.log").read_text().split()
    assert len(calls) == len(set(calls)) == 4
    # resume: done runs are not executed again; the failed ones are re-attempted
    assert main(["run", study, "--executor", "ray", "-j", "2", "-q"]) == 1
    assert len((d / "calls.log").read_text().split()) == 4
    capsys.readouterr()
    main(["runs", study, "--format", "json"])
    again = {(r["variant"], r["seed"]): r for r in json.loads(capsys.readouterr().out)}
    assert again[("bad", 0)]["attempts"] == 2
    assert again[("baseline", 0)]["attempts"] == 1
    assert os.path.isdir(d / ".ablab")


def test_unknown_executor_is_a_usage_error(tmp_path):
    d = tmp_path / "s"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        'name = "x"\nentry = "entry.py:train"\nseeds = 1\n[metrics]\nscore = "max"\n'
        '[baseline]\nx = 1\nmode = "ok"\n'
    )
    assert main(["run", str(d / "study.toml"), "--executor", "dask"]) == 2
