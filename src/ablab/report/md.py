"""The GitHub Markdown report: a one-paragraph summary, the primary metric's table with its
verdict sentences, the other metrics in one compact table, then methods, effects and
sensitivity. Every number of a column has one format (:mod:`ablab.report.numfmt`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    DASH,
    MARK,
    best_variants,
    ci_label,
    display_name,
    failed_text,
    head,
    level_pct,
    mark_legend,
    method_notes,
    metric_dirs,
    metric_title,
    n_phrase,
    n_text,
    pct,
    pval,
    uniform_n,
    verdict_text,
)
from ablab.report.numfmt import fixed, metric_format

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!])")
VERDICTS = ("better", "worse", "equivalent", "inconclusive")


def md_escape(s: Any) -> str:
    """Escape Markdown/HTML-significant characters so a name renders as literal text."""
    return _MD_SPECIAL.sub(r"\\\1", str(s)).replace("\n", " ")


def md_table(header: list[str], body: list[list[str]], align: str) -> list[str]:
    out = [
        "| " + " | ".join(header) + " |",
        "|"
        + "|".join(":---" if a == "l" else "---:" if a == "r" else ":---:" for a in align)
        + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return out


def _primary(result: Mapping[str, Any]) -> str:
    dirs = metric_dirs(result)
    return result.get("primary_metric") or next(iter(dirs), "")


def verdict_sentences(result: Mapping[str, Any], escape=md_escape) -> list[str]:
    """The primary metric's verdicts as sentences: one per better/worse/equivalent variant
    (``a is **better** than the baseline on acc: Δ = +0.020 (unadjusted 95% paired t-interval
    [...]); <reason>``), the inconclusive ones together in one sentence."""
    m = _primary(result)
    f = metric_format(result, m)
    out, unsure, empty = [], [], []
    for v in result.get("variants", []):
        c = v.get("vs_baseline", {}).get(m) or {}
        vd = c.get("verdict")
        if not vd:
            continue
        if not v.get("n"):
            empty.append(f"{escape(v['name'])} ({failed_text(v) or 'no runs'})")
            continue
        if vd == "inconclusive":
            unsure.append(escape(v["name"]) + (f" ({failed_text(v)})" if v.get("failed") else ""))
            continue
        rel = {"better": "**better** than", "worse": "**worse** than"}.get(vd, "**equivalent** to")
        label = c.get("ci_method") or ci_label(result)
        ci = f.interval(c.get("delta_ci_low"), c.get("delta_ci_high"))
        out.append(
            f"{escape(v['name'])} is {rel} the baseline on {escape(m)}: "
            f"Δ = {f(c.get('delta'), sign=True)} ({escape(label)} {ci}); "
            f"{escape(c.get('reason') or '')}"
        )
    if unsure:
        out.append(
            f"**Inconclusive** against the baseline on {escape(m)} (the data cannot tell): "
            + ", ".join(unsure)
            + "."
        )
    if empty:
        out.append("**No result** (no finished run): " + ", ".join(empty) + ".")
    return out


def summary_paragraph(result: Mapping[str, Any]) -> str:
    """Primary metric, baseline, run counts, the primary verdict counts and every variant
    with failed runs (one whose runs all failed included)."""
    m = _primary(result)
    d = metric_dirs(result).get(m, "max")
    runs = result.get("runs", {})
    counts = dict.fromkeys(VERDICTS, 0)
    for v in result.get("variants", []):
        vd = (v.get("vs_baseline", {}).get(m) or {}).get("verdict")
        if vd in counts:
            counts[vd] += 1
    text = (
        f"Primary metric **{md_escape(metric_title(m, d))}**, baseline "
        f"**{md_escape(result.get('baseline'))}**, {runs.get('total', 0)} runs "
        f"({runs.get('done', 0)} done, {runs.get('failed', 0)} failed)."
    )
    if sum(counts.values()):
        text += " Against the baseline on " + md_escape(m) + ": "
        text += ", ".join(f"{n} {k}" for k, n in counts.items()) + "."
    failed = [
        f"{md_escape(v['name'])} {failed_text(v)}" + (" (no result)" if not v.get("n") else "")
        for v in result.get("variants", [])
        if v.get("failed")
    ]
    if failed:
        text += " Failed runs: " + ", ".join(failed) + "."
    return text


def primary_table(result: Mapping[str, Any]) -> list[str]:
    m = _primary(result)
    d = metric_dirs(result).get(m, "max")
    f = metric_format(result, m)
    lvl = level_pct(result)
    show_n = uniform_n(result) is None
    header = ["Variant", *(["n"] if show_n else [])]
    header += [md_escape(head(m, d))]
    header += [f"{lvl} CI", "Δ vs baseline", f"Δ {lvl} CI", "p (Holm)", "g", "P(better)"]
    header.append("Verdict")
    best = best_variants(result, m, d) if d in ("max", "min") else set()
    body = []
    for v in result.get("variants", []):
        s = v.get("metrics", {}).get(m, {})
        c = v.get("vs_baseline", {}).get(m) or {}
        is_base = v["name"] == result.get("baseline")
        ms = f.pm(s.get("mean"), s.get("std"))
        if v["name"] in best:
            ms = f"**{ms}**"
        delta = f"{f(c.get('delta'), sign=True)} ({pct(c.get('delta_pct'))})"
        row = [md_escape(v["name"]), *([n_text(v)] if show_n else []), ms]
        row.append(f.interval(s.get("ci_low"), s.get("ci_high")))
        if is_base:
            row += [DASH] * 5 + ["baseline"]
        elif not v.get("n"):
            row += [DASH] * 5 + ["no result"]
        else:
            row += [
                delta if c.get("delta") is not None else DASH,
                f.interval(c.get("delta_ci_low"), c.get("delta_ci_high")),
                pval(c.get("p_adjusted")),
                fixed(c.get("hedges_g"), 2, sign=True),
                fixed(c.get("prob_improvement"), 2),
                md_escape(verdict_text(c)),
            ]
        body.append(row)
    legend = (
        f"Cells: {n_phrase(result)} over seeds; bold: the best mean. {lvl} CI: {ci_label(result)} "
        f"of the mean. Δ: variant − baseline with its {ci_label(result)} from the same test as p "
        f"(paired on shared seeds, else Welch). p (Holm): Holm-adjusted across the variants on "
        f"{md_escape(m)}, alpha = {result.get('alpha', 0.05):g}. g: Hedges' g, positive = better. "
        "P(better): probability that a variant run beats a baseline run."
    )
    align = "l" + ("r" if show_n else "") + "rrrrrrrl"
    return [legend, "", *md_table(header, body, align)]


def secondary_table(result: Mapping[str, Any]) -> list[str]:
    """The other metrics: one column each, ``mean ± std`` with the verdict's mark."""
    dirs = metric_dirs(result)
    m0 = _primary(result)
    others = [m for m in dirs if m != m0]
    if not others:
        return []
    fmts = {m: metric_format(result, m) for m in others}
    best = {
        m: best_variants(result, m, dirs[m]) if dirs[m] in ("max", "min") else set() for m in others
    }
    show_n = uniform_n(result) is None
    header = ["Variant", *(["n"] if show_n else [])]
    header += [md_escape(head(m, dirs[m])) for m in others]
    body = []
    for v in result.get("variants", []):
        row = [md_escape(display_name(v, result)), *([n_text(v)] if show_n else [])]
        for m in others:
            s = v.get("metrics", {}).get(m, {})
            cell = fmts[m].pm(s.get("mean"), s.get("std"))
            if v["name"] in best[m]:
                cell = f"**{cell}**"
            vd = (v.get("vs_baseline", {}).get(m) or {}).get("verdict")
            row.append(cell + (f" {MARK[vd]}" if vd in MARK else ""))
        body.append(row)
    info = any(dirs[m] not in ("max", "min") for m in others)
    legend = f"Cells: {n_phrase(result)} over seeds; bold: the best mean; {mark_legend(result)}" + (
        "; (info): informational, not tested." if info else "."
    )
    align = "l" + ("r" if show_n else "") + "r" * len(others)
    return ["", "## Other metrics", "", legend, "", *md_table(header, body, align)]


def to_markdown(result: Mapping[str, Any]) -> str:
    """A paper-ready GitHub Markdown report (see the module docstring)."""
    from ablab.report.md_extra import md_effects, md_sensitivity

    m = _primary(result)
    d = metric_dirs(result).get(m, "max")
    lines = [f"# Ablation study: {md_escape(result.get('study', ''))}", ""]
    lines += [summary_paragraph(result), ""]
    lines += [f"## {md_escape(metric_title(m, d))}", ""]
    lines += primary_table(result)
    sentences = verdict_sentences(result)
    if sentences:
        lines += ["", *[f"- {s}" for s in sentences]]
    lines += secondary_table(result)
    lines += ["", "### Methods", ""]
    lines += [f"- {md_escape(k)}: {md_escape(t)}" for k, t in method_notes(result)]
    lines += md_effects(result.get("effects"))
    lines += md_sensitivity(result.get("sensitivity"))
    from ablab.report.costs import md_costs
    from ablab.report.examples import md_examples

    lines += md_costs(result, md_escape) + md_examples(result, md_escape)
    return "\n".join(lines) + "\n"
