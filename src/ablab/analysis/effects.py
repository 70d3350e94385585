"""Factorial and fractional-factorial designs: main effects and two-way interactions (OLS with
an ANOVA table), exact Shapley values of the factors, an interaction matrix."""

from __future__ import annotations

import itertools
import json
import math
import warnings
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


def _estimable_terms(data: pd.DataFrame, names: dict[str, str]) -> tuple[list[str], list[str]]:
    """Main effects, then two-way interactions, each kept only if its columns are linearly
    independent of the terms kept before it (an aliased term is reported, not fitted)."""
    from patsy import dmatrix

    codes = list(names.values())
    candidates = [f"C({c})" for c in codes] + [
        f"C({a}):C({b})" for a, b in itertools.combinations(codes, 2)
    ]
    X = dmatrix("1 + " + " + ".join(candidates), data, return_type="dataframe")
    info = X.design_info
    kept, aliased = [], []
    cols = [X.iloc[:, info.term_slices[info.terms[0]]].to_numpy()]
    rank = np.linalg.matrix_rank(np.hstack(cols))
    for term_name, term in zip(candidates, info.terms[1:], strict=True):
        block = X.iloc[:, info.term_slices[term]].to_numpy()
        trial = np.linalg.matrix_rank(np.hstack([*cols, block]))
        if trial - rank == block.shape[1]:
            cols.append(block)
            rank = trial
            kept.append(term_name)
        else:
            aliased.append(term_name)
    return kept, aliased


