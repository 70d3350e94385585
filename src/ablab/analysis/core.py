"""``analyze``: from a table of runs to the study's result dictionary (the JSON of reports)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ablab.analysis.compare import PAIR_COVERAGE, compare, finish_verdicts
from ablab.analysis.reduce import check_margin, check_metric_decl
from ablab.analysis.stats import DEFAULT_RESAMPLES, describe
from ablab.analysis.ttest import pooled_sd, t_interval
from ablab.analysis.values import all_metric_values, metric_values, pair_index  # noqa: F401
from ablab.errors import MetricError, SpecError, did_you_mean

DESIGNS = ("one-at-a-time", "factorial", "fractional", "path")
SUMMARY_FIELDS = ("mean", "std", "sem", "median", "iqm", "min", "max", "ci_low", "ci_high")


def jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars into Python ones and NaN/inf into None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    if obj is pd.NA or obj is pd.NaT:
        return None
    return str(obj)


def sub_seed(seed: int, *names: str) -> int:
    """A stable RNG seed for one (variant, metric) cell, independent of processing order."""
    return (int(seed) + zlib.crc32("\0".join(names).encode())) % (2**32)


def informational(c: dict[str, Any]) -> None:
    """Strip the tests from the comparison of an informational metric (``direction = "none"``):
    its delta (with CI) and Hedges' g describe the difference; nothing is tested, so no p-value,
    no P(better) and no verdict."""
    for k in ("p_value", "wilcoxon_p", "p_adjusted", "prob_improvement", "verdict", "seeds_needed"):
        c[k] = None
    c["test"] = None
    c["informational"] = True


def validate(
    runs: pd.DataFrame, metrics: Mapping[str, Mapping], baseline: str, design: str
) -> dict[str, tuple[str, str]]:
    """Check the inputs of :func:`analyze` at the boundary; return ``{metric: (dir, reduce)}``."""
    if not isinstance(runs, pd.DataFrame):
        raise SpecError(f"analyze: runs must be a pandas DataFrame, found {type(runs).__name__}")
    need = ["variant", "seed", "status"]
    missing = [c for c in need if c not in runs.columns]
    if missing:
        raise SpecError(
            f"analyze: the runs table lacks column(s) {missing}; found {list(runs.columns)}"
        )
    if not metrics:
        raise MetricError("analyze: no metric declared; declare at least one under [metrics]")
    decls = {}
    for name, decl in metrics.items():
        decls[name] = check_metric_decl(name, dict(decl))
        if name not in runs.columns:
            cols = [c for c in runs.columns if c not in ("key", "variant", "seed", "status")]
            raise MetricError(
                f"metric '{name}' is declared but the runs table has no column for it "
                f"(columns: {cols})",
                hint=did_you_mean(name, cols) or "check the names under [metrics]",
            )
    if design not in DESIGNS:
        raise SpecError(
            f"analyze: unknown design {design!r}; expected one of {', '.join(DESIGNS)}",
            hint=did_you_mean(str(design), DESIGNS),
        )
    return decls


def methods(alpha: float) -> dict[str, str]:
    """One sentence per reported statistic: method, level and adjustment (the report prints
    these; the JSON carries them so a reader of the numbers knows what they are)."""
    pct = f"{100 * (1.0 - alpha):g}%"
    return {
        "ci": f"unadjusted {pct} Student t-interval of the mean",
        "delta_ci": (
            f"unadjusted {pct} t-interval of the delta from the same test as p_value "
            f"(paired or Welch), so it excludes 0 exactly when p_value < {alpha:g}"
        ),
        "p_value": "unadjusted two-sided t-test: paired on shared seeds, Welch otherwise",
        "wilcoxon_p": (
            "unadjusted two-sided Wilcoxon signed-rank (paired, >= 5 pairs) or Mann-Whitney "
            "(unpaired); supplementary, not used for verdicts"
        ),
        "p_adjusted": "Holm-adjusted across the variants of each metric (each metric its own family)",
        "p_equivalence": (
            "TOST equivalence test of |delta| < margin (unadjusted); p_equivalence_adjusted is "
            "Holm-adjusted across the variants of the metric"
        ),
        "pairing": (
            "paired when at least 2 seeds are shared and they cover at least "
            f"{100 * PAIR_COVERAGE:g}% of the smaller side's runs; otherwise Welch on all runs"
        ),
        "effect_sizes": (
            "hedges_g, cliffs_delta and prob_improvement are oriented by the metric's direction: "
            "positive (or > 0.5) = the variant is better; unadjusted, no test"
        ),
        "verdict": (
            f"equivalent: TOST Holm-adjusted p < {alpha:g} (needs a margin); better/worse: "
            f"Holm-adjusted p < {alpha:g}; inconclusive: neither, or untestable"
        ),
        "seeds_needed": (
            "with a margin: seeds per variant for 80% power to detect a true difference of "
            "margin (two-sample t, pooled within-variant sd, Holm level of the variant); "
            "null without a margin"
        ),
    }


def analyze(
    runs: pd.DataFrame,
    *,
    study: str,
    metrics: Mapping[str, Mapping[str, str]],
    baseline: str,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    alpha: float = 0.05,
    design: str = "one-at-a-time",
    factors: Mapping[str, list] | None = None,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    sensitivity: bool = True,
    design_info: Mapping[str, Any] | None = None,
    adaptive: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Analyse a study's runs: per-variant summaries, comparisons with the baseline, factorial
    effects and sensitivity. Returns the JSON-serialisable result documented in the README
    (``study``, ``primary_metric``, ``baseline``, ``runs``, ``variants``, ``effects``,
    ``sensitivity``); every undefined number is ``None``.

    ``runs`` has one row per run (columns ``variant``, ``seed``, ``status``, optional
    ``split_seed`` and ``sensitivity`` (label of a sensitivity setting, null for the main
    study) and one float column per metric); only ``status == "done"`` rows with a finite
    value count. The first entry of ``metrics`` is the primary metric; a metric's entry may
    carry ``margin`` (the smallest difference that matters, metric units), which enables the
    ``equivalent`` verdict and the ``seeds_needed`` planning figure. Intervals are t-intervals
    (no resampling): ``seed`` and ``n_resamples`` are kept for API compatibility and unused.
    ``design_info`` (e.g.
    ``FractionalDesign.to_dict()``: generators, aliases) is copied into ``effects.design``.
    ``adaptive`` (``{"min_seeds", "max_seeds", "method"?}``) says the seeds were allocated by
    ``seeds = "auto"``: the primary metric's verdicts are then the sequential test's
    (:mod:`ablab.analysis.adaptive_report`), the fixed-sample ones kept as
    ``fixed_sample_verdict``, and ``methods.adaptive`` says what that means for the p-values.
    """
    decls = validate(runs, metrics, baseline, design)
    margins = {m: check_margin(m, dict(metrics[m])) for m in metrics}
    configs = dict(configs or {})
    names = list(metrics)
    primary = names[0]
    main = runs
    if "sensitivity" in runs.columns:
        main = runs[runs["sensitivity"].isna()]
    status = runs["status"].astype(str)
    seen = list(dict.fromkeys([*configs, *main["variant"].astype(str)]))
    if baseline not in seen:
        raise SpecError(
            f"analyze: baseline variant '{baseline}' has no runs and no config (variants: {seen})",
            hint=did_you_mean(baseline, seen),
        )
    order = [baseline, *[v for v in seen if v != baseline]]
    done = main[main["status"].astype(str) == "done"]
    keys = pair_index(done)
    by_variant = {v: g for v, g in done.groupby(done["variant"].astype(str), sort=False)}
    empty = done.iloc[0:0]

    values = all_metric_values(done, order, names, keys)
    ci_pct = f"{100 * (1.0 - alpha):g}%"
    variants: list[dict[str, Any]] = []
    for v in order:
        g = by_variant.get(v, empty)
        summaries = {}
        for m in names:
            s = values[v][m]
            d = describe(s.to_numpy(float))
            lo, hi = t_interval(s.to_numpy(float), 1.0 - alpha)
            d.update(ci_low=lo, ci_high=hi, ci_method=f"unadjusted {ci_pct} t-interval")
            summaries[m] = d
        mine = main["variant"].astype(str) == v
        n_failed = int((mine & (main["status"].astype(str) == "failed")).sum())
        variants.append(
            {
                "name": v,
                "config": configs.get(v, {}),
                "n": int(len(g)),
                "failed": n_failed,
                "metrics": summaries,
                "vs_baseline": {},
            }
        )

    for m in names:
        direction = decls[m][0]
        family = []
        for entry in variants[1:]:
            v = entry["name"]
            c = compare(
                values[v][m],
                values[baseline][m],
                direction="max" if direction == "none" else direction,
                alpha=alpha,
                margin=margins[m],
            )
            if direction == "none":
                informational(c)
            entry["vs_baseline"][m] = c
            family.append(c)
        if direction == "none":  # informational: never tested
            continue
        sd_within = pooled_sd([values[v][m].to_numpy(float) for v in order])
        finish_verdicts(family, direction, alpha, margin=margins[m], sd_within=sd_within)
        for c in family:
            c["adjustment"] = f"Holm across the {len(family)} variant(s) on {m}"

    # The sensitivity re-analyses recompute fixed-sample better/worse/inconclusive verdicts
    # without the equivalence test, so an `equivalent` verdict is left out of their stability
    # checks (None) rather than reported as flipping at every seed.
    fixed_verdicts = {
        e["name"]: {
            m: (None if c["verdict"] == "equivalent" else c["verdict"])
            for m, c in e["vs_baseline"].items()
            if decls[m][0] != "none"  # informational metrics are not tested
        }
        for e in variants[1:]
    }
    adaptive_cfg = None
    if adaptive is not None and len(variants) > 1:
        from ablab.analysis.adaptive_report import (
            adaptive_note,
            check_adaptive,
            sequential_verdicts,
        )

        adaptive_cfg = check_adaptive(adaptive)
        seq = sequential_verdicts(
            {v: values[v][primary] for v in order},
            baseline,
            order[1:],
            decls[primary][0],
            alpha,
            adaptive_cfg,
        )
        for entry in variants[1:]:
            c = entry["vs_baseline"][primary]
            c["fixed_sample_verdict"] = c["verdict"]
            c.update(seq[entry["name"]])
            if c.get("ci_method"):
                c["ci_method"] += " (fixed-sample, ignores the adaptive stopping)"

    result: dict[str, Any] = {
        "study": study,
        "primary_metric": primary,
        "baseline": baseline,
        "design": design,
        "alpha": alpha,
        "metrics": {
            m: {"direction": decls[m][0], "reduce": decls[m][1], "margin": margins[m]}
            for m in names
        },
        "methods": methods(alpha),
        "runs": {
            "total": int(len(runs)),
            "done": int((status == "done").sum()),
            "failed": int((status == "failed").sum()),
        },
        "variants": variants,
        "adaptive": adaptive_cfg,
        "effects": None,
        "sensitivity": None,
    }
    if design in ("factorial", "fractional"):
        from ablab.analysis.effects import factorial_effects

        result["effects"] = factorial_effects(
            done,
            configs=configs,
            factors=factors,
            metric=primary,
            direction=decls[primary][0],
            baseline=baseline,
            design_info=design_info,
        )
    if sensitivity:
        from ablab.analysis.sensitivity import sensitivity_report

        result["sensitivity"] = sensitivity_report(
            runs,
            values=values,
            order=order,
            metrics={m: d for m, d in decls.items() if d[0] != "none"},  # tested metrics only
            baseline=baseline,
            alpha=alpha,
            main_verdicts=fixed_verdicts,
        )
    if adaptive_cfg is not None:
        result["methods"]["adaptive"] = adaptive_note(adaptive_cfg, primary)
    return jsonable(result)
