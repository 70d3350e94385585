import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablab.analysis import analyze
from ablab.analysis.compare import compare, finish_verdicts
from ablab.analysis.sensitivity import (
    ci_width_by_seeds,
    loso_pvalues,
    seed_grid,
    split_variance,
)


def s(values, seeds):
    return pd.Series(np.asarray(values, float), index=pd.Index(list(seeds), name="seed"))


@pytest.mark.parametrize("paired", [True, False])
def test_loso_closed_form_matches_brute_force(paired):
    rng = np.random.default_rng(1)
    b = s(rng.normal(0, 1, 9), range(9))
    v = s(rng.normal(0.5, 1, 9), range(9) if paired else range(100, 109))
    seeds = np.array([*range(9), *range(100, 109)])
    delta, p = loso_pvalues(v, b, seeds)
    for j, seed in enumerate(seeds):
        c = compare(v.drop(seed, errors="ignore"), b.drop(seed, errors="ignore"), bootstrap=False)
        assert c["paired"] == paired
        assert delta[j] == pytest.approx(c["delta"])
        assert p[j] == pytest.approx(c["p_value"])


def test_leave_one_seed_out_flags_a_fragile_verdict():
    # "fragile" is not significant (p = 0.064) but becomes so without seed 2 or seed 5
    fragile_diff = [0.02, 0.01, -0.006, 0.012, 0.004, -0.004, 0.008, 0.03]
    rows = []
    rng = np.random.default_rng(0)
    for seed in range(8):
        base = 0.8 + rng.normal(0, 0.01)
        rows.append({"variant": "base", "seed": seed, "status": "done", "acc": base})
        rows.append(
            {
                "variant": "robust",
                "seed": seed,
                "status": "done",
                "acc": base + 0.05 + rng.normal(0, 0.005),
            }
        )
        rows.append(
            {"variant": "fragile", "seed": seed, "status": "done", "acc": base + fragile_diff[seed]}
        )
    r = analyze(
        pd.DataFrame(rows),
        study="s",
        metrics={"acc": {"direction": "max"}},
        baseline="base",
        configs={},
    )
    loso = r["sensitivity"]["seeds"]["leave_one_seed_out"]
    assert loso["seeds"] == 8
    assert loso["variants"]["robust"]["acc"]["stable"] is True
    # brute force: recompute the verdict of "fragile" without each seed
    df = pd.DataFrame(rows)
    flips = []
    main = next(v for v in r["variants"] if v["name"] == "fragile")["vs_baseline"]["acc"]["verdict"]
    for seed in range(8):
        d = df[df.seed != seed]
        vals = {n: s(g.acc, g.seed) for n, g in d.groupby("variant")}
        fam = [
            compare(vals["fragile"], vals["base"], bootstrap=False),
            compare(vals["robust"], vals["base"], bootstrap=False),
        ]
        finish_verdicts(fam, "max")
        if fam[0]["verdict"] != main:
            flips.append(seed)
    assert flips == [2, 5]
    assert loso["variants"]["fragile"]["acc"]["flips"] == flips
    assert loso["variants"]["fragile"]["acc"]["stable"] is False
    assert loso["variants"]["fragile"]["acc"]["survival"] == pytest.approx(6 / 8)


def test_ci_width_shrinks_with_seeds():
    rng = np.random.default_rng(4)
    v = s(rng.normal(0, 1, 40), range(40))
    pts = ci_width_by_seeds(v, s(rng.normal(0, 1, 40), range(40)))
    assert [p["n"] for p in pts] == seed_grid(40)
    assert pts[-1]["n"] == 40
    x = v.to_numpy()[:5]
    ten = next(p for p in pts if p["n"] == 5)
    assert ten["width"] == pytest.approx(2 * stats.t.ppf(0.975, 4) * x.std(ddof=1) / np.sqrt(5))
    assert pts[-1]["width"] < pts[0]["width"]
    assert "delta_width" in pts[-1]


def test_split_variance_recovers_planted_shares():
    rng = np.random.default_rng(7)
    seed_eff = rng.normal(0, 0.1, 20)  # init seeds: variance 0.01
    split_eff = rng.normal(0, 0.3, 20)  # data splits: variance 0.09, dominant
    rows = [
        {"seed": i, "split_seed": j, "acc": seed_eff[i] + split_eff[j] + rng.normal(0, 0.01)}
        for i in range(20)
        for j in range(20)
    ]
    r = split_variance(pd.DataFrame(rows), "acc")
    assert r["n_seeds"] == 20 and r["n_splits"] == 20
    assert r["split"] > 0.75 and r["seed"] > 0.03 and r["residual"] < 0.05
    assert r["seed"] + r["split"] + r["residual"] == pytest.approx(1.0)


def test_splits_and_metric_agreement_in_analyze():
    rng = np.random.default_rng(3)
    rows = []
    for v, eff in (("base", 0.0), ("a", 0.05), ("b", 0.02)):
        for seed in range(4):
            for split in range(3):
                acc = 0.8 + eff + 0.03 * split + rng.normal(0, 0.005)
                rows.append(
                    {
                        "variant": v,
                        "seed": seed,
                        "split_seed": split,
                        "status": "done",
                        "acc": acc,
                        "loss": 1 - acc,
                        "speed": -acc,
                    }
                )
    r = analyze(
        pd.DataFrame(rows),
        study="s",
        metrics={
            "acc": {"direction": "max"},
            "loss": {"direction": "min"},
            "speed": {"direction": "max"},
        },
        baseline="base",
        configs={},
    )
    sp = r["sensitivity"]["splits"]
    assert sp["mean_share"]["split"] > 0.8
    mt = r["sensitivity"]["metrics"]
    assert mt["metrics"] == ["acc", "loss", "speed"]
    assert mt["tau"][0][1] == pytest.approx(1.0)  # loss (min) ranks like acc (max)
    assert mt["tau"][0][2] == pytest.approx(-1.0)  # speed ranks the other way round
    assert mt["rankings"]["acc"] == ["a", "b", "base"]
    # pairing by (seed, split_seed)
    a = r["variants"][1]["vs_baseline"]["acc"]
    assert a["paired"] and a["n_pairs"] == 12


def test_sensitivity_does_not_import_core():
    """DESIGN.md wart: analysis/core.py and analysis/sensitivity.py imported each other."""
    import ast
    import inspect

    import ablab.analysis.sensitivity as sens

    tree = ast.parse(inspect.getsource(sens))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "ablab.analysis.core" not in imported
    assert "ablab.analysis.values" in imported
