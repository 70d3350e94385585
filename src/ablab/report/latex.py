"""The LaTeX report: a booktabs table a paper can paste (``\\usepackage{booktabs}``).

The primary metric is the first column; each column prints every number with one format
(:mod:`ablab.report.numfmt`), so a std never shows more digits than its mean; "mean ± std
(n)" is said once, in the caption; the direction arrows sit only in the headers and a verdict
is a superscript mark explained in the caption."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import (
    best_variants,
    display_name,
    finite,
    metric_dirs,
    n_text,
    num,
    pval,
    uniform_n,
)
from ablab.report.numfmt import NumFormat, anova_formats, metric_format

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
TEX_MARK = {"better": "^{+}", "worse": "^{-}", "equivalent": r"^{\approx}"}
TEX_ARROW = {"max": r"($\uparrow$)", "min": r"($\downarrow$)"}


def tex_escape(s: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def tex_math(text: str) -> str:
    """A formatted number for math mode: ``{,}`` thousands separators (no extra space),
    ``1.2\\,\\mathrm{M}`` SI suffixes, ``3.0\\times10^{-6}`` scientific notation."""
    text = text.replace(",", "{,}")
    m = re.fullmatch(r"([+-]?[\d.]+)e([+-])0*(\d+)", text)
    if m:
        exp = ("-" if m.group(2) == "-" else "") + m.group(3)
        return rf"{m.group(1)}\times10^{{{exp}}}"
    m = re.fullmatch(r"([+-]?[\d.{},]+)([kMGT])", text)
    if m:
        return rf"{m.group(1)}\,\mathrm{{{m.group(2)}}}"
    return text


def _tex_num(x: Any) -> str:
    return tex_math(num(x)) if finite(x) else "--"


def _cell(f: NumFormat, s: Mapping[str, Any], bold: bool, mark: str) -> str:
    if not finite(s.get("mean")):
        return "--"
    body = tex_math(f(s["mean"]))
    if finite(s.get("std")) and not (s["std"] == 0 and f.count):
        body += r" \pm " + tex_math(f(s["std"]))
    if bold:
        body = r"\mathbf{" + body + "}"
    return f"${body}{mark}$"


def caption(result: Mapping[str, Any]) -> str:
    n = uniform_n(result)
    over = f"over $n = {n}$ seeds" if n is not None else "over the $n$ seeds of each variant"
    alpha = f"{result.get('alpha', 0.05):g}"
    text = (
        tex_escape(result.get("study", ""))
        + rf": mean $\pm$ std {over}. Bold: best mean per metric. "
        r"$^{+}$/$^{-}$: significantly better/worse than the baseline (t-test, Holm-adjusted "
        rf"within each metric, $p < {alpha}$); $^{{\approx}}$: equivalent within the metric's "
        r"declared margin (TOST, Holm-adjusted). Unmarked: inconclusive. "
        r"$\uparrow$/$\downarrow$: higher/lower is better."
    )
    if any(d not in TEX_ARROW for d in metric_dirs(result).values()):
        text += " (info): informational, not tested."
    if result.get("adaptive"):
        text += (
            " Seeds allocated adaptively: marks on "
            + tex_escape(result.get("primary_metric", ""))
            + " are the sequential test's verdicts."
        )
    return text


def to_latex(result: Mapping[str, Any]) -> str:
    """The booktabs table (see the module docstring), then the ANOVA table of a factorial
    design."""
    dirs = metric_dirs(result)
    primary = result.get("primary_metric")
    if primary in dirs:
        dirs = {primary: dirs[primary], **{m: d for m, d in dirs.items() if m != primary}}
    fmts = {m: metric_format(result, m) for m in dirs}
    best = {m: best_variants(result, m, d) if d in TEX_ARROW else set() for m, d in dirs.items()}
    show_n = uniform_n(result) is None
    heads = ["Variant", *([r"$n$"] if show_n else [])]
    heads += [f"{tex_escape(m)} {TEX_ARROW.get(d, '(info)')}" for m, d in dirs.items()]
    label = re.sub(r"[^A-Za-z0-9:-]+", "-", str(result.get("study", "ablation"))).strip("-")
    lines = [
        r"% requires \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + caption(result) + "}",
        r"\label{tab:" + (label or "ablation") + "}",
        r"\begin{tabular}{l" + ("r" if show_n else "") + "r" * len(dirs) + "}",
        r"\toprule",
        " & ".join(heads) + r" \\",
        r"\midrule",
    ]
    for v in result.get("variants", []):
        cells = [tex_escape(display_name(v, result)), *([tex_escape(n_text(v))] if show_n else [])]
        for m in dirs:
            verdict = (v.get("vs_baseline", {}).get(m) or {}).get("verdict")
            s = v.get("metrics", {}).get(m, {})
            cells.append(_cell(fmts[m], s, v["name"] in best[m], TEX_MARK.get(verdict, "")))
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
    f_ss, f_f = anova_formats(effects)
    for r in effects["anova"]:
        cells = [tex_escape(et.term_label(r))] + [
            f"${tex_math(text)}$" if finite(x) else "--"
            for x, text in (
                (r.get("df"), num(r.get("df"), 3)),
                (r.get("sum_sq"), f_ss(r.get("sum_sq"))),
                (r.get("F"), f_f(r.get("F"))),
            )
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
