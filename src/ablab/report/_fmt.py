"""Number formatting and small helpers shared by the renderers (no user-string escaping here:
each output format escapes for itself)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

DASH = "—"
ARROW = {"max": "↑", "min": "↓"}
#: Marks of a secondary metric's verdict (Holm-adjusted within that metric).
MARK = {"better": "▲", "worse": "▼", "equivalent": "="}


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits; a dash for a missing value."""
    if not finite(x):
        return DASH
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-4:
        return f"{x:.{max(digits - 2, 1)}e}"
    return f"{x:.{digits}g}"


def signed(x: Any, digits: int = 4) -> str:
    return DASH if not finite(x) else ("+" if x > 0 else "") + num(x, digits)


def pval(p: Any) -> str:
    """p-values: three decimals, ``<0.001`` below that."""
    if not finite(p):
        return DASH
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def pct(x: Any) -> str:
    return DASH if not finite(x) else f"{'+' if x > 0 else ''}{x:.1f}%"


def mean_std(s: Mapping[str, Any]) -> str:
    if not finite(s.get("mean")):
        return DASH
    if not finite(s.get("std")):
        return num(s["mean"])
    return f"{num(s['mean'])} ± {num(s['std'], 2)}"


def interval(lo: Any, hi: Any) -> str:
    if not (finite(lo) and finite(hi)):
        return DASH
    return f"[{num(lo)}, {num(hi)}]"


def metric_title(name: str, direction: str) -> str:
    if direction == "none":
        return f"{name} (informational, not tested)"
    return f"{name} ({ARROW.get(direction, '')} {'higher' if direction == 'max' else 'lower'} is better)"


def metric_dirs(result: Mapping[str, Any]) -> dict[str, str]:
    """``{metric: direction}`` in declaration order (from the result's ``metrics`` entry, or
    inferred from the first variant's metrics with direction ``max``)."""
    decl = result.get("metrics")
    if decl:
        return {m: d.get("direction", "max") for m, d in decl.items()}
    variants = result.get("variants") or [{}]
    return dict.fromkeys(variants[0].get("metrics", {}), "max")


def rows(result: Mapping[str, Any]) -> Iterator[tuple[dict, str, dict, dict]]:
    """(variant entry, metric, summary, vs_baseline) for every variant and metric."""
    for v in result.get("variants", []):
        for m in metric_dirs(result):
            yield v, m, v.get("metrics", {}).get(m, {}), v.get("vs_baseline", {}).get(m, {})


def best_variants(result: Mapping[str, Any], metric: str, direction: str) -> set[str]:
    """Names of the variants with the best mean on ``metric`` (ties included)."""
    means = {
        v["name"]: v.get("metrics", {}).get(metric, {}).get("mean")
        for v in result.get("variants", [])
    }
    vals = [x for x in means.values() if finite(x)]
    if not vals:
        return set()
    best = max(vals) if direction == "max" else min(vals)
    return {k for k, x in means.items() if finite(x) and x == best}


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``{"a.b": value}``."""
    if not isinstance(d, Mapping):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def config_diff(config: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """Keys whose value differs from the baseline's config (flattened)."""
    a, b = flatten(config), flatten(base)
    return {k: a.get(k) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def level_pct(result: Mapping[str, Any]) -> str:
    """``"95%"`` for alpha = 0.05: the level of the reported intervals."""
    alpha = result.get("alpha", 0.05)
    return f"{100 * (1 - float(alpha)):g}%"


def ci_label(result: Mapping[str, Any]) -> str:
    """``"unadjusted 95% t-interval"``: how every interval in the report is computed."""
    return f"unadjusted {level_pct(result)} t-interval"


def method_notes(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, how) for each reported statistic, from the result's ``methods`` (older results
    without them get the same sentences from the analysis)."""
    methods = result.get("methods")
    if not methods:
        from ablab.analysis.core import methods as _methods

        methods = _methods(float(result.get("alpha", 0.05)))
    names = {
        "ci": "CI of the mean",
        "delta_ci": "Δ CI",
        "p_value": "p",
        "wilcoxon_p": "Wilcoxon p",
        "p_adjusted": "p (Holm)",
        "p_equivalence": "TOST p",
        "pairing": "pairing",
        "effect_sizes": "effect sizes",
        "verdict": "verdict",
        "seeds_needed": "seeds needed",
        "adaptive": "adaptive sampling",
    }
    return [(names.get(k, k), str(v)) for k, v in methods.items()]


def verdict_text(c: Mapping[str, Any]) -> str:
    """The verdict, with the planning figure for an inconclusive one when there is one."""
    v = c.get("verdict") or DASH
    if v == "inconclusive" and c.get("seeds_needed"):
        v += f" (≈{c['seeds_needed']} seeds/variant for the margin)"
    return v
