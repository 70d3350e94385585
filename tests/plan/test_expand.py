"""Plan expansion (variants x seeds) and stable run keys."""

from __future__ import annotations

import subprocess
import sys

from ablab.plan.expand import canonical_json, expand, run_key
from ablab.spec import parse_study

RAW = {
    "name": "s",
    "entry": "train.py:train",
    "seeds": [0, 1, 2],
    "metrics": {"acc": "max"},
    "baseline": {"hidden": 128, "dropout": 0.1, "optim": {"lr": 0.01, "betas": [0.9, 0.99]}},
    "ablations": {"small": {"hidden": 32}, "no-dropout": {"dropout": 0.0}},
}


def test_variants_times_seeds_in_order():
    plan = expand(parse_study(RAW))
    assert len(plan) == 9
    assert plan.variants() == ["baseline", "small", "no-dropout"]
    assert [(r.variant, r.seed) for r in plan.runs[:4]] == [
        ("baseline", 0),
        ("baseline", 1),
        ("baseline", 2),
        ("small", 0),
    ]
    small = [r for r in plan.runs if r.variant == "small"]
    assert all(r.config["hidden"] == 32 and r.config["dropout"] == 0.1 for r in small)
    assert len({r.key for r in plan.runs}) == 9
    assert all(len(r.key) == 16 and int(r.key, 16) >= 0 for r in plan.runs)


def test_same_inputs_same_keys():
    a, b = expand(parse_study(RAW)), expand(parse_study(dict(RAW)))
    assert [r.key for r in a.runs] == [r.key for r in b.runs]
    # key order in the configuration does not matter
    reordered = dict(
        RAW, baseline={"optim": {"betas": [0.9, 0.99], "lr": 0.01}, "dropout": 0.1, "hidden": 128}
    )
    assert [r.key for r in expand(parse_study(reordered)).runs] == [r.key for r in a.runs]


def test_keys_do_not_depend_on_variant_names_or_study_name():
    renamed = dict(RAW, name="other", ablations={"tiny": {"hidden": 32}, "nd": {"dropout": 0.0}})
    assert [r.key for r in expand(parse_study(renamed)).runs] == [
        r.key for r in expand(parse_study(RAW)).runs
    ]


def test_key_is_stable_across_processes():
    """Same inputs in a fresh interpreter (different hash seed) give the same key."""
    code = (
        "from ablab.plan.expand import run_key; "
        "print(run_key('train.py:train', {'b': [1, 2], 'a': {'y': 0.5, 'x': True}}, 3))"
    )
    out = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h), "PATH": "/usr/bin:/bin"},
        ).stdout.strip()
        for h in (1, 2)
    }
    assert out == {run_key("train.py:train", {"a": {"x": True, "y": 0.5}, "b": [1, 2]}, 3)}


def test_any_change_gives_a_different_key():
    cfg = {"hidden": 128, "dropout": 0.1, "optim": {"lr": 0.01}}
    k = run_key("train.py:train", cfg, 0)
    others = [
        run_key("train2.py:train", cfg, 0),
        run_key("train.py:fit", cfg, 0),
        run_key("train.py:train", cfg, 1),
        run_key("train.py:train", {**cfg, "hidden": 129}, 0),
        run_key("train.py:train", {**cfg, "dropout": 0.10000001}, 0),
        run_key("train.py:train", {**cfg, "optim": {"lr": 0.02}}, 0),
        run_key("train.py:train", {**cfg, "new": None}, 0),
        run_key("train.py:train", {k2: v for k2, v in cfg.items() if k2 != "dropout"}, 0),
        run_key("train.py:train", {**cfg, "hidden": "128"}, 0),  # a string is not the number
        run_key("train.py:train", cfg, 0, split_seed=0),
    ]
    assert k not in others and len(set(others)) == len(others)


def test_changing_the_study_changes_only_the_affected_keys():
    base = expand(parse_study(RAW))
    changed = expand(
        parse_study(dict(RAW, ablations={"small": {"hidden": 16}, "no-dropout": {"dropout": 0.0}}))
    )
    diff = [(a.variant, a.key == b.key) for a, b in zip(base.runs, changed.runs, strict=True)]
    assert all(same for v, same in diff if v != "small")
    assert not any(same for v, same in diff if v == "small")
    more_seeds = expand(parse_study(dict(RAW, seeds=[0, 1, 2, 3])))
    assert {r.key for r in base.runs} < {r.key for r in more_seeds.runs}


def test_canonical_json_is_order_independent():
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_sensitivity_and_split_seeds_expand():
    raw = dict(RAW, seeds=2, ablations={}, sensitivity={"dropout": [0.0, 0.1, 0.3]}, split_seeds=2)
    plan = expand(parse_study(raw))
    # the baseline value 0.1 is the main study, not run twice: (1 + 2 settings) x 2 seeds x 2 splits
    assert len(plan) == 12 and len({r.key for r in plan.runs}) == 12
    assert {r.sensitivity for r in plan.runs} == {None, "dropout=0.0", "dropout=0.3"}
    assert {r.split_seed for r in plan.runs} == {0, 1}
