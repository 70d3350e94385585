"""seeds = "auto", --race and [run] batch = K through the real engine."""

import json
import textwrap

import pytest

from ablab.cli.main import main

ENTRY = """
import random, zlib
def train(config, run):
    r = random.Random(run.seed * 7919 + zlib.crc32(run.variant.encode()))
    return {"score": config["eff"] + r.gauss(0.0, 1.0)}
"""


def _study(tmp_path, extra=""):
    d = tmp_path / "s"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent("""
        name = "auto"
        entry = "entry.py:train"
        seeds = "auto"
        min_seeds = 3
        max_seeds = 12
        [metrics]
        score = "max"
        [baseline]
        eff = 0.0
        [ablations]
        big = { eff = 6.0 }
        null = { eff = 0.0001 }
    """)
        + extra
    )
    return d / "study.toml"


def _runs(capsys, study):
    capsys.readouterr()
    main(["runs", str(study), "--format", "json"])
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_auto_seeds_stop_a_clear_effect_early(tmp_path, capsys):
    study = _study(tmp_path)
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    out = capsys.readouterr().out
    assert "adaptive verdicts: big better" in out and "saved" in out
    runs = _runs(capsys, study)
    per = {}
    for r in runs:
        per[r["variant"]] = per.get(r["variant"], 0) + 1
    assert per["big"] < 12  # settled before max_seeds
    assert per["null"] <= 12
    assert all(r["status"] == "done" for r in runs)
    # a second invocation resumes from the store and runs nothing new
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    assert len(_runs(capsys, study)) == len(runs)


@pytest.mark.slow
def test_race_drops_clearly_worse(tmp_path, capsys):
    study = _study(tmp_path)
    assert main(["run", str(study), "-j", "2", "-q", "--race"]) == 0
    out = capsys.readouterr().out
    assert "race: best big" in out


def test_auto_seed_bounds_are_validated(tmp_path):
    study = _study(tmp_path)
    study.write_text(study.read_text().replace("max_seeds = 12", "max_seeds = 2"))
    assert main(["run", str(study)]) == 2
    study.write_text(study.read_text().replace('seeds = "auto"', "seeds = 3"))
    assert main(["run", str(study)]) == 2  # min/max_seeds without "auto"


BATCHED = """
import torch
def train(config, run):
    torch.manual_seed(run.seed)
    w = torch.randn(3) * config["scale"]
    return {"score": float(w.sum())}

def train_batched(configs, runs):
    return [train(c, r) for c, r in zip(configs, runs)]

def train_sizes(configs, runs):
    return [dict(train(c, r), k=float(len(configs))) for c, r in zip(configs, runs)]
"""


@pytest.mark.slow
def test_batched_study_matches_solo(tmp_path, capsys):
    d = tmp_path / "b"
    d.mkdir()
    (d / "entry.py").write_text(BATCHED)
    base = textwrap.dedent("""
        name = "{name}"
        entry = "entry.py:{fn}"
        seeds = 3
        [metrics]
        score = "max"
        [baseline]
        scale = 1.0
        width = 4
        [ablations]
        double = {{ scale = 2.0 }}
        wide = {{ width = 8 }}
        [run]
        {run}
    """)
    (d / "solo.toml").write_text(base.format(name="solo", fn="train", run=""))
    (d / "batched.toml").write_text(
        base.format(name="batched", fn="train_batched", run='batch = 4\nbatch_by = ["width"]')
    )
    assert main(["run", str(d / "solo.toml"), "-q"]) == 0
    assert main(["run", str(d / "batched.toml"), "-q"]) == 0
    solo = {
        (r["variant"], r["seed"]): r["metrics"]["score"] for r in _runs(capsys, d / "solo.toml")
    }
    batched = {
        (r["variant"], r["seed"]): r["metrics"]["score"] for r in _runs(capsys, d / "batched.toml")
    }
    assert solo == batched and len(solo) == 9

    # batch = "auto": each kind of run (batch_by signature) split evenly over the 2 workers
    (d / "auto.toml").write_text(
        base.format(name="auto", fn="train_sizes", run='batch = "auto"\nbatch_by = ["width"]')
    )
    assert main(["run", str(d / "auto.toml"), "-q", "-j", "2"]) == 0
    sizes = {(r["variant"], r["seed"]): r["metrics"]["k"] for r in _runs(capsys, d / "auto.toml")}
    assert (
        sorted(v for (var, _), v in sizes.items() if var != "wide") == [3] * 6
    )  # 6 runs of width 4
    assert sorted(v for (var, _), v in sizes.items() if var == "wide") == [1, 2, 2]  # 3 of width 8
    (d / "auto.toml").write_text(base.format(name="auto", fn="train_sizes", run='batch = "all"'))
    assert main(["run", str(d / "auto.toml"), "-q"]) == 2
    assert 'expected an integer >= 1 or "auto"' in capsys.readouterr().err


DESIGN_ENTRY = """
def train(config, run):
    return {"score": config["a"] * 1.0 + config["b"] * 2.0 + config["c"] * 0.5 + run.seed * 0.01}
"""


def _design_study(tmp_path, design):
    d = tmp_path / "d"
    d.mkdir()
    (d / "entry.py").write_text(DESIGN_ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent("""
        name = "design"
        entry = "entry.py:train"
        seeds = 2
        [metrics]
        score = "max"
        [baseline]
        a = 0
        b = 0
        c = 0
    """)
        + design
    )
    return d / "study.toml"


def test_path_design_grows_greedily_to_the_target(tmp_path, capsys):
    study = _design_study(tmp_path, '[design]\ntype = "path"\ntarget = { a = 1, b = 1, c = 1 }\n')
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    variants = {r["variant"] for r in _runs(capsys, study)}
    # step 1 tries a, b, c and keeps b (largest gain); step 2 tries a+b, b+c and keeps a+b; then a+b+c
    assert variants == {
        "baseline",
        "path:a",
        "path:b",
        "path:c",
        "path:a+b",
        "path:b+c",
        "path:a+b+c",
    }


def test_factorial_design_reports_effects(tmp_path, capsys):
    study = _design_study(
        tmp_path, '[design]\ntype = "factorial"\nfactors = { a = [0, 1], b = [0, 1], c = [0, 1] }\n'
    )
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    assert len(_runs(capsys, study)) == 16
    capsys.readouterr()
    main(["report", str(study), "--format", "json"])
    rep = json.loads(capsys.readouterr().out)
    assert rep["effects"]["metric"] == "score"
    values = rep["effects"]["shapley"]["values"]
    assert values == pytest.approx({"a": 1.0, "b": 2.0, "c": 0.5}, abs=1e-6)
    assert sum(values.values()) == pytest.approx(rep["effects"]["shapley"]["total"])
