"""Matplotlib figures rendered to inline SVG strings for the HTML report.

No pyplot (no global figure state): each function builds a ``matplotlib.figure.Figure``,
writes SVG with text kept as text, and returns the ``<svg>`` element with its ids prefixed so
several figures can live in one page. User strings put into figures go through
:func:`label` (mathtext ``$`` and legend-hiding leading ``_`` neutralised); matplotlib's SVG
writer XML-escapes text.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

VERDICT_COLOR = {
    "better": "#1a7f37",
    "worse": "#cf222e",
    "equivalent": "#0969da",
    "inconclusive": "#6e7781",
    None: "#6e7781",
}


def label(s: Any, limit: int = 40) -> str:
    """A user string made safe for matplotlib text (no mathtext, visible in legends)."""
    t = str(s).replace("\n", " ")
    if len(t) > limit:
        t = t[: limit - 1] + "…"
    t = t.replace("\\", "\\\\").replace("$", r"\$")
    return "\u200b" + t if t.startswith("_") else t


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=72)
    return fig


_ID = re.compile(r'(id="|href="#|url\(#)([^")]+)')


def to_svg(fig, title: str, prefix: str) -> str:
    """Serialise ``fig`` to an inline ``<svg>``: ids prefixed with ``prefix`` (unique per
    figure in a page), an accessible label, deterministic output (fixed hash salt, no date)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(
        {"svg.fonttype": "none", "svg.hashsalt": "ablab", "font.family": "sans-serif"}
    ):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = _ID.sub(lambda m: m.group(1) + prefix + m.group(2), svg)
    from html import escape

    return svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title)}" class="plot" ', 1)


def forest_plot(result: Mapping[str, Any], metric: str) -> Any:
    """Each variant's delta against the baseline with its unadjusted t-interval (dot + bar), a
    vertical line at zero; colour = verdict."""
    items = [
        (v["name"], v.get("vs_baseline", {}).get(metric, {}))
        for v in result.get("variants", [])
        if v["name"] != result.get("baseline")
    ]
    items = [(n, c) for n, c in items if c.get("delta") is not None]
    if not items:
        return None
    fig = _figure(6.4, 0.9 + 0.32 * len(items))
    ax = fig.add_subplot()
    ys = np.arange(len(items))[::-1]
    for y, (_name, c) in zip(ys, items, strict=True):
        col = VERDICT_COLOR.get(c.get("verdict"), "#6e7781")
        lo, hi = c.get("delta_ci_low"), c.get("delta_ci_high")
        if lo is not None and hi is not None:
            ax.plot([lo, hi], [y, y], color=col, lw=2)
        ax.plot([c["delta"]], [y], "o", color=col, ms=6)
    ax.axvline(0, color="#24292f", lw=0.8, ls="--")
    ax.set_yticks(ys, [label(n) for n, _ in items])
    ax.set_xlabel(label(f"Δ {metric} vs baseline ({result.get('baseline')})", 80))
    ax.grid(axis="x", alpha=0.3)
    return fig


def strip_plot(runs, result: Mapping[str, Any], metric: str, max_points: int = 400) -> Any:
    """Per-seed values of ``metric`` for each variant (deterministic jitter) with the mean as a
    black bar; at most ``max_points`` points per variant are drawn (evenly by seed order)."""
    if runs is None or metric not in getattr(runs, "columns", []):
        return None
    df = runs
    if "sensitivity" in df.columns:
        df = df[df["sensitivity"].isna()]
    df = df[df["status"].astype(str) == "done"]
    names = [v["name"] for v in result.get("variants", [])]
    groups = {str(k): g for k, g in df.groupby(df["variant"].astype(str), sort=False)}
    if not any(n in groups for n in names):
        return None
    fig = _figure(6.4, 0.9 + 0.32 * len(names))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    ys = np.arange(len(names))[::-1]
    for y, n in zip(ys, names, strict=True):
        g = groups.get(n)
        if g is None:
            continue
        vals = g.sort_values("seed")[metric].to_numpy(float)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        shown = (
            vals[np.linspace(0, vals.size - 1, max_points).astype(int)]
            if vals.size > max_points
            else vals
        )
        ax.plot(
            shown,
            y + rng.uniform(-0.25, 0.25, shown.size),
            "o",
            ms=3,
            alpha=0.6,
            color="#0969da" if n != result.get("baseline") else "#8250df",
        )
        ax.plot([vals.mean()] * 2, [y - 0.35, y + 0.35], color="black", lw=2)
    ax.set_yticks(ys, [label(n) for n in names])
    ax.set_xlabel(label(metric, 80))
    ax.grid(axis="x", alpha=0.3)
    return fig


