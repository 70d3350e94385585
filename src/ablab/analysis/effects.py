"""Factorial and fractional-factorial designs: main effects and two-way interactions (OLS with
an ANOVA table), exact Shapley values of the factors, an interaction matrix."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablab.errors import SpecError, did_you_mean

MAX_SHAPLEY_FACTORS = 16


def level_label(x: Any) -> str:
    """Display/grouping label of a factor level: strings as is, anything else as JSON."""
    return x if isinstance(x, str) else json.dumps(x, sort_keys=True, default=str)


def config_level(config: Mapping[str, Any], factor: str) -> Any:
    """A factor's level in a resolved config: the key itself, else a dotted path."""
    if factor in config:
        return config[factor]
    node: Any = config
    for part in factor.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(factor)
        node = node[part]
    return node


def shapley_values(players: Sequence[str], value: Callable[[frozenset], float]) -> dict[str, float]:
    """Exact Shapley values of a cooperative game (Shapley 1953).

    ``phi_i = sum_{S subset N minus {i}} |S|! (n - |S| - 1)! / n! * (v(S + {i}) - v(S))``,
    which satisfies efficiency: ``sum_i phi_i = v(N) - v(empty)``. ``value`` is evaluated once
    per coalition (``2^n`` calls).
    """
    n = len(players)
    if n > MAX_SHAPLEY_FACTORS:
        raise SpecError(
            f"Shapley values: {n} factors need 2^{n} coalitions; at most {MAX_SHAPLEY_FACTORS} "
            "factors are supported"
        )
    cache = {
        frozenset(c): float(value(frozenset(c)))
        for r in range(n + 1)
        for c in itertools.combinations(players, r)
    }
    fact = [math.factorial(k) for k in range(n + 1)]
    out = {}
    for p in players:
        rest = [q for q in players if q != p]
        phi = 0.0
        for r in range(n):
            w = fact[r] * fact[n - r - 1] / fact[n]
            for c in itertools.combinations(rest, r):
                s = frozenset(c)
                phi += w * (cache[s | {p}] - cache[s])
        out[p] = phi
    return out


def _design_frame(
    done: pd.DataFrame, configs: Mapping[str, Mapping], factors: Mapping[str, list], metric: str
) -> pd.DataFrame:
    rows = []
    for v, g in done.groupby(done["variant"].astype(str), sort=False):
        cfg = configs.get(v)
        if cfg is None:
            raise SpecError(
                f"factorial analysis: variant '{v}' has no resolved config",
                hint=did_you_mean(v, configs),
            )
        levels = {}
        for f in factors:
            try:
                levels[f] = level_label(config_level(cfg, f))
            except KeyError:
                raise SpecError(
                    f"factorial analysis: the config of variant '{v}' has no level for factor "
                    f"'{f}' (keys: {sorted(cfg)})",
                    hint=did_you_mean(f, list(cfg)),
                ) from None
        y = pd.to_numeric(g[metric], errors="coerce").to_numpy(float)
        for val in y[np.isfinite(y)]:
            rows.append({**levels, "_y": float(val)})
    return pd.DataFrame(rows)


