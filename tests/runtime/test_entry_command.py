"""Command entries: an unmodified argparse script run once per run, metrics by pattern, by
metrics.json and by ablab.client; failures (non-zero exit, missing metric, timeout with the
process group gone, Ctrl-C); reproduce and check-determinism; ``--variant``/``--seed``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from ablab.errors import SpecError
from ablab.runtime.entry_command import build_argv
from ablab.spec.load import parse_study

# An argparse script that knows nothing of ablab (mode chooses what it does), plus one line that
# reports a series through ablab.client when asked to.
SCRIPT = """\
import argparse, json, os, random, subprocess, sys, time
ap = argparse.ArgumentParser()
ap.add_argument("--lr", type=float, required=True)
ap.add_argument("--layers", type=int, default=1)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", default=".")
ap.add_argument("--mode", default="ok")
a = ap.parse_args()
random.seed(a.seed)
noise = random.random() + (hash("x") % 1000) / 1e6  # PYTHONHASHSEED is the run's seed
for epoch in range(3 if a.mode != "silent" else 0):
    print(f"epoch {epoch} test loss: {a.lr * a.layers / (epoch + 1) + noise}")
if a.mode == "crash":
    print("Traceback: something broke", file=sys.stderr)
    sys.exit(3)
if a.mode == "hang":  # a grandchild in the same process group, then wait forever
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.path.join(os.environ["ABLAB_RUN_DIR"], "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)
if a.mode == "client":
    import ablab.client as ab
    assert "torch" not in sys.modules
    for step in range(4):
        ab.log(step=step, acc_curve=0.1 * step)
    ab.result(accuracy=0.75)
elif a.mode != "silent":
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump({"accuracy": 0.5 + 0.1 * a.layers, "seed_env": int(os.environ["ABLAB_SEED"])}, f)
else:
    print("finished without a loss line", file=sys.stderr)
"""

STUDY = """\
name = "cmd"
entry = {{ command = "python train.py --lr {{lr}} --layers {{model.layers}} --seed {{seed}} --out {{run_dir}} --mode {{mode}}" }}
seeds = {seeds}
[metrics]
test_loss = {{ direction = "min", pattern = 'test loss: ([-+0-9.eE]+)' }}
accuracy = "max"
[baseline]
lr = 0.1
mode = "ok"
model = {{ layers = 2 }}
[ablations]
{ablations}
[run]
timeout = "{timeout}"
"""


def write(d: Path, ablations: str = 'deep = { "model.layers" = 4 }', seeds: int = 2, timeout="60s"):
    d.mkdir(parents=True, exist_ok=True)
    (d / "train.py").write_text(SCRIPT)
    path = d / "study.toml"
    path.write_text(STUDY.format(ablations=ablations, seeds=seeds, timeout=timeout))
    return path


def runs_json(cli, study) -> dict[tuple[str, int], dict]:
    code, out, _ = cli("runs", study, "--format", "json")
    assert code == 0
    return {(r["variant"], r["seed"]): r for r in json.loads(out)}


# ---- without running anything -------------------------------------------------------------


def _spec(entry, baseline=None, metrics=None):
    return parse_study(
        {
            "name": "s",
            "entry": entry,
            "metrics": metrics or {"acc": "max"},
            "baseline": baseline or {"lr": 0.1, "note": "a b; rm -rf /", "flag": True},
        }
    )


def test_argv_substitutes_each_word_without_a_shell(tmp_path):
    spec = _spec(
        {"command": "python t.py --lr={lr} --note {note} --s {seed} {{x}}", "args": "flags"}
    )
    run = SimpleNamespace(seed=3, run_dir=tmp_path, variant="baseline")
    argv = build_argv(
        {"tokens": list(spec.entry_spec.tokens), "args": "flags"},
        {"lr": 0.1, "note": "a b; rm -rf /", "flag": True, "off": False, "model": {"n_layers": 2}},
        run,
    )
    assert argv[0] == sys.executable
    # a value with spaces and shell syntax stays one word; literal braces; flags appended
    assert argv[1:7] == ["t.py", "--lr=0.1", "--note", "a b; rm -rf /", "--s", "3"]
    assert argv[7] == "{x}"
    assert argv[8:] == ["--lr", "0.1", "--note", "a b; rm -rf /", "--flag", "--model.n-layers", "2"]


def test_spec_errors_name_the_problem():
    with pytest.raises(SpecError, match=r"(?s)\{lrr\}.*did you mean 'lr'"):
        _spec({"command": "python t.py --lr {lrr}"})
    with pytest.raises(SpecError, match="unknown key 'arg'"):
        _spec({"command": "python t.py", "arg": "flags"})
    with pytest.raises(SpecError, match="cannot be split"):
        _spec({"command": "python t.py 'unclosed"})
    with pytest.raises(SpecError, match="is not a regular expression"):
        _spec({"command": "python t.py"}, metrics={"acc": {"pattern": "acc: ("}})
    with pytest.raises(SpecError, match="has 2 groups"):
        _spec({"command": "python t.py"}, metrics={"acc": {"pattern": "(a)(b)"}})
    with pytest.raises(SpecError, match="only applies to a command entry"):
        _spec("t.py:train", metrics={"acc": {"pattern": "acc: (.*)"}})


def test_the_spec_round_trips_through_the_store_form():
    from ablab.spec.serialize import spec_to_dict

    spec = _spec(
        {"command": "python t.py --lr {lr}", "args": "flags"},
        metrics={"acc": {"direction": "max", "pattern": "acc: (\\S+)"}},
    )
    again = parse_study(spec_to_dict(spec))
    assert again.entry == spec.entry and again.entry_spec == spec.entry_spec
    assert again.metrics == spec.metrics


def test_client_does_nothing_outside_ablab_and_imports_no_torch(tmp_path):
    code = (
        "import sys, ablab.client as ab; ab.log(step=1, x=1.0); ab.result(y=2);"
        "assert ab.config() == {} and ab.seed(7) == 7;"
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABLAB_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []


# ---- one study with every outcome, run once -----------------------------------------------


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    from ablab.cli.main import main

    d = tmp_path_factory.mktemp("cmd") / "study"
    study = write(
        d,
        ablations="\n".join(
            [
                'deep = { "model.layers" = 4 }',
                'crash = { mode = "crash" }',
                'silent = { mode = "silent" }',
                'hang = { mode = "hang" }',
                'client = { mode = "client" }',
            ]
        ),
        seeds=1,
        timeout="4s",
    )
    code = main(["run", str(study), "-j", "2", "-q"])
    return SimpleNamespace(dir=d, study=study, code=code)


@pytest.mark.slow
def test_metrics_failures_and_timeout(outcomes, cli):
    assert outcomes.code == 1
    runs = runs_json(cli, outcomes.study)
    base, deep = runs[("baseline", 0)], runs[("deep", 0)]
    assert base["status"] == deep["status"] == "done"
    assert deep["metrics"]["accuracy"] == pytest.approx(0.9)  # from metrics.json
    assert base["metrics"]["seed_env"] == 0.0  # extra numbers of metrics.json are kept
    # the pattern's last match is the value, and all matches the series
    code, out, _ = cli("show", base["key"], "--study", outcomes.study, "--json")
    rec = json.loads(out)
    losses = [v for n, _, v in rec["series"] if n == "test_loss"]
    assert len(losses) == 3 and base["metrics"]["test_loss"] == losses[-1]
    assert losses[0] > losses[-1]
    run_dir = outcomes.dir / ".ablab" / "runs" / base["key"]
    assert "test loss" in (run_dir / "stdout.log").read_text()
    assert json.loads((run_dir / "config.json").read_text())["model"] == {"layers": 2}
    client = runs[("client", 0)]
    assert client["status"] == "done" and client["metrics"]["accuracy"] == 0.75
    code, out, _ = cli("show", client["key"], "--study", outcomes.study, "--json")
    assert [v for n, _, v in json.loads(out)["series"] if n == "acc_curve"] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3]
    )
    crash = runs[("crash", 0)]
    assert crash["status"] == "failed"
    assert crash["error"].startswith("the command exited with code 3: Traceback: something broke")
    silent = runs[("silent", 0)]
    assert silent["status"] == "failed"
    assert "metric 'test_loss' not found: pattern 'test loss: ([-+0-9.eE]+)'" in silent["error"]
    assert "last output line: finished without a loss line" in silent["error"]
    hang = runs[("hang", 0)]
    assert hang["status"] == "failed" and "timed out after 4" in hang["error"]
    pids = [
        int(p)
        for p in (outcomes.dir / ".ablab" / "runs" / hang["key"] / "pids").read_text().split()
    ]
    assert len(pids) == 2 and all(not _alive(p) for p in pids)  # program and grandchild


@pytest.mark.slow
def test_reproduce_and_check_determinism(outcomes, cli):
    code, out, err = cli("reproduce", outcomes.study, "--variant", "baseline", "--json")
    assert code == 0, out + err
    assert [v["verdict"] for v in json.loads(out)] == ["reproduced (bit-identical)"]
    code, out, err = cli("check-determinism", outcomes.study, "--variant", "deep", "--seed", "0")
    assert code == 0, out + err
    assert "deterministic" in out and "not deterministic" not in out
    code, out, err = cli("report", outcomes.study, "--format", "json")
    assert code == 0, out + err
    assert "test_loss" in out and "deep" in out


@pytest.mark.slow
def test_run_a_subset_with_variant_and_seed(tmp_path, cli):
    study = write(tmp_path / "s", seeds=3)
    code, _, err = cli("run", study, "--variant", "deap")
    assert code == 2 and "no variant named 'deap'" in err and "did you mean 'deep'" in err
    assert "variants: baseline, deep" in err
    code, _, err = cli("run", study, "--seed", "9")
    assert code == 2 and "seeds: 0, 1, 2" in err
    assert not (tmp_path / "s" / ".ablab").exists()  # refused before anything was recorded
    code, out, _ = cli("run", study, "--variant", "deep", "--seed", "2", "--seed", "0", "-j", "1")
    assert code == 0 and "2/2 done" in out
    runs = runs_json(cli, study)
    assert {k for k, r in runs.items() if r["status"] == "done"} == {("deep", 0), ("deep", 2)}
    # runs on their own are ordinary runs of the study: a full run skips them
    code, out, _ = cli("run", study, "-j", "1")
    assert code == 0 and "6/6 done, 0 failed (2 already done before)" in out


@pytest.mark.slow
def test_ctrl_c_kills_the_program_group(tmp_path, tools, drivers):
    study = write(tmp_path / "s", ablations='hang = { mode = "hang" }', seeds=1, timeout="10m")
    p = drivers.start("run", study, "-j", "1", "--variant", "hang", "-q", cwd=tmp_path / "s")
    runs_dir = tmp_path / "s" / ".ablab" / "runs"
    pid_file = tools.wait_for(
        lambda: next((f for f in runs_dir.glob("*/pids") if f.read_text().strip()), None),
        timeout=180,
        what="the program to start",
    )
    pids = [int(x) for x in pid_file.read_text().split()]
    assert all(_alive(x) for x in pids)
    os.kill(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, out + err
    tools.wait_for(lambda: not any(_alive(x) for x in pids), timeout=30, what="the group to die")
    (row,) = tools.store_runs(tmp_path / "s", "cmd")
    assert row["status"] == "interrupted"


@pytest.mark.slow
def test_ray_executor_runs_command_entries(tmp_path, cli):
    pytest.importorskip("ray")
    study = write(
        tmp_path / "s",
        ablations='deep = { "model.layers" = 4 }\ncrash = { mode = "crash" }',
        seeds=1,
    )
    code, out, err = cli("run", study, "--executor", "ray", "-j", "2", "-q")
    assert code == 1, out + err
    runs = runs_json(cli, study)
    assert runs[("deep", 0)]["status"] == "done"
    assert runs[("deep", 0)]["metrics"]["accuracy"] == pytest.approx(0.9)
    assert "exited with code 3" in runs[("crash", 0)]["error"]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_script_study_file_is_valid():
    """The example in examples/script loads (its placeholders match its baseline)."""
    from ablab.spec.load import load_study

    root = Path(__file__).resolve().parents[2] / "examples" / "script" / "study.toml"
    spec = load_study(root)
    assert spec.entry.startswith("command:")
