"""Diagnosis labels from a model zoo, exactly as MD tree defines them (Zhou et al., ICML 2024, §3.1).

The zoo is a table of (configuration, seed, test accuracy) rows over a grid of a temperature
knob (batch size: smaller batch = higher temperature; or learning rate: larger = higher), a
width and a training-data size. With accuracies first averaged over seeds, the *room for
improvement* of moving one knob in one direction is

    RFI_op(c) = max { acc(c') : c' reachable from c by moving only that knob that way,
                      c' = c included } - acc(c)

for the moves ``inc_temp``, ``dec_temp``, ``width`` (increase) and ``data`` (increase). Then

    Q1:  small  if RFI_inc_temp > RFI_dec_temp;  large  if RFI_dec_temp > RFI_inc_temp
    Q2:  width  if RFI_width > max(RFI_inc_temp, RFI_dec_temp);  else batch
    Q2': data   if RFI_data  > max(RFI_inc_temp, RFI_dec_temp);  else batch

Ties (including a configuration no move improves) are ``optimal`` and left out of training.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ablab.errors import DataError, did_you_mean

OPTIMAL = "optimal"


def _frame(table: Any) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    if isinstance(table, Mapping):
        return pd.DataFrame(dict(table))
    if isinstance(table, Iterable):
        return pd.DataFrame(list(table))
    raise DataError(f"zoo table is a {type(table).__name__}; expected a DataFrame or rows of dicts")


def rfi_labels(
    table: Any,
    *,
    temperature: str = "batch_size",
    higher_is_hotter: bool = False,
    width: str = "width",
    data: str = "data_size",
    accuracy: str = "test_accuracy",
    group: Iterable[str] = (),
    atol: float = 1e-9,
) -> pd.DataFrame:
    """One row per configuration with its RFIs and its labels for Q1, Q2 and Q2'.

    ``table`` has one row per trained model (DataFrame or iterable of dicts) with the columns
    named by ``temperature``, ``width``, ``data`` and ``accuracy``; other columns (seed, ...)
    are ignored except those in ``group`` (e.g. ``("dataset",)``), which split the zoo into
    independent grids. ``higher_is_hotter`` is False for batch size, True for learning rate.
    Differences within ``atol`` count as ties. Pure function: no I/O, the input is not changed.
    """
    df = _frame(table)
    group = list(group)
    knobs = [temperature, width, data]
    for col in [*knobs, accuracy, *group]:
        if col not in df.columns:
            hint = did_you_mean(col, map(str, df.columns))
            raise DataError(
                f"zoo table has no column {col!r}; columns are {sorted(map(str, df.columns))}",
                hint=hint,
            )
    if df.empty:
        raise DataError("zoo table is empty: no (configuration, accuracy) rows to label")
    acc = pd.to_numeric(df[accuracy], errors="coerce")
    if acc.isna().any():
        raise DataError(f"zoo table column {accuracy!r} has missing or non-numeric values")
    df = df.assign(**{accuracy: acc})
    mean = df.groupby(group + knobs, as_index=False, sort=True)[accuracy].mean()
    parts = [_label_grid(g, temperature, higher_is_hotter, width, data, accuracy, atol)
             for _, g in (mean.groupby(group, sort=True) if group else [(None, mean)])]  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _best_along(
    g: pd.DataFrame, knob: str, others: list[str], accuracy: str, upward: bool
) -> np.ndarray:
    """For each row, the best accuracy over rows equal on ``others`` and knob >= (or <=)."""
    out = np.empty(len(g))
    for _, sub in g.groupby(others, sort=False):
        order = sub.sort_values(knob, ascending=not upward)
        best = np.maximum.accumulate(order[accuracy].to_numpy())
        out[g.index.get_indexer(order.index)] = best
    return out


def _label_grid(
    g: pd.DataFrame,
    temperature: str,
    higher_is_hotter: bool,
    width: str,
    data: str,
    accuracy: str,
    atol: float,
) -> pd.DataFrame:
    g = g.reset_index(drop=True)
    acc = g[accuracy].to_numpy()
    hotter_up = higher_is_hotter
    inc = _best_along(g, temperature, [width, data], accuracy, upward=hotter_up) - acc
    dec = _best_along(g, temperature, [width, data], accuracy, upward=not hotter_up) - acc
    wid = _best_along(g, width, [temperature, data], accuracy, upward=True) - acc
    dat = _best_along(g, data, [temperature, width], accuracy, upward=True) - acc
    temp = np.maximum(inc, dec)
    q1 = np.where(inc > dec + atol, "small", np.where(dec > inc + atol, "large", OPTIMAL))
    q2 = np.where(wid > temp + atol, "width", np.where(temp > wid + atol, "batch", OPTIMAL))
    q2d = np.where(dat > temp + atol, "data", np.where(temp > dat + atol, "batch", OPTIMAL))
    return g.assign(
        rfi_inc_temp=inc, rfi_dec_temp=dec, rfi_width=wid, rfi_data=dat,
        q1=q1, q2=q2, q2_data=q2d,
    )  # fmt: skip
