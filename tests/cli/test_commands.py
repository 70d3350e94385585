"""The CLI: exit codes and outputs of --version, run, status, runs, show, report."""

from __future__ import annotations

import csv
import io
import json


def test_version(tools):
    from ablab import __version__

    res = tools.cli("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"ablab {__version__}"


def test_bad_study_file_exits_2_without_traceback(tmp_path, tools):
    study = tools.write_study(tmp_path, variants={"small": {"hiden": 3}})
    res = tools.cli("run", study)
    assert res.returncode == 2
    assert "error:" in res.stderr and str(study) in res.stderr.replace("\n", "")
    assert "'hiden'" in res.stderr and "did you mean 'hidden'?" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert not (tmp_path / ".ablab").exists()
    debug = tools.cli("--debug", "run", study)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_missing_study_file_and_bad_options(tmp_path, cli):
    code, _, err = cli("run", tmp_path / "nope.toml")
    assert code == 2 and "study file not found" in err
    code, _, err = cli("status", tmp_path / "nope.toml")
    assert code == 2


def test_unknown_option_is_a_usage_error(tools):
    res = tools.cli("run", "study.toml", "--bogus")
    assert res.returncode == 2 and "No such option" in res.stderr and "Traceback" not in res.stderr


def test_run_output(ok_study, failure_study):
    assert ok_study["result"].returncode == 0
    assert "tiny: 6/6 done, 0 failed" in ok_study["result"].stdout
    assert failure_study["result"].returncode == 1


def test_runs_json(ok_study, failure_study, tools):
    res = tools.cli("runs", ok_study["path"], "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert isinstance(rows, list) and len(rows) == 6
    for r in rows:
        assert {
            "key",
            "variant",
            "seed",
            "status",
            "attempts",
            "metrics",
            "wall_seconds",
            "error",
        } <= set(r)
        assert r["status"] == "done" and r["error"] is None and isinstance(r["wall_seconds"], float)
        assert isinstance(r["metrics"]["score"], float)
    assert {(r["variant"], r["seed"]) for r in rows} == {
        (v, s) for v in ("baseline", "wide", "flaky") for s in (0, 1)
    }
    assert [r["attempts"] for r in rows if r["variant"] == "flaky"] == [2, 2]
    stored = {r["key"]: r["metrics"] for r in ok_study["runs"]}
    assert all(stored[r["key"]] == r["metrics"] for r in rows)

    fail = {
        r["variant"]: r
        for r in json.loads(tools.cli("runs", failure_study["path"], "-f", "json").stdout)
    }
    assert (
        fail["raise"]["status"] == "failed"
        and fail["raise"]["error"] == "ValueError: boom in raise"
    )
    assert fail["raise"]["metrics"] == {} and "\n" not in fail["hang"]["error"]
    assert {r["status"] for r in fail.values()} <= {
        "pending",
        "running",
        "done",
        "failed",
        "interrupted",
    }


def test_runs_csv_and_table(ok_study, failure_study, cli):
    code, out, _ = cli("runs", ok_study["path"], "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 6 and list(rows[0]) == [
        "key",
        "variant",
        "seed",
        "status",
        "attempts",
        "score",
        "wall_seconds",
        "error",
    ]
    stored = {r["key"]: r for r in ok_study["runs"]}
    for r in rows:
        assert float(r["score"]) == stored[r["key"]]["metrics"]["score"] and r["error"] == ""
    code, out, _ = cli("runs", failure_study["path"], "-f", "csv")
    fail = {r["variant"]: r for r in csv.DictReader(io.StringIO(out))}
    assert (
        fail["nan"]["status"] == "failed"
        and "non-finite" in fail["nan"]["error"]
        and fail["nan"]["score"] == ""
    )
    code, out, _ = cli("runs", ok_study["path"])
    assert code == 0 and all(r["key"] in out for r in ok_study["runs"])
    code, _, err = cli("runs", ok_study["path"], "--format", "xml")
    assert code == 2 and "not a runs format" in err


def test_runs_of_a_study_never_run(tmp_path, tools, cli):
    study = tools.write_study(tmp_path, variants={"w": {"hidden": 2}})
    code, out, _ = cli("runs", study, "--format", "json")
    rows = json.loads(out)
    assert (
        code == 0
        and len(rows) == 4
        and all(r["status"] == "pending" and r["attempts"] == 0 for r in rows)
    )


def test_status(ok_study, failure_study, cli):
    code, out, _ = cli("status", ok_study["path"])
    assert code == 0
    lines = {
        ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
        for ln in out.splitlines()
        if ln.count("│") >= 6
    }
    # columns: pending running done failed interrupted
    assert lines["baseline"] == ["0", "0", "2", "0", "0"] and lines["flaky"] == [
        "0",
        "0",
        "2",
        "0",
        "0",
    ]
    assert lines["total"] == ["0", "0", "6", "0", "0"]
    code, out, _ = cli("status", failure_study["path"])
    lines = {
        ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
        for ln in out.splitlines()
        if ln.count("│") >= 6
    }
    assert lines["hang"] == ["0", "0", "0", "1", "0"] and lines["total"] == [
        "0",
        "0",
        "2",
        "6",
        "0",
    ]


def test_show(ok_study, failure_study, cli):
    r = next(r for r in ok_study["runs"] if r["variant"] == "wide")
    code, out, _ = cli("show", r["key"], "--study", ok_study["path"])
    assert code == 0
    assert f"run {r['key']}" in out and "wide" in out and "status: done" in out
    assert '"hidden": 8' in out  # config
    assert "score" in out and "loss" in out  # metrics and series summary
    assert "data x (array): sha256" in out and "model.pt" in out
    assert "resources: wall" in out and "peak RSS" in out
    assert "environment: Python" in out and "torch" in out and "code fingerprint" in out
    # a unique prefix works; --json has everything
    code, out, _ = cli("show", r["key"][:8], "--study", ok_study["path"], "--json")
    rec = json.loads(out)
    assert code == 0 and rec["key"] == r["key"] and rec["metrics"] == r["metrics"]
    assert len(rec["series"]) == 10 and rec["environment"]["packages"]["torch"]
    # the store is found from the current directory too
    code, out, _ = cli("show", r["key"], "--store", ok_study["dir"] / ".ablab")
    assert code == 0 and f"run {r['key']}" in out
    code, _, err = cli("show", "ffffffffffffffff", "--study", ok_study["path"])
    assert code == 2 and "no run with key 'ffffffffffffffff'" in err


def test_show_a_failed_run(failure_study, cli):
    key = failure_study["runs"]["raise"]["key"]
    code, out, _ = cli("show", key, "--study", failure_study["path"])
    assert code == 0 and "status: failed" in out
    assert "error: ValueError: boom in raise" in out and "Traceback (most recent call last)" in out


def test_report(ok_study, cli):
    code, out, _ = cli("report", ok_study["path"], "--format", "json")
    assert code == 0 and "baseline" in out and "wide" in out
