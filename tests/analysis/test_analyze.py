import json
import math

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import analyze, reduce_series
from ablab.errors import MetricError, SpecError

METRICS = {"acc": {"direction": "max"}, "loss": {"direction": "min"}}


def make_runs(effects, n_seeds=8, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for v, eff in effects.items():
        for s in range(n_seeds):
            shared = 0.02 * math.sin(s)  # seed effect shared by all variants (pairing helps)
            acc = 0.8 + eff + shared + rng.normal(0, noise)
            rows.append(
                {
                    "key": f"{v}/{s}",
                    "variant": v,
                    "seed": s,
                    "status": "done",
                    "acc": acc,
                    "loss": 1 - acc + rng.normal(0, noise),
                }
            )
    return pd.DataFrame(rows)


def test_result_shape_and_verdicts():
    runs = make_runs({"base": 0.0, "better": 0.05, "same": 0.0, "worse": -0.05})
    runs.loc[len(runs)] = {
        "key": "x",
        "variant": "same",
        "seed": 99,
        "status": "failed",
        "acc": np.nan,
        "loss": np.nan,
    }
    configs = {v: {"name": v} for v in ["base", "better", "same", "worse"]}
    r = analyze(runs, study="toy", metrics=METRICS, baseline="base", configs=configs)
    json.dumps(r, allow_nan=False)  # strict JSON
    assert r["study"] == "toy" and r["primary_metric"] == "acc" and r["baseline"] == "base"
    assert r["runs"] == {"total": 33, "done": 32, "failed": 1}
    by = {v["name"]: v for v in r["variants"]}
    assert [v["name"] for v in r["variants"]][0] == "base"
    assert by["base"]["vs_baseline"] == {}
    assert set(by["base"]["metrics"]["acc"]) >= {
        "mean",
        "std",
        "sem",
        "median",
        "iqm",
        "min",
        "max",
        "ci_low",
        "ci_high",
    }
    keys = {
        "delta",
        "delta_pct",
        "delta_ci_low",
        "delta_ci_high",
        "p_value",
        "wilcoxon_p",
        "p_adjusted",
        "hedges_g",
        "cliffs_delta",
        "prob_improvement",
        "verdict",
        "reason",
        "seeds_needed",
        "ci_method",
        "adjustment",
    }
    assert set(by["better"]["vs_baseline"]["acc"]) >= keys
    assert by["better"]["vs_baseline"]["acc"]["verdict"] == "better"
    assert by["worse"]["vs_baseline"]["acc"]["verdict"] == "worse"
    assert by["same"]["vs_baseline"]["acc"]["verdict"] == "inconclusive"
    assert by["same"]["vs_baseline"]["acc"]["seeds_needed"] is None  # no margin declared
    assert "no-difference" not in json.dumps(r)
    # loss is to be minimised: the better variant has lower loss and is "better"
    assert by["better"]["vs_baseline"]["loss"]["verdict"] == "better"
    assert by["better"]["vs_baseline"]["loss"]["delta"] < 0
    assert by["same"]["n"] == 8 and by["same"]["failed"] == 1
    assert by["better"]["config"] == {"name": "better"}
    # Holm: p_adjusted >= p_value, per metric family
    for v in r["variants"][1:]:
        c = v["vs_baseline"]["acc"]
        assert c["p_adjusted"] >= c["p_value"]


def test_reproducible_and_null_not_nan():
    runs = make_runs({"base": 0.0, "a": 0.01}, n_seeds=1)
    r1 = analyze(runs, study="s", metrics=METRICS, baseline="base", configs={})
    r2 = analyze(runs, study="s", metrics=METRICS, baseline="base", configs={})
    assert r1 == r2
    assert r1["variants"][0]["metrics"]["acc"]["std"] is None  # one run: undefined, null
    text = json.dumps(r1, allow_nan=False)
    assert "NaN" not in text


def test_sensitivity_runs_are_excluded_from_main_study():
    main = make_runs({"base": 0.0, "a": 0.05})
    other = make_runs({"base": 0.0, "a": -0.05}, seed=1).assign(sensitivity="lr=0.1")
    runs = pd.concat([main.assign(sensitivity=None), other], ignore_index=True)
    r = analyze(runs, study="s", metrics=METRICS, baseline="base", configs={})
    a = r["variants"][1]
    assert a["n"] == 8 and a["vs_baseline"]["acc"]["verdict"] == "better"
    hp = r["sensitivity"]["hyperparameters"]
    assert hp["labels"] == ["lr=0.1"]
    assert hp["verdicts"]["a"]["lr=0.1"]["acc"] == "worse"
    assert hp["holds"]["a"]["acc"] is False
    assert hp["kendall_tau"]["lr=0.1"] == pytest.approx(-1.0)


def test_input_errors_name_the_problem():
    runs = make_runs({"base": 0.0, "a": 0.0})
    with pytest.raises(MetricError, match="accuracy"):
        analyze(runs, study="s", metrics={"accuracy": {}}, baseline="base", configs={})
    with pytest.raises(MetricError, match="direction"):
        analyze(runs, study="s", metrics={"acc": {"direction": "up"}}, baseline="base", configs={})
    with pytest.raises(SpecError, match="did you mean 'base'"):
        analyze(runs, study="s", metrics=METRICS, baseline="bsae", configs={})
    with pytest.raises(SpecError, match="design"):
        analyze(runs, study="s", metrics=METRICS, baseline="base", configs={}, design="grid")


def test_reduce_series():
    s = pd.DataFrame({"step": [2, 0, 1, 3], "value": [0.5, 0.1, 0.9, np.nan]})
    assert reduce_series(s, "max", "last") == 0.5  # step 3 is NaN, ignored
    assert reduce_series(s, "max", "best") == 0.9
    assert reduce_series(s, "min", "best") == 0.1
    assert math.isnan(reduce_series(s.iloc[0:0], "max", "best"))
    with pytest.raises(MetricError):
        reduce_series(s, "max", "value")
    with pytest.raises(MetricError, match="step"):
        reduce_series(s.rename(columns={"step": "epoch"}), "max", "last")


def test_margin_gives_equivalent_and_planning_figure():
    runs = make_runs({"base": 0.0, "same": 0.0, "better": 0.05}, n_seeds=8, noise=0.001)
    metrics = {"acc": {"direction": "max", "margin": 0.01}, "loss": {"direction": "min"}}
    r = analyze(runs, study="s", metrics=metrics, baseline="base", configs={})
    by = {v["name"]: v["vs_baseline"] for v in r["variants"]}
    assert r["metrics"]["acc"]["margin"] == 0.01 and r["metrics"]["loss"]["margin"] is None
    assert by["same"]["acc"]["verdict"] == "equivalent"
    assert by["better"]["acc"]["verdict"] == "better"
    assert isinstance(by["same"]["acc"]["seeds_needed"], int)
    assert by["same"]["loss"]["verdict"] == "inconclusive"  # no margin on loss
    assert by["same"]["loss"]["seeds_needed"] is None
    assert "Holm" in r["methods"]["p_adjusted"] and "t-interval" in r["methods"]["ci"]
    # leave-one-seed-out has no equivalence test: an equivalent verdict is not said to flip
    loso = r["sensitivity"]["seeds"]["leave_one_seed_out"]["variants"]
    assert "acc" not in loso["same"] and loso["better"]["acc"]["verdict"] == "better"


def test_mean_ci_is_the_t_interval():
    from scipy import stats

    runs = make_runs({"base": 0.0, "a": 0.01}, n_seeds=3)
    r = analyze(runs, study="s", metrics=METRICS, baseline="base", configs={})
    x = runs[runs["variant"] == "base"]["acc"].to_numpy()
    lo, hi = stats.t.interval(0.95, 2, loc=x.mean(), scale=stats.sem(x))
    s = r["variants"][0]["metrics"]["acc"]
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    assert s["ci_method"] == "unadjusted 95% t-interval"
    assert s["ci_low"] < x.min() and s["ci_high"] > x.max()  # not stuck at [min, max]


@pytest.mark.parametrize("margin", [0, -0.1, float("nan"), "0.1", True])
def test_bad_margin_is_rejected(margin):
    runs = make_runs({"base": 0.0, "a": 0.01}, n_seeds=3)
    with pytest.raises(MetricError, match="margin must be a positive finite number"):
        analyze(
            runs,
            study="s",
            metrics={"acc": {"direction": "max", "margin": margin}},
            baseline="base",
        )


def test_pairing_rule_in_the_analysis():
    """Issue 15 item 7: 2 shared seeds of 10 per side -> Welch on all 20 runs; full overlap
    -> paired; the rule is stated in the result's methods."""
    runs = make_runs({"base": 0.0, "a": 0.02}, n_seeds=10)
    r = analyze(runs, study="s", metrics=METRICS, baseline="base")
    c = r["variants"][1]["vs_baseline"]["acc"]
    assert c["paired"] and c["test"] == "paired-t" and c["n_pairs"] == 10
    shifted = runs.copy()
    mask = (shifted["variant"] == "a") & (shifted["seed"] >= 2)
    shifted.loc[mask, "seed"] += 100
    r = analyze(shifted, study="s", metrics=METRICS, baseline="base")
    c = r["variants"][1]["vs_baseline"]["acc"]
    assert not c["paired"] and c["test"] == "welch-t" and c["n_pairs"] == 2
    assert c["ci_method"] == "unadjusted 95% Welch t-interval"
    assert "80%" in r["methods"]["pairing"]
