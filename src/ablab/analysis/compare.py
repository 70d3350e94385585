"""A variant against the baseline on one metric: delta, tests, effect sizes, verdict.

The verdict is one of four (``better``, ``worse``, ``equivalent``, ``inconclusive``) with a
one-line ``reason``. The rule, for one metric's family of ``m`` variants (:func:`finish_verdicts`):

1. *Untestable* comparisons (fewer than two pairs, fewer than two runs on a side, zero variance
   on both sides / constant paired differences) are ``inconclusive``; they have no p-value and
   are left out of the Holm family.
2. With a ``margin`` declared for the metric, a variant is ``equivalent`` when the equivalence
   test (TOST on the same t statistic) rejects ``|true delta| >= margin`` at ``alpha`` after
   Holm's adjustment across the variants.
3. Otherwise ``better``/``worse`` (by the metric's direction) when the two-sided t-test's
   Holm-adjusted p-value is below ``alpha``.
4. Otherwise ``inconclusive``: a non-significant result is not evidence of no difference; only
   an equivalence test against a declared margin can show that.

Pairing rule (:func:`use_pairs`): the comparison is paired on the seeds both sides share when
there are at least two such seeds and they cover at least :data:`PAIR_COVERAGE` (80 %) of the
smaller side's runs; otherwise Welch's test on all runs of both sides. So a full or nearly full
set of shared seeds is paired (the seed effect cancels), and 2 shared seeds out of 10 per side
use all 20 runs instead of 2 pairs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ablab.analysis.stats import (
    cliffs_delta,
    hedges_g,
    holm,
    prob_improvement,
    seeds_for_margin,
)
from ablab.analysis.ttest import paired_t, tost_p, welch_t

#: Fewest pairs for which the signed-rank test is reported (with 5 pairs the smallest exact
#: two-sided p-value is 0.0625, so fewer pairs can never reject at 0.05).
MIN_WILCOXON = 5
#: Shared seeds must cover this share of the smaller side's runs for a paired comparison.
PAIR_COVERAGE = 0.8
VERDICTS = ("better", "worse", "equivalent", "inconclusive")

VS_FIELDS = (
    "delta",
    "delta_pct",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "wilcoxon_p",
    "p_adjusted",
    "p_equivalence",
    "p_equivalence_adjusted",
    "hedges_g",
    "cliffs_delta",
    "prob_improvement",
    "verdict",
    "reason",
    "seeds_needed",
)


def use_pairs(n_shared: int, n_variant: int, n_baseline: int) -> bool:
    """The pairing rule: at least 2 shared seeds covering >= 80 % of the smaller side."""
    return n_shared >= 2 and n_shared >= PAIR_COVERAGE * min(n_variant, n_baseline)


def paired_arrays(variant: pd.Series, baseline: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values of both sides on the pairing keys (seeds) they share, in key order."""
    common = variant.index.intersection(baseline.index).sort_values()
    return variant.loc[common].to_numpy(float), baseline.loc[common].to_numpy(float)


def ci_label(test: str | None, confidence: float) -> str:
    """``"unadjusted 95% paired t-interval"`` (or Welch)."""
    kind = {"paired-t": "paired t-interval", "welch-t": "Welch t-interval"}.get(test or "", "")
    return f"unadjusted {100 * confidence:g}% {kind}".strip()


