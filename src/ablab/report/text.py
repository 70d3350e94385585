"""Plain-text reports: JSON, CSV, GitHub Markdown and a LaTeX booktabs table."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    ARROW,
    DASH,
    best_variants,
    ci_label,
    finite,
    interval,
    level_pct,
    mean_std,
    method_notes,
    metric_dirs,
    metric_title,
    num,
    pct,
    pval,
    rows,
    signed,
    verdict_text,
)

SUMMARY = (
    "n",
    "mean",
    "std",
    "sem",
    "median",
    "iqm",
    "min",
    "max",
    "ci_low",
    "ci_high",
    "ci_method",
)
VERSUS = (
    "delta",
    "delta_pct",
    "delta_ci_low",
    "delta_ci_high",
    "ci_method",
    "test",
    "paired",
    "p_value",
    "wilcoxon_p",
    "p_adjusted",
    "adjustment",
    "p_equivalence",
    "p_equivalence_adjusted",
    "hedges_g",
    "cliffs_delta",
    "prob_improvement",
    "verdict",
    "reason",
    "seeds_needed",
)


def to_json(result: Mapping[str, Any]) -> str:
    """The result as indented JSON (strict: NaN is rejected, the analysis writes null)."""
    return json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def to_csv(result: Mapping[str, Any]) -> str:
    """One row per variant and metric: the summary statistics and the comparison with the
    baseline (empty cells where undefined)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
            "study",
            "variant",
            "metric",
            "direction",
            *SUMMARY,
            *[f"delta_{k}" if k == "ci_method" else k for k in VERSUS],
        ]
    )
    dirs = metric_dirs(result)
    for v, m, s, c in rows(result):
        cells = [s.get(k) for k in SUMMARY] + [c.get(k) for k in VERSUS]
        w.writerow(
            [
                result.get("study"),
                v["name"],
                m,
                dirs[m],
                *["" if x is None else x for x in cells],
            ]
        )
    return buf.getvalue()


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|#!])")


def md_escape(s: Any) -> str:
    """Escape Markdown/HTML-significant characters so a name renders as literal text."""
    return _MD_SPECIAL.sub(r"\\\1", str(s)).replace("\n", " ")


def _md_table(header: list[str], body: list[list[str]], align: str) -> list[str]:
    out = [
        "| " + " | ".join(header) + " |",
        "|"
        + "|".join(":---" if a == "l" else "---:" if a == "r" else ":---:" for a in align)
        + "|",
    ]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return out


def verdict_sentences(result: Mapping[str, Any], escape=md_escape) -> list[str]:
    """One sentence per comparison, with its verdict and the one-line reason, e.g.
    ``a is **better** than the baseline on acc: Δ = +0.02 (unadjusted 95% paired t-interval
    [...]); significantly higher (paired t-test, Holm-adjusted p = 0.003 < 0.05)``."""
    out = []
    for v, m, _s, c in rows(result):
        vd = c.get("verdict")
        if not vd:
            continue
        rel = {
            "better": "**better** than",
            "worse": "**worse** than",
            "equivalent": "**equivalent** to",
        }.get(vd, "**inconclusive** against")
        ci = interval(c.get("delta_ci_low"), c.get("delta_ci_high"))
        label = c.get("ci_method") or ci_label(result)
        out.append(
            f"{escape(v['name'])} is {rel} the baseline on {escape(m)}: "
            f"Δ = {signed(c.get('delta'))} ({escape(label)} {ci}); {escape(c.get('reason') or '')}"
        )
    return out


