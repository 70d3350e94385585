"""The zoo as an ablab study, end to end through the CLI: run -> pairs -> fit -> eval; pairs is
idempotent, resumable and deterministic; its errors exit 2 with the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ablab.errors import DataError
from ablab.mdtree import MDTree
from ablab.mdtree.pairs import compute_pairs, group_runs
from ablab.store.db import Store
from ablab.store.records import run_artifacts

TINY = Path(__file__).resolve().parents[2] / "examples" / "mdtree_zoo" / "tiny.toml"


def _store_runs(study: Path):
    with Store(study.parent / ".ablab") as st:
        return st.runs(st.study("mdtree-zoo-tiny")["id"])


@pytest.mark.slow
def test_zoo_study_end_to_end(tmp_path, cli):
    study = tmp_path / "tiny.toml"
    shutil.copy(TINY, study)
    code, out, err = cli("run", study, "-j", "2", "-q")
    assert code == 0, out + err
    assert "16/16 done" in out

    # before the pair step, fit says what to run
    code, _, err = cli("mdtree", "fit", study, "-o", tmp_path / "q1.json")
    assert code == 2 and f"ablab mdtree pairs {study}" in err and "mc_peak" in err
    code, out, err = cli("report", study, "--format", "json")  # post metrics not attached yet
    assert code == 0, err
    assert "mc_peak" in json.loads(out)["metrics"]

    code, out, err = cli("mdtree", "pairs", study)
    assert code == 0, err
    assert "8 configuration(s) computed, 0 already done" in out
    runs = _store_runs(study)
    by_cfg: dict[str, list[dict]] = {}
    for r in runs:
        assert {"mc_peak", "mu", "test_accuracy", "hessian_trace"} <= set(r["metrics"])
        by_cfg.setdefault(r["variant"], []).append(r["metrics"])
    assert len(by_cfg) == 8 and all(len(v) == 2 for v in by_cfg.values())
    for a, b in by_cfg.values():  # one pair, recorded on both seeds
        assert a["mc_peak"] == b["mc_peak"] and a["mu"] == b["mu"]

    # the same numbers as training and pairing in this process (bit-identical on CPU)
    from ablab.mdtree.zoo import pair_features, train_member

    cfg = {"task": "digits", "width": 32, "batch_size": 256, "data_fraction": 0.2, "epochs": 3,
           "lr": 0.05}  # fmt: skip
    (m0, met0), (m1, _) = train_member(cfg, 0), train_member(cfg, 1)
    stored = next(r["metrics"] for r in runs if r["config"] == cfg and r["seed"] == 0)
    assert stored["test_accuracy"] == met0["test_accuracy"]
    assert stored["mc_peak"] == pair_features(m0, m1, cfg)["mc_peak"]

    # idempotent: a second pass computes nothing; --force recomputes the same values
    code, out, _ = cli("mdtree", "pairs", study)
    assert code == 0 and "0 configuration(s) computed, 8 already done" in out
    code, out, _ = cli("mdtree", "pairs", study, "--force")
    assert code == 0 and "8 configuration(s) computed" in out
    again = {(r["key"]): r["metrics"] for r in _store_runs(study)}
    for r in runs:
        assert again[r["key"]] == r["metrics"]

    # fit (data knob found as data_fraction) and eval, straight from the study
    for q in ("q1", "q2", "q2_data"):
        code, out, err = cli("mdtree", "fit", study, "--question", q, "-o", tmp_path / f"{q}.json")
        assert code == 0, err
        tree = MDTree.load(tmp_path / f"{q}.json")
        assert tree.question == q and tree.provenance["knobs"] == [
            "batch_size",
            "width",
            "data_fraction",
        ]
    code, out, _ = cli("mdtree", "eval", tmp_path / "q1.json", study)
    assert code == 0 and "MD tree accuracy" in out
    code, out, _ = cli("report", study, "--format", "csv")
    assert code == 0 and "test_accuracy" in out
    assert (
        "mc_peak" in out and "cka" in out
    )  # reduce = "post": attached by pairs, analysed like any metric

    # a configuration of the study that has not run yet: named in a warning, the rest is kept
    grown = tmp_path / "grown"
    shutil.copytree(tmp_path, grown, ignore=shutil.ignore_patterns("*.json"))
    text = (grown / "tiny.toml").read_text().replace("width = [4, 32]", "width = [4, 32, 8]")
    (grown / "tiny.toml").write_text(text)
    code, out, err = cli("mdtree", "pairs", grown / "tiny.toml")
    assert code == 0 and "4 configuration(s) have fewer than 2 finished seeds" in err
    assert "width=8,batch_size=16,data_fraction=0.2" in err and "8 already done" in out

    # a study folder moved elsewhere (rsync from a cluster, a renamed project) finds its checkpoints
    moved = tmp_path / "laptop" / "zoo"
    shutil.move(grown, moved)
    with Store(moved / ".ablab") as st:
        paths = [
            Path(p)
            for a in run_artifacts(st, st.study("mdtree-zoo-tiny")["id"]).values()
            for p in a.values()
        ]
    assert len(paths) == 16 and all(p.is_file() and p.is_relative_to(moved) for p in paths)
    code, out, err = cli("mdtree", "pairs", moved / "tiny.toml", "--force", "--mc-epochs", "1")
    assert code == 0 and "8 configuration(s) computed" in out, err

    # a missing checkpoint: exit 2, naming the configuration and seed
    victim = next(r for r in runs if r["variant"] == "baseline" and r["seed"] == 1)
    (tmp_path / ".ablab" / "runs" / victim["key"] / "model.pt").unlink()
    code, _, err = cli("mdtree", "pairs", study, "--force")
    assert code == 2 and "no saved checkpoint" in err and "baseline seed 1" in err


def test_pairs_on_a_study_never_run(tmp_path, cli):
    shutil.copy(TINY, tmp_path / "tiny.toml")
    code, _, err = cli("mdtree", "pairs", tmp_path / "tiny.toml")
    assert code == 2 and "has no runs in the store" in err and "ablab run" in err
    code, _, err = cli("mdtree", "pairs", tmp_path / "tiny.toml", "--mc-epochs", "0")
    assert code == 2 and "--mc-epochs 0" in err


def _run(i: int, variant: str, seed: int, status: str = "done", **config) -> dict:
    return {"id": i, "key": f"k{i}", "variant": variant, "seed": seed, "status": status,
            "config": {"width": 4, "batch_size": 16} | config, "metrics": {}}  # fmt: skip


def test_compute_pairs_errors_without_training():
    record = []
    # each configuration has fewer than 2 finished seeds: nothing to do is an error
    runs = [_run(1, "a", 0), _run(2, "a", 1, "failed"), _run(3, "b", 0, width=8)]
    assert [len(g.runs) for g in group_runs(runs)] == [1, 1]
    with pytest.raises(DataError, match="no configuration has 2 finished seeds"):
        compute_pairs(runs, {}, record.append, source="zoo.toml")
    with pytest.raises(DataError, match="has no runs"):
        compute_pairs([], {}, record.append, source="zoo.toml")
    # checkpoints are checked before any pair is computed
    runs += [_run(4, "b", 1, width=8)]
    with pytest.raises(DataError, match=r"2 run\(s\) have no saved checkpoint: b seed 0"):
        compute_pairs(runs, {3: {"model": "/nonexistent/model.pt"}}, record.append)
    # not a zoo: the configuration has no width
    bad = [dict(_run(1, "a", 0), config={"hidden": 3}), dict(_run(2, "a", 1), config={"hidden": 3})]
    with pytest.raises(DataError, match="not zoo members"):
        compute_pairs(bad, {}, record.append)
    assert record == []
    # already done configurations are skipped without loading anything
    done = [dict(_run(i, "a", i), metrics={"mc_peak": -1.0, "mu": 0.0}) for i in (0, 1)]
    res = compute_pairs(done + [_run(2, "c", 0, width=8)], {}, record.append)
    assert res.already_done == ["a"] and res.incomplete == ["c"] and res.computed == []


def test_bad_checkpoint_is_a_data_error(tmp_path):
    from ablab.mdtree.pairs import _load_member

    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="does not load into the zoo model"):
        _load_member(bad, {"width": 4, "batch_size": 16})


@pytest.mark.parametrize(
    ("name", "configs"), [("digits", 5 * 6 * 4), ("mnist1d", 3 * 5 * 4), ("tiny", 8)]
)
def test_zoo_study_files_plan_the_full_grid(name, configs):
    """Multi-level full factorial over width x batch size x data fraction, 2 seeds each."""
    from ablab.plan.designs_bridge import plan_for
    from ablab.spec.load import load_study

    spec = load_study(TINY.with_name(f"{name}.toml"))
    plan = plan_for(spec)
    cells = {
        (r.config["width"], r.config["batch_size"], r.config["data_fraction"]) for r in plan.runs
    }
    assert len(plan) == 2 * configs and len(cells) == configs
    assert spec.entry == "ablab.mdtree.zoo:zoo_entry" and spec.seeds == (0, 1)
