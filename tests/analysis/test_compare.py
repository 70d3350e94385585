import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from ablab.analysis.compare import compare, finish_verdicts, holm_levels, use_pairs, verdict
from ablab.analysis.ttest import paired_t, tost_p, welch_t


def series(values, seeds=None):
    seeds = range(len(values)) if seeds is None else seeds
    return pd.Series(np.asarray(values, float), index=pd.Index(list(seeds), name="seed"))


def finished(fam, direction="max", **kw):
    finish_verdicts(fam, direction, 0.05, **kw)
    return fam


def test_paired_when_seeds_shared_against_scipy_and_pingouin():
    b = np.array([0.70, 0.72, 0.69, 0.75, 0.71, 0.73, 0.70, 0.74])
    v = b + np.array([0.02, 0.03, 0.01, 0.02, 0.04, 0.02, 0.03, 0.01])
    c = compare(series(v), series(b))
    assert c["paired"] and c["test"] == "paired-t"
    assert c["delta"] == pytest.approx((v - b).mean())
    ref = stats.ttest_rel(v, b)
    assert c["p_value"] == pytest.approx(ref.pvalue)
    assert (c["delta_ci_low"], c["delta_ci_high"]) == pytest.approx(
        tuple(ref.confidence_interval(0.95))
    )
    try:  # pingouin as a second oracle where installed (not in the lowest-versions venv)
        import pingouin as pg
    except ImportError:
        return
    pgr = pg.ttest(v, b, paired=True)
    assert c["p_value"] == pytest.approx(pgr["p_val"].iloc[0])
    assert (c["delta_ci_low"], c["delta_ci_high"]) == pytest.approx(
        tuple(pgr["CI95"].iloc[0]), abs=0.005
    )  # pingouin rounds its interval to 2 decimals
    assert c["wilcoxon_p"] == pytest.approx(stats.wilcoxon(v, b).pvalue)
    assert c["delta_pct"] == pytest.approx(100 * (v - b).mean() / b.mean())
    assert c["ci_method"] == "unadjusted 95% paired t-interval"
    assert c["hedges_g"] > 0 and c["prob_improvement"] > 0.5


def test_welch_when_few_seeds_pair():
    """Issue 15 item 7: 2 shared seeds out of 10 per side use all 20 runs (Welch)."""
    rng = np.random.default_rng(0)
    v = rng.normal(1, 1, 10)
    b = rng.normal(0, 1, 10)
    c = compare(series(v, [0, 1, *range(100, 108)]), series(b, [0, 1, *range(200, 208)]))
    assert not c["paired"] and c["test"] == "welch-t" and c["n_pairs"] == 2
    ref = stats.ttest_ind(v, b, equal_var=False)
    assert c["p_value"] == pytest.approx(ref.pvalue)
    assert (c["delta_ci_low"], c["delta_ci_high"]) == pytest.approx(
        tuple(ref.confidence_interval(0.95))
    )
    assert c["wilcoxon_p"] == pytest.approx(stats.mannwhitneyu(v, b).pvalue)
    assert c["delta"] == pytest.approx(v.mean() - b.mean())
    assert c["ci_method"] == "unadjusted 95% Welch t-interval"


def test_pairing_rule():
    assert use_pairs(10, 10, 10) and use_pairs(4, 5, 4) and use_pairs(8, 10, 9)
    assert not use_pairs(2, 10, 10) and not use_pairs(3, 4, 4) and not use_pairs(1, 1, 1)
    # adaptive allocation: a variant's 3 seeds all among the baseline's 10 -> paired
    assert use_pairs(3, 3, 10)
    v = series([1.0, 2.0, 3.0, 4.0, 5.0], seeds=[0, 1, 2, 3, 9])
    b = series([0.5, 1.2, 2.9, 3.1], seeds=[0, 1, 2, 3])
    c = compare(v, b)
    assert c["paired"] and c["n_pairs"] == 4
    assert c["delta"] == pytest.approx(np.mean([0.5, 0.8, 0.1, 0.9]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=8),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=8),
    st.booleans(),
    st.sampled_from([0.05, 0.1, 0.01]),
)
def test_ci_excludes_zero_exactly_when_p_below_alpha(a, b, pair, alpha):
    """The delta's interval inverts the test that decides the verdict."""
    if pair:
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
        sa, sb = series(a), series(b)
    else:
        sa, sb = series(a), series(b, range(100, 100 + len(b)))
    c = compare(sa, sb, alpha=alpha)
    assert c["paired"] == pair
    if c["untestable"]:
        assert math.isnan(c["p_value"]) and math.isnan(c["delta_ci_low"])
        return
    p, lo, hi = c["p_value"], c["delta_ci_low"], c["delta_ci_high"]
    if abs(p - alpha) < 1e-9 or min(abs(lo), abs(hi)) < 1e-9 * (1 + abs(c["delta"])):
        return  # on the boundary to rounding
    assert (lo > 0 or hi < 0) == (p < alpha)
    assert lo <= c["delta"] <= hi
    # one variant: Holm changes nothing, so the verdict agrees with the interval too
    finish_verdicts([c], "max", alpha)
    assert (c["verdict"] in ("better", "worse")) == (lo > 0 or hi < 0)


