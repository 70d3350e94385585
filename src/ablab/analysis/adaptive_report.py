"""Verdicts of a study whose seeds were allocated adaptively (``seeds = "auto"``).

The data of such a study were sampled by a sequential rule: each variant received more seeds
only while the group-sequential test of :func:`ablab.analysis.adaptive.allocate_seeds` had not
decided it. A fixed-sample test applied to the final data ignores that the sample size depended
on the results seen so far (optional stopping), which makes it *anticonservative*: its p-values
are too small and its intervals too narrow, and the family-wise error can exceed alpha.

So the primary metric's verdicts of the report are the sequential test's own, recomputed from
the recorded runs (the allocation is stateless, so this is the decision the run engine made at
its last look): ``better``/``worse`` when the Holm-closed group-sequential test crossed its
boundary, ``inconclusive`` otherwise (not rejected by ``max_seeds``, stopped for futility, or
still undecided when the study stopped). The boundary, the statistic and the Holm level are in
each comparison's ``sequential``. The fixed-sample p-values and intervals stay in the report,
labelled as such; secondary metrics keep fixed-sample verdicts, labelled the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from ablab.errors import SpecError

METHOD_NAMES = {
    "obf": "O'Brien-Fleming-type error-spending group-sequential paired t-test",
    "pocock": "Pocock-type error-spending group-sequential paired t-test",
    "mixture": "anytime-valid mixture e-process of the paired t-test",
}


def check_adaptive(adaptive: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``{"min_seeds", "max_seeds", "method"?, "batch"?}`` at the boundary."""
    from ablab.analysis.adaptive import check_params

    try:
        lo, hi = int(adaptive["min_seeds"]), int(adaptive["max_seeds"])
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(
            f"analyze: adaptive must give integer min_seeds and max_seeds, got {dict(adaptive)!r}"
        ) from e
    method = str(adaptive.get("method", "obf"))
    lo = min(lo, hi)
    batch = check_params(0.05, "max", lo, hi, adaptive.get("batch"), method)
    return {"min_seeds": lo, "max_seeds": hi, "method": method, "batch": batch}


def _fmt(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.3g}"


def sequential_verdicts(
    values: Mapping[str, pd.Series],
    baseline: str,
    variants: list[str],
    direction: str,
    alpha: float,
    adaptive: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per variant: ``verdict``, ``reason`` and ``sequential`` (method, status, pairs, look
    statistic ``z`` and boundary ``critical``, Holm ``level``, planned ``looks``) of the
    adaptive allocation's test on the primary metric's ``values`` (variant -> Series by seed)."""
    from ablab.analysis.adaptive import allocate_seeds

    cfg = check_adaptive(adaptive)
    results = {v: {k: float(x) for k, x in values[v].items()} for v in [baseline, *variants]}
    dec = allocate_seeds(
        results,
        baseline=baseline,
        direction=direction,
        alpha=alpha,
        min_seeds=cfg["min_seeds"],
        max_seeds=cfg["max_seeds"],
        batch=cfg["batch"],
        method=cfg["method"],
    )
    name = METHOD_NAMES[cfg["method"]]
    out: dict[str, dict[str, Any]] = {}
    for v in variants:
        d = dec.variants[v]
        seq = {
            "method": name,
            "status": d.status,
            "n_pairs": d.n,
            "z": d.z,
            "critical": d.critical,
            "p_sequential": d.p_sequential,
            "level": d.level,
            "looks": list(dec.schedule),
            "max_seeds": cfg["max_seeds"],
        }
        stat = (
            f"anytime p = {_fmt(d.p_sequential)}"
            if cfg["method"] == "mixture"
            else f"|z| = {_fmt(abs(d.z))} vs boundary {_fmt(d.critical)}"
        )
        where = f"{name}, Holm level {d.level:.3g}, {d.n} pairs, {stat}"
        if d.status in ("settled-better", "settled-worse"):
            verdict = "better" if d.status == "settled-better" else "worse"
            reason = f"sequential test crossed its boundary ({where})"
        elif d.status == "futile":
            verdict = "inconclusive"
            reason = (
                f"stopped for futility: more seeds up to {cfg['max_seeds']} could not decide it "
                f"({where})"
            )
        elif d.status == "settled-inconclusive":
            verdict = "inconclusive"
            reason = f"sequential test not rejected by max_seeds = {cfg['max_seeds']} ({where})"
        else:
            verdict = "inconclusive"
            reason = f"undecided: the adaptive allocation had not finished ({where})"
        out[v] = {"verdict": verdict, "reason": reason, "sequential": seq}
    return out


def adaptive_note(adaptive: Mapping[str, Any], primary: str) -> str:
    """The sentence the report prints about adaptively sampled data."""
    cfg = check_adaptive(adaptive)
    return (
        f'Seeds were allocated adaptively (seeds = "auto", {cfg["min_seeds"]}-'
        f"{cfg['max_seeds']} per variant) by a sequential test on {primary}. The verdicts on "
        f"{primary} are that test's ({METHOD_NAMES[cfg['method']]}, Holm-closed; boundaries "
        "in each comparison's 'sequential'). The p-values and intervals are fixed-sample "
        "computations on adaptively sampled data: they ignore the optional stopping and are "
        "anticonservative (p too small, intervals too narrow); read them as descriptive. "
        "Verdicts on the other metrics are fixed-sample tests with the same caveat."
    )
