"""Example-level paired statistics against scipy / statsmodels oracles."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from ablab.analysis.examples import EXAMPLE_PREFIX, example_tests, paired_example_test


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=2, max_size=60))
def test_binary_is_exact_mcnemar_and_binomial(pairs):
    a = np.array([p[0] for p in pairs], float)
    b = np.array([p[1] for p in pairs], float)
    r = paired_example_test(a, b, binary=True)
    n10, n01 = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    assert (r["b"], r["c"]) == (n10, n01)
    table = [[int(((a == 1) & (b == 1)).sum()), n10], [n01, int(((a == 0) & (b == 0)).sum())]]
    assert np.isclose(r["p_value"], mcnemar(table, exact=True).pvalue)
    if n10 + n01:
        assert np.isclose(r["p_value"], stats.binomtest(min(n10, n01), n10 + n01, 0.5).pvalue)
    assert np.isclose(r["delta"], b.mean() - a.mean())


def test_continuous_is_paired_t():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    b = a + 0.3 + rng.normal(scale=0.5, size=50)
    r = paired_example_test(a, b, binary=False)
    t = stats.ttest_rel(b, a)
    assert r["test"] == "paired t over examples"
    assert np.isclose(r["p_value"], t.pvalue)
    assert np.isclose(r["t_ci_low"], t.confidence_interval().low)
    assert r["ci_low"] < r["delta"] < r["ci_high"]


def _series(values: dict[tuple[str, int], np.ndarray]) -> pd.DataFrame:
    rows = [
        (f"{v}-{s}", v, s, EXAMPLE_PREFIX + "correct", i, float(x))
        for (v, s), arr in values.items()
        for i, x in enumerate(arr)
    ]
    return pd.DataFrame(rows, columns=["key", "variant", "seed", "name", "step", "value"])


def test_example_tests_pairs_by_index_and_holm_adjusts():
    rng = np.random.default_rng(1)
    base = (rng.random(200) < 0.9).astype(float)
    worse = base.copy()
    worse[:30] = 0.0  # 30 examples lost (some were already wrong)
    same = base.copy()
    same[[0, 1]] = 1 - same[[0, 1]]
    s = _series({("baseline", 0): base, ("worse", 0): worse, ("same", 0): same})
    out = example_tests(s, "baseline", order=["baseline", "worse", "same"])["correct"]
    assert out["binary"] and [r["variant"] for r in out["rows"]] == ["worse", "same"]
    raw = [mcnemar(_table(base, x), exact=True).pvalue for x in (worse, same)]
    adj = multipletests(raw, method="holm")[1]
    for r, p, q in zip(out["rows"], raw, adj, strict=True):
        assert r["test"] == "McNemar exact"
        assert np.isclose(r["p_value"], p) and np.isclose(r["p_adjusted"], q)
    assert out["rows"][0]["verdict"] == "lower" and out["rows"][1]["verdict"] == "no-difference"


def test_several_seeds_average_per_example_and_misaligned_counts_are_flagged():
    rng = np.random.default_rng(2)
    vals = {("baseline", s): (rng.random(40) < 0.8).astype(float) for s in (0, 1)}
    vals |= {("v", s): (rng.random(40) < 0.5).astype(float) for s in (0, 1)}
    vals[("short", 0)] = np.ones(30)
    out = example_tests(_series(vals), "baseline")["correct"]
    row = next(r for r in out["rows"] if r["variant"] == "v")
    a = (vals[("baseline", 0)] + vals[("baseline", 1)]) / 2
    b = (vals[("v", 0)] + vals[("v", 1)]) / 2
    assert row["seeds"] == 2 and np.isclose(row["p_value"], stats.ttest_rel(b, a).pvalue)
    assert "not aligned" in next(r for r in out["rows"] if r["variant"] == "short")["note"]


def _table(a, b):
    return [
        [int(((a == 1) & (b == 1)).sum()), int(((a == 1) & (b == 0)).sum())],
        [int(((a == 0) & (b == 1)).sum()), int(((a == 0) & (b == 0)).sum())],
    ]
