"""Terminal table (rich). User strings are passed as ``rich.text.Text`` so that markup in a
variant name (``[bold]``) is shown literally, never interpreted."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    DASH,
    MARK,
    failed_text,
    head,
    level_pct,
    mark_legend,
    metric_dirs,
    n_phrase,
    num,
    pct,
    pval,
    signed,
    uniform_n,
)
from ablab.report.numfmt import anova_formats, metric_format
from ablab.termtext import clean

VERDICT_STYLE = {
    "better": "bold green",
    "worse": "bold red",
    "equivalent": "cyan",
    "inconclusive": "dim",
}
#: Each column of the terminal table: which to drop first when the terminal is narrow
#: (highest first). The variant, the primary mean and the verdict always stay.
PRIORITY = {"variant": 0, "mean": 0, "verdict": 1, "delta": 2, "p": 3, "dci": 4, "ci": 5, "n": 6}
FOLD_AT = 14  # the variant column wraps longer names rather than push other columns out
OTHER_PRIORITY = 7  # the other metrics, in declaration order after the primary's columns


class _Col:
    def __init__(self, key: str, header: str, justify: str, priority: int) -> None:
        self.key, self.header, self.justify, self.priority = key, header, justify, priority
        self.cells: list[Any] = []

    def width(self) -> int:
        from rich.cells import cell_len

        lines = [self.header] + [ln for c in self.cells for ln in str(c).split("\n")]
        return max(cell_len(ln) for ln in lines)


def _columns(result: Mapping[str, Any], stack: bool = False) -> list[_Col]:
    """Every column of the table with its cells (``rich.text.Text``), before any is dropped;
    ``stack`` puts the relative delta under the delta (a narrower column)."""
    from rich.text import Text

    dirs = metric_dirs(result)
    primary = result.get("primary_metric") or next(iter(dirs), "")
    f = metric_format(result, primary)
    lvl = level_pct(result)
    cols = {
        "variant": _Col("variant", "variant", "left", 0),
        "n": _Col("n", "n", "right", PRIORITY["n"]),
        "mean": _Col("mean", clean(head(primary, dirs.get(primary))), "right", 0),
        "ci": _Col("ci", f"{lvl} CI", "right", PRIORITY["ci"]),
        "delta": _Col("delta", "Δ (%)", "right", PRIORITY["delta"]),
        "dci": _Col("dci", f"Δ {lvl} CI", "right", PRIORITY["dci"]),
        "p": _Col("p", "p (Holm)", "right", PRIORITY["p"]),
        "verdict": _Col("verdict", "verdict", "left", PRIORITY["verdict"]),
    }
    if uniform_n(result) is not None:
        del cols["n"]
    others = [m for m in dirs if m != primary]
    extra = [
        _Col(m, clean(head(m, dirs[m])), "right", OTHER_PRIORITY + i) for i, m in enumerate(others)
    ]
    fmts = {m: metric_format(result, m) for m in others}
    for v in result.get("variants", []):
        is_base = v["name"] == result.get("baseline")
        s = v.get("metrics", {}).get(primary, {})
        c = v.get("vs_baseline", {}).get(primary) or {}
        name = Text(clean(v["name"]), style="bold" if is_base else "")
        if v.get("failed"):
            name.append("\n" + failed_text(v), style="red")
        verdict = "baseline" if is_base else (c.get("verdict") or DASH)
        if not is_base and not v.get("n"):
            verdict = "no result"
        cells = {
            "variant": name,
            "n": Text(str(v.get("n", 0))),
            "mean": Text(f.pm(s.get("mean"), s.get("std"))),
            "ci": Text(f.interval(s.get("ci_low"), s.get("ci_high"))),
            "delta": Text(
                DASH
                if is_base or c.get("delta") is None
                else f"{f(c.get('delta'), sign=True)}{chr(10) if stack else ' '}({pct(c.get('delta_pct'))})"
            ),
            "dci": Text(
                DASH if is_base else f.interval(c.get("delta_ci_low"), c.get("delta_ci_high"))
            ),
            "p": Text(DASH if is_base else pval(c.get("p_adjusted"))),
            "verdict": Text(verdict, style=VERDICT_STYLE.get(verdict, "")),
        }
        for key, col in cols.items():
            col.cells.append(cells[key])
        for m, col in zip(others, extra, strict=True):
            sm = v.get("metrics", {}).get(m, {})
            vd = (v.get("vs_baseline", {}).get(m) or {}).get("verdict")
            mark = f" {MARK[vd]}" if vd in MARK else ""
            col.cells.append(
                Text(
                    fmts[m].pm(sm.get("mean"), sm.get("std")) + mark,
                    style=VERDICT_STYLE.get(vd, "") if mark else "",
                )
            )
    return [*cols.values(), *extra]


def fit(columns: list[_Col], width: int | None) -> tuple[list[_Col], list[_Col]]:
    """(kept, dropped), both in table order: drop the lowest-priority columns until the table
    fits ``width``, then give room left back to dropped columns, most important first (a
    rich table with a heavy head takes 1 + sum(column width + 3) cells). None keeps all."""
    if width is None:
        return list(columns), []

    def total(cols: list[_Col]) -> int:  # long variant names fold at FOLD_AT cells
        return 1 + sum(
            (min(c.width(), FOLD_AT) if c.key == "variant" else c.width()) + 3 for c in cols
        )

    kept = list(columns)
    while total(kept) > width:
        worst = max(kept, key=lambda c: c.priority)
        if worst.priority <= PRIORITY["verdict"]:
            break  # the variant column folds (rich wraps long names) before these go
        kept.remove(worst)
    for c in sorted((c for c in columns if c not in kept), key=lambda c: c.priority):
        trial = [x for x in columns if x in kept or x is c]
        if total(trial) <= width:
            kept = trial
    return kept, [c for c in columns if c not in kept]


def rich_table(result: Mapping[str, Any], width: int | None = None):
    """A ``rich.table.Table`` of the result that fits ``width`` terminal cells (None: every
    column). The primary metric: mean ± std, the t-interval of the mean, Δ with its
    t-interval, Holm-adjusted p and the verdict; then one column per other metric with a
    verdict mark. Narrow terminals drop columns by :data:`PRIORITY` and the caption names them."""
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
    kept, dropped = fit(_columns(result), width)
    if any(c.priority <= PRIORITY["dci"] for c in dropped):  # narrow: stack Δ over its %
        stacked = fit(_columns(result, stack=True), width)
        if len(stacked[0]) > len(kept):
            kept, dropped = stacked
    t = Table(title=title, title_justify="left", header_style="bold", caption_justify="left")
    for c in kept:
        fold = c.key == "variant"
        t.add_column(
            Text(c.header),
            justify=c.justify,
            no_wrap=not fold,
            overflow="fold" if fold else "ellipsis",
        )
    for i in range(len(kept[0].cells) if kept else 0):
        t.add_row(*(c.cells[i] for c in kept))
    lvl = level_pct(result)
    notes = [
        f"Cells: {n_phrase(result)} over seeds."
        if uniform_n(result) is not None or any(c.key == "n" for c in kept)
        else "Cells: mean ± std over each variant's finished runs (failed runs under its name).",
        f"CIs: unadjusted {lvl} t-intervals (Δ: paired or Welch, the same test as p).",
        f"p (Holm): Holm-adjusted across the variants on each metric, alpha = {result.get('alpha', 0.05):g}.",
    ]
    if any(c.priority >= OTHER_PRIORITY for c in kept):
        notes.append(mark_legend(result) + ".")
    if result.get("adaptive"):
        notes.append(
            f"Seeds allocated adaptively: verdicts on {primary} are the sequential test's; "
            "p-values and intervals are fixed-sample (anticonservative)."
        )
    if dropped:
        notes.append(
            "Not shown at this width: "
            + ", ".join(c.header for c in dropped)
            + " (ablab report --wide)."
        )
    t.caption = Text(" ".join(notes))
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
    f_ss, f_f = anova_formats(effects)
    for r in effects["anova"]:
        t.add_row(
            Text(et.term_label(r)),
            Text(num(r.get("df"), 3)),
            Text(f_ss(r.get("sum_sq"))),
            Text(f_f(r.get("F"))),
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


def to_table(
    result: Mapping[str, Any], *, width: int = 140, color: bool = False, wide: bool = False
) -> str:
    """The rich table rendered to text at ``width`` cells (no ANSI colour codes unless
    ``color``); ``wide`` keeps every column whatever the width."""
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf,
        width=10_000 if wide else width,
        color_system="standard" if color else None,
        force_terminal=color,
        legacy_windows=False,
    )
    console.print(rich_table(result, None if wide else width))
    effects = effects_table(result)
    if effects is not None:
        console.print(effects)
    from ablab.report.costs import rich_costs
    from ablab.report.examples import rich_examples

    for extra in [rich_costs(result), *rich_examples(result)]:
        if extra is not None:
            console.print(extra)
    return buf.getvalue()