def factorial_effects(
    done: pd.DataFrame,
    *,
    configs: Mapping[str, Mapping[str, Any]],
    factors: Mapping[str, list] | None,
    metric: str,
    direction: str = "max",
    baseline: str | None = None,
) -> dict[str, Any]:
    """Effects of the factors of a (fractional) factorial study on ``metric``.

    OLS ``y ~ sum_f C(f) + sum_{f<g} C(f):C(g)`` (statsmodels; two-way interactions that are
    aliased with earlier terms, as in fractional designs, are left out and listed) and its
    type-II ANOVA table with ``F``, ``p`` and partial eta squared
    ``eta_p^2 = SS_term / (SS_term + SS_residual)``. Main effect of a two-level factor =
    marginal mean at its second declared level minus at its first (means of cell means);
    interaction contrast of two two-level factors = ``m11 - m10 - m01 + m00``.
    Shapley values: players = factors, ``v(S)`` = mean of the cell with the factors in ``S`` at
    their *full* level and the others at the baseline's level (the observed cell mean, or the
    OLS prediction where the cell was not run); *full* = the other level when every factor has
    two levels, else the best observed cell. ``sum phi = v(full) - v(baseline)``.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    if not factors:
        raise SpecError(
            "factorial analysis needs the design's factors (name -> levels)",
            hint="declare them under [design] factors = { name = [level, ...] }",
        )
    factors = {f: list(levels) for f, levels in factors.items()}
    data = _design_frame(done, configs, factors, metric)
    names = {f: f"f{i}" for i, f in enumerate(factors)}
    back = {c: f for f, c in names.items()}
    labels = {f: [level_label(x) for x in lv] for f, lv in factors.items()}
    out: dict[str, Any] = {"metric": metric, "factors": {f: labels[f] for f in factors}}
    if data.empty:
        out["error"] = "no finished runs with a value of the primary metric"
        return out
    data = data.rename(columns=names)
    for f, c in names.items():
        data[c] = pd.Categorical(data[c], categories=labels[f])
    kept, aliased = _estimable_terms(data, names)
    formula = "_y ~ " + (" + ".join(kept) if kept else "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols(formula, data).fit()
        table = anova_lm(fit, typ=2) if kept else None

    def term_factors(term: str) -> list[str]:
        return [back[p[2:-1]] for p in term.split(":")]

    anova, stats_of = [], {}
    if table is not None:
        ss_res = float(table.loc["Residual", "sum_sq"])
        for term, row in table.iterrows():
            ss = float(row["sum_sq"])
            is_res = term == "Residual"
            eta = math.nan if is_res or (ss + ss_res) <= 0 else ss / (ss + ss_res)
            entry = {
                "term": "Residual" if is_res else ":".join(term_factors(term)),
                "factors": [] if is_res else term_factors(term),
                "df": float(row["df"]),
                "sum_sq": ss,
                "F": float(row.get("F", math.nan)),
                "p": float(row.get("PR(>F)", math.nan)),
                "partial_eta_sq": eta,
            }
            anova.append(entry)
            if not is_res:
                stats_of[entry["term"]] = entry
    out["anova"] = anova
    out["aliased_terms"] = [":".join(term_factors(t)) for t in aliased]
    out["r_squared"] = float(fit.rsquared) if fit.df_resid > 0 else math.nan

    cells = data.groupby([names[f] for f in factors], observed=True)["_y"].agg(["mean", "count"])
    cell_mean = {
        tuple(k if isinstance(k, tuple) else (k,)): float(m) for k, m in cells["mean"].items()
    }
    out["cells"] = [
        {"levels": dict(zip(factors, k, strict=True)), "mean": cell_mean[k], "n": int(n)}
        for k, n in cells["count"].items()
        for k in [k if isinstance(k, tuple) else (k,)]
    ]
    cm = pd.DataFrame(
        [{**dict(zip(factors, k, strict=True)), "_m": m} for k, m in cell_mean.items()]
    )

    main = {}
    for f in factors:
        means = cm.groupby(f, observed=True)["_m"].mean()
        lv = {lab: float(means[lab]) for lab in labels[f] if lab in means.index}
        effect = math.nan
        if len(labels[f]) == 2 and all(lab in lv for lab in labels[f]):
            effect = lv[labels[f][1]] - lv[labels[f][0]]
        s = stats_of.get(f, {})
        main[f] = {
            "level_means": lv,
            "effect": effect,
            "F": s.get("F", math.nan),
            "p": s.get("p", math.nan),
            "partial_eta_sq": s.get("partial_eta_sq", math.nan),
        }
    out["main_effects"] = main

    fl = list(factors)
    k = len(fl)
    eta_m = [[math.nan] * k for _ in range(k)]
    p_m = [[math.nan] * k for _ in range(k)]
    interactions = []
    for i, j in itertools.combinations(range(k), 2):
        a, b = fl[i], fl[j]
        s = stats_of.get(f"{a}:{b}", {})
        contrast = math.nan
        if len(labels[a]) == 2 and len(labels[b]) == 2:
            m2 = cm.groupby([a, b], observed=True)["_m"].mean()
            try:
                (a0, a1), (b0, b1) = labels[a], labels[b]
                contrast = float(m2[(a1, b1)] - m2[(a1, b0)] - m2[(a0, b1)] + m2[(a0, b0)])
            except KeyError:
                contrast = math.nan
        interactions.append(
            {
                "factors": [a, b],
                "contrast": contrast,
                "F": s.get("F", math.nan),
                "p": s.get("p", math.nan),
                "partial_eta_sq": s.get("partial_eta_sq", math.nan),
                "aliased": f"{a}:{b}" in out["aliased_terms"],
            }
        )
        for x, y in ((i, j), (j, i)):
            eta_m[x][y] = s.get("partial_eta_sq", math.nan)
            p_m[x][y] = s.get("p", math.nan)
    for i, f in enumerate(fl):
        eta_m[i][i] = main[f]["partial_eta_sq"]
        p_m[i][i] = main[f]["p"]
    out["interactions"] = interactions
    out["interaction_matrix"] = {"factors": fl, "partial_eta_sq": eta_m, "p": p_m}
    out["shapley"] = _shapley(
        fit, data, names, factors, labels, cell_mean, configs, baseline, direction
    )
    return out


def _shapley(fit, data, names, factors, labels, cell_mean, configs, baseline, direction):
    fl = list(factors)
    if len(fl) > MAX_SHAPLEY_FACTORS:
        return None
    empty = {f: labels[f][0] for f in fl}
    if baseline is not None and baseline in configs:
        for f in fl:
            try:
                lab = level_label(config_level(configs[baseline], f))
            except KeyError:
                continue
            if lab in labels[f]:
                empty[f] = lab
    if all(len(labels[f]) == 2 for f in fl):
        full = {f: labels[f][1] if empty[f] == labels[f][0] else labels[f][0] for f in fl}
        target = "all factors flipped"
    else:
        sign = 1.0 if direction == "max" else -1.0
        best = max(cell_mean, key=lambda key: sign * cell_mean[key])
        full = dict(zip(fl, best, strict=True))
        target = "best observed cell"
    used_model = False

    def value(s: frozenset) -> float:
        nonlocal used_model
        key = tuple(full[f] if f in s else empty[f] for f in fl)
        if key in cell_mean:
            return cell_mean[key]
        used_model = True
        row = pd.DataFrame([{names[f]: key[i] for i, f in enumerate(fl)}])
        for f, c in names.items():
            row[c] = pd.Categorical(row[c], categories=labels[f])
        return float(np.asarray(fit.predict(row))[0])

    phi = shapley_values(fl, value)
    total = value(frozenset(fl)) - value(frozenset())
    return {
        "values": phi,
        "total": total,
        "from": empty,
        "to": full,
        "target": target,
        "value_function": "OLS prediction for unobserved cells" if used_model else "cell means",
    }