def compare(
    variant: pd.Series,
    baseline: pd.Series,
    *,
    direction: str = "max",
    alpha: float = 0.05,
    margin: float | None = None,
    bootstrap: bool = False,
) -> dict[str, Any]:
    """Compare one variant with the baseline on one metric.

    ``variant`` and ``baseline`` are the finite metric values indexed by their pairing key
    (the seed, or ``(seed, split_seed)``), one value per key. Paired or not by
    :func:`use_pairs`. *Paired*: ``delta = mean(v_i - b_i)`` over the shared keys, the
    two-sided paired t-test (:func:`ablab.analysis.ttest.paired_t`) and the signed-rank test as
    ``wilcoxon_p`` (at least :data:`MIN_WILCOXON` pairs). *Unpaired*: ``delta = mean(v) -
    mean(b)``, Welch's t-test and the rank-sum (Mann-Whitney) test as ``wilcoxon_p``. The
    delta's interval (``delta_ci_low``/``high``, unadjusted, level ``1 - alpha``) comes from the
    same t statistic, so it excludes 0 exactly when ``p_value < alpha``. With a ``margin``,
    ``p_equivalence`` is the TOST p-value of ``|delta| < margin``. ``delta_pct = 100 delta /
    |mean(b)|``. Effect sizes use all values and are oriented like ``prob_improvement``:
    positive = the variant is better (``hedges_g`` and ``cliffs_delta`` of variant against
    baseline, negated for a metric to minimise). ``p_adjusted``, ``verdict``, ``reason`` and
    ``seeds_needed`` are set by :func:`finish_verdicts` once the family is known.
    ``bootstrap`` is accepted for compatibility and ignored (intervals are t-intervals).
    """
    del bootstrap
    confidence = 1.0 - alpha
    v_all = variant.to_numpy(float)
    b_all = baseline.to_numpy(float)
    pv, pb = paired_arrays(variant, baseline)
    paired = use_pairs(pv.size, v_all.size, b_all.size)
    out: dict[str, Any] = dict.fromkeys(VS_FIELDS, math.nan)
    out.update(
        paired=paired,
        n_pairs=int(pv.size),
        n_variant=int(v_all.size),
        n_baseline=int(b_all.size),
        test=None,
        sd_diff=math.nan,
        se=math.nan,
        df=math.nan,
        ci_level=confidence,
        ci_method=None,
        untestable=None,
        verdict="inconclusive",
        reason=None,
        seeds_needed=None,
    )
    if v_all.size == 0 or b_all.size == 0:
        side = "variant" if v_all.size == 0 else "baseline"
        out["untestable"] = f"the {side} has no run with a finite value"
        return out
    if paired:
        res = paired_t(pv, pb, confidence)
        d = pv - pb
        out["sd_diff"] = float(d.std(ddof=1))
        if pv.size >= MIN_WILCOXON and np.any(d != 0):
            out["wilcoxon_p"] = float(_st.wilcoxon(pv, pb).pvalue)
        base_mean = float(pb.mean())
    else:
        res = welch_t(v_all, b_all, confidence)
        if v_all.size >= 2 and b_all.size >= 2:
            out["sd_diff"] = float(math.sqrt(v_all.var(ddof=1) + b_all.var(ddof=1)))
        if min(v_all.size, b_all.size) >= 3 and (np.ptp(v_all) > 0 or np.ptp(b_all) > 0):
            out["wilcoxon_p"] = float(
                _st.mannwhitneyu(v_all, b_all, alternative="two-sided").pvalue
            )
        base_mean = float(b_all.mean())
    out.update(
        test=res.test,
        delta=res.delta,
        se=res.se,
        df=res.df,
        p_value=res.p,
        untestable=res.untestable,
        ci_method=ci_label(res.test, confidence),
    )
    out["delta_ci_low"], out["delta_ci_high"] = res.ci
    if margin is not None:
        out["p_equivalence"] = tost_p(res.delta, res.se, res.df, float(margin))
    out["delta_pct"] = 100.0 * res.delta / abs(base_mean) if base_mean != 0 else math.nan
    sign = 1.0 if direction == "max" else -1.0
    out["hedges_g"] = sign * hedges_g(v_all, b_all)
    out["cliffs_delta"] = sign * cliffs_delta(v_all, b_all)
    out["prob_improvement"] = prob_improvement(v_all, b_all, direction)
    return out


def verdict(
    delta: float,
    p_adjusted: float,
    direction: str,
    alpha: float = 0.05,
    p_equivalence_adjusted: float = math.nan,
) -> str:
    """``equivalent`` when ``p_equivalence_adjusted < alpha``; else ``better``/``worse`` when
    ``p_adjusted < alpha`` (by the sign of the delta, flipped for a metric to minimise); else
    ``inconclusive``."""
    if math.isfinite(p_equivalence_adjusted) and p_equivalence_adjusted < alpha:
        return "equivalent"
    if (
        not (math.isfinite(p_adjusted) and p_adjusted < alpha)
        or not math.isfinite(delta)
        or delta == 0
    ):
        return "inconclusive"
    improves = delta > 0 if direction == "max" else delta < 0
    return "better" if improves else "worse"


