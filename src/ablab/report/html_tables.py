"""The HTML report's results tables: the full table of one metric (every statistic, one
number format per column) and the compact table of the other metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    DASH,
    MARK,
    best_variants,
    display_name,
    failed_text,
    finite,
    head,
    level_pct,
    mark_legend,
    metric_dirs,
    n_phrase,
    pct,
    pval,
)
from ablab.report.html_parts import Cell, esc, table
from ablab.report.numfmt import NumFormat, fixed, metric_format


def verdict_cell(c: Mapping[str, Any]) -> Cell:
    """The verdict with its one-line reason (muted, below) and, for an inconclusive verdict
    with a margin, the seeds per variant the margin needs."""
    verdict = c.get("verdict")
    if verdict is None:
        return Cell(DASH)
    text = esc(verdict)
    if verdict == "inconclusive" and c.get("seeds_needed"):
        text += (
            f' <span class="muted">(≈{int(c["seeds_needed"])} seeds/variant for the margin)</span>'
        )
    if c.get("reason"):
        text += f'<br><span class="muted">{esc(c["reason"])}</span>'
    return Cell(f'<span class="v-{esc(verdict)}">{text}</span>')


def _num(f: NumFormat, x: Any, sign: bool = False) -> Cell:
    return Cell(esc(f(x, sign=sign)), x if finite(x) else None, "num")


def _n_cell(v: Mapping[str, Any]) -> Cell:
    failed = failed_text(v)
    text = esc(str(int(v.get("n") or 0)))
    if failed:
        text += f' <span class="v-worse">({esc(failed)})</span>'
    return Cell(text, v.get("n"), "num")


def _name_cell(v: Mapping[str, Any], result: Mapping[str, Any]) -> Cell:
    return Cell(esc(display_name(v, result)))


def results_table(result: Mapping[str, Any], metric: str, tid: str) -> str:
    """Every statistic of ``metric``: one row per variant, the baseline's comparison cells
    empty, an all-failed variant kept ("no result")."""
    lvl = level_pct(result)
    f = metric_format(result, metric)
    headers = [
        "variant",
        "n",
        "mean",
        "std",
        "median",
        "IQM",
        f"{lvl} CI (t, unadj.)",
        "Δ",
        "Δ %",
        f"Δ {lvl} CI (t, unadj.)",
        "p (unadj.)",
        "Wilcoxon p (unadj.)",
        "p (Holm)",
        "Hedges g (+ better)",
        "Cliff δ (+ better)",
        "P(better)",
        "verdict",
    ]
    rows = []
    for v in result.get("variants", []):
        s = v.get("metrics", {}).get(metric, {})
        c = v.get("vs_baseline", {}).get(metric) or {}
        is_base = v["name"] == result.get("baseline")
        if is_base:
            verdict = Cell("baseline")
        elif not v.get("n"):
            verdict = Cell('<span class="v-worse">no result</span>')
        else:
            verdict = verdict_cell(c)
        rows.append(
            [
                _name_cell(v, result),
                _n_cell(v),
                _num(f, s.get("mean")),
                _num(f, s.get("std")),
                _num(f, s.get("median")),
                _num(f, s.get("iqm")),
                Cell(esc(f.interval(s.get("ci_low"), s.get("ci_high")))),
                _num(f, c.get("delta"), sign=True),
                Cell(esc(pct(c.get("delta_pct"))), c.get("delta_pct"), "num"),
                Cell(esc(f.interval(c.get("delta_ci_low"), c.get("delta_ci_high")) if c else DASH)),
                Cell(esc(pval(c.get("p_value"))), c.get("p_value"), "num"),
                Cell(esc(pval(c.get("wilcoxon_p"))), c.get("wilcoxon_p"), "num"),
                Cell(esc(pval(c.get("p_adjusted"))), c.get("p_adjusted"), "num"),
                Cell(esc(fixed(c.get("hedges_g"), 2, sign=True)), c.get("hedges_g"), "num"),
                Cell(esc(fixed(c.get("cliffs_delta"), 2, sign=True)), c.get("cliffs_delta"), "num"),
                Cell(esc(fixed(c.get("prob_improvement"), 2)), c.get("prob_improvement"), "num"),
                verdict,
            ]
        )
    return table(headers, rows, sortable=True, cls="results", tid=tid)


def compact_table(result: Mapping[str, Any], metrics: list[str]) -> str:
    """``metrics`` side by side: mean ± std with the verdict's mark, the best mean in bold,
    a legend saying what the marks mean and that every cell is mean ± std over n seeds."""
    if not metrics:
        return ""
    dirs = metric_dirs(result)
    fmts = {m: metric_format(result, m) for m in metrics}
    best = {
        m: best_variants(result, m, dirs[m]) if dirs[m] in ("max", "min") else set()
        for m in metrics
    }
    rows = []
    for v in result.get("variants", []):
        row = [_name_cell(v, result), _n_cell(v)]
        for m in metrics:
            s = v.get("metrics", {}).get(m, {})
            vd = (v.get("vs_baseline", {}).get(m) or {}).get("verdict")
            text = esc(fmts[m].pm(s.get("mean"), s.get("std")))
            if v["name"] in best[m]:
                text = f"<b>{text}</b>"
            if vd in MARK:
                text += f' <span class="v-{esc(vd)}">{esc(MARK[vd])}</span>'
            row.append(Cell(text, s.get("mean") if finite(s.get("mean")) else None, "num"))
        rows.append(row)
    legend = (
        f'<p class="muted">Cells: {esc(n_phrase(result))} over seeds; bold: the best mean; '
        f"{esc(mark_legend(result))}"
        + (
            "; (info): informational, not tested"
            if any(dirs[m] not in ("max", "min") for m in metrics)
            else ""
        )
        + ".</p>"
    )
    return legend + table(
        ["variant", "n", *(head(m, dirs[m]) for m in metrics)], rows, sortable=True, cls="results"
    )