def learning_curves(series, result: Mapping[str, Any], name: str, max_variants: int = 12) -> Any:
    """Mean over seeds of a logged series per variant and step, with a ±1 sem band."""
    if series is None or len(series) == 0:
        return None
    s = series[series["name"].astype(str) == name]
    if s.empty:
        return None
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    order = [v["name"] for v in result.get("variants", [])][:max_variants]
    agg = s.groupby([s["variant"].astype(str), "step"])["value"].agg(["mean", "sem"]).reset_index()
    drawn = 0
    for n in order:
        g = agg[agg["variant"] == n]
        if g.empty:
            continue
        x, m = g["step"].to_numpy(float), g["mean"].to_numpy(float)
        e = np.nan_to_num(g["sem"].to_numpy(float))
        (line,) = ax.plot(x, m, lw=1.5, label=label(n))
        ax.fill_between(x, m - e, m + e, color=line.get_color(), alpha=0.15, lw=0)
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("step")
    ax.set_ylabel(label(name, 60))
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def shapley_bars(effects: Mapping[str, Any]) -> Any:
    sh = effects.get("shapley")
    if not sh or not sh.get("values"):
        return None
    items = list(sh["values"].items())
    fig = _figure(6.4, 0.9 + 0.35 * len(items))
    ax = fig.add_subplot()
    ys = np.arange(len(items))[::-1]
    vals = [x if x is not None else 0.0 for _, x in items]
    ax.barh(ys, vals, color=["#1a7f37" if x >= 0 else "#cf222e" for x in vals])
    ax.set_yticks(ys, [label(f) for f, _ in items])
    ax.axvline(0, color="#24292f", lw=0.8)
    ax.set_xlabel(label(f"Shapley value on {effects.get('metric')}", 80))
    ax.grid(axis="x", alpha=0.3)
    return fig


def interaction_plot(effects: Mapping[str, Any], pair: list[str]) -> Any:
    """Mean of the cell means at each level of ``pair[0]`` (x axis), one line per level of
    ``pair[1]``; parallel lines mean no interaction."""
    cells = effects.get("cells") or []
    a, b = pair
    levels = effects.get("factors", {})
    if not cells or a not in levels or b not in levels:
        return None
    table: dict[tuple[str, str], list[float]] = {}
    for c in cells:
        table.setdefault((c["levels"][a], c["levels"][b]), []).append(c["mean"])
    fig = _figure(4.2, 3.2)
    ax = fig.add_subplot()
    xs = list(range(len(levels[a])))
    for lb in levels[b]:
        ys = [
            float(np.mean(table[(la, lb)])) if (la, lb) in table else math.nan for la in levels[a]
        ]
        ax.plot(xs, ys, "o-", label=label(f"{b} = {lb}"))
    ax.set_xticks(xs, [label(x) for x in levels[a]])
    ax.set_xlabel(label(a))
    ax.set_ylabel(label(effects.get("metric")))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def ci_width_plot(seeds: Mapping[str, Any], max_variants: int = 12) -> Any:
    """Width of the 95% CI of the mean against the number of seeds (log-log)."""
    widths = seeds.get("ci_width") or {}
    if not widths:
        return None
    fig = _figure(6.4, 3.4)
    ax = fig.add_subplot()
    for n, pts in list(widths.items())[:max_variants]:
        x = [p["n"] for p in pts if p.get("width")]
        y = [p["width"] for p in pts if p.get("width")]
        if x:
            ax.plot(x, y, "o-", ms=3, label=label(n))
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("number of seeds")
    ax.set_ylabel(label(f"95% CI width of mean {seeds.get('metric')}", 60))
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return fig
