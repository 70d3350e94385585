"""The cost table (the seed's Table 1): primary metric ± std | latency ms ± std | params (M) |
FLOPs (G) | verdict, in Markdown, LaTeX, the terminal and HTML (with a trade-off plot: the primary
metric against latency and against parameters, the Pareto front marked).

Reads ``result["costs"]`` (:func:`ablab.analysis.costs.cost_summary`); every renderer returns
nothing when the study measured no costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import DASH, finite, num

HEADER = ("Variant", "{metric} (mean ± std)", "Latency ms (mean ± std)", "Params (M)", "FLOPs (G)")


def _pm(s: Mapping[str, Any], digits: int = 4) -> str:
    if not finite(s.get("mean")):
        return DASH
    if not finite(s.get("std")):
        return num(s["mean"], digits)
    return f"{num(s['mean'], digits)} ± {num(s['std'], 2)}"


def _scaled(s: Mapping[str, Any], scale: float) -> str:
    return num(s["mean"] / scale, 3) if finite(s.get("mean")) else DASH


def cost_cells(costs: Mapping[str, Any]) -> list[list[str]]:
    """One row of plain strings per variant: name, metric, latency, params, FLOPs, verdict."""
    out = []
    for r in costs["rows"]:
        out.append(
            [
                r["variant"]
                + (" (baseline)" if r["baseline"] and r["variant"] != "baseline" else ""),
                _pm(r["metric"]),
                _pm(r["latency_ms"], 3),
                _scaled(r["params"], 1e6),
                _scaled(r["flops"], 1e9),
                r["verdict"] or DASH,
                r.get("change") or DASH,
            ]
        )
    return out


def headers(costs: Mapping[str, Any]) -> list[str]:
    arrow = {"max": "↑", "min": "↓"}.get(costs.get("direction"), "")
    return [
        "Variant",
        f"{costs['metric']} {arrow} (mean ± std)",
        "Latency ms (mean ± std)",
        "Params (M)",
        "FLOPs (G)",
        "Verdict",
        "What was varied",
    ]


def note(costs: Mapping[str, Any]) -> str:
    threads = costs.get("threads") or []
    t = f"; threads {', '.join(map(str, threads))}" if threads else ""
    front = ", ".join(costs["pareto"].get("latency_ms", [])) or DASH
    return (
        f"Costs: {costs['method']}{t}. Verdict: the primary metric against the baseline "
        f"(Holm-adjusted). Pareto front ({costs['metric']} vs latency): {front}."
    )


def md_costs(result: Mapping[str, Any], escape=str) -> list[str]:
    costs = result.get("costs")
    if not costs:
        return []
    from ablab.report.text import _md_table

    lines = ["", "## Costs", ""]
    body = [[escape(c) for c in row] for row in cost_cells(costs)]
    lines += _md_table([escape(h) for h in headers(costs)], body, "lrrrrll")
    return lines + ["", escape(note(costs))]


def latex_costs(result: Mapping[str, Any]) -> str:
    costs = result.get("costs")
    if not costs:
        return ""
    from ablab.report.text import tex_escape

    def cell(x: str) -> str:
        return "$" + x.replace(" ± ", r" \pm ") + "$" if x[:1].isdigit() or x[:1] == "-" else x

    head = [tex_escape(h).replace("±", r"$\pm$") for h in headers(costs)]
    head[1] = head[1].replace("↑", r"($\uparrow$)").replace("↓", r"($\downarrow$)")
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{"
        + tex_escape(result.get("study", ""))
        + r": accuracy and cost per variant (mean $\pm$ std over seeds; latency: median of timed "
        r"forward passes per run; FLOPs per forward pass).}",
        r"\begin{tabular}{lrrrrll}",
        r"\toprule",
        " & ".join(head) + r" \\",
        r"\midrule",
    ]
    for row in cost_cells(costs):
        lines.append(
            " & ".join(
                [tex_escape(row[0])]
                + [cell(x) for x in row[1:5]]
                + [tex_escape(x) for x in row[5:]]
            )
            + r" \\"
        )
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def rich_costs(result: Mapping[str, Any]) -> Any:
    """The cost table as a ``rich.table.Table`` (None without costs)."""
    costs = result.get("costs")
    if not costs:
        return None
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text("costs"), title_justify="left", header_style="bold")
    for i, h in enumerate(headers(costs)):
        t.add_column(Text(h), justify="left" if i in (0, 5, 6) else "right", no_wrap=i == 0)
    for row in cost_cells(costs):
        t.add_row(*(Text(c) for c in row))
    t.caption = Text(note(costs))
    return t


def tradeoff_plot(costs: Mapping[str, Any], axis: str) -> Any:
    """The primary metric against ``axis`` (``latency_ms`` or ``params``) per variant (mean, with
    ±1 std bars), the Pareto front drawn as a step line and its points filled."""
    from ablab.report.plots import _figure, label

    pts = [
        (
            r["variant"],
            r[axis]["mean"],
            r["metric"].get("mean"),
            r[axis].get("std"),
            r["metric"].get("std"),
        )
        for r in costs["rows"]
        if finite(r[axis].get("mean")) and finite(r["metric"].get("mean"))
    ]
    if len(pts) < 2:
        return None
    front = set(costs["pareto"].get(axis, []))
    scale, unit = (1e6, "params (M)") if axis == "params" else (1.0, "latency (ms)")
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
    for name, x, y, sx, sy in pts:
        on = name in front
        ax.errorbar(
            x / scale,
            y,
            xerr=(sx / scale) if finite(sx) else None,
            yerr=sy if finite(sy) else None,
            fmt="o",
            ms=7,
            color="#0969da" if on else "#6e7781",
            mfc="#0969da" if on else "white",
            capsize=2,
        )
        ax.annotate(
            label(name, 24), (x / scale, y), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    fr = sorted((x / scale, y) for name, x, y, *_ in pts if name in front)
    if len(fr) > 1:
        ax.step(
            [p[0] for p in fr], [p[1] for p in fr], where="post", color="#0969da", lw=1, alpha=0.6
        )
    ax.set_xlabel(unit)
    ax.set_ylabel(label(costs["metric"], 60))
    ax.grid(alpha=0.3)
    return fig


def html_costs(result: Mapping[str, Any], page: Any) -> str:
    costs = result.get("costs")
    if not costs:
        return ""
    from ablab.report.html_parts import esc, table

    body = table(headers(costs), cost_cells(costs), sortable=True, tid="costs")
    body += f'<p class="muted">{esc(note(costs))} Filled points: the Pareto front.</p>'
    for axis, what in (("latency_ms", "latency"), ("params", "parameters")):
        body += page.fig(tradeoff_plot(costs, axis), f"{costs['metric']} against {what}")
    return body
