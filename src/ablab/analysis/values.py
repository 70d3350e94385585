"""The values an analysis compares: per variant and metric, the finite values indexed by the
replicate they pair on. Shared by :mod:`ablab.analysis.core` and
:mod:`ablab.analysis.sensitivity` (which re-analyses subsets), so neither imports the other
for them."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pair_index(df: pd.DataFrame) -> list[str]:
    """Columns that identify a replicate for pairing: the seed, and the split seed if varied."""
    cols = ["seed"]
    if "split_seed" in df.columns and df["split_seed"].notna().any():
        cols.append("split_seed")
    return cols


def metric_values(df: pd.DataFrame, metric: str, keys: list[str]) -> pd.Series:
    """Finite values of ``metric`` indexed by the pairing key (mean over duplicate keys)."""
    sub = df[[*keys, metric]].copy()
    sub[metric] = pd.to_numeric(sub[metric], errors="coerce")
    sub = sub[np.isfinite(sub[metric].to_numpy(float))]
    if sub.empty:
        return pd.Series([], dtype=float)
    s = sub.groupby(keys, sort=True)[metric].mean()
    return s


def all_metric_values(
    df: pd.DataFrame, order: list[str], metrics: list[str], keys: list[str]
) -> dict[str, dict[str, pd.Series]]:
    """:func:`metric_values` for every variant and metric, with one groupby."""
    empty = pd.Series([], dtype=float)
    out = {v: dict.fromkeys(metrics, empty) for v in order}
    if df.empty:
        return out
    sub = df[["variant", *keys, *metrics]].copy()
    sub["variant"] = sub["variant"].astype(str)
    for m in metrics:
        sub[m] = pd.to_numeric(sub[m], errors="coerce")
    means = sub.groupby(["variant", *keys], sort=True)[metrics].mean()
    for v, g in means.groupby(level=0, sort=False):
        if v not in out:
            continue
        g = g.droplevel(0)
        for m in metrics:
            col = g[m]
            out[v][m] = col[np.isfinite(col.to_numpy(float))]
    return out
