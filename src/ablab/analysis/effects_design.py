"""What the factorial report says about its model and design: each term's row (fitted, in an
alias chain, pooled, not estimable), the ANOVA table with chains named in full, and the
design (generators, defining relation, resolution, alias chains) planned and observed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ablab.analysis.effects_model import ModelFit, TermSelection, gf2_generators

Term = tuple[int, ...]
NAN_STATS = {"df": math.nan, "F": math.nan, "p": math.nan, "p_adjusted": math.nan}


def _name(fl: list[str], t: Term) -> str:
    return ":".join(fl[i] for i in t)


def chain_members(sel: TermSelection, rep: Term) -> list[Term]:
    return [rep, *sel.chains.get(rep, [])]


def chain_label(fl: list[str], sel: TermSelection, rep: Term) -> str:
    """``"a:b = c:e = d:f"``: the chain's terms up to order two (or the representative's order
    when higher), then how many higher-order terms it also contains."""
    members = chain_members(sel, rep)
    shown = [m for m in members if len(m) <= max(2, len(rep))]
    hidden = len(members) - len(shown)
    text = " = ".join(_name(fl, m) for m in shown)
    return text + (f" (+{hidden} higher-order)" if hidden else "")


def _formula_term(fl: list[str], sel: TermSelection, rep: Term) -> str:
    """A fitted term in the formula: its chain in brackets when it has aliases of its order or
    lower (``(a:b = c:e = d:f)``), so no aliased term is shown alone."""
    label = chain_label(fl, sel, rep).split(" (+")[0]
    return f"({label})" if " = " in label else label


def term_report(fl: list[str], sel: TermSelection, model: ModelFit) -> dict[str, Any]:
    """``terms``: every main effect and two-way interaction (and every fitted term) -> its
    statistics and alias status; ``anova``: the table rows; ``model``: what was fitted."""
    rep_of = {m: rep for rep, ms in sel.chains.items() for m in ms}
    stats = {r["_term"]: r for r in model.rows if r["_term"] is not None}
    words = set(sel.words)

    def info(t: Term) -> dict[str, Any]:
        rep = rep_of.get(t, t)
        members = chain_members(sel, rep) if (t in sel.kept or t in rep_of) else [t]
        others = [_name(fl, m) for m in members if m != t]
        row: dict[str, Any] = {
            "term": _name(fl, t),
            "aliased": bool(others),
            "aliases": others,
            "chain": chain_label(fl, sel, rep) if rep in sel.kept else _name(fl, t),
            "partial_eta_sq": math.nan,
            **NAN_STATS,
        }
        if t in words:
            row.update(
                status="not estimable",
                aliased=True,
                aliases=["(intercept)"],
                reason="constant over the finished runs (aliased with the mean)",
            )
        elif t in sel.partial:
            row.update(
                status="partially confounded",
                aliased=True,
                aliases=[_name(fl, m) for m in sel.partial[t]],
                reason="its columns are a combination of other terms' (missing cells)",
            )
        elif rep in stats:
            s = stats[rep]
            row.update(
                status="fitted" if rep == t else "aliased",
                **{k: s[k] for k in ("df", "F", "p", "p_adjusted", "partial_eta_sq")},
            )
            if rep != t:
                row["estimated_as"] = _name(fl, rep)
        elif rep in model.pooled:
            row.update(status="pooled", reason=model.pooled_reason)
        else:
            row.update(status="not examined")
        return row

    k = len(fl)
    terms = {(i,): info((i,)) for i in range(k)}
    terms.update({(i, j): info((i, j)) for i in range(k) for j in range(i + 1, k)})
    anova = []
    for r in model.rows:
        t = r["_term"]
        base = {kk: r[kk] for kk in ("df", "sum_sq", "F", "p", "partial_eta_sq")}
        if t is None:
            anova.append(
                {
                    "term": "Residual",
                    "factors": [],
                    "aliased": False,
                    "aliases": [],
                    **base,
                    "p_adjusted": math.nan,
                    "pooled": [chain_label(fl, sel, p) for p in model.pooled],
                }
            )
            continue
        others = [_name(fl, m) for m in chain_members(sel, t)[1:]]
        anova.append(
            {
                "term": chain_label(fl, sel, t),
                "factors": [fl[i] for i in t],
                "aliased": bool(others),
                "aliases": others,
                **base,
                "p_adjusted": r.get("p_adjusted", math.nan),
            }
        )
    aliased_terms = [_name(fl, m) for m in rep_of if len(m) <= 2]
    fitted = [chain_label(fl, sel, t) for t in model.terms]
    full_model = not model.pooled
    desc = (
        "OLS with every estimable term (main effects and all interactions)"
        if full_model
        else f"OLS with main effects and interactions up to order {model.order}"
    )
    if sel.chains:
        desc += "; aliased terms are fitted once per alias chain"
    notes = []
    if model.exact:
        notes.append(
            "the residual variance is zero (noise-free data): F tests are undefined; a term "
            "with a nonzero sum of squares is reported as F = inf, p = 0, one with none as "
            "F = p = null"
        )
    return {
        "terms": terms,
        "anova": anova,
        "aliased_terms": aliased_terms,
        "model": {
            "description": desc,
            "formula": "y ~ " + (" + ".join(_formula_term(fl, sel, t) for t in model.terms) or "1"),
            "terms": fitted,
            "order": model.order,
            "full": full_model,
            "pooled": [chain_label(fl, sel, t) for t in model.pooled],
            "pooled_reason": model.pooled_reason,
            "residual_df": float(model.fit.df_resid),
            "anova": "type II sums of squares (statsmodels anova_lm, typ=2)",
            "coding": "two-level factors -1/+1 (first/second level); others sum-to-zero",
            "p_values": "p: unadjusted F test per term; p_adjusted: Holm within this table",
            "notes": notes,
        },
    }


def _word(fl: list[str], mask: int) -> str:
    return "*".join(fl[i] for i in range(len(fl)) if mask >> i & 1)


def design_summary(
    fl: list[str],
    sel: TermSelection,
    planned: Mapping[str, Any] | None,
    *,
    full: bool,
    cells: int | None = None,
) -> dict[str, Any]:
    """The design as planned (``planned``, e.g. ``FractionalDesign.to_dict()``) and as observed
    in the finished runs: defining relation (terms constant over the runs), generators (a
    GF(2)-reduced basis of it), resolution (its shortest word), alias chains up to order two."""
    masks = [sum(1 << i for i in w) for w in sel.words]
    gens = gf2_generators(masks, len(fl))
    generators = []
    for g in gens:
        top = g.bit_length() - 1
        rest = g & ~(1 << top)
        generators.append(f"{fl[top]} = {_word(fl, rest)}" if rest else f"{fl[top]} = constant")
    chains = []
    for rep, ms in sel.chains.items():
        low = [_name(fl, m) for m in [rep, *ms] if len(m) <= 2]
        if len(low) >= 2:
            chains.append(low)
    observed: dict[str, Any] = {
        "type": "full factorial"
        if full
        else ("fraction" if sel.words else "incomplete factorial (some cells never ran)"),
        "generators": generators,
        "defining_relation": ["I = " + _word(fl, m) for m in masks],
        "resolution": min((len(w) for w in sel.words), default=None),
        "alias_chains": chains,
        "enumerated_order": sel.order,
        "cells_run": cells,
    }
    if full and not sel.words:
        observed["note"] = "every cell ran: a full factorial, nothing aliased"
    if not planned:
        return {**observed, "source": "derived from the finished runs (no planned design given)"}
    out = {**dict(planned), "source": "planned design"}
    out.setdefault("alias_chains", chains)
    planned_words = [  # compared up to the order enumerated in the runs
        w for w in out.get("defining_relation") or [] if w.count("*") + 1 <= sel.order
    ]
    same = sorted(planned_words) == sorted(observed["defining_relation"])
    if cells is not None and isinstance(out.get("runs"), int) and cells < out["runs"]:
        same = False
    if not same:
        out["observed"] = observed
        out.setdefault("notes", []).append(
            "the finished runs do not form the planned design (failed or missing cells): "
            "the analysis uses the alias structure observed in the runs"
        )
    return out
