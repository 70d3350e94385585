"""Example-level paired statistics: each variant against the baseline, example by example.

In post-hoc studies (one trained model, components ablated) the variance that matters often
comes from the test examples, not the seeds. ``run.log_examples("correct", values)`` records one
number per example (series ``example:NAME``, step = example index, same order in every variant).

For each NAME and variant, the examples are paired with the baseline's by index, using the seeds
both have (values averaged over those seeds per example):

- **0/1 values and one shared seed**: McNemar's exact test (``statsmodels``
  ``mcnemar(exact=True)``: a two-sided binomial test of the discordant pairs ``b`` (baseline
  right, variant wrong) vs ``c``, p = binomtest(min(b, c), b + c, 1/2)); McNemar (1947).
- **otherwise** (losses, or per-example means over several seeds): the paired t-test over
  examples (``scipy.stats.ttest_rel``) with its t interval of the mean difference.

Both give a percentile bootstrap 95% interval of the mean difference over examples
(``scipy.stats.bootstrap``, 2000 resamples, fixed RNG). p-values are Holm-adjusted over the
variants of each NAME (``statsmodels`` ``multipletests``). The direction of NAME is not known,
so the verdict says ``higher``/``lower`` (significant at alpha) or ``no-difference``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EXAMPLE_PREFIX = "example:"


def paired_example_test(
    base: np.ndarray, other: np.ndarray, *, binary: bool, seed: int = 0, n_resamples: int = 2000
) -> dict[str, Any]:
    """Compare ``other`` with ``base`` (equal-length, paired by index). See the module docstring."""
    from scipy import stats

    from ablab.analysis.stats import _bootstrap_rng_name

    a, b = np.asarray(base, float), np.asarray(other, float)
    d = b - a
    out: dict[str, Any] = {
        "n_examples": int(d.size),
        "baseline_mean": float(a.mean()),
        "mean": float(b.mean()),
        "delta": float(d.mean()),
    }
    if binary:
        from statsmodels.stats.contingency_tables import mcnemar

        n10 = int(((a == 1) & (b == 0)).sum())  # baseline 1, variant 0
        n01 = int(((a == 0) & (b == 1)).sum())
        n11 = int(((a == 1) & (b == 1)).sum())
        n00 = int(((a == 0) & (b == 0)).sum())
        res = mcnemar(np.array([[n11, n10], [n01, n00]]), exact=True)
        out.update(test="McNemar exact", p_value=float(res.pvalue), b=n10, c=n01)
    elif d.size >= 2 and np.ptp(d) > 0:
        t = stats.ttest_rel(b, a)
        ci = t.confidence_interval(0.95)
        out.update(
            test="paired t over examples",
            p_value=float(t.pvalue),
            t_ci_low=float(ci.low),
            t_ci_high=float(ci.high),
        )
    else:
        out.update(test="paired t over examples", p_value=1.0 if np.all(d == 0) else None)
    if d.size >= 2 and np.ptp(d) > 0:
        boot = stats.bootstrap(
            (d,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=0.95,
            method="percentile",
            **{_bootstrap_rng_name(): np.random.default_rng(seed)},
        )
        out.update(
            ci_low=float(boot.confidence_interval.low), ci_high=float(boot.confidence_interval.high)
        )
    else:
        out.update(
            ci_low=float(d.mean()) if d.size else None, ci_high=float(d.mean()) if d.size else None
        )
    return out


def example_tests(
    series: Any, baseline: str, alpha: float = 0.05, order: list[str] | None = None
) -> dict[str, Any] | None:
    """``result["examples"]`` from the series table (``key, variant, seed, name, step, value``):
    per NAME its method and one row per variant (in ``order`` when given); None when no run
    logged examples."""
    if series is None or not len(series):
        return None
    ex = series[series["name"].astype(str).str.startswith(EXAMPLE_PREFIX)]
    if not len(ex):
        return None
    from statsmodels.stats.multitest import multipletests

    out: dict[str, Any] = {}
    for name, grp in ex.groupby("name", sort=True):
        table = grp.pivot_table(index="step", columns=["variant", "seed"], values="value")
        label = str(name)[len(EXAMPLE_PREFIX) :]
        if baseline not in table.columns.get_level_values(0):
            out[label] = {"rows": [], "note": f"the baseline '{baseline}' logged no '{label}'"}
            continue
        binary = bool(np.isin(grp["value"].to_numpy(), (0.0, 1.0)).all())
        rows = []
        logged = list(dict.fromkeys(table.columns.get_level_values(0)))
        ranked = [v for v in (order or []) if v in logged] + [
            v for v in logged if v not in (order or [])
        ]
        for variant in ranked:
            if variant == baseline:
                continue
            seeds = sorted(
                set(table[baseline].columns) & set(table[variant].columns), key=lambda s: s
            )
            base_cols, var_cols = table[baseline][seeds], table[variant][seeds]
            if not seeds or base_cols.isna().any().any() or var_cols.isna().any().any():
                rows.append(
                    {
                        "variant": variant,
                        "note": "examples not aligned with the baseline (different counts "
                        "or no shared seed)",
                    }
                )
                continue
            a, b = base_cols.to_numpy().mean(axis=1), var_cols.to_numpy().mean(axis=1)
            row = paired_example_test(a, b, binary=binary and len(seeds) == 1)
            rows.append({"variant": variant, "seeds": len(seeds), **row})
        tested = [r for r in rows if r.get("p_value") is not None]
        if tested:
            adj = multipletests([r["p_value"] for r in tested], alpha=alpha, method="holm")[1]
            for r, p in zip(tested, adj, strict=True):
                r["p_adjusted"] = float(p)
                r["verdict"] = (
                    ("higher" if r["delta"] > 0 else "lower") if p < alpha else "no-difference"
                )
        out[label] = {
            "binary": binary,
            "rows": rows,
            "method": "McNemar exact test on the discordant examples (0/1 values, one shared "
            "seed); paired t-test over examples otherwise (values averaged over shared seeds)",
            "interval": "percentile bootstrap 95% CI of the mean difference over examples",
            "adjustment": "Holm over the variants",
            "alpha": alpha,
        }
    return out
