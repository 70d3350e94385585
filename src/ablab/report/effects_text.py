"""Plain sentences about a factorial result shared by every renderer (each escapes them for
its format): which model was fitted, which design ran (generators, resolution, alias chains),
how the p-values are adjusted, and where the Shapley values come from or why they are
undefined."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import num

ANOVA_HEADER = ["Term (alias chain)", "df", "Sum sq", "F", "p (unadj.)", "p (Holm)", "Partial η²"]


def term_label(row: Mapping[str, Any]) -> str:
    """An ANOVA row's name; the residual names the interactions pooled into it."""
    if row.get("term") == "Residual" and row.get("pooled"):
        return "Residual (pooled: " + ", ".join(row["pooled"]) + ")"
    return str(row.get("term"))


def model_sentence(effects: Mapping[str, Any]) -> str:
    """E.g. ``Model: OLS with every estimable term ...; type II sums of squares ...; residual
    32 df. p: unadjusted F test per term; p (Holm): Holm-adjusted within this table.``"""
    m = effects.get("model") or {}
    if not m:
        return ""
    parts = [f"Model: {m.get('description')} ({m.get('formula')})", str(m.get("anova"))]
    parts.append(f"residual {num(m.get('residual_df'), 3)} df")
    text = "; ".join(parts) + "."
    if m.get("pooled"):
        text += f" Pooled into the residual: {', '.join(m['pooled'])} ({m.get('pooled_reason')})."
    else:
        text += " Nothing pooled: the residual is the replicate (seed) variation."
    text += (
        " p (unadj.): F test of each term, not corrected for the number of terms; "
        "p (Holm): Holm-adjusted within this table."
    )
    if any("higher-order)" in str(r.get("term")) for r in effects.get("anova") or []):
        text += (
            " (+n higher-order): the term's contrast also carries n interactions of order three "
            "or more (listed under aliases in the JSON), assumed negligible."
        )
    for note in m.get("notes") or []:
        text += f" Note: {note}."
    return text


def design_sentence(effects: Mapping[str, Any]) -> str:
    """E.g. ``Design: 2^(6-2) fractional factorial, resolution IV; generators e = a*b*c, ...;
    defining relation I = a*b*c*e = ...``."""
    d = effects.get("design") or {}
    if not d:
        return ""
    kind = d.get("type") or "design"
    head = f"Design: {d['notation']} {kind}" if d.get("notation") else f"Design: {kind}"
    if d.get("resolution") is not None:
        head += f", resolution {d.get('resolution_roman') or d['resolution']}"
    elif kind == "full factorial":
        head += ", full resolution (nothing aliased)"
    bits = [head]
    if d.get("generators"):
        bits.append("generators " + ", ".join(d["generators"]))
    if d.get("defining_relation"):
        words = [w.removeprefix("I = ") for w in d["defining_relation"]]
        more = f" = ... ({len(words)} words)" if len(words) > 15 else ""
        bits.append("defining relation I = " + " = ".join(words[:15]) + more)
    text = "; ".join(bits) + "."
    if d.get("note"):
        text += f" {d['note'][0].upper()}{d['note'][1:]}."
    for note in d.get("notes") or []:
        text += f" Note: {note}."
    return text


def alias_chains(effects: Mapping[str, Any]) -> list[str]:
    """``["a:b = c:e = d:f", "a:c = b:e", ...]`` (terms up to order two)."""
    d = effects.get("design") or {}
    return [" = ".join(c) for c in d.get("alias_chains") or []]


def unestimable(effects: Mapping[str, Any]) -> list[str]:
    """``["c (not estimable: constant over the finished runs ...)", ...]``."""
    rows = list((effects.get("main_effects") or {}).items())
    rows += [(":".join(i["factors"]), i) for i in effects.get("interactions") or []]
    out = []
    for name, r in rows:
        if r.get("status") in ("not estimable", "partially confounded"):
            out.append(f"{name} ({r['status']}: {r.get('reason')})")
    return out


def shapley_sentence(effects: Mapping[str, Any]) -> str:
    sh = effects.get("shapley")
    if not sh:
        return ""
    if sh.get("values") is None:
        return f"Shapley values: undefined. {sh.get('reason')}."
    return (
        f"Shapley values (sum = {num(sh.get('total'))}, {sh.get('target')}; "
        f"value function: {sh.get('value_function')}):"
    )