def to_markdown(result: Mapping[str, Any]) -> str:
    """A paper-ready GitHub Markdown report: one table per metric (mean ± std, 95% CI, delta
    with its CI, Holm-adjusted p, Hedges' g, P(better), verdict), effects and sensitivity."""
    dirs = metric_dirs(result)
    runs = result.get("runs", {})
    lines = [f"# Ablation study: {md_escape(result.get('study', ''))}", ""]
    lines.append(
        f"Primary metric **{md_escape(result.get('primary_metric'))}**, baseline "
        f"**{md_escape(result.get('baseline'))}**, {runs.get('total', 0)} runs "
        f"({runs.get('done', 0)} done, {runs.get('failed', 0)} failed). "
        f"Intervals: {ci_label(result)}s; p (Holm): Holm-adjusted within each metric; "
        f"alpha = {result.get('alpha', 0.05)}."
    )
    lines.append("")
    lines += [f"- {s}" for s in verdict_sentences(result)] or ["- No comparison."]
    for m, d in dirs.items():
        lines += ["", f"## {md_escape(metric_title(m, d))}", ""]
        lvl = level_pct(result)
        header = [
            "Variant",
            "n",
            "Mean ± std",
            f"{lvl} CI (t, unadj.)",
            "Δ vs baseline",
            f"Δ {lvl} CI (t, unadj.)",
            "p (Holm)",
            "Hedges' g (+ better)",
            "P(better)",
            "Verdict",
        ]
        best = best_variants(result, m, d)
        body = []
        for v in result.get("variants", []):
            s = v.get("metrics", {}).get(m, {})
            c = v.get("vs_baseline", {}).get(m, {})
            name = md_escape(v["name"])
            is_base = v["name"] == result.get("baseline")
            ms = mean_std(s)
            if v["name"] in best:
                ms = f"**{ms}**"
            verdict = "baseline" if is_base else verdict_text(c)
            body.append(
                [
                    name + (" (baseline)" if is_base else ""),
                    str(s.get("n", 0)),
                    ms,
                    interval(s.get("ci_low"), s.get("ci_high")),
                    DASH if is_base else f"{signed(c.get('delta'))} ({pct(c.get('delta_pct'))})",
                    DASH if is_base else interval(c.get("delta_ci_low"), c.get("delta_ci_high")),
                    DASH if is_base else pval(c.get("p_adjusted")),
                    DASH if is_base else num(c.get("hedges_g"), 3),
                    DASH if is_base else num(c.get("prob_improvement"), 3),
                    verdict,
                ]
            )
        lines += _md_table(header, body, "lrlllllrrl")
    lines += ["", "### Methods", ""]
    lines += [f"- {md_escape(k)}: {md_escape(t)}" for k, t in method_notes(result)]
    lines += _md_effects(result.get("effects"))
    lines += _md_sensitivity(result.get("sensitivity"))
    from ablab.report.costs import md_costs
    from ablab.report.examples import md_examples

    lines += md_costs(result, md_escape) + md_examples(result, md_escape)
    return "\n".join(lines) + "\n"


def _md_effects(effects: Mapping[str, Any] | None) -> list[str]:
    from ablab.report import effects_text as et

    if not effects or not effects.get("anova"):
        return []
    out = ["", f"## Factorial effects on {md_escape(effects.get('metric'))}", ""]
    for sentence in (et.design_sentence(effects), et.model_sentence(effects)):
        if sentence:
            out += [md_escape(sentence), ""]
    chains = et.alias_chains(effects)
    if chains:
        out += ["Alias chains (each fitted once; the runs cannot tell its terms apart):", ""]
        out += [f"- {md_escape(c)}" for c in chains] + [""]
    body = [
        [
            md_escape(et.term_label(r)),
            num(r["df"], 3),
            num(r["sum_sq"]),
            num(r.get("F")),
            pval(r.get("p")),
            pval(r.get("p_adjusted")),
            num(r.get("partial_eta_sq"), 3),
        ]
        for r in effects["anova"]
    ]
    out += _md_table(et.ANOVA_HEADER, body, "lrrrrrr")
    bad = et.unestimable(effects)
    if bad:
        out += ["", "Not estimable from the finished runs: " + "; ".join(md_escape(b) for b in bad)]
    sh = effects.get("shapley")
    if sh:
        out += ["", md_escape(et.shapley_sentence(effects))]
        if sh.get("values") is not None:
            out.append("")
            out += _md_table(
                ["Factor", "Shapley value"],
                [[md_escape(f), signed(x)] for f, x in sh["values"].items()],
                "lr",
            )
    return out


def _md_sensitivity(sens: Mapping[str, Any] | None) -> list[str]:
    if not sens:
        return []
    out = ["", "## Sensitivity", ""]
    loso = (sens.get("seeds") or {}).get("leave_one_seed_out") or {}
    items = [(v, m, r) for v, per in loso.get("variants", {}).items() for m, r in per.items()]
    if items:
        stable = sum(1 for *_, r in items if r["stable"])
        out.append(
            f"- Seeds: {stable} of {len(items)} verdicts survive leaving out any one of "
            f"{loso.get('seeds')} seeds."
        )
        for v, m, r in items:
            if not r["stable"]:
                out.append(
                    f"  - {md_escape(v)} / {md_escape(m)}: {r['verdict']} flips without seed(s) "
                    + ", ".join(md_escape(s) for s in r["flips"])
                )
    hp = sens.get("hyperparameters")
    if hp:
        holds = [(v, m) for v, per in hp["holds"].items() for m, ok in per.items() if ok]
        total = sum(len(per) for per in hp["holds"].values())
        out.append(
            f"- Hyperparameters ({', '.join(md_escape(x) for x in hp['labels'])}): "
            f"{len(holds)} of {total} verdicts hold at every setting; Kendall τ of the "
            "ranking vs the main study: "
            + ", ".join(f"{md_escape(k)}: {num(t, 3)}" for k, t in hp["kendall_tau"].items())
        )
    sp = sens.get("splits")
    if sp:
        ms = sp["mean_share"]
        out.append(
            f"- Data splits: share of variance from init seeds {pct(100 * ms['seed'] if finite(ms['seed']) else None)}, "
            f"from splits {pct(100 * ms['split'] if finite(ms['split']) else None)}, "
            f"residual {pct(100 * ms['residual'] if finite(ms['residual']) else None)}."
        )
    mt = sens.get("metrics")
    if mt:
        names = mt["metrics"]
        pairs = [
            f"{md_escape(a)}/{md_escape(b)}: {num(mt['tau'][i][j], 3)}"
            for i, a in enumerate(names)
            for j, b in enumerate(names)
            if j > i
        ]
        out.append("- Metrics: Kendall τ between the variant rankings " + ", ".join(pairs) + ".")
    return out


