"""The cost table of a study (the seed's Table 1): primary metric ± std, latency ± std, params,
FLOPs and the verdict per variant, and the Pareto fronts of metric against latency and params.

Pure functions over the runs table (columns ``cost.*`` recorded by ``run.measure``) and the
analysis result. Costs are informational: summarised over seeds (mean ± sample std, ddof = 1),
never tested. A variant is on a Pareto front when no other variant is at least as good on the
primary metric (by its direction) and at least as cheap, and strictly better on one of the two.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

COST_COLUMNS = {
    "latency_ms": "cost.latency_ms",
    "latency_iqr_ms": "cost.latency_iqr_ms",
    "params": "cost.params",
    "trainable_params": "cost.trainable_params",
    "flops": "cost.flops",
    "peak_memory_mb": "cost.peak_memory_mb",
    "threads": "cost.threads",
}


def _stat(values: list[float]) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(vals)
    if not n:
        return {"n": 0, "mean": None, "std": None}
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std}


def pareto_front(points: Mapping[str, tuple[float, float]], direction: str) -> list[str]:
    """Names of the non-dominated points ``name -> (metric, cost)`` (lower cost is better)."""
    sign = 1.0 if direction == "max" else -1.0
    ok = {k: (sign * m, c) for k, (m, c) in points.items() if _finite(m) and _finite(c)}
    front = []
    for k, (m, c) in ok.items():
        dominated = any(
            m2 >= m and c2 <= c and (m2 > m or c2 < c) for k2, (m2, c2) in ok.items() if k2 != k
        )
        if not dominated:
            front.append(k)
    return front


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def changes(config: Mapping[str, Any], base: Mapping[str, Any]) -> str:
    """What a variant changed against the baseline, in words: ``@head: mean; lr = 0.2``."""
    from ablab.components.edits import describe, is_edit_key

    parts = []
    for k in sorted(set(config) | set(base), key=lambda k: (not is_edit_key(k), k)):
        if config.get(k) == base.get(k):
            continue
        if is_edit_key(k):
            parts.append(f"{k}: {describe(config[k]) if k in config else 'not edited'}")
        elif isinstance(config.get(k), Mapping) and isinstance(base.get(k), Mapping):
            sub = changes(config[k], base[k])
            parts += [f"{k}.{s}" for s in sub.split("; ") if s]
        else:
            parts.append(f"{k} = {config.get(k)!r}")
    return "; ".join(parts)


def cost_summary(runs: Any, result: Mapping[str, Any]) -> dict[str, Any] | None:
    """``result["costs"]``: per variant the primary metric's mean/std and verdict (copied from
    ``result``) beside the costs' mean/std over the variant's done runs; None without costs."""
    cols = [c for c in COST_COLUMNS.values() if c in getattr(runs, "columns", [])]
    if not cols:
        return None
    done = runs[runs["status"] == "done"]
    if "sensitivity" in done.columns:
        done = done[done["sensitivity"].isna()]
    primary = result.get("primary_metric")
    direction = (result.get("metrics") or {}).get(primary, {}).get("direction", "max")
    rows = []
    base_cfg = next(
        (
            v.get("config") or {}
            for v in result.get("variants", [])
            if v["name"] == result.get("baseline")
        ),
        {},
    )
    for v in result.get("variants", []):
        sub = done[done["variant"] == v["name"]]
        costs = {
            key: _stat(sub[col].tolist()) if col in sub.columns else _stat([])
            for key, col in COST_COLUMNS.items()
        }
        if not any(s["n"] for s in costs.values()):
            continue
        is_base = v["name"] == result.get("baseline")
        rows.append(
            {
                "variant": v["name"],
                "baseline": is_base,
                "metric": dict(v.get("metrics", {}).get(primary, {})),
                "change": "" if is_base else changes(v.get("config") or {}, base_cfg),
                "verdict": "baseline"
                if is_base
                else v.get("vs_baseline", {}).get(primary, {}).get("verdict"),
                **costs,
            }
        )
    if not rows:
        return None
    fronts = {}
    for axis in ("latency_ms", "params"):
        pts = {r["variant"]: (r["metric"].get("mean"), r[axis]["mean"]) for r in rows}
        fronts[axis] = pareto_front(pts, direction)
    threads = sorted({int(t) for t in done.get("cost.threads", []) if _finite(t)})
    return {
        "metric": primary,
        "direction": direction,
        "rows": rows,
        "pareto": fronts,
        "threads": threads,
        "method": "costs from run.measure: parameters; FLOPs per forward pass "
        "(torch.utils.flop_counter, a multiply-add = 2); latency = median of timed passes "
        "after warm-up per run; mean ± std (ddof = 1) over a variant's runs; informational, "
        "no tests",
    }
