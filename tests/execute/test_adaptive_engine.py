"""seeds = "auto", --race and [run] batch = K through the real engine."""

import json
import textwrap

import pytest

from ablab.cli.main import main

ENTRY = '''
import random, zlib
def train(config, run):
    r = random.Random(run.seed * 7919 + zlib.crc32(run.variant.encode()))
    return {"score": config["eff"] + r.gauss(0.0, 1.0)}
'''


def _study(tmp_path, extra=""):
    d = tmp_path / "s"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(textwrap.dedent('''
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
    ''') + extra)
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


BATCHED = '''
import torch
def train(config, run):
    torch.manual_seed(run.seed)
    w = torch.randn(3) * config["scale"]
    return {"score": float(w.sum())}

def train_batched(configs, runs):
    return [train(c, r) for c, r in zip(configs, runs)]
'''


@pytest.mark.slow
def test_batched_study_matches_solo(tmp_path, capsys):
    d = tmp_path / "b"
    d.mkdir()
    (d / "entry.py").write_text(BATCHED)
    base = textwrap.dedent('''
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
    ''')
    (d / "solo.toml").write_text(base.format(name="solo", fn="train", run=""))
    (d / "batched.toml").write_text(base.format(name="batched", fn="train_batched",
                                                run='batch = 4\nbatch_by = ["width"]'))
    assert main(["run", str(d / "solo.toml"), "-q"]) == 0
    assert main(["run", str(d / "batched.toml"), "-q"]) == 0
    solo = {(r["variant"], r["seed"]): r["metrics"]["score"] for r in _runs(capsys, d / "solo.toml")}
    batched = {(r["variant"], r["seed"]): r["metrics"]["score"] for r in _runs(capsys, d / "batched.toml")}
    assert solo == batched and len(solo) == 9
