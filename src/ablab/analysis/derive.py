"""Metrics derived at report time from what a run stored: the numbers its entry returned and the
series it logged. Nothing reduced is frozen into the store, so changing a metric's ``reduce`` (or
the ``series`` it names) changes the report without re-running anything.

Pure functions: the caller (``ablab.results``) reads the store and passes plain data in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def _get(m: Any, key: str, default: Any = None) -> Any:
    return m.get(key, default) if isinstance(m, Mapping) else getattr(m, key, default)


def series_of(m: Any) -> str:
    """The logged series a ``last``/``best`` metric reduces: its ``series``, else its own name."""
    return _get(m, "series") or _get(m, "name")


def reduce_points(points: Sequence[tuple[int, float]], direction: str, how: str) -> float:
    """:func:`ablab.analysis.reduce.reduce_series` over ``(step, value)`` pairs in logging order,
    without building a DataFrame per run (a report derives every metric of every run)."""
    pts = [(s, v) for s, v in points if not math.isnan(v)]
    if not pts:
        return math.nan
    if how == "last":
        top = max(s for s, _ in pts)
        return [v for s, v in pts if s == top][-1]
    if direction not in ("max", "min"):
        raise ValueError(f'reduce = "best" needs direction max or min, found {direction!r}')
    vals = [v for _, v in pts]
    return max(vals) if direction == "max" else min(vals)


def derive_metrics(
    metrics: Sequence[Any],
    returned: Mapping[str, float],
    series: Iterable[tuple[str, int, float]],
) -> dict[str, float]:
    """The value of every declared metric for one run.

    ``metrics``: declarations (``MetricSpec`` or dicts with ``name``, ``direction``, ``reduce``,
    optional ``series``); ``returned``: what the entry returned (plus metrics attached after the
    run, ``reduce = "post"``); ``series``: ``(name, step, value)`` in the order they were logged.
    ``value``/``post`` take ``returned[name]``; ``last`` is the last value logged at the largest
    step (the order of logging decides among equal steps, never the size of the values);
    ``best`` is the max (``direction = "max"``) or min of the series. A metric with no data is NaN.
    Returned numbers that are not declared are passed through unchanged.
    """
    points: dict[str, list[tuple[int, float]]] = {}
    for name, step, value in series:
        points.setdefault(name, []).append((int(step), float(value)))
    out = {k: float(v) for k, v in returned.items()}
    for m in metrics:
        name, how = _get(m, "name"), _get(m, "reduce", "value")
        if how in ("last", "best"):
            pts = points.get(series_of(m))
            if pts:
                out[name] = reduce_points(pts, _get(m, "direction", "max"), how)
            else:  # stores written before series were kept for every run: the recorded number
                out[name] = float(returned.get(name, math.nan))
        else:
            out[name] = float(returned.get(name, math.nan))
    return out


def declaration_changes(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """How the ``[metrics]`` declarations changed since the runs were recorded, one phrase per
    metric (``"val_acc: reduce best -> last"``); both sides in the study-file shape."""

    def norm(d: Any) -> dict[str, Any]:
        d = {"direction": d} if not isinstance(d, Mapping) else dict(d)
        d.setdefault("direction", "max")
        d.setdefault("reduce", "value")
        return d

    out = []
    for name in dict.fromkeys([*current, *recorded]):
        if name not in recorded:
            out.append(f"{name}: added")
            continue
        if name not in current:
            out.append(f"{name}: removed")
            continue
        a, b = norm(recorded[name]), norm(current[name])
        diffs = [
            f"{k} {a.get(k, '-')} -> {b.get(k, '-')}"
            for k in dict.fromkeys([*a, *b])
            if a.get(k) != b.get(k)
        ]
        if diffs:
            out.append(f"{name}: {', '.join(diffs)}")
    return out
