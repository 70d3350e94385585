"""The self-contained HTML report: one file, inline CSS/SVG/script, works offline.

A Content-Security-Policy meta tag forbids every external load and every script except the
report's own (by hash), as defence in depth behind the escaping of all user strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ablab.report import plots
from ablab.report._fmt import (
    DASH,
    ci_label,
    interval,
    level_pct,
    method_notes,
    metric_dirs,
    metric_title,
    num,
    pct,
    pval,
    signed,
)
from ablab.report.html_parts import (
    CSS,
    SCRIPT,
    Cell,
    config_text,
    esc,
    ncell,
    script_hash,
    table,
    tcell,
)
from ablab.report.html_sections import (
    checklist_section,
    effects_section,
    provenance_section,
    sensitivity_section,
    verifications_section,
)


class Page:
    """Collects sections and numbers the figures (unique SVG id prefixes)."""

    def __init__(self) -> None:
        self.sections: list[tuple[str, str, str]] = []
        self.n_fig = 0

    def fig(self, figure: Any, title: str) -> str:
        if figure is None:
            return ""
        self.n_fig += 1
        return f"<figure>{plots.to_svg(figure, title, f'f{self.n_fig}-')}</figure>"

    def add(self, sid: str, title: str, body: str) -> None:
        if body:
            self.sections.append((sid, title, body))


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


def results_table(result: Mapping[str, Any], metric: str, tid: str) -> str:
    lvl = level_pct(result)
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
        c = v.get("vs_baseline", {}).get(metric, {})
        is_base = v["name"] == result.get("baseline")
        rows.append(
            [
                Cell(
                    esc(v["name"]) + (' <span class="muted">(baseline)</span>' if is_base else "")
                ),
                ncell(s.get("n"), fmt=lambda x: str(x) if x is not None else DASH),
                ncell(s.get("mean")),
                ncell(s.get("std")),
                ncell(s.get("median")),
                ncell(s.get("iqm")),
                tcell(interval(s.get("ci_low"), s.get("ci_high"))),
                ncell(c.get("delta"), fmt=signed),
                ncell(c.get("delta_pct"), fmt=pct),
                tcell(interval(c.get("delta_ci_low"), c.get("delta_ci_high")) if c else DASH),
                ncell(c.get("p_value"), fmt=pval),
                ncell(c.get("wilcoxon_p"), fmt=pval),
                ncell(c.get("p_adjusted"), fmt=pval),
                ncell(c.get("hedges_g"), 3),
                ncell(c.get("cliffs_delta"), 3),
                ncell(c.get("prob_improvement"), 3),
                Cell("baseline") if is_base else verdict_cell(c),
            ]
        )
    return table(headers, rows, sortable=True, cls="results", tid=tid)


def summary_section(result: Mapping[str, Any], runs) -> str:
    r = result.get("runs", {})
    variants = result.get("variants", [])
    counts = {"better": 0, "worse": 0, "equivalent": 0, "inconclusive": 0}
    for v in variants:
        for c in v.get("vs_baseline", {}).values():
            if c.get("verdict") in counts:
                counts[c["verdict"]] += 1
    n_seeds = (
        runs["seed"].nunique()
        if runs is not None and "seed" in getattr(runs, "columns", [])
        else None
    )
    cards = [
        ("runs", r.get("total", 0)),
        ("done", r.get("done", 0)),
        ("failed", r.get("failed", 0)),
        ("variants", len(variants)),
        ("seeds", n_seeds if n_seeds is not None else DASH),
        ("better", counts["better"]),
        ("worse", counts["worse"]),
        ("equivalent", counts["equivalent"]),
        ("inconclusive", counts["inconclusive"]),
    ]
    out = ['<div class="cards">'] + [
        f'<div class="card"><b>{esc(v)}</b>{esc(k)}</div>' for k, v in cards
    ]
    out.append("</div>")
    items = []
    dirs = metric_dirs(result)
    for v in variants:
        for m, c in v.get("vs_baseline", {}).items():
            vd = c.get("verdict")
            if not vd:
                continue
            label = c.get("ci_method") or ci_label(result)
            items.append(
                f"<li><b>{esc(v['name'])}</b> on <b>{esc(m)}</b> "
                f"({esc('higher' if dirs.get(m) == 'max' else 'lower')} is better): "
                f'<span class="v-{esc(vd)}">{esc(vd)}</span>. Δ = {esc(signed(c.get("delta")))} '
                f"({esc(label)} {esc(interval(c.get('delta_ci_low'), c.get('delta_ci_high')))}), "
                f"P(better) = {esc(num(c.get('prob_improvement'), 3))}. "
                f'<span class="muted">{esc(c.get("reason") or "")}</span></li>'
            )
    if items:
        out.append("<h3>Verdicts</h3><ul>" + "".join(items) + "</ul>")
    notes = "".join(f"<li><b>{esc(k)}</b>: {esc(t)}</li>" for k, t in method_notes(result))
    out.append(f'<h3>Methods</h3><ul class="muted">{notes}</ul>')
    return "".join(out)


def to_html(
    result: Mapping[str, Any],
    *,
    runs=None,
    series=None,
    provenance: Mapping[str, Any] | None = None,
    verifications: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The full report as one HTML string (see the module docstring)."""
    page = Page()
    dirs = metric_dirs(result)
    page.add("summary", "Summary", summary_section(result, runs))
    body = []
    for i, (m, d) in enumerate(dirs.items()):
        body.append(f"<h3>{esc(metric_title(m, d))}</h3>")
        body.append(results_table(result, m, f"results-{i}"))
    cfgs = [
        [tcell(v["name"]), Cell(f"<code>{config_text(v.get('config', {}))}</code>")]
        for v in result.get("variants", [])
    ]
    body.append("<h3>Configurations</h3>" + table(["variant", "config"], cfgs))
    page.add("results", "Results", "".join(body))
    forest = [page.fig(plots.forest_plot(result, m), f"forest plot of {m}") for m in dirs]
    if any(forest):
        page.add(
            "forest",
            "Effects against the baseline",
            '<p class="muted">Δ with its unadjusted t-interval (same test as the p-value); '
            "green better, red worse, blue equivalent, grey inconclusive.</p>"
            + "".join(f"<h3>{esc(m)}</h3>{f}" for m, f in zip(dirs, forest, strict=True) if f),
        )
    if runs is not None:
        strips = [
            page.fig(plots.strip_plot(runs, result, m), f"per-seed values of {m}") for m in dirs
        ]
        if any(strips):
            page.add(
                "seeds",
                "Per-seed values",
                "".join(f"<h3>{esc(m)}</h3>{f}" for m, f in zip(dirs, strips, strict=True) if f),
            )
    from ablab.report.costs import html_costs
    from ablab.report.examples import html_examples

    page.add("costs", "Costs", html_costs(result, page))
    page.add("examples", "Example-level comparisons", html_examples(result))
    if series is not None and len(series):
        series = series[~series["name"].astype(str).str.startswith("example:")]
    if series is not None and len(series):
        names = list(dict.fromkeys(series["name"].astype(str)))[:12]
        curves = [
            page.fig(plots.learning_curves(series, result, n), f"learning curve of {n}")
            for n in names
        ]
        page.add(
            "curves",
            "Learning curves",
            '<div class="figs">'
            + "".join(
                f"<div><h3>{esc(n)}</h3>{f}</div>" for n, f in zip(names, curves, strict=True) if f
            )
            + "</div>",
        )
    if result.get("effects"):
        page.add("effects", "Factorial effects", effects_section(result["effects"], page))
    if result.get("sensitivity"):
        page.add("sensitivity", "Sensitivity", sensitivity_section(result, page))
    if verifications:
        page.add("verifications", "Verifications", verifications_section(verifications))
    page.add("checklist", "Reproducibility checklist", checklist_section(result, runs, provenance))
    if provenance:
        page.add("provenance", "Provenance", provenance_section(provenance))
    return assemble(result, page)


def assemble(result: Mapping[str, Any], page: Page) -> str:
    from ablab._version import __version__

    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {script_hash()}; base-uri 'none'; form-action 'none'"
    )
    study = result.get("study", "")
    r = result.get("runs", {})
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in page.sections)
    sections = "".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'
        for sid, title, body in page.sections
    )
    prim = result.get("primary_metric", "")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(study)} · ablab report</title><style>{CSS}</style></head><body>"
        f'<header><h1>{esc(study)}</h1><div class="muted">Ablation study · design '
        f"{esc(result.get('design', 'one-at-a-time'))} · primary metric <b>{esc(prim)}</b> · "
        f"baseline <b>{esc(result.get('baseline', ''))}</b> · {esc(r.get('done', 0))} of "
        f"{esc(r.get('total', 0))} runs done</div></header>"
        f"<nav>{nav}</nav><main>{sections}</main>"
        f'<footer class="muted" style="padding:16px 32px">Generated by ablab {esc(__version__)}. '
        "This file is self-contained and works offline.</footer>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
