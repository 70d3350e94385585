"""`ablab init`: the starter study runs and reports at once, offline, through the real CLI."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_init_then_run_then_report(tmp_path, tools):
    res = tools.cli("init", "starter", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    d = tmp_path / "starter"
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "study.toml", "train.py"]
    assert "ablab run starter/study.toml" in res.stdout
    assert "ablab run study.toml" in (d / "README.md").read_text()
    run = tools.cli("run", d / "study.toml", "-j", "2", "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "starter: 15/15 done, 0 failed" in run.stdout
    rep = tools.cli("report", d / "study.toml", "--format", "json")
    assert rep.returncode == 0, rep.stderr
    result = json.loads(rep.stdout)
    assert result["study"] == "starter"
    names = [v["name"] for v in result["variants"]]
    assert names == ["baseline", "no-hidden", "tiny"]
    base = result["variants"][0]["metrics"]["accuracy"]
    assert base["n"] == 5 and 0.8 < base["mean"] <= 1.0  # it really trained a classifier


def test_init_refuses_to_overwrite_and_checks_the_name(tmp_path, cli):
    code, out, _ = cli("init", tmp_path / "s", "--name", "my-study")
    assert code == 0 and 'name = "my-study"' in (tmp_path / "s" / "study.toml").read_text()
    (tmp_path / "s" / "train.py").write_text("# mine\n")
    code, _, err = cli("init", tmp_path / "s")
    assert code == 2 and "already has study.toml, train.py, README.md" in err and "--force" in err
    assert (tmp_path / "s" / "train.py").read_text() == "# mine\n"
    code, _, _ = cli("init", tmp_path / "s", "--force")
    assert code == 0 and "def train(config, run)" in (tmp_path / "s" / "train.py").read_text()
    code, _, err = cli("init", tmp_path / "t", "--name", "bad name!")
    assert code == 2 and "not a valid study name" in err and not (tmp_path / "t").exists()
    (tmp_path / "file").write_text("x")
    code, _, err = cli("init", tmp_path / "file")
    assert code == 2 and "not a folder" in err
