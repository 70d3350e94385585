"""`ablab sync` into a real MLflow tracking store (sqlite) and real W&B offline runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ENTRY = """\
import random
from pathlib import Path


def train(config, run):
    if config["fragile"] and Path(__file__).with_name("break").exists():
        raise RuntimeError("fragile run broke")
    rng = random.Random(run.seed)
    for step in range(3):
        run.log(step=step, loss=1.0 / (step + 1) + config["lr"])
    return {"acc": 0.5 + config["lr"] + rng.random() * 0.01}
"""

STUDY = """\
name = "sync-me"
entry = "entry.py:train"
seeds = 2

[metrics]
acc = "max"
loss = { direction = "min", reduce = "last" }

[baseline]
lr = 0.1
fragile = false
optim = { name = "sgd", "[weird key]" = "[/data/train.csv]" }

[ablations]
big = { lr = 0.3 }
fragile = { fragile = true }
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from ablab.cli.main import main

    root = tmp_path_factory.mktemp("sync")
    (root / "entry.py").write_text(ENTRY)
    (root / "study.toml").write_text(STUDY)
    (root / "break").write_text("")  # the fragile variant fails on the first invocation
    assert main(["run", str(root / "study.toml"), "-j", "1", "--quiet"]) == 1
    return root


def _mlflow_runs(uri: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("sync-me")
    return client, client.search_runs([exp.experiment_id], max_results=1000)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_mlflow_sync_is_complete_and_idempotent(study, tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts in ./mlruns beside a sqlite store
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, out, _ = cli("sync", study / "study.toml", "--to", "mlflow", "--uri", uri)
    assert code == 0, out
    assert "6 runs created, 0 updated, 0 unchanged; summary run created" in " ".join(out.split())
    client, runs = _mlflow_runs(uri)
    parents = [r for r in runs if r.data.tags.get("ablab.kind") == "summary"]
    children = [r for r in runs if "ablab.key" in r.data.tags]
    assert len(parents) == 1 and len(children) == 6
    parent = parents[0]
    # 2 seeds whose differences are identical (same noise per seed): untestable, so the
    # honest verdict is inconclusive (issue 15; it used to be p = 0 and "better")
    assert parent.data.tags["verdict.big.acc"] == "inconclusive"
    assert parent.data.metrics["big/acc/mean"] == pytest.approx(0.8 + 0.005, abs=0.01)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.md", "report.html", "analysis.json"} <= artifacts

    by_variant = {}
    for r in children:
        t = r.data.tags
        assert t["mlflow.parentRunId"] == parent.info.run_id
        assert t["ablab.study"] == "sync-me" and t["ablab.revision"] == "main"
        assert {"ablab.variant", "ablab.seed", "ablab.code"} <= set(t)
        by_variant.setdefault(t["ablab.variant"], []).append(r)
    ok = by_variant["big"][0]
    assert ok.info.status == "FINISHED"
    assert ok.data.params["lr"] == "0.3" and ok.data.params["optim.name"] == "sgd"
    assert ok.data.params["optim._weird key_"] == "[/data/train.csv]"  # key made valid, value kept
    assert ok.data.metrics["acc"] == pytest.approx(0.8, abs=0.011)
    history = client.get_metric_history(ok.info.run_id, "loss/series")
    assert [(m.step, round(m.value, 6)) for m in history] == [
        (0, 1.3),
        (1, round(0.5 + 0.3, 6)),
        (2, round(1 / 3 + 0.3, 6)),
    ]
    bad = by_variant["fragile"][0]
    assert bad.info.status == "FAILED" and "fragile run broke" in bad.data.tags["ablab.error"]

    # a second sync sends nothing
    code, out, _ = cli("sync", study / "study.toml", "--to", "mlflow", "--uri", uri)
    assert "0 runs created, 0 updated, 6 unchanged; summary run unchanged" in " ".join(out.split())
    assert len(_mlflow_runs(uri)[1]) == 7

    # the failed runs are re-done and now pass: exactly those two are replaced
    (study / "break").unlink()
    from ablab.cli.main import main

    assert main(["run", str(study / "study.toml"), "-j", "1", "--quiet"]) == 0
    code, out, _ = cli("sync", study / "study.toml", "--to", "mlflow", "--uri", uri)
    assert "0 runs created, 2 updated, 4 unchanged; summary run updated" in " ".join(out.split())
    _, runs = _mlflow_runs(uri)
    assert len(runs) == 7
    fragile = [r for r in runs if r.data.tags.get("ablab.variant") == "fragile"]
    assert all(r.info.status == "FINISHED" for r in fragile)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb not installed")
def test_wandb_offline_sync(study, tmp_path, cli, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    from wandb_records import summary_of

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = (
        "sync",
        study / "study.toml",
        "--to",
        "wandb",
        "--wandb-dir",
        tmp_path,
        "--project",
        "p",
    )
    code, out, _ = cli(*args)
    assert code == 0, out
    assert "runs created, 0 updated, 0 unchanged; summary run created" in " ".join(out.split())
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    runs = [summary_of(f) for f in files]
    summary = [r for r in runs if r["id"].startswith("summary-")]
    members = [r for r in runs if not r["id"].startswith("summary-")]
    assert len(summary) == 1 and len(members) == len(files) - 1 >= 4
    assert all(r["group"] == "sync-me@main" for r in runs)
    big = next(r for r in members if r["config"]["ablab"]["variant"] == "big")
    assert big["config"]["lr"] == 0.3 and big["config"]["optim.name"] == "sgd"
    assert big["summary"]["acc"] == pytest.approx(0.8, abs=0.011)
    steps = {s: row["loss/series"] for s, row in big["history"].items() if "loss/series" in row}
    assert steps == pytest.approx({0: 1.3, 1: 0.8, 2: 1 / 3 + 0.3})
    assert summary[0]["config"]["ablab"]["verdict.big.acc"] == "inconclusive"  # see above
    assert "big/acc/ci_low" in summary[0]["summary"]

    code, out, _ = cli(*args)
    assert "0 runs created, 0 updated" in out and "summary run unchanged" in " ".join(out.split())
    assert len(sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == len(files)


def test_sync_errors_are_user_errors(study, cli, monkeypatch):
    code, _, err = cli("sync", study / "study.toml", "--to", "mlflw")
    assert code == 2 and "did you mean 'mlflow'" in err.lower()
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    code, _, err = cli("sync", study / "study.toml", "--to", "mlflow")
    assert code == 2 and "needs MLflow" in err and "ablab-toolkit[mlflow]" in err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow not installed")
def test_watch_follows_a_running_study_until_it_finishes(tmp_path, tools, drivers):
    import subprocess

    path = tools.write_study(
        tmp_path, variants={"wide": {"hidden": 8}}, seeds=1,
        baseline={**tools.BASELINE, "mode": "gate"},
    )  # fmt: skip
    drivers.start("run", path, "-j", "2", "--quiet", cwd=tmp_path)
    tools.wait_for(lambda: len(tools.starts(tmp_path)) >= 2, timeout=120, what="runs to start")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    watcher = subprocess.Popen(
        [str(tools.ABLAB), "sync", str(path), "--to", "mlflow", "--uri", uri, "--watch",
         "--interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        first = ""
        for line in watcher.stdout:
            first += line
            if "not finished yet" in line:
                break
        assert "0 runs created" in " ".join(first.split()), first
        (tmp_path / "open").write_text("")
        out = watcher.communicate(timeout=240)[0]
        assert watcher.returncode == 0, out
        assert "2 runs created" in " ".join(out.split()), out
    finally:
        if watcher.poll() is None:
            watcher.kill()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # 2 runs + the summary