def holm_levels(pvalues: list[float], alpha: float) -> list[float]:
    """The level Holm's step-down compares each raw p-value with: ``alpha / (m - r + 1)`` for
    the ``r``-th smallest of the ``m`` finite p-values; ``alpha / m`` for an undefined one."""
    p = np.asarray(pvalues, float)
    ok = np.flatnonzero(np.isfinite(p))
    m = max(ok.size, 1)
    out = [alpha / max(len(pvalues), 1)] * len(pvalues)
    for r, i in enumerate(ok[np.argsort(p[ok], kind="stable")], start=1):
        out[i] = alpha / (m - r + 1)
    return out


def _fmt(x: float) -> str:
    return "<0.001" if x < 0.001 else f"{x:.3f}"


def _reason(c: dict[str, Any], direction: str, alpha: float, margin: float | None) -> str:
    if c.get("untestable"):
        return f"untestable: {c['untestable']}"
    test = "paired t-test" if c["test"] == "paired-t" else "Welch t-test"
    p_adj, p_eq = c["p_adjusted"], c.get("p_equivalence_adjusted", math.nan)
    sig = f"{test}, Holm-adjusted p = {_fmt(p_adj)}"
    if c["verdict"] == "equivalent":
        out = f"|Δ| < margin {margin:g} shown by TOST, Holm-adjusted p = {_fmt(p_eq)} < {alpha:g}"
        if p_adj < alpha:
            out += f" (the difference is significant, {sig}, but smaller than the margin)"
        return out
    if c["verdict"] in ("better", "worse"):
        word = "higher" if c["delta"] > 0 else "lower"
        better = "higher" if direction == "max" else "lower"
        return f"significantly {word} ({sig} < {alpha:g}); {better} is better"
    out = f"not significant ({sig} ≥ {alpha:g})"
    if margin is None:
        return out + "; no margin declared, so equivalence cannot be tested"
    if math.isfinite(p_eq):
        return (
            out
            + f"; equivalence within ±{margin:g} not shown (TOST Holm-adjusted p = {_fmt(p_eq)})"
        )
    return out + f"; equivalence within ±{margin:g} untestable"


def finish_verdicts(
    comparisons: list[dict[str, Any]],
    direction: str,
    alpha: float = 0.05,
    *,
    margin: float | None = None,
    sd_within: float = math.nan,
    power: float = 0.8,
) -> None:
    """Holm-adjust one metric's family (in place): ``p_adjusted`` from ``p_value`` and, with a
    ``margin``, ``p_equivalence_adjusted`` from ``p_equivalence`` (each family of the finite
    p-values); then ``verdict`` and ``reason`` by the rule in the module docstring. With a
    margin, ``seeds_needed`` is the planning figure :func:`ablab.analysis.stats.seeds_for_margin`
    (``power`` to detect a true difference of ``margin`` with ``sd_within``, the pooled
    within-variant standard deviation, at the Holm level of this variant,
    :func:`holm_levels`); without one it is None (never a post-hoc figure from the observed
    effect)."""
    if not comparisons:
        return
    adjusted = holm([c["p_value"] for c in comparisons])
    p_eq = [
        c.get("p_equivalence", math.nan) if margin is not None else math.nan for c in comparisons
    ]
    eq_adjusted = holm(p_eq)
    levels = holm_levels([c["p_value"] for c in comparisons], alpha)
    for c, p_adj, pe, level in zip(comparisons, adjusted, eq_adjusted, levels, strict=True):
        c["p_adjusted"] = float(p_adj)
        c["p_equivalence_adjusted"] = float(pe)
        c["holm_level"] = float(level)
        if c.get("untestable"):
            c["verdict"] = "inconclusive"
        else:
            c["verdict"] = verdict(c["delta"], float(p_adj), direction, alpha, float(pe))
        c["reason"] = _reason(c, direction, alpha, margin)
        c["seeds_needed"] = (
            seeds_for_margin(float(margin), sd_within, level, power) if margin is not None else None
        )
