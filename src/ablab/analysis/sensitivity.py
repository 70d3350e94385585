"""Sensitivity of a study's conclusions: to the seeds, the hyperparameters, the data split and
the choice of metric (the checklist of the seed documents)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from ablab.analysis.compare import compare, finish_verdicts, verdict
from ablab.analysis.stats import holm
from ablab.analysis.values import metric_values, pair_index


def seed_grid(n: int) -> list[int]:
    """Numbers of seeds at which the CI width is reported: 2..5, then ~x1.5 steps, and n."""
    grid = [k for k in (2, 3, 4, 5) if k <= n]
    k = 5
    while True:
        k = int(math.ceil(k * 1.5))
        if k >= n:
            break
        grid.append(k)
    if n >= 2 and (not grid or grid[-1] != n):
        grid.append(n)
    return grid


def t_width(x: np.ndarray, confidence: float = 0.95) -> float:
    """Width of the t-interval of the mean: ``2 t_{1-a/2, n-1} s / sqrt(n)``."""
    n = x.size
    if n < 2:
        return math.nan
    return float(2 * _st.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))


def ci_width_by_seeds(
    variant: pd.Series, baseline: pd.Series | None = None, confidence: float = 0.95
) -> list[dict[str, float]]:
    """95 % t-interval width of the mean, ``2 t_{1-a/2, k-1} s_k / sqrt(k)`` (and of the paired
    delta against ``baseline``) using the first ``k`` replicates in seed order, for ``k`` on
    :func:`seed_grid` (running moments, one pass)."""
    v = variant.sort_index()
    x = v.to_numpy(float)
    grid = np.array(seed_grid(len(x)), dtype=int)
    if grid.size == 0:
        return []

    def widths(a: np.ndarray) -> np.ndarray:
        ks = grid[grid <= a.size]
        csum, csq = np.cumsum(a), np.cumsum(a * a)
        mean = csum[ks - 1] / ks
        var = np.maximum((csq[ks - 1] - ks * mean**2) / (ks - 1), 0.0)
        tq = _st.t.ppf(0.5 + confidence / 2, ks - 1)
        return 2 * tq * np.sqrt(var / ks)

    w = widths(x - x.mean())
    out = [{"n": int(k), "width": float(wk)} for k, wk in zip(grid, w, strict=False)]
    if baseline is not None:
        common = v.index.intersection(baseline.index).sort_values()
        if len(common) >= 2:
            d = v.loc[common].to_numpy(float) - baseline.loc[common].to_numpy(float)
            for row, dw in zip(out, widths(d - d.mean()), strict=False):
                row["delta_width"] = float(dw)
    return out


def _drop_group_moments(x: np.ndarray, groups: np.ndarray, labels: np.ndarray):
    """For each label, (n, mean, var) of ``x`` without the entries of that group (closed form:
    ``S' = S - S_g``, ``Q' = Q - Q_g`` on values centred at the full mean)."""
    c = x - x.mean() if x.size else x
    n = np.full(labels.size, float(x.size))
    s = np.zeros(labels.size)
    q = np.full(labels.size, float((c * c).sum()))
    if x.size:
        idx = np.searchsorted(labels, groups)
        np.subtract.at(n, idx, 1.0)
        np.add.at(s, idx, -c)
        np.add.at(q, idx, -(c * c))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = s / n
        var = (q - n * mean_c**2) / (n - 1)
    mean = mean_c + (x.mean() if x.size else 0.0)
    var = np.where(var < 0, 0.0, var)
    return n, mean, var


def _t_p(t: np.ndarray, df: np.ndarray, delta: np.ndarray, se: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * _st.t.sf(np.abs(t), df)
    degenerate = se == 0
    p = np.where(degenerate, np.where(delta == 0, 1.0, 0.0), p)
    return np.where(df >= 1, p, np.nan)


def loso_pvalues(
    variant: pd.Series, baseline: pd.Series, seeds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(delta, p) of the comparison with each seed of ``seeds`` left out, same test as
    :func:`ablab.analysis.compare.compare` (paired t on shared keys, else Welch)."""

    def seed_of(idx: pd.Index) -> np.ndarray:
        return np.asarray(idx.get_level_values(0) if isinstance(idx, pd.MultiIndex) else idx)

    common = variant.index.intersection(baseline.index).sort_values()
    if len(common) >= 2:
        d = variant.loc[common].to_numpy(float) - baseline.loc[common].to_numpy(float)
        n, mean, var = _drop_group_moments(d, seed_of(common), seeds)
        se = np.sqrt(var / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = mean / se
        return mean, _t_p(t, n - 1, mean, se)
    nv, mv, vv = _drop_group_moments(variant.to_numpy(float), seed_of(variant.index), seeds)
    nb, mb, vb = _drop_group_moments(baseline.to_numpy(float), seed_of(baseline.index), seeds)
    with np.errstate(invalid="ignore", divide="ignore"):
        a, b = vv / nv, vb / nb
        se = np.sqrt(a + b)
        delta = mv - mb
        t = delta / se
        df = (a + b) ** 2 / (a**2 / (nv - 1) + b**2 / (nb - 1))
    df = np.where(np.isfinite(df), df, np.minimum(nv, nb) - 1)
    df = np.where((nv < 2) | (nb < 2), 0, df)
    return delta, _t_p(t, df, delta, se)


def leave_one_seed_out(
    values: Mapping[str, Mapping[str, pd.Series]],
    order: list[str],
    metrics: Mapping[str, tuple[str, str]],
    main_verdicts: Mapping[str, Mapping[str, str | None]],
    alpha: float = 0.05,
    max_flips: int = 20,
) -> dict[str, Any]:
    """Which verdicts survive leaving out any single seed (from every variant at once, with the
    Holm correction redone over the family)."""
    baseline, others = order[0], order[1:]
    seeds = set()
    for v in order:
        for s in values[v].values():
            idx = s.index
            seeds.update(
                np.asarray(
                    idx.get_level_values(0) if isinstance(idx, pd.MultiIndex) else idx
                ).tolist()
            )
    labels = np.array(sorted(seeds))
    out: dict[str, Any] = {"seeds": len(labels), "variants": {v: {} for v in others}}
    if len(labels) < 3 or not others:
        return out
    for m, (direction, _) in metrics.items():
        deltas, ps = [], []
        for v in others:
            dlt, p = loso_pvalues(values[v][m], values[baseline][m], labels)
            deltas.append(dlt)
            ps.append(p)
        P = np.vstack(ps)  # variants x seeds
        D = np.vstack(deltas)
        adj = np.vstack([holm(P[:, j]) for j in range(P.shape[1])]).T
        for i, v in enumerate(others):
            main = main_verdicts[v].get(m)
            if main is None:
                continue
            verdicts = [verdict(D[i, j], adj[i, j], direction, alpha) for j in range(len(labels))]
            flips = [labels[j].item() for j, vd in enumerate(verdicts) if vd != main]
            out["variants"][v][m] = {
                "verdict": main,
                "stable": not flips,
                "survival": 1.0 - len(flips) / len(labels),
                "flips": flips[:max_flips],
            }
    return out


def rank_of(means: Mapping[str, float], direction: str) -> list[str]:
    """Variants from best to worst by mean (NaN last), stable in the given order on ties."""
    sign = -1.0 if direction == "max" else 1.0
    items = list(means.items())
    return [
        k
        for k, v in sorted(
            items,
            key=lambda kv: (not math.isfinite(kv[1]), sign * kv[1] if math.isfinite(kv[1]) else 0),
        )
    ]


def kendall_tau(a: Mapping[str, float], b: Mapping[str, float], da: str, db: str) -> float:
    """Kendall's tau-b (``scipy.stats.kendalltau``) between two orientated scorings of the
    variants both define (each score is negated for a metric to minimise)."""
    keys = [k for k in a if k in b and math.isfinite(a[k]) and math.isfinite(b[k])]
    if len(keys) < 2:
        return math.nan
    x = [a[k] if da == "max" else -a[k] for k in keys]
    y = [b[k] if db == "max" else -b[k] for k in keys]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_st.kendalltau(x, y).statistic)


