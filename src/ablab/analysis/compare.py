"""A variant against the baseline on one metric: delta, tests, effect sizes, verdict."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ablab.analysis.stats import (
    DEFAULT_RESAMPLES,
    bootstrap_ci,
    cliffs_delta,
    hedges_g,
    holm,
    prob_improvement,
    seeds_needed,
)

#: Fewest pairs for which the signed-rank test is reported (with 5 pairs the smallest exact
#: two-sided p-value is 0.0625, so fewer pairs can never reject at 0.05).
MIN_WILCOXON = 5

VS_FIELDS = (
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
    "seeds_needed",
)


def paired_arrays(variant: pd.Series, baseline: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values of both sides on the pairing keys (seeds) they share, in key order."""
    common = variant.index.intersection(baseline.index).sort_values()
    return variant.loc[common].to_numpy(float), baseline.loc[common].to_numpy(float)


def compare(
    variant: pd.Series,
    baseline: pd.Series,
    *,
    direction: str = "max",
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    bootstrap: bool = True,
) -> dict[str, Any]:
    """Compare one variant with the baseline on one metric.

    ``variant`` and ``baseline`` are the finite metric values indexed by their pairing key
    (the seed, or ``(seed, split_seed)``), one value per key. With at least two shared keys the
    comparison is *paired* on the shared keys: ``delta = mean(v_i - b_i)``, ``p_value`` from
    the two-sided paired t-test (``scipy.stats.ttest_rel``), ``wilcoxon_p`` from the signed-rank
    test (``scipy.stats.wilcoxon``, at least :data:`MIN_WILCOXON` pairs), the delta's CI by
    bootstrapping the differences. Otherwise it is *unpaired*: ``delta = mean(v) - mean(b)``,
    Welch's t-test (``ttest_ind(equal_var=False)``), the rank-sum (Mann-Whitney) test as
    ``wilcoxon_p`` and a two-sample bootstrap CI. ``delta_pct = 100 delta / |mean(b)|``.
    Effect sizes (:func:`hedges_g`, :func:`cliffs_delta`, :func:`prob_improvement`) use all
    values of both sides. ``p_adjusted``/``verdict``/``seeds_needed`` are filled by
    :func:`finish_verdicts` once the whole family of variants is known.
    """
    v_all = variant.to_numpy(float)
    b_all = baseline.to_numpy(float)
    pv, pb = paired_arrays(variant, baseline)
    paired = pv.size >= 2
    out: dict[str, Any] = dict.fromkeys(VS_FIELDS, math.nan)
    out.update(paired=paired, n_pairs=int(pv.size), test=None, sd_diff=math.nan)
    out["verdict"] = "no-difference"
    out["seeds_needed"] = None
    if v_all.size == 0 or b_all.size == 0:
        out["verdict"] = None
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if paired:
            d = pv - pb
            delta = float(d.mean())
            out["test"] = "paired-t"
            out["sd_diff"] = float(d.std(ddof=1))
            if np.ptp(d) > 0:
                out["p_value"] = float(_st.ttest_rel(pv, pb).pvalue)
            else:
                out["p_value"] = 1.0 if delta == 0 else 0.0
            if pv.size >= MIN_WILCOXON and np.any(d != 0):
                out["wilcoxon_p"] = float(_st.wilcoxon(pv, pb).pvalue)
            if bootstrap:
                lo, hi = bootstrap_ci(d, seed=seed, n_resamples=n_resamples)
                out["delta_ci_low"], out["delta_ci_high"] = lo, hi
            base_mean = float(pb.mean())
        else:
            delta = float(v_all.mean() - b_all.mean())
            out["test"] = "welch-t"
            if v_all.size >= 2 and b_all.size >= 2:
                out["sd_diff"] = float(math.sqrt(v_all.var(ddof=1) + b_all.var(ddof=1)))
                if np.ptp(v_all) > 0 or np.ptp(b_all) > 0:
                    out["p_value"] = float(_st.ttest_ind(v_all, b_all, equal_var=False).pvalue)
                else:
                    out["p_value"] = 1.0 if delta == 0 else 0.0
                if min(v_all.size, b_all.size) >= 3:
                    out["wilcoxon_p"] = float(
                        _st.mannwhitneyu(v_all, b_all, alternative="two-sided").pvalue
                    )
                if bootstrap:
                    lo, hi = bootstrap_ci(v_all, b_all, seed=seed, n_resamples=n_resamples)
                    out["delta_ci_low"], out["delta_ci_high"] = lo, hi
            base_mean = float(b_all.mean())
    out["delta"] = delta
    out["delta_pct"] = 100.0 * delta / abs(base_mean) if base_mean != 0 else math.nan
    out["hedges_g"] = hedges_g(v_all, b_all)
    out["cliffs_delta"] = cliffs_delta(v_all, b_all)
    out["prob_improvement"] = prob_improvement(v_all, b_all, direction)
    return out


def verdict(delta: float, p_adjusted: float, direction: str, alpha: float = 0.05) -> str:
    """``better``/``worse`` when ``p_adjusted < alpha`` (by the sign of the delta, flipped for a
    metric to minimise), otherwise ``no-difference``."""
    if (
        not (math.isfinite(p_adjusted) and p_adjusted < alpha)
        or not math.isfinite(delta)
        or delta == 0
    ):
        return "no-difference"
    improves = delta > 0 if direction == "max" else delta < 0
    return "better" if improves else "worse"


def finish_verdicts(comparisons: list[dict[str, Any]], direction: str, alpha: float = 0.05) -> None:
    """Holm-adjust the p-values of one metric's family of comparisons (in place), then set
    each ``verdict`` and, for ``no-difference``, ``seeds_needed`` (:func:`seeds_needed` with
    the comparison's standard deviation of differences)."""
    live = [c for c in comparisons if c.get("verdict") is not None]
    adjusted = holm([c["p_value"] for c in live])
    for c, p_adj in zip(live, adjusted, strict=True):
        c["p_adjusted"] = float(p_adj)
        c["verdict"] = verdict(c["delta"], float(p_adj), direction, alpha)
        c["seeds_needed"] = (
            seeds_needed(c["delta"], c["sd_diff"], alpha)
            if c["verdict"] == "no-difference"
            else None
        )
