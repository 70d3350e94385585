"""Terminal table (rich). User strings are passed as ``rich.text.Text`` so that markup in a
variant name (``[bold]``) is shown literally, never interpreted."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    DASH,
    MARK,
    interval,
    level_pct,
    mean_std,
    metric_dirs,
    num,
    pct,
    pval,
    signed,
)
from ablab.termtext import clean

VERDICT_STYLE = {
    "better": "bold green",
    "worse": "bold red",
    "equivalent": "cyan",
    "inconclusive": "dim",
}


def rich_table(result: Mapping[str, Any]):
    """A ``rich.table.Table`` of the result: for the primary metric mean ± std, the t-interval
    of the mean, delta with its t-interval, Holm-adjusted p and verdict; for the other metrics
    mean ± std and a verdict mark (Holm-adjusted within that metric)."""
    from rich.table import Table
    from rich.text import Text

    dirs = metric_dirs(result)
    primary = result.get("primary_metric") or next(iter(dirs), "")
    runs = result.get("runs", {})
    title = Text(
        clean(f"{result.get('study', '')}"),
    ) + Text(
        f"  ·  {runs.get('done', 0)}/{runs.get('total', 0)} runs done"
        + (f", {runs['failed']} failed" if runs.get("failed") else "")
    )
    t = Table(title=title, title_justify="left", header_style="bold")
    t.add_column("variant", no_wrap=True)
    t.add_column("n", justify="right")
    arrow = {"max": "↑", "min": "↓", "none": "(info)"}
    t.add_column(Text(clean(f"{primary} {arrow.get(dirs.get(primary, 'max'))}")), justify="right")
    lvl = level_pct(result)
    t.add_column(f"{lvl} CI (t)", justify="right")
    t.add_column("Δ", justify="right")
    t.add_column(f"Δ {lvl} CI (t)", justify="right")
    t.add_column("p (Holm)", justify="right")
    t.add_column("verdict")
    others = [m for m in dirs if m != primary]
    for m in others:
        t.add_column(Text(clean(f"{m} {arrow.get(dirs[m])}")), justify="right")
    for v in result.get("variants", []):
        is_base = v["name"] == result.get("baseline")
        s = v.get("metrics", {}).get(primary, {})
        c = v.get("vs_baseline", {}).get(primary, {})
        verdict = "baseline" if is_base else (c.get("verdict") or DASH)
        row = [
            Text(clean(v["name"]), style="bold" if is_base else ""),
            Text(str(v.get("n", 0))),
            Text(mean_std(s)),
            Text(interval(s.get("ci_low"), s.get("ci_high"))),
            Text(DASH if is_base else f"{signed(c.get('delta'))} ({pct(c.get('delta_pct'))})"),
            Text(DASH if is_base else interval(c.get("delta_ci_low"), c.get("delta_ci_high"))),
            Text(DASH if is_base else pval(c.get("p_adjusted"))),
            Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
        ]
        for m in others:
            sm = v.get("metrics", {}).get(m, {})
            vd = v.get("vs_baseline", {}).get(m, {}).get("verdict")
            mark = f" {MARK[vd]}" if vd in MARK else ""
            row.append(Text(mean_std(sm) + mark, style=VERDICT_STYLE.get(vd, "") if mark else ""))
        t.add_row(*row)
    t.caption = Text(
        f"CIs: unadjusted {lvl} t-intervals (Δ: paired or Welch, same test as p). "
        f"p (Holm): Holm-adjusted within each metric, alpha = {num(result.get('alpha', 0.05))}. "
        "▲/▼/= on a secondary metric: better/worse/equivalent, Holm-adjusted within that metric."
        + (
            f" Seeds allocated adaptively: verdicts on {primary} are the sequential test's; "
            "p-values and intervals are fixed-sample (anticonservative)."
            if result.get("adaptive")
            else ""
        )
    )
    return t


def effects_table(result: Mapping[str, Any]):
    """The factorial ANOVA as a ``rich.table.Table`` (None without one): alias chains as the
    term names, unadjusted and Holm-adjusted p, the design and model in the caption."""
    from rich.table import Table
    from rich.text import Text

    from ablab.report import effects_text as et

    effects = result.get("effects") or {}
    if not effects.get("anova"):
        return None
    t = Table(
        title=Text(f"Factorial effects on {effects.get('metric')}"),
        title_justify="left",
        header_style="bold",
    )
    for i, h in enumerate(et.ANOVA_HEADER):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in effects["anova"]:
        t.add_row(
            Text(et.term_label(r)),
            Text(num(r.get("df"), 3)),
            Text(num(r.get("sum_sq"))),
            Text(num(r.get("F"))),
            Text(pval(r.get("p"))),
            Text(pval(r.get("p_adjusted"))),
            Text(num(r.get("partial_eta_sq"), 3)),
        )
    notes = [et.design_sentence(effects), et.model_sentence(effects)]
    notes += [f"Not estimable: {b}" for b in et.unestimable(effects)]
    sh = effects.get("shapley") or {}
    if sh.get("values") is not None:
        notes.append(
            et.shapley_sentence(effects)
            + " "
            + ", ".join(f"{f} {signed(x)}" for f, x in sh["values"].items())
        )
    elif sh:
        notes.append(et.shapley_sentence(effects))
    t.caption = Text("\n".join(n for n in notes if n))
    t.caption_justify = "left"
    return t


def to_table(result: Mapping[str, Any], *, width: int = 140, color: bool = False) -> str:
    """The rich table rendered to text (no ANSI colour codes unless ``color``)."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=width,
        color_system="standard" if color else None,
        force_terminal=color,
        legacy_windows=False,
    )
    console.print(rich_table(result))
    effects = effects_table(result)
    if effects is not None:
        console.print(effects)
    from ablab.report.costs import rich_costs
    from ablab.report.examples import rich_examples

    for extra in [rich_costs(result), *rich_examples(result)]:
        if extra is not None:
            console.print(extra)
    return buf.getvalue()
