"""HTML report sections beyond the results: factorial effects, sensitivity, verifications,
the reproducibility checklist and provenance."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ablab.report import plots
from ablab.report._fmt import DASH, config_diff, finite, num, pval, signed
from ablab.report.html_parts import Cell, esc, mapping_html, ncell, table, tcell

RUNTIME_KEYS = (
    "wall_time_s",
    "wall_s",
    "duration_s",
    "runtime_s",
    "elapsed_s",
    "duration",
    "wall_time",
    "runtime",
    "seconds",
)


def _heat(x: Any, p: Any, aliased: bool = False) -> Cell:
    if not finite(x):
        return Cell(DASH + (" †" if aliased else ""), None, "num")
    alpha = min(1.0, max(0.0, float(x))) * 0.85
    star = (" *" if finite(p) and p < 0.05 else "") + (" †" if aliased else "")
    return Cell(f"{esc(num(x, 3))}{star}", x, "num", f"background:rgba(9,105,218,{alpha:.2f})")


def _levels(cell: Any) -> str:
    if not isinstance(cell, Mapping):
        return esc(cell)
    return ", ".join(f"{esc(k)} = {esc(v)}" for k, v in cell.items())


def effects_section(effects: Mapping[str, Any], page) -> str:
    from ablab.report import effects_text as et

    out = [
        f"<p>Response: <b>{esc(effects.get('metric'))}</b>. "
        f"{esc(et.model_sentence(effects))} Partial η² = SS / (SS + SS_residual).</p>"
    ]
    if effects.get("error"):
        return out[0] + f'<p class="missing">{esc(effects["error"])}</p>'
    design = effects.get("design")
    if design:
        out.append("<h3>Design</h3>" + f"<p>{esc(et.design_sentence(effects))}</p>")
        chains = et.alias_chains(effects)
        if chains:
            out.append(
                "<p>Alias chains (each fitted once; the runs cannot tell its terms apart):</p><ul>"
                + "".join(f"<li><code>{esc(c)}</code></li>" for c in chains)
                + "</ul>"
            )
    rows = [
        [
            tcell(et.term_label(r)),
            ncell(r.get("df"), 3),
            ncell(r.get("sum_sq")),
            ncell(r.get("F")),
            ncell(r.get("p"), fmt=pval),
            ncell(r.get("p_adjusted"), fmt=pval),
            ncell(r.get("partial_eta_sq"), 3),
        ]
        for r in effects.get("anova", [])
    ]
    out.append("<h3>ANOVA</h3>" + table(et.ANOVA_HEADER, rows, sortable=True, tid="anova"))
    bad = et.unestimable(effects)
    if bad:
        out.append(
            "<p>Not estimable from the finished runs: "
            + "; ".join(f"<code>{esc(b)}</code>" for b in bad)
            + "</p>"
        )
    main = effects.get("main_effects", {})
    rows = [
        [
            tcell(f),
            Cell(
                ", ".join(f"{esc(k)}: {esc(num(v))}" for k, v in e.get("level_means", {}).items())
            ),
            ncell(e.get("effect"), fmt=signed),
            tcell(e.get("chain") if e.get("aliased") else e.get("status")),
            ncell(e.get("p"), fmt=pval),
            ncell(e.get("partial_eta_sq"), 3),
        ]
        for f, e in main.items()
    ]
    out.append(
        "<h3>Main effects</h3>"
        + table(
            [
                "factor",
                "level means",
                "effect (2nd − 1st level)",
                "estimated as",
                "p (unadj.)",
                "partial η²",
            ],
            rows,
            sortable=True,
        )
    )
    mat = effects.get("interaction_matrix")
    if mat and mat.get("factors"):
        fs = mat["factors"]
        rows = [
            [tcell(a)]
            + [
                _heat(
                    mat["partial_eta_sq"][i][j],
                    mat["p"][i][j],
                    bool((mat.get("aliased") or [[False] * len(fs)] * len(fs))[i][j]),
                )
                for j in range(len(fs))
            ]
            for i, a in enumerate(fs)
        ]
        out.append(
            '<h3>Interaction matrix</h3><p class="muted">Partial η² of each two-way '
            "interaction (diagonal: main effects); * unadjusted p &lt; 0.05; † aliased: the "
            "value belongs to the term's whole alias chain.</p>"
            + table(["", *fs], rows, cls="heat")
        )
    inter = [
        i
        for i in effects.get("interactions", [])
        if finite(i.get("partial_eta_sq")) and i.get("status", "fitted") == "fitted"
    ]
    if inter:
        top = sorted(inter, key=lambda i: -i["partial_eta_sq"])[:2]
        figs = [
            page.fig(
                plots.interaction_plot(effects, i["factors"]),
                f"interaction of {i['factors'][0]} and {i['factors'][1]}"
                + (f" (alias chain {i.get('chain')})" if i.get("aliased") else ""),
            )
            for i in top
        ]
        out.append('<h3>Interaction plots</h3><div class="figs">' + "".join(figs) + "</div>")
    sh = effects.get("shapley")
    if sh and sh.get("values") is None:
        out.append(f"<h3>Shapley values</h3><p>{esc(et.shapley_sentence(effects))}</p>")
    elif sh:
        rows = [[tcell(f), ncell(x, fmt=signed)] for f, x in sh.get("values", {}).items()]
        out.append(
            "<h3>Shapley values</h3>"
            f"<p>Contribution of each factor to the change of {esc(effects.get('metric'))} from "
            f"<code>{_levels(sh.get('from'))}</code> to <code>{_levels(sh.get('to'))}</code> "
            f"({esc(sh.get('target'))}; value function: {esc(sh.get('value_function'))}). "
            f"They sum to the total change {esc(signed(sh.get('total')))}.</p>"
            + page.fig(plots.shapley_bars(effects), "Shapley values")
            + table(["factor", "Shapley value"], rows, sortable=True)
        )
    return "".join(out)


def sensitivity_section(result: Mapping[str, Any], page) -> str:
    sens = result.get("sensitivity") or {}
    out = []
    seeds = sens.get("seeds") or {}
    if seeds:
        out.append("<h3>Seeds</h3>")
        out.append(page.fig(plots.ci_width_plot(seeds), "CI width against seeds"))
        loso = seeds.get("leave_one_seed_out") or {}
        rows = []
        for v, per in loso.get("variants", {}).items():
            for m, r in per.items():
                rows.append(
                    [
                        tcell(v),
                        tcell(m),
                        tcell(r.get("verdict")),
                        Cell(
                            '<span class="ok">yes</span>'
                            if r.get("stable")
                            else '<span class="missing">no</span>'
                        ),
                        ncell(r.get("survival"), 3),
                        tcell(", ".join(str(s) for s in r.get("flips", [])) or DASH),
                    ]
                )
        if rows:
            out.append(
                f"<p>Leave-one-seed-out over {esc(loso.get('seeds'))} seeds: does each verdict "
                "survive dropping any single seed (Holm correction redone)?</p>"
                + table(
                    [
                        "variant",
                        "metric",
                        "verdict",
                        "stable",
                        "share of leave-outs agreeing",
                        "flips without seed",
                    ],
                    rows,
                    sortable=True,
                    tid="loso",
                )
            )
    hp = sens.get("hyperparameters")
    if hp:
        labels = hp.get("labels", [])
        metric = hp.get("metric")
        rows = [
            [tcell(v)]
            + [tcell(hp["verdicts"].get(v, {}).get(lab, {}).get(metric)) for lab in labels]
            + [
                Cell(
                    '<span class="ok">holds</span>'
                    if hp["holds"].get(v, {}).get(metric)
                    else '<span class="missing">changes</span>'
                )
            ]
            for v in hp.get("verdicts", {})
        ]
        out.append(
            f"<h3>Hyperparameters</h3><p>Verdict on {esc(metric)} at each sensitivity "
            "setting, and whether it matches the main study everywhere.</p>"
            + table(["variant", *labels, "verdict"], rows)
        )
        ra = hp.get("rank_agreement", {})
        names = ra.get("settings", [])
        rows = [
            [tcell(a)] + [ncell(ra["tau"][i][j], 3) for j in range(len(names))]
            for i, a in enumerate(names)
        ]
        out.append("<p>Kendall τ between the variant rankings:</p>" + table(["", *names], rows))
    sp = sens.get("splits")
    if sp:
        rows = [
            [
                tcell(v),
                ncell(r.get("seed"), 3),
                ncell(r.get("split"), 3),
                ncell(r.get("residual"), 3),
                ncell(r.get("n_seeds"), fmt=str),
                ncell(r.get("n_splits"), fmt=str),
            ]
            for v, r in sp.get("variants", {}).items()
        ]
        out.append(
            f"<h3>Data splits</h3><p>Share of the variance of {esc(sp.get('metric'))} from init "
            "seeds, data splits and the rest (crossed design, method of moments).</p>"
            + table(
                ["variant", "init seed", "split", "residual", "seeds", "splits"],
                rows,
                sortable=True,
            )
        )
    mt = sens.get("metrics")
    if mt:
        names = mt.get("metrics", [])
        rows = [
            [tcell(a)] + [ncell(mt["tau"][i][j], 3) for j in range(len(names))]
            for i, a in enumerate(names)
        ]
        out.append(
            "<h3>Metrics</h3><p>Kendall τ between the rankings of the variants by each metric.</p>"
            + table(["", *names], rows)
        )
    return "".join(out)


def verifications_section(verifications: Sequence[Mapping[str, Any]]) -> str:
    keys = list(dict.fromkeys(k for v in verifications for k in v))
    rows = [
        [tcell(v.get(k)) if not isinstance(v.get(k), float) else ncell(v.get(k), 6) for k in keys]
        for v in verifications
    ]
    return table(keys, rows, sortable=True, tid="verifications-table")


def _runtimes(runs, provenance: Mapping[str, Any] | None) -> list[float]:
    vals: list[float] = []
    res = (provenance or {}).get("resources")
    entries = res.values() if isinstance(res, Mapping) else res if isinstance(res, list) else []
    for e in entries:
        if isinstance(e, Mapping):
            for k in RUNTIME_KEYS:
                if finite(e.get(k)):
                    vals.append(float(e[k]))
                    break
    if not vals and runs is not None:
        for k in RUNTIME_KEYS:
            if k in getattr(runs, "columns", []):
                col = runs[k].astype(float)
                vals = [float(x) for x in col if math.isfinite(x)]
                break
    return vals


def checklist_section(result: Mapping[str, Any], runs, provenance: Mapping[str, Any] | None) -> str:
    prov = provenance or {}
    r = result.get("runs", {})
    variants = result.get("variants", [])
    ns = [v.get("n", 0) for v in variants]
    items: list[tuple[str, str, bool]] = []
    items.append(
        (
            "Runs",
            f"{r.get('total', 0)} in all, {r.get('done', 0)} done, {r.get('failed', 0)} failed",
            r.get("total", 0) > 0,
        )
    )
    seeds_txt, ok = DASH, False
    if runs is not None and "seed" in getattr(runs, "columns", []):
        seeds = sorted(runs["seed"].dropna().unique().tolist())
        shown = ", ".join(str(s) for s in seeds[:12]) + (" …" if len(seeds) > 12 else "")
        seeds_txt, ok = (
            f"{len(seeds)} seeds ({shown}); per variant {min(ns, default=0)}–{max(ns, default=0)} finished runs",
            len(seeds) >= 2,
        )
    elif ns:
        seeds_txt, ok = f"per variant {min(ns)}–{max(ns)} finished runs", min(ns) >= 2
    items.append(("Seeds", seeds_txt, ok))
    hw = [str(prov[k]) for k in ("cpu", "gpu", "platform") if prov.get(k)]
    items.append(("Hardware", "; ".join(hw) if hw else "not recorded", bool(hw)))
    rt = _runtimes(runs, prov)
    items.append(
        (
            "Mean runtime per run",
            f"{num(sum(rt) / len(rt))} s over {len(rt)} runs" if rt else "not recorded",
            bool(rt),
        )
    )
    if (
        runs is not None
        and "split_seed" in getattr(runs, "columns", [])
        and runs["split_seed"].notna().any()
    ):
        k = runs["split_seed"].nunique()
        items.append(("Data splits", f"{k} split seed(s), crossed with the init seeds", True))
    else:
        items.append(("Data splits", "one fixed split (split seed not varied)", True))
    base = next((v.get("config", {}) for v in variants if v["name"] == result.get("baseline")), {})
    varied = []
    for v in variants:
        if v["name"] == result.get("baseline"):
            continue
        diff = config_diff(v.get("config", {}), base)
        varied.append(
            f"<li><b>{esc(v['name'])}</b>: "
            + (
                ", ".join(f"<code>{esc(k)}</code> = {esc(x)}" for k, x in diff.items())
                or "same config"
            )
            + "</li>"
        )
    items.append(
        ("What was varied", "<ul>" + "".join(varied) + "</ul>" if varied else DASH, bool(varied))
    )
    sw = []
    if prov.get("python"):
        sw.append(f"Python {prov['python']}")
    if prov.get("packages"):
        sw.append(f"{len(prov['packages'])} package versions recorded")
    items.append(("Software", ", ".join(sw) or "not recorded", bool(sw)))
    git = prov.get("git")
    items.append(
        (
            "Code version (git)",
            esc(git)
            if not isinstance(git, Mapping)
            else ", ".join(f"{esc(k)}: {esc(v)}" for k, v in git.items()),
            bool(git),
        )
    )
    items.append(
        (
            "Data hashes",
            "recorded" if prov.get("data") or prov.get("data_hashes") else "not recorded",
            bool(prov.get("data") or prov.get("data_hashes")),
        )
    )
    items.append(
        (
            "Statistics",
            f"unadjusted t-intervals, paired/Welch t-tests, Holm correction within each "
            f"metric, alpha = {esc(result.get('alpha', 0.05))}, effect sizes (Hedges g, "
            "Cliff δ; + = better)",
            True,
        )
    )
    rows = []
    for name, value, ok in items:
        mark = '<span class="ok">✓</span>' if ok else '<span class="missing">✗</span>'
        text = value if name == "What was varied" or name == "Code version (git)" else esc(value)
        rows.append([Cell(mark), tcell(name), Cell(text)])
    return table(["", "item", "details"], rows, tid="checklist-table")


def provenance_section(provenance: Mapping[str, Any]) -> str:
    prov = dict(provenance)
    out = []
    res = prov.pop("resources", None)
    out.append(mapping_html(prov))
    if res:
        entries = list(res.items()) if isinstance(res, Mapping) else list(enumerate(res))
        fields = list(
            dict.fromkeys(
                k for _, e in entries if isinstance(e, Mapping) for k, x in e.items() if finite(x)
            )
        )
        if fields:
            rows = []
            for f in fields:
                xs = [
                    float(e[f]) for _, e in entries if isinstance(e, Mapping) and finite(e.get(f))
                ]
                rows.append(
                    [tcell(f), ncell(len(xs), fmt=str), ncell(sum(xs) / len(xs)), ncell(max(xs))]
                )
            out.append(
                "<h3>Resources per run</h3>" + table(["resource", "runs", "mean", "max"], rows)
            )
        shown = entries[:50]
        detail = {str(k): e for k, e in shown}
        out.append(
            f"<details><summary>Per-run resources ({len(entries)} runs"
            + (", first 50 shown" if len(entries) > 50 else "")
            + ")</summary>"
            + mapping_html(detail)
            + "</details>"
        )
    return "".join(out)
