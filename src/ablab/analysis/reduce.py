"""Reduce a logged metric series to the one number the analysis compares."""

from __future__ import annotations

import math

import pandas as pd

from ablab.errors import MetricError, did_you_mean

REDUCTIONS = ("value", "last", "best", "post")  # post: attached after the run
DIRECTIONS = ("max", "min", "none")  # none: informational, never tested


def check_metric_decl(name: str, decl: dict) -> tuple[str, str]:
    """Validate one ``[metrics]`` entry; return ``(direction, reduce)``."""
    direction = decl.get("direction", "max")
    reduce = decl.get("reduce", "value")
    if direction not in DIRECTIONS:
        hint = did_you_mean(str(direction), DIRECTIONS)
        raise MetricError(
            f"metric '{name}': direction must be 'max', 'min' or 'none', found {direction!r}",
            hint=hint
            or 'write direction = "max" (higher is better), "min" or "none" '
            "(informational: reported, never tested)",
        )
    if reduce not in REDUCTIONS:
        hint = did_you_mean(str(reduce), REDUCTIONS)
        raise MetricError(
            f"metric '{name}': reduce must be one of {', '.join(REDUCTIONS)}, found {reduce!r}",
            hint=hint
            or 'use "value" (the number the run returns), "last" or "best" of a logged '
            'series, or "post" (attached after the run)',
        )
    return direction, reduce


def check_margin(name: str, decl: dict) -> float | None:
    """The metric's ``margin`` (the smallest difference that matters, in metric units) or None;
    it must be a positive finite number."""
    margin = decl.get("margin")
    if margin is None:
        return None
    ok = isinstance(margin, int | float) and not isinstance(margin, bool)
    if not ok or not math.isfinite(margin) or margin <= 0:
        raise MetricError(
            f"metric '{name}': margin must be a positive finite number in the metric's units, "
            f"found {margin!r}",
            hint='e.g. accuracy = { direction = "max", margin = 0.005 } (half a point)',
        )
    return float(margin)


def reduce_series(series: pd.DataFrame, direction: str, reduce: str) -> float:
    """One number from a logged series (a DataFrame with columns ``step`` and ``value``).

    ``last``: the value at the largest step (the last logged one among equal steps);
    ``best``: ``max(value)`` for ``direction="max"``, ``min(value)`` for ``"min"``.
    NaN values are ignored; an empty series gives NaN. ``reduce="value"`` has no series to
    reduce and is rejected.
    """
    if reduce not in ("last", "best"):
        raise MetricError(
            f"reduce_series: reduce must be 'last' or 'best', found {reduce!r}",
            hint='a metric declared with reduce = "value" is the number the run returned',
        )
    if direction not in DIRECTIONS:
        raise MetricError(f"reduce_series: direction must be 'max' or 'min', found {direction!r}")
    missing = [c for c in ("step", "value") if c not in series.columns]
    if missing:
        raise MetricError(
            f"reduce_series: the series lacks column(s) {missing}; expected 'step' and 'value', "
            f"found {list(series.columns)}"
        )
    if reduce == "best" and direction == "none":
        raise MetricError(
            'reduce_series: reduce = "best" needs direction "max" or "min", found "none"'
        )
    s = series[["step", "value"]].dropna(subset=["value"])
    if s.empty:
        return math.nan
    if reduce == "last":
        s = s.sort_values("step", kind="stable")
        return float(s["value"].iloc[-1])
    return float(s["value"].max() if direction == "max" else s["value"].min())