def factorial_effects(
    done: pd.DataFrame,
    *,
    configs: Mapping[str, Mapping[str, Any]],
    factors: Mapping[str, list] | None,
    metric: str,
    direction: str = "max",
    baseline: str | None = None,
    design_info: Mapping[str, Any] | None = None,
    max_order: int | None = None,
) -> dict[str, Any]:
    """Effects of the factors of a (fractional) factorial study on ``metric``.

    Model (see :mod:`ablab.analysis.effects_model`): OLS on every term the runs can estimate,
    up to ``max_order`` (default: all orders, the full model of a replicated factorial);
    terms that share a contrast form an *alias chain*, fitted once and reported as the chain
    (``"a:b = c:e = d:f"``, ``aliased: true``, ``aliases``). When no replication leaves no
    error df the highest orders are pooled into the residual and ``model`` says so. Type-II
    ANOVA (statsmodels ``anova_lm``): ``F``, unadjusted ``p`` and ``p_adjusted`` (Holm within
    the table), partial eta squared ``eta_p^2 = SS_term / (SS_term + SS_residual)``.
    Main effect of a two-level factor = marginal mean at its second declared level minus at its
    first (means of cell means); interaction contrast of two two-level factors =
    ``m11 - m10 - m01 + m00``. Shapley values: :func:`ablab.analysis.effects_shapley.shapley`.
    ``design_info`` (the planned design, e.g. ``FractionalDesign.to_dict()``) is reported as
    ``design`` with the alias structure observed in the finished runs; its ``max_order`` (the
    study's ``[design] max_order``) is used when ``max_order`` is not given.
    """
    from ablab.analysis.effects_design import design_summary, term_report
    from ablab.analysis.effects_model import fit_model, select_terms
    from ablab.analysis.effects_shapley import shapley

    if not factors:
        raise SpecError(
            "factorial analysis needs the design's factors (name -> levels)",
            hint="declare them under [design] factors = { name = [level, ...] }",
        )
    if max_order is None and design_info:
        max_order = design_info.get("max_order")
    if max_order is not None and (not isinstance(max_order, int) or max_order < 1):
        raise SpecError(
            f"factorial analysis: max_order must be a positive integer, not {max_order!r}"
        )
    factors = {f: list(levels) for f, levels in factors.items()}
    data = _design_frame(done, configs, factors, metric)
    fl = list(factors)
    names = {f: f"f{i}" for i, f in enumerate(fl)}
    labels = {f: [level_label(x) for x in lv] for f, lv in factors.items()}
    nlev = [len(labels[f]) for f in fl]
    out: dict[str, Any] = {"metric": metric, "factors": {f: labels[f] for f in factors}}
    if data.empty:
        out["error"] = "no finished runs with a value of the primary metric"
        out["design"] = dict(design_info) if design_info else None
        return out
    data = data.rename(columns=names)
    for i, f in enumerate(fl):
        c = names[f]
        data[c] = pd.Categorical(data[c], categories=labels[f])
        data = data[data[c].notna()]
        data[f"x{i}"] = np.where(data[c].cat.codes.to_numpy() == 1, 1.0, -1.0)
    codes = pd.DataFrame({names[f]: data[names[f]].cat.codes for f in fl})
    cells_coded = codes.drop_duplicates().reset_index(drop=True)
    sel = select_terms(cells_coded, [names[f] for f in fl], nlev)
    model = fit_model(data, nlev, sel, max_order=max_order)
    report = term_report(fl, sel, model)
    out["model"] = report["model"]
    out["anova"] = report["anova"]
    out["aliased_terms"] = report["aliased_terms"]
    out["design"] = design_summary(
        fl, sel, design_info, full=len(cells_coded) == math.prod(nlev), cells=len(cells_coded)
    )
    fit = model.fit
    with np.errstate(divide="ignore", invalid="ignore"):
        out["r_squared"] = float(fit.rsquared) if fit.df_resid > 0 else math.nan

    cells = data.groupby([names[f] for f in fl], observed=True)["_y"].agg(["mean", "count"])
    cell_mean = {
        tuple(k if isinstance(k, tuple) else (k,)): float(m) for k, m in cells["mean"].items()
    }
    out["cells"] = [
        {"levels": dict(zip(fl, k, strict=True)), "mean": cell_mean[k], "n": int(n)}
        for k, n in cells["count"].items()
        for k in [k if isinstance(k, tuple) else (k,)]
    ]
    cm = pd.DataFrame([{**dict(zip(fl, k, strict=True)), "_m": m} for k, m in cell_mean.items()])

    info = report["terms"]
    main = {}
    for i, f in enumerate(fl):
        means = cm.groupby(f, observed=True)["_m"].mean()
        lv = {lab: float(means[lab]) for lab in labels[f] if lab in means.index}
        effect = math.nan
        if len(labels[f]) == 2 and all(lab in lv for lab in labels[f]):
            effect = lv[labels[f][1]] - lv[labels[f][0]]
        main[f] = {"level_means": lv, "effect": effect, **info[(i,)]}
        never = [lab for lab in labels[f] if lab not in lv]
        if never:
            main[f]["reason"] = f"level(s) {', '.join(never)} never ran (no finished run)"
    out["main_effects"] = main

    k = len(fl)
    eta_m = [[math.nan] * k for _ in range(k)]
    p_m = [[math.nan] * k for _ in range(k)]
    al_m = [[False] * k for _ in range(k)]
    interactions = []
    for i, j in itertools.combinations(range(k), 2):
        a, b = fl[i], fl[j]
        s = info[(i, j)]
        contrast = math.nan
        if len(labels[a]) == 2 and len(labels[b]) == 2:
            m2 = cm.groupby([a, b], observed=True)["_m"].mean()
            try:
                (a0, a1), (b0, b1) = labels[a], labels[b]
                contrast = float(m2[(a1, b1)] - m2[(a1, b0)] - m2[(a0, b1)] + m2[(a0, b0)])
            except KeyError:
                contrast = math.nan
        interactions.append({"factors": [a, b], "contrast": contrast, **s})
        for x, y in ((i, j), (j, i)):
            eta_m[x][y] = s["partial_eta_sq"]
            p_m[x][y] = s["p"]
            al_m[x][y] = s["aliased"]
    for i, f in enumerate(fl):
        eta_m[i][i] = main[f]["partial_eta_sq"]
        p_m[i][i] = main[f]["p"]
        al_m[i][i] = main[f]["aliased"]
    out["interactions"] = interactions
    out["interaction_matrix"] = {
        "factors": fl,
        "partial_eta_sq": eta_m,
        "p": p_m,
        "aliased": al_m,
        "p_values": "unadjusted",
    }
    out["shapley"] = shapley(
        data, fl, names, labels, nlev, cell_mean, configs, baseline, direction, sel
    )
    return out
