"""Issue 16, through the CLI: metric kinds, metrics derived from stored data, code versions per
run, interleaved run order, output kept per run, revisions, where `show`/`import` look.

One small study (pure Python entry) is run once per module and shared; each test then reads it
(with the in-process ``cli`` fixture where no worker is needed) or changes a copy of it, so few
workers start. Slow: running the study starts workers."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.slow

ENTRY = """\
import ctypes
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import helper  # noqa: E402  (lives in ../lib, outside the study folder: part of the run's code)


def train(config, run):
    print("hello from python", run.key)
    os.write(1, b"raw fd write\\n")
    ctypes.CDLL(None).printf(b"hello from C\\n")
    print("to stderr", file=sys.stderr)
    for step, v in enumerate(helper.curve(run.seed, config["x"])):
        run.log(step=step, val=v)
    run.log(step=2, val=0.125)  # a second value at the last step: the last one logged counts
    return {
        "acc": config["x"] + run.seed / 10,
        "secs": time.perf_counter(),
        "n_params": 1000.0 * config["x"],
    }
"""

HELPER = """\
def curve(seed, x):
    return [x + 0.5 + seed / 100, x + 0.75 + seed / 100, x + 0.25 + seed / 100]
"""

STUDY = """\
name = "rec"
entry = "train.py:train"
seeds = 2
[metrics]
acc = "max"
final_val = {{ direction = "max", series = "val", reduce = "{final}" }}
best_val = {{ direction = "max", series = "val", reduce = "best" }}
secs = {{ direction = "min", deterministic = false }}
n_params = "none"
[baseline]
x = 1
[ablations]
big = {{ x = 2 }}
[run]
code = ["../lib"]
"""


def write(root: Path, final: str = "last", seeds: int = 2) -> Path:
    (root / "study").mkdir(parents=True, exist_ok=True)
    (root / "lib").mkdir(exist_ok=True)
    (root / "lib" / "helper.py").write_text(HELPER)
    study = root / "study"
    (study / "train.py").write_text(ENTRY)
    text = STUDY.format(final=final).replace("seeds = 2", f"seeds = {seeds}")
    (study / "study.toml").write_text(text)
    return study / "study.toml"


@pytest.fixture(scope="module")
def rec(tmp_path_factory, tools):
    root = tmp_path_factory.mktemp("records")
    study = write(root)
    res = tools.cli("run", study, "-j", "2", cwd=root)
    assert res.returncode == 0, res.stderr
    return {"root": root, "study": study, "run": res}


def inproc(cli):
    """The in-process CLI (no interpreter start-up per call) with subprocess-like results."""

    def call(*args):
        code, out, err = cli(*args)
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return call


def runs_json(c, study, *extra):
    res = c("runs", study, "-f", "json", *extra)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_entry_output_is_kept_per_run_and_never_reaches_ablab(rec, tools, cli):
    c = inproc(cli)
    out = rec["run"].stdout + rec["run"].stderr
    for s in ("hello from python", "raw fd write", "hello from C", "to stderr"):
        assert s not in out
    rows = runs_json(c, rec["study"])
    key = rows[0]["key"]
    res = c("logs", key, "--study", rec["study"])
    assert res.returncode == 0, res.stderr
    assert "hello from python" in res.stdout and "raw fd write" in res.stdout
    assert "hello from C" in res.stdout  # a C extension's printf: fd-level capture
    assert "to stderr" in res.stderr and "to stderr" not in res.stdout
    res = c("logs", key[:10], "--study", rec["study"], "--tail", "1", "--stream", "stdout")
    assert res.returncode == 0 and res.stdout.count("\n") == 1
    res = c("logs", "feedbeef", "--study", rec["study"])
    assert res.returncode == 2 and "no run with key 'feedbeef'" in res.stderr


def test_last_is_the_last_logged_value_and_series_can_be_named(rec, tools, cli):
    c = inproc(cli)
    for r in runs_json(c, rec["study"]):
        m = r["metrics"]
        x = {"baseline": 1, "big": 2}[r["variant"]]
        assert m["final_val"] == 0.125  # not the larger value logged at the same step
        assert m["best_val"] == pytest.approx(x + 0.75 + r["seed"] / 100)


def test_informational_and_nondeterministic_metrics(rec, tools, cli):
    c = inproc(cli)
    res = c("report", rec["study"], "-f", "json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    for v in result["variants"][1:]:
        cmp = v["vs_baseline"]["n_params"]
        assert cmp["verdict"] is None and cmp["p_adjusted"] is None and cmp["delta"] > 0
        assert v["vs_baseline"]["acc"]["verdict"] is not None
    assert v["metrics"]["n_params"]["mean"] == 2000.0
    assert result["metrics"]["n_params"]["direction"] == "none"
    res = c("check-determinism", rec["study"])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "deterministic" in res.stdout and "varies by nature" in res.stdout
    assert "secs" in res.stdout
    res = c("reproduce", rec["study"], "--sample", "2", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    checks = json.loads(res.stdout)
    assert all(k["verdict"] == "reproduced (bit-identical)" for k in checks)
    rows = {r["metric"]: r["status"] for r in checks[0]["metrics"]["rows"]}
    assert rows["secs"] == "varies by nature" and rows["acc"] == "identical"


def test_runs_are_interleaved_seed_by_seed(rec, tools, cli):
    c = inproc(cli)
    rows = runs_json(c, rec["study"])
    order = sorted(rows, key=lambda r: r["order"])
    assert [r["seed"] for r in order] == [0, 0, 1, 1]
    assert sorted(r["order"] for r in rows) == list(range(4))
    # the recorded start times follow the order (runs are claimed in that order)
    started = {r["key"]: r["started_at"] for r in tools.store_runs(rec["study"].parent, "rec")}
    first_seed1 = min(started[r["key"]] for r in rows if r["seed"] == 1)
    assert sum(started[r["key"]] <= first_seed1 for r in rows if r["seed"] == 0) == 2


def test_changed_reduce_takes_effect_without_rerunning(rec, tools, cli):
    c = inproc(cli)
    copy = rec["study"].with_name("study_best.toml")  # same study, same store, reduce changed
    copy.write_text(rec["study"].read_text().replace('reduce = "last"', 'reduce = "best"'))
    res = c("report", copy, "-f", "json")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    base = result["variants"][0]["metrics"]["final_val"]["mean"]
    assert base == pytest.approx(1.75 + 0.005)  # best of the series now, not 0.125
    assert any("final_val: reduce last -> best" in n for n in result["notes"])
    md = c("report", copy, "-f", "md").stdout
    assert "declarations changed" in md
    plain = c("report", rec["study"], "-f", "json")
    assert json.loads(plain.stdout)["notes"] == []


def test_show_reads_one_store_and_says_where(rec, tmp_path, cli, monkeypatch):
    c = inproc(cli)
    key = runs_json(c, rec["study"])[0]["key"]
    monkeypatch.chdir(rec["root"])  # no .ablab here; one lies below: not searched
    res = c("show", key)
    assert res.returncode == 2 and "no ablab store in the current folder" in res.stderr
    assert str(rec["root"]) in res.stderr.replace("\n", "")
    monkeypatch.chdir(tmp_path)
    res = c("show", key, "--study", rec["study"])
    assert res.returncode == 0, res.stderr
    assert f"store: {rec['study'].parent / '.ablab'}" in res.stdout
    assert "last of val" in res.stdout and "ablab logs" in res.stdout


def test_bundles_carry_logs_and_import_writes_where_report_reads(rec, tools, tmp_path, cli):
    c = inproc(cli)
    bundle = tmp_path / "b.zip"
    res = c("export", rec["study"], "-o", bundle)
    assert res.returncode == 0, res.stderr
    names = zipfile.ZipFile(bundle).namelist()
    key = runs_json(c, rec["study"])[0]["key"]
    assert f"logs/{key}/stdout.log" in names and f"logs/{key}/stderr.log" in names
    other = tmp_path / "other"
    shutil.copytree(rec["root"] / "study", other, ignore=shutil.ignore_patterns(".ablab"))
    res = c("import", bundle, "--study", other / "study.toml")
    assert res.returncode == 0, res.stderr
    assert (other / ".ablab" / "ablab.db").exists()
    rep = c("report", other / "study.toml", "-f", "json")
    assert rep.returncode == 0, rep.stderr
    res = c("logs", key, "--study", other / "study.toml")
    assert "hello from python" in res.stdout


@pytest.mark.slow
def test_code_versions_revisions_and_show_output(rec, tools, tmp_path, cli):
    """Runs a copy of the study: new files beside it do not block, a change to the imported
    helper does; mixed code is flagged per run; revisions are listed and selectable."""
    c = inproc(cli)
    root = tmp_path / "c"
    shutil.copytree(rec["root"], root)
    study = root / "study" / "study.toml"
    (root / "study" / "plot.py").write_text("print('a plotting script')\n")
    res = tools.cli("run", study)
    assert res.returncode == 0, res.stdout + res.stderr  # nothing to re-run, and not blocked
    (root / "lib" / "helper.py").write_text(HELPER + "# tuned\n")
    res = tools.cli("run", study)
    assert res.returncode == 2 and "modified:" in res.stderr and "helper.py" in res.stderr
    study.write_text(study.read_text().replace("seeds = 2", "seeds = 3"))
    res = tools.cli("run", study, "--allow-code-change", "--show-output")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hello from python" in res.stderr and "hello from python" not in res.stdout
    result = json.loads(c("report", study, "-f", "json").stdout)
    versions = result["code_versions"]
    assert [v["runs"] for v in versions] == [4, 2] and versions[0]["first_seen"].endswith("Z")
    assert result["warnings"] and "Mixed code" in result["warnings"][0]
    new_keys = {r["key"] for r in runs_json(c, study) if r["seed"] == 2}
    assert set(versions[1]["keys"]) == new_keys
    md = c("report", study, "-f", "md").stdout
    assert "**Warning:** Mixed code" in md and sorted(new_keys)[0][:8] in md
    table = c("report", study).stdout
    assert "Mixed code" in table
    # a second revision holding the same keys
    one = root / "study" / "one.toml"
    one.write_text(study.read_text().replace("seeds = 3", "seeds = [0]"))
    res = tools.cli("run", one, "--revision", "r2")
    assert res.returncode == 0, res.stdout + res.stderr
    key = runs_json(c, one, "--revision", "r2")[0]["key"]
    res = c("show", key, "--study", study)
    assert "revisions holding this key: main, r2" in res.stdout
    res = c("show", key, "--study", study, "--revision", "main", "--json")
    assert json.loads(res.stdout)["study"]["revision"] == "main"
    assert json.loads(res.stdout)["revisions"] == ["main", "r2"]
    assert len(runs_json(c, one, "--revision", "r2")) == 2
    res = c("status", study, "--revision", "nope")
    assert res.returncode == 2 and "main, r2" in res.stderr
    res = c("report", study, "--revision", "nope")
    assert res.returncode == 2 and "main, r2" in res.stderr
    res = c("show", key, "--study", study, "--revision", "nope")
    assert res.returncode == 2 and "main, r2" in res.stderr
