import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.anova import anova_lm

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
    assert e["design"]["alias_chains"] == [["a:b", "c:d"], ["a:c", "b:d"], ["a:d", "b:c"]]
    assert sorted(e["aliased_terms"]) == ["b:c", "b:d", "c:d"]  # fitted within their chains
    assert e["main_effects"]["a"]["effect"] == pytest.approx(0.5, abs=0.05)
    assert e["main_effects"]["c"]["effect"] == pytest.approx(-0.3, abs=0.05)
    assert e["main_effects"]["b"]["p"] > 0.01
    sh = e["shapley"]
    # half the cells never ran and the two-way terms are aliased in pairs: no honest value
    assert sh["values"] is None and "aliased" in sh["reason"]


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


def _analyze(runs, configs, factors, **kw):
    return analyze(
        runs,
        study="s",
        metrics={"acc": {"direction": "max"}},
        baseline="cell0",
        configs=configs,
        design=kw.pop("design", "factorial"),
        factors=factors,
        sensitivity=False,
        **kw,
    )


def test_planted_interaction_in_res_iv_fraction_is_reported_as_its_alias_chain():
    """Issue 15: a planted c:e interaction in a 2^(6-2) IV design was credited to a:b (p =
    6.6e-8, aliased: false) and c:e listed as not estimable."""
    factors = {c: [0, 1] for c in "abcdef"}
    design = fractional_factorial(factors, "IV")

    def resp(cfg):
        return 1.0 + 0.2 * cfg["a"] + 0.1 * (2 * cfg["c"] - 1) * (2 * cfg["e"] - 1)

    runs, configs = factorial_runs(factors, resp, rows_=design.rows, n_seeds=3, seed=4)
    e = _analyze(runs, configs, factors, design="fractional", design_info=design.to_dict())[
        "effects"
    ]
    d = e["design"]
    assert d["resolution"] == 4 and d["generators"] == ["e = a*b*c", "f = a*b*d"]
    assert ["a:b", "c:e", "d:f"] in d["alias_chains"]
    assert d["defining_relation"] == ["I = a*b*c*e", "I = a*b*d*f", "I = c*d*e*f"]
    (row,) = [r for r in e["anova"] if "c:e" in r["term"].split(" = ")]
    assert row["term"].startswith("a:b = c:e = d:f") and row["aliased"] is True
    assert {"c:e", "d:f"} <= set(row["aliases"]) and row["p"] < 1e-6
    assert not any(r["term"] == "a:b" for r in e["anova"])
    ce = next(i for i in e["interactions"] if i["factors"] == ["c", "e"])
    assert ce["aliased"] is True and ce["status"] == "aliased" and "a:b" in ce["aliases"]
    assert ce["p"] == row["p"] and ce["chain"] == row["term"]
    ab = next(i for i in e["interactions"] if i["factors"] == ["a", "b"])
    assert ab["aliased"] is True and "c:e" in ab["aliases"]
    assert all(i["status"] != "not estimable" for i in e["interactions"])
    # nothing pooled: 6 mains + 7 two-way chains + 2 three-way chains = 15 df; 48 - 16 = 32
    assert e["model"]["full"] and not e["model"]["pooled"] and e["model"]["residual_df"] == 32


@pytest.mark.parametrize("levels", [(2, 2, 2), (2, 3, 2)])
def test_replicated_full_factorial_fits_all_interactions_like_statsmodels(levels):
    factors = {n: list(range(L)) for n, L in zip("abc", levels, strict=True)}

    def resp(cfg):
        return 0.5 + 0.1 * cfg["a"] * cfg["b"] * cfg["c"] - 0.05 * cfg["b"]

    runs, configs = factorial_runs(factors, resp, n_seeds=3, noise=0.05, seed=7)
    runs = runs.drop(index=[0, 4])  # unbalanced: type II still matches the oracle
    e = _analyze(runs, configs, factors)["effects"]
    assert e["model"]["full"] and e["model"]["order"] == 3
    assert "a:b:c" in e["model"]["terms"]
    frame = runs.assign(**{f: [configs[v][f] for v in runs["variant"]] for f in factors})
    oracle = anova_lm(smf.ols("acc ~ C(a) * C(b) * C(c)", frame).fit(), typ=2)
    for r in e["anova"]:
        name = "Residual" if r["term"] == "Residual" else ":".join(f"C({f})" for f in r["factors"])
        assert r["sum_sq"] == pytest.approx(oracle.loc[name, "sum_sq"], rel=1e-8, abs=1e-12)
        assert r["df"] == oracle.loc[name, "df"]
        if name != "Residual":
            assert r["p"] == pytest.approx(oracle.loc[name, "PR(>F)"], rel=1e-6)
    ps = [r["p"] for r in e["anova"] if r["term"] != "Residual"]
    assert min(r["p_adjusted"] for r in e["anova"][:-1]) == pytest.approx(len(ps) * min(ps))


def test_unreplicated_factorial_pools_the_top_interaction_and_says_so():
    factors = {c: [0, 1] for c in "abc"}
    runs, configs = factorial_runs(factors, lambda c: c["a"] + 0.5 * c["b"], n_seeds=1)
    m = _analyze(runs, configs, factors)["effects"]["model"]
    assert not m["full"] and m["pooled"] == ["a:b:c"] and "no replication" in m["pooled_reason"]
    assert m["residual_df"] == 1


