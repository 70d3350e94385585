"""``analyze``: from a table of runs to the study's result dictionary (the JSON of reports)."""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ablab.analysis.compare import compare, finish_verdicts
from ablab.analysis.reduce import check_metric_decl
from ablab.analysis.stats import DEFAULT_RESAMPLES, bootstrap_ci, describe
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
) -> dict[str, Any]:
    """Analyse a study's runs: per-variant summaries, comparisons with the baseline, factorial
    effects and sensitivity. Returns the JSON-serialisable result documented in the README
    (``study``, ``primary_metric``, ``baseline``, ``runs``, ``variants``, ``effects``,
    ``sensitivity``); every undefined number is ``None``.

    ``runs`` has one row per run (columns ``variant``, ``seed``, ``status``, optional
    ``split_seed`` and ``sensitivity`` (label of a sensitivity setting, null for the main
    study) and one float column per metric); only ``status == "done"`` rows with a finite
    value count. The first entry of ``metrics`` is the primary metric. ``design_info`` (e.g.
    ``FractionalDesign.to_dict()``: generators, aliases) is copied into ``effects.design``.
    """
    decls = validate(runs, metrics, baseline, design)
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
    variants: list[dict[str, Any]] = []
    for v in order:
        g = by_variant.get(v, empty)
        summaries = {}
        for m in names:
            s = values[v][m]
            d = describe(s.to_numpy(float))
            lo, hi = bootstrap_ci(
                s.to_numpy(float), seed=sub_seed(seed, v, m), n_resamples=n_resamples
            )
            d.update(ci_low=lo, ci_high=hi)
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
                seed=sub_seed(seed, v, m, "delta"),
                n_resamples=n_resamples,
            )
            if direction == "none":
                informational(c)
            entry["vs_baseline"][m] = c
            family.append(c)
        if direction != "none":
            finish_verdicts(family, direction, alpha)

    result: dict[str, Any] = {
        "study": study,
        "primary_metric": primary,
        "baseline": baseline,
        "design": design,
        "alpha": alpha,
        "metrics": {m: {"direction": decls[m][0], "reduce": decls[m][1]} for m in names},
        "runs": {
            "total": int(len(runs)),
            "done": int((status == "done").sum()),
            "failed": int((status == "failed").sum()),
        },
        "variants": variants,
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
            main_verdicts={
                e["name"]: {
                    m: c["verdict"] for m, c in e["vs_baseline"].items() if decls[m][0] != "none"
                }
                for e in variants[1:]
            },
        )
    return jsonable(result)
