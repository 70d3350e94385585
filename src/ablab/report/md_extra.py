"""Markdown sections beyond the results tables: factorial effects and sensitivity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import finite, num, pct, pval, signed
from ablab.report.md import md_escape, md_table
from ablab.report.numfmt import anova_formats


def md_effects(effects: Mapping[str, Any] | None) -> list[str]:
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
    f_ss, f_f = anova_formats(effects)
    body = [
        [
            md_escape(et.term_label(r)),
            num(r["df"], 3),
            f_ss(r.get("sum_sq")),
            f_f(r.get("F")),
            pval(r.get("p")),
            pval(r.get("p_adjusted")),
            num(r.get("partial_eta_sq"), 3),
        ]
        for r in effects["anova"]
    ]
    out += md_table(et.ANOVA_HEADER, body, "lrrrrrr")
    bad = et.unestimable(effects)
    if bad:
        out += ["", "Not estimable from the finished runs: " + "; ".join(md_escape(b) for b in bad)]
    sh = effects.get("shapley")
    if sh:
        out += ["", md_escape(et.shapley_sentence(effects))]
        if sh.get("values") is not None:
            out.append("")
            out += md_table(
                ["Factor", "Shapley value"],
                [[md_escape(f), signed(x)] for f, x in sh["values"].items()],
                "lr",
            )
    return out


def md_sensitivity(sens: Mapping[str, Any] | None) -> list[str]:
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