def test_noise_free_data_gives_no_p_value_to_a_factor_without_effect():
    """Issue 15: on noise-free data the old two-way model pooled rounding noise into the
    residual and c, which does nothing, got p = 0.0024 on exactly these numbers."""
    factors = {c: [0, 1] for c in "abc"}

    def resp(cfg):
        a, b = 2 * cfg["a"] - 1, 2 * cfg["b"] - 1
        return 0.7 + 0.07 * a - 0.13 * b - 0.02 * a * b

    runs, configs = factorial_runs(factors, resp, n_seeds=3, noise=0.0)
    e = _analyze(runs, configs, factors)["effects"]
    for r in e["anova"]:
        if "c" in r["factors"]:
            assert r["p"] is None or r["p"] >= 0.05, r
    assert e["main_effects"]["a"]["p"] == 0.0
    assert any("noise-free" in n for n in e["model"]["notes"])


def test_shapley_is_undefined_when_a_factor_level_never_ran():
    """Issue 15: every run with c = 1 failed; the old report gave c a Shapley value of 0 from
    an OLS extrapolation."""
    factors = {c: [0, 1] for c in "abc"}
    runs, configs = factorial_runs(factors, lambda c: c["a"] + 2 * c["c"], n_seeds=3)
    failed = runs["variant"].map(lambda v: configs[v]["c"] == 1)
    runs.loc[failed, "status"] = "failed"
    e = _analyze(runs, configs, factors)["effects"]
    sh = e["shapley"]
    assert sh["values"] is None and sh["total"] is None
    assert "never ran" in sh["reason"] and "'c'" in sh["reason"]
    assert e["main_effects"]["c"]["status"] == "not estimable"


def test_shapley_predicts_a_missing_cell_only_under_a_stated_model():
    factors = {c: [0, 1] for c in "abc"}

    def resp(cfg):
        return cfg["a"] + 0.5 * cfg["b"] - 0.25 * cfg["c"] + 0.2 * cfg["a"] * cfg["b"]

    runs, configs = factorial_runs(factors, resp, n_seeds=3, noise=0.01)
    missing = runs["variant"].map(lambda v: configs[v] == {"a": 1, "b": 0, "c": 1})
    planned = {"type": "full factorial", "runs": 8, "defining_relation": []}
    e = _analyze(runs[~missing], configs, factors, design_info=planned)["effects"]
    assert e["design"]["observed"]["cells_run"] == 7
    assert "do not form the planned design" in e["design"]["notes"][0]
    sh = e["shapley"]
    assert "OLS predictions" in sh["value_function"] and "order >= 3" in sh["value_function"]
    assert sh["predicted_cells"] == [{"a": "1", "b": "0", "c": "1"}]
    assert sh["values"]["a"] == pytest.approx(1.1, abs=0.03)
    assert sum(sh["values"].values()) == pytest.approx(sh["total"])
    # the three-way term lost a cell: partially confounded, named, not silently dropped
    abc = e["model"]
    assert "a:b:c" not in abc["terms"]


def test_pooling_on_request_is_labelled():
    factors = {c: [0, 1] for c in "abc"}
    runs, configs = factorial_runs(factors, lambda c: c["a"], n_seeds=3)
    m = _analyze(runs, configs, factors, design_info={"max_order": 2})["effects"]["model"]
    assert m["pooled"] == ["a:b:c"] and "on request" in m["pooled_reason"]
    assert m["residual_df"] == 24 - 7 and "a:b:c" not in m["terms"]


@settings(max_examples=6, deadline=None)
@given(
    k=st.integers(4, 7),
    res=st.sampled_from(["III", "IV"]),
    planted=st.integers(0, 20),
    seed=st.integers(0, 2**16),
)
def test_chains_from_the_runs_match_the_plan_and_share_one_test(k, res, planted, seed):
    names = "abcdefg"[:k]
    factors = {c: [0, 1] for c in names}
    design = fractional_factorial(factors, res)
    pairs = list(itertools.combinations(names, 2))
    x, y = pairs[planted % len(pairs)]

    def resp(cfg):
        return 1.0 + 0.2 * (2 * cfg[x] - 1) * (2 * cfg[y] - 1)

    runs, configs = factorial_runs(factors, resp, rows_=design.rows, n_seeds=2, seed=seed)
    e = _analyze(runs, configs, factors, design="fractional")["effects"]
    assert sorted(map(sorted, e["design"]["alias_chains"])) == sorted(
        map(sorted, design.alias_chains())
    )
    hit = next(i for i in e["interactions"] if i["factors"] == [x, y])
    for other in hit["aliases"]:
        if other.count(":") == 1:
            twin = next(i for i in e["interactions"] if ":".join(i["factors"]) == other)
            assert twin["p"] == hit["p"] and twin["aliased"]
    # the planted term's chain is found, whichever member names it (in III it may be a main
    # effect's chain: then the main effect row carries it)
    if hit["status"] in ("fitted", "aliased"):
        assert hit["p"] < 1e-3
    else:
        assert hit["aliased"]


def test_constant_response_gets_no_p_values():
    factors = {c: [0, 1] for c in "ab"}
    runs, configs = factorial_runs(factors, lambda c: 0.9, n_seeds=3, noise=0.0)
    e = _analyze(runs, configs, factors)["effects"]
    assert all(r["p"] is None and r["F"] is None for r in e["anova"])
    assert e["model"]["notes"]