_TEX = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def tex_escape(s: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def _tex_num(x: Any) -> str:
    return num(x).replace("e", r"\mathrm{e}") if finite(x) else "--"


def to_latex(result: Mapping[str, Any]) -> str:
    """A booktabs table: mean ± std per variant and metric, the best mean per metric in bold,
    ↑/↓ marking a significant improvement/degradation against the baseline."""
    dirs = metric_dirs(result)
    best = {m: best_variants(result, m, d) for m, d in dirs.items()}
    cols = "l" + "r" + "c" * len(dirs)
    arrows = {"max": r"($\uparrow$)", "min": r"($\downarrow$)"}
    head = " & ".join(
        [r"Variant", r"$n$"] + [f"{tex_escape(m)} {arrows[d]}" for m, d in dirs.items()]
    )
    lines = [
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + tex_escape(result.get("study", "")) + r": mean $\pm$ std over seeds. "
        r"Bold: best per metric. $^{\uparrow}$/$^{\downarrow}$: significantly better/worse than "
        r"the baseline (t-test, Holm-adjusted within each metric, $p<"
        + str(result.get("alpha", 0.05))
        + r"$); $^{\approx}$: equivalent within the metric's declared margin (TOST, "
        r"Holm-adjusted). Unmarked: inconclusive."
        + (
            " Seeds allocated adaptively: marks on "
            + tex_escape(result.get("primary_metric", ""))
            + " are the sequential test's verdicts."
            if result.get("adaptive")
            else ""
        )
        + "}",
        r"\begin{tabular}{" + cols + "}",
        r"\toprule",
        head + r" \\",
        r"\midrule",
    ]
    for v in result.get("variants", []):
        cells = [
            tex_escape(v["name"]) + (" (baseline)" if v["name"] == result.get("baseline") else ""),
            str(v.get("n", 0)),
        ]
        for m in dirs:
            s = v.get("metrics", {}).get(m, {})
            if not finite(s.get("mean")):
                cells.append("--")
                continue
            body = _tex_num(s["mean"])
            if finite(s.get("std")):
                body += r" \pm " + _tex_num(s["std"])
            if v["name"] in best[m]:
                body = r"\mathbf{" + body + "}"
            verdict = v.get("vs_baseline", {}).get(m, {}).get("verdict")
            mark = {
                "better": r"^{\uparrow}",
                "worse": r"^{\downarrow}",
                "equivalent": r"^{\approx}",
            }.get(verdict, "")
            cells.append(f"${body}{mark}$")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    lines += _tex_effects(result.get("effects"))
    from ablab.report.costs import latex_costs

    return "\n".join(lines) + "\n" + latex_costs(result)


def _tex_effects(effects: Mapping[str, Any] | None) -> list[str]:
    """The ANOVA as a second booktabs table: alias chains as the term names; the caption says
    which design and model, and how the p-values are adjusted."""
    from ablab.report import effects_text as et

    if not effects or not effects.get("anova"):
        return []
    caption = " ".join(s for s in (et.design_sentence(effects), et.model_sentence(effects)) if s)
    lines = [
        "",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{ANOVA of "
        + tex_escape(effects.get("metric"))
        + ". "
        + tex_escape(caption)
        + "}",
        r"\begin{tabular}{lrrrrrr}",
        r"\toprule",
        " & ".join(tex_escape(h) for h in et.ANOVA_HEADER) + r" \\",
        r"\midrule",
    ]
    for r in effects["anova"]:
        cells = [tex_escape(et.term_label(r))] + [
            f"${_tex_num(x)}$" if finite(x) else "--"
            for x in (r.get("df"), r.get("sum_sq"), r.get("F"))
        ]
        cells += [tex_escape(pval(r.get("p"))), tex_escape(pval(r.get("p_adjusted")))]
        cells.append(
            f"${_tex_num(r.get('partial_eta_sq'))}$" if finite(r.get("partial_eta_sq")) else "--"
        )
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    sh = et.shapley_sentence(effects)
    if sh and (effects.get("shapley") or {}).get("values") is None:
        lines.append("% " + sh.replace("\n", " "))
    return lines


__all__ = ["to_json", "to_csv", "to_markdown", "to_latex", "md_escape", "tex_escape", "ARROW"]