def split_variance(df: pd.DataFrame, metric: str) -> dict[str, float] | None:
    """Share of the variance from init seeds, from data splits and the rest (interaction and
    noise), by the method of moments on the crossed two-way layout seed x split_seed (cell
    means, complete seeds only): ``MS_seed``, ``MS_split``, ``MS_res`` of the additive model;
    ``sigma2_seed = max(0, (MS_seed - MS_res) / n_split)``, ``sigma2_split = max(0,
    (MS_split - MS_res) / n_seed)``, ``sigma2_res = MS_res``; shares = each / their sum."""
    sub = df[["seed", "split_seed", metric]].dropna()
    if sub.empty:
        return None
    table = sub.pivot_table(index="seed", columns="split_seed", values=metric, aggfunc="mean")
    table = table.dropna(axis=0, how="any")
    a, b = table.shape
    if a < 2 or b < 2:
        return None
    y = table.to_numpy(float)
    grand = y.mean()
    ms_seed = b * ((y.mean(axis=1) - grand) ** 2).sum() / (a - 1)
    ms_split = a * ((y.mean(axis=0) - grand) ** 2).sum() / (b - 1)
    resid = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + grand
    ms_res = (resid**2).sum() / ((a - 1) * (b - 1))
    s_seed = max(0.0, (ms_seed - ms_res) / b)
    s_split = max(0.0, (ms_split - ms_res) / a)
    total = s_seed + s_split + ms_res
    if total <= 0:
        return {
            "seed": math.nan,
            "split": math.nan,
            "residual": math.nan,
            "n_seeds": a,
            "n_splits": b,
        }
    return {
        "seed": s_seed / total,
        "split": s_split / total,
        "residual": ms_res / total,
        "n_seeds": a,
        "n_splits": b,
    }


