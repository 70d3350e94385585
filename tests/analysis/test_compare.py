import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from ablab.analysis.compare import compare, finish_verdicts, verdict


def series(values, seeds=None):
    seeds = range(len(values)) if seeds is None else seeds
    return pd.Series(np.asarray(values, float), index=pd.Index(list(seeds), name="seed"))


def test_paired_when_seeds_shared():
    b = np.array([0.70, 0.72, 0.69, 0.75, 0.71, 0.73, 0.70, 0.74])
    v = b + np.array([0.02, 0.03, 0.01, 0.02, 0.04, 0.02, 0.03, 0.01])
    c = compare(series(v), series(b))
    assert c["paired"] and c["test"] == "paired-t"
    assert c["delta"] == pytest.approx((v - b).mean())
    assert c["p_value"] == pytest.approx(stats.ttest_rel(v, b).pvalue)
    assert c["wilcoxon_p"] == pytest.approx(stats.wilcoxon(v, b).pvalue)
    assert c["delta_pct"] == pytest.approx(100 * (v - b).mean() / b.mean())
    assert c["delta_ci_low"] < c["delta"] < c["delta_ci_high"]
    assert c["hedges_g"] > 0 and c["prob_improvement"] > 0.5


def test_pairs_only_shared_seeds():
    v = series([1.0, 2.0, 3.0, 4.0], seeds=[0, 1, 2, 9])
    b = series([0.5, 1.2, 2.9, 7.0], seeds=[0, 1, 2, 5])
    c = compare(v, b)
    assert c["paired"] and c["n_pairs"] == 3
    assert c["delta"] == pytest.approx(np.mean([0.5, 0.8, 0.1]))


def test_welch_without_pairing():
    rng = np.random.default_rng(0)
    v = rng.normal(1, 1, 12)
    b = rng.normal(0, 2, 9)
    c = compare(series(v, range(100, 112)), series(b))
    assert not c["paired"] and c["test"] == "welch-t"
    assert c["p_value"] == pytest.approx(stats.ttest_ind(v, b, equal_var=False).pvalue)
    assert c["wilcoxon_p"] == pytest.approx(stats.mannwhitneyu(v, b).pvalue)
    assert c["delta"] == pytest.approx(v.mean() - b.mean())


def test_direction_orients_verdict_and_probability():
    assert verdict(0.1, 0.01, "max") == "better"
    assert verdict(0.1, 0.01, "min") == "worse"
    assert verdict(-0.1, 0.01, "min") == "better"
    assert verdict(0.1, 0.2, "max") == "no-difference"
    v, b = series([1.0, 1.1, 1.2, 1.3]), series([2.0, 2.1, 2.2, 2.3])
    assert compare(v, b, direction="min")["prob_improvement"] == 1.0
    assert compare(v, b, direction="max")["prob_improvement"] == 0.0


def test_finish_verdicts_holm_and_seeds_needed():
    rng = np.random.default_rng(5)
    base = series(rng.normal(0, 1, 10))
    strong = series(base.to_numpy() + 2 + rng.normal(0, 0.3, 10))
    weak = series(base.to_numpy() + 0.1 + rng.normal(0, 1, 10))
    fam = [compare(strong, base), compare(weak, base)]
    finish_verdicts(fam, "max", 0.05)
    raw = [c["p_value"] for c in fam]
    assert [c["p_adjusted"] for c in fam] == pytest.approx(
        list(multipletests(raw, method="holm")[1])
    )
    assert fam[0]["verdict"] == "better" and fam[0]["seeds_needed"] is None
    assert fam[1]["verdict"] == "no-difference"
    assert isinstance(fam[1]["seeds_needed"], int) and fam[1]["seeds_needed"] > 10


def test_empty_side_gives_no_verdict():
    c = compare(series([]), series([1.0, 2.0]))
    assert c["verdict"] is None
    finish_verdicts([c], "max")
    assert c["verdict"] is None and math.isnan(c["delta"])
