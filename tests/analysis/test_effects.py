import itertools

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import analyze
from ablab.analysis.effects import shapley_values
from ablab.plan.designs import fractional_factorial, full_factorial


def factorial_runs(factors, response, n_seeds=5, noise=0.02, seed=0, rows_=None):
    rng = np.random.default_rng(seed)
    configs, rows = {}, []
    for i, cfg in enumerate(rows_ or full_factorial(factors)):
        name = f"cell{i}"
        configs[name] = cfg
        for s in range(n_seeds):
            rows.append(
                {
                    "key": f"{name}/{s}",
                    "variant": name,
                    "seed": s,
                    "status": "done",
                    "acc": response(cfg) + rng.normal(0, noise),
                }
            )
    return pd.DataFrame(rows), configs


FACTORS = {"augment": [False, True], "loss": ["ce", "focal"], "dropout": [0.0, 0.1]}


def planted(cfg):
    a = 1.0 if cfg["augment"] else 0.0
    b = 1.0 if cfg["loss"] == "focal" else 0.0
    # main effect of augment and an augment x loss interaction (effect-coded, so no main effect
    # of loss); dropout does nothing
    return 0.7 + 0.1 * a + 0.05 * (2 * a - 1) * (2 * b - 1)


def test_planted_main_effect_and_interaction_are_recovered():
    runs, configs = factorial_runs(FACTORS, planted)
    r = analyze(
        runs,
        study="f",
        metrics={"acc": {"direction": "max"}},
        baseline="cell0",
        configs=configs,
        design="factorial",
        factors=FACTORS,
        sensitivity=False,
    )
    e = r["effects"]
    terms = {row["term"]: row for row in e["anova"]}
    assert terms["augment"]["p"] < 1e-6 and terms["augment"]["partial_eta_sq"] > 0.9
    assert terms["augment:loss"]["p"] < 1e-6 and terms["augment:loss"]["partial_eta_sq"] > 0.8
    for spurious in ("loss", "dropout", "augment:dropout", "loss:dropout"):
        assert terms[spurious]["p"] > 0.01, spurious
        assert terms[spurious]["partial_eta_sq"] < 0.2, spurious
    assert e["main_effects"]["augment"]["effect"] == pytest.approx(0.1, abs=0.01)
    inter = {tuple(i["factors"]): i for i in e["interactions"]}
    # m11 - m10 - m01 + m00 = 0.05 * (1 + 1 + 1 + 1) = 0.2
    assert inter[("augment", "loss")]["contrast"] == pytest.approx(0.2, abs=0.02)
    m = e["interaction_matrix"]
    i, j = m["factors"].index("augment"), m["factors"].index("loss")
    assert m["partial_eta_sq"][i][j] == m["partial_eta_sq"][j][i] > 0.8
    # Shapley: efficiency, and the sum equals the full-minus-empty difference of cell means
    sh = e["shapley"]
    assert sum(sh["values"].values()) == pytest.approx(sh["total"])
    cells = {tuple(c["levels"].values()): c["mean"] for c in e["cells"]}
    assert sh["total"] == pytest.approx(
        cells[("true", "focal", "0.1")] - cells[("false", "ce", "0.0")]
    )
    assert abs(sh["values"]["dropout"]) < 0.02
    assert sh["values"]["augment"] > sh["values"]["loss"]


def test_shapley_values_exact_on_known_game():
    # v(S) = sum of weights + bonus when a and b are both present; the bonus is shared equally
    w = {"a": 1.0, "b": 2.0, "c": -0.5}

    def v(s):
        return sum(w[p] for p in s) + (3.0 if {"a", "b"} <= s else 0.0)

    phi = shapley_values(list(w), v)
    assert phi == pytest.approx({"a": 2.5, "b": 3.5, "c": -0.5})
    assert sum(phi.values()) == pytest.approx(v(frozenset(w)) - v(frozenset()))


def test_fractional_design_reports_aliased_interactions():
    factors = {c: [0, 1] for c in "abcd"}
    design = fractional_factorial(factors, "IV")  # 8 runs, D = ABC: 2FIs aliased in pairs

    def resp(cfg):
        return 1.0 + 0.5 * cfg["a"] - 0.3 * cfg["c"]

    runs, configs = factorial_runs(factors, resp, rows_=design.rows, n_seeds=4, seed=2)
    r = analyze(
        runs,
        study="frac",
        metrics={"acc": {"direction": "max"}},
        baseline="cell0",
        configs=configs,
        design="fractional",
        factors=factors,
        sensitivity=False,
        design_info=design.to_dict(),
    )
    e = r["effects"]
    assert e["design"]["generators"] == ["d = a*b*c"]
    assert len(e["aliased_terms"]) == 3  # ab=cd, ac=bd, ad=bc: one of each pair left out
    assert e["main_effects"]["a"]["effect"] == pytest.approx(0.5, abs=0.05)
    assert e["main_effects"]["c"]["effect"] == pytest.approx(-0.3, abs=0.05)
    assert e["main_effects"]["b"]["p"] > 0.01
    sh = e["shapley"]
    assert sh["value_function"].startswith("OLS")  # not every cell was run
    assert sum(sh["values"].values()) == pytest.approx(sh["total"])


def test_multilevel_factor_shapley_targets_best_cell():
    factors = {"depth": [1, 2, 3], "wide": [False, True]}

    def resp(cfg):
        return cfg["depth"] * 0.1 + (0.05 if cfg["wide"] else 0.0)

    runs, configs = factorial_runs(factors, resp, n_seeds=3)
    r = analyze(
        runs,
        study="m",
        metrics={"acc": {"direction": "max"}},
        baseline="cell0",
        configs=configs,
        design="factorial",
        factors=factors,
        sensitivity=False,
    )
    sh = r["effects"]["shapley"]
    assert sh["to"] == {"depth": "3", "wide": "true"}
    assert sh["values"]["depth"] == pytest.approx(0.2, abs=0.03)
    assert list(itertools.chain(r["effects"]["factors"]["depth"])) == ["1", "2", "3"]