def hyperparameter_sensitivity(
    runs: pd.DataFrame,
    order: list[str],
    metrics: Mapping[str, tuple[str, str]],
    main_verdicts: Mapping[str, Mapping[str, str | None]],
    main_means: Mapping[str, float],
    alpha: float = 0.05,
) -> dict[str, Any] | None:
    """Re-analyse the study at each sensitivity setting (rows labelled in ``sensitivity``):
    each variant's verdict per setting, whether it holds at every setting, and Kendall's tau
    between the primary-metric rankings of the main study and of each setting."""
    if "sensitivity" not in runs.columns or runs["sensitivity"].isna().all():
        return None
    primary = next(iter(metrics))
    pdir = metrics[primary][0]
    done = runs[(runs["status"].astype(str) == "done") & runs["sensitivity"].notna()]
    labels = list(dict.fromkeys(runs["sensitivity"].dropna().astype(str)))
    baseline, others = order[0], order[1:]
    verdicts: dict[str, dict[str, dict[str, Any]]] = {v: {} for v in others}
    means: dict[str, dict[str, float]] = {}
    for label in labels:
        sub = done[done["sensitivity"].astype(str) == label]
        keys = pair_index(sub)
        groups = {v: g for v, g in sub.groupby(sub["variant"].astype(str), sort=False)}
        empty = sub.iloc[0:0]
        vals = {
            v: {m: metric_values(groups.get(v, empty), m, keys) for m in metrics} for v in order
        }
        means[label] = {
            v: float(vals[v][primary].mean()) if len(vals[v][primary]) else math.nan for v in order
        }
        for m, (direction, _) in metrics.items():
            fam = [
                compare(vals[v][m], vals[baseline][m], direction=direction, bootstrap=False)
                for v in others
            ]
            finish_verdicts(fam, direction, alpha)
            for v, c in zip(others, fam, strict=True):
                verdicts[v].setdefault(label, {})[m] = c["verdict"]
    holds = {
        v: {
            m: all(verdicts[v][lab].get(m) == main_verdicts[v].get(m) for lab in labels)
            for m in metrics
        }
        for v in others
    }
    names = ["main", *labels]
    scorings = {"main": dict(main_means), **means}
    tau = [[kendall_tau(scorings[a], scorings[b], pdir, pdir) for b in names] for a in names]
    return {
        "labels": labels,
        "metric": primary,
        "verdicts": verdicts,
        "holds": holds,
        "kendall_tau": {lab: tau[0][i + 1] for i, lab in enumerate(labels)},
        "rank_agreement": {"settings": names, "tau": tau},
        "rankings": {k: rank_of(s, pdir) for k, s in scorings.items()},
    }


def sensitivity_report(
    runs: pd.DataFrame,
    *,
    values: Mapping[str, Mapping[str, pd.Series]],
    order: list[str],
    metrics: Mapping[str, tuple[str, str]],
    baseline: str,
    alpha: float = 0.05,
    main_verdicts: Mapping[str, Mapping[str, str | None]],
) -> dict[str, Any]:
    """All sensitivity sections of the result (``seeds``, ``hyperparameters``, ``splits``,
    ``metrics``); a section that does not apply is None."""
    primary = next(iter(metrics))
    means = {
        m: {v: float(values[v][m].mean()) if len(values[v][m]) else math.nan for v in order}
        for m in metrics
    }
    seeds = {
        "metric": primary,
        "ci_width": {
            v: ci_width_by_seeds(
                values[v][primary], None if v == baseline else values[baseline][primary]
            )
            for v in order
            if len(values[v][primary]) >= 2
        },
        "leave_one_seed_out": leave_one_seed_out(values, order, metrics, main_verdicts, alpha),
    }
    splits = None
    main = runs if "sensitivity" not in runs.columns else runs[runs["sensitivity"].isna()]
    main = main[main["status"].astype(str) == "done"]
    if "split_seed" in main.columns and main["split_seed"].nunique() >= 2:
        per = {
            v: split_variance(g, primary)
            for v, g in main.groupby(main["variant"].astype(str), sort=False)
        }
        per = {v: r for v, r in per.items() if r is not None}
        if per:
            overall = {
                k: float(np.nanmean([r[k] for r in per.values()]))
                for k in ("seed", "split", "residual")
            }
            splits = {"metric": primary, "variants": per, "mean_share": overall}
    metric_agreement = None
    if len(metrics) >= 2:
        names = list(metrics)
        tau = [
            [kendall_tau(means[a], means[b], metrics[a][0], metrics[b][0]) for b in names]
            for a in names
        ]
        metric_agreement = {
            "metrics": names,
            "tau": tau,
            "rankings": {m: rank_of(means[m], metrics[m][0]) for m in names},
        }
    return {
        "seeds": seeds,
        "hyperparameters": hyperparameter_sensitivity(
            runs, order, metrics, main_verdicts, means[primary], alpha
        ),
        "splits": splits,
        "metrics": metric_agreement,
    }