def test_tost_against_hand_computation_and_statsmodels():
    d = np.array([0.001, -0.002, 0.0015, 0.0005, -0.0005])
    b = np.array([0.80, 0.81, 0.79, 0.80, 0.82])
    v = b + d
    # by hand: mean 0.0001, sd of d, se = sd/sqrt(5), df = 4
    mean, sd = d.mean(), d.std(ddof=1)
    se = sd / math.sqrt(5)
    margin = 0.005
    lower = 1 - stats.t.cdf((mean + margin) / se, 4)
    upper = stats.t.cdf((mean - margin) / se, 4)
    hand = max(lower, upper)
    res = paired_t(v, b)
    assert tost_p(res.delta, res.se, res.df, margin) == pytest.approx(hand, rel=1e-9)
    assert hand == pytest.approx(ttost_paired(v, b, -margin, margin)[0], rel=1e-6)
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 1, 7), rng.normal(0.1, 2, 5)
    w = welch_t(x, y)
    ref = ttost_ind(x, y, -0.8, 0.8, usevar="unequal")[0]
    assert tost_p(w.delta, w.se, w.df, 0.8) == pytest.approx(ref, rel=1e-6)


def test_equivalent_with_margin_inconclusive_without():
    rng = np.random.default_rng(1)
    b = 0.8 + rng.normal(0, 0.01, 6)
    v = b + rng.normal(0, 0.0005, 6)
    c = finished([compare(series(v), series(b), margin=0.005)], margin=0.005)[0]
    assert c["verdict"] == "equivalent" and "TOST" in c["reason"]
    assert c["p_equivalence_adjusted"] < 0.05
    c = finished([compare(series(v), series(b))])[0]
    assert c["verdict"] == "inconclusive" and "no margin" in c["reason"]
    assert c["seeds_needed"] is None


@pytest.mark.parametrize(
    ("v", "b", "why"),
    [
        ([1.0], [0.0], "a test needs 2"),
        ([0.9, 0.9, 0.9], [0.8, 0.8, 0.8], "every paired difference is equal"),
        ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0], "every paired difference is equal"),
    ],
)
def test_untestable_is_inconclusive_with_reason(v, b, why):
    c = finished([compare(series(v), series(b))])[0]
    assert c["verdict"] == "inconclusive" and why in c["reason"]
    assert math.isnan(c["p_value"]) and math.isnan(c["p_adjusted"])


def test_zero_variance_both_sides_unpaired_is_untestable():
    c = finished([compare(series([1.0, 1.0]), series([0.0, 0.0], [5, 6]))])[0]
    assert c["verdict"] == "inconclusive" and "zero variance on both sides" in c["reason"]


def test_empty_side_is_inconclusive():
    c = finished([compare(series([]), series([1.0, 2.0]))])[0]
    assert c["verdict"] == "inconclusive" and "no run" in c["reason"]
    assert math.isnan(c["delta"])


def test_direction_orients_verdict_effect_sizes_and_probability():
    assert verdict(0.1, 0.01, "max") == "better"
    assert verdict(0.1, 0.01, "min") == "worse"
    assert verdict(-0.1, 0.01, "min") == "better"
    assert verdict(0.1, 0.2, "max") == "inconclusive"
    assert verdict(0.1, 0.01, "max", p_equivalence_adjusted=0.01) == "equivalent"
    v, b = series([1.0, 1.1, 1.2, 1.35]), series([2.0, 2.1, 2.25, 2.3])
    lo = compare(v, b, direction="min")
    hi = compare(v, b, direction="max")
    assert lo["prob_improvement"] == 1.0 and hi["prob_improvement"] == 0.0
    # issue 15 item 10: positive = better, like P(better)
    assert lo["hedges_g"] > 0 and lo["cliffs_delta"] == 1.0
    assert hi["hedges_g"] == pytest.approx(-lo["hedges_g"]) and hi["cliffs_delta"] == -1.0


def test_holm_and_seeds_needed_for_margin():
    rng = np.random.default_rng(5)
    base = series(rng.normal(0, 1, 10))
    strong = series(base.to_numpy() + 2 + rng.normal(0, 0.3, 10))
    weak = series(base.to_numpy() + 0.1 + rng.normal(0, 1, 10))
    fam = finished([compare(strong, base), compare(weak, base)])
    raw = [c["p_value"] for c in fam]
    assert [c["p_adjusted"] for c in fam] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    assert fam[0]["verdict"] == "better" and fam[1]["verdict"] == "inconclusive"
    assert all(c["seeds_needed"] is None for c in fam)  # no margin: no post-hoc figure
    fam = finished(
        [compare(strong, base, margin=0.5), compare(weak, base, margin=0.5)],
        margin=0.5,
        sd_within=1.0,
    )
    # the weak variant has the larger p: Holm tests it at alpha / 1, the strong at alpha / 2
    assert [c["holm_level"] for c in fam] == [0.025, 0.05]
    for c in fam:
        exact = TTestIndPower().solve_power(effect_size=0.5, alpha=c["holm_level"], power=0.8)
        assert c["seeds_needed"] == math.ceil(exact)


def test_holm_levels():
    assert holm_levels([0.01, 0.04, 0.03], 0.05) == pytest.approx([0.05 / 3, 0.05, 0.025])
    assert holm_levels([float("nan"), 0.2], 0.05) == pytest.approx([0.025, 0.05])
