"""Compare a recorded run with a re-execution: metrics, series, data, code and environment."""

from __future__ import annotations

import math
from typing import Any

BIT_IDENTICAL = "reproduced (bit-identical)"
WITHIN_TOL = "reproduced (within tolerance)"
DIFFERS = "differs"

DETERMINISM_CHECKLIST = [
    "an unseeded generator: np.random.default_rng() / random.Random() without a seed, os.urandom, "
    "time-based values — derive every generator from run.seed (run.generator(), run.rng())",
    "DataLoader workers without worker_init_fn=ablab.seed_worker and generator=run.generator()",
    "non-deterministic kernels (scatter_add, index_add, atomics on GPU) — keep [run] deterministic = true",
    "a thread count that varies between runs (set [run] threads; ablab fixes it per run)",
    "hash randomisation: iterating over a set of strings (PYTHONHASHSEED) to order data or layers",
    "state that leaks between runs in one worker (module-level caches, global counters)",
]


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (math.isnan(a) and math.isnan(b))


VARIES = "varies by nature"


def metric_rules(spec: Any) -> dict[str, dict[str, Any]]:
    """Per-name comparison rules from a study's metric declarations: ``deterministic = false``
    metrics (and the series they reduce) vary by nature and are left out of bit-identity;
    ``tolerance = {rtol, atol}`` replaces the command's tolerance for that metric and its series."""
    rules: dict[str, dict[str, Any]] = {}
    for m in spec.metrics:
        rule = {"deterministic": m.deterministic, "tolerance": m.tolerance}
        rules[m.name] = rule
        if m.reduce in ("last", "best"):
            rules.setdefault(f"series:{m.series_name}", rule)
    return rules


def _rule(rules: dict[str, dict[str, Any]] | None, name: str, rtol: float, atol: float):
    r = (rules or {}).get(name) or {}
    tol = r.get("tolerance")
    if tol is not None:
        rtol, atol = max(rtol, tol[0]), max(atol, tol[1])
    return r.get("deterministic", True), rtol, atol


def compare_metrics(
    old: dict[str, float],
    new: dict[str, float],
    rtol: float,
    atol: float,
    rules: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Metric by metric: identical, within tolerance, differs, missing, or (for a metric declared
    ``deterministic = false``) "varies by nature", which never counts as a difference."""
    from ablab.components.kinds import is_nondeterministic  # run.measure's latency/memory

    rows = []
    for name in sorted(set(old) | set(new)):
        det, rt, at = _rule(rules, name, rtol, atol)
        a, b = old.get(name), new.get(name)
        if is_nondeterministic(name):
            rows.append({"metric": name, "recorded": a, "rerun": b, "status": VARIES})
            continue
        if a is None or b is None:
            rows.append(
                {"metric": name, "recorded": a, "rerun": b, "status": "missing" if det else VARIES}
            )
            continue
        if not det:
            status = VARIES
        elif a == b or (math.isnan(a) and math.isnan(b)):
            status = "identical"
        else:
            status = "within tolerance" if _close(a, b, rt, at) else "differs"
        rows.append(
            {"metric": name, "recorded": a, "rerun": b, "abs_diff": abs(a - b), "status": status}
        )
    return {
        "rows": rows,
        "identical": all(r["status"] in ("identical", VARIES) for r in rows),
        "within": all(r["status"] in ("identical", "within tolerance", VARIES) for r in rows),
        "varies": [r["metric"] for r in rows if r["status"] == VARIES],
    }


def compare_series(
    old: list[tuple[str, int, float]],
    new: list[tuple[str, int, float]],
    rtol: float,
    atol: float,
    rules: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Series equal point by point; reports the first (name, step) that differs. A series reduced
    by a ``deterministic = false`` metric is left out."""
    a = {(n, s): v for n, s, v in old}
    b = {(n, s): v for n, s, v in new}
    first = None
    identical, within = True, True
    varies = set()
    for k in sorted(set(a) | set(b)):
        det, rt, at = _rule(rules, f"series:{k[0]}", rtol, atol)
        x, y = a.get(k), b.get(k)
        if not det:
            varies.add(k[0])
            continue
        if x is None or y is None or not (x == y or _close(x, y, rt, at)):
            identical = within = False
        elif x != y:
            identical = False
        else:
            continue
        if first is None:
            first = {"name": k[0], "step": k[1], "recorded": x, "rerun": y}
    return {
        "points": len(a),
        "identical": identical,
        "within": within,
        "first_difference": first,
        "varies": sorted(varies),
    }


def compare_data(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    changed = sorted(n for n in set(old) & set(new) if tuple(old[n])[1] != tuple(new[n])[1])
    return {
        "changed": changed,
        "missing": sorted(set(old) - set(new)),
        "added": sorted(set(new) - set(old)),
    }


def compare_environment(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Python, platform, CPU, GPU/driver and the packages whose versions differ."""
    if not old:
        return {"known": False, "differences": []}
    diffs = []
    for k in ("python", "implementation", "platform", "machine", "cpu", "torch"):
        if old.get(k) != new.get(k):
            diffs.append({"what": k, "recorded": old.get(k), "now": new.get(k)})
    if [g.get("name") for g in old.get("gpus") or []] != [
        g.get("name") for g in new.get("gpus") or []
    ] or [g.get("driver") for g in old.get("gpus") or []] != [
        g.get("driver") for g in new.get("gpus") or []
    ]:
        diffs.append({"what": "gpus", "recorded": old.get("gpus"), "now": new.get("gpus")})
    po, pn = old.get("packages") or {}, new.get("packages") or {}
    pk = [
        {"package": p, "recorded": po.get(p), "now": pn.get(p)}
        for p in sorted(set(po) | set(pn), key=str.lower)
        if po.get(p) != pn.get(p)
    ]
    return {"known": True, "differences": diffs, "packages": pk}


def verdict(metrics: dict[str, Any], series: dict[str, Any]) -> str:
    if metrics["identical"] and series["identical"]:
        return BIT_IDENTICAL
    if metrics["within"] and series["within"]:
        return WITHIN_TOL
    return DIFFERS


def likely_causes(
    v: str, data: dict[str, Any], code_changed: bool, env: dict[str, Any]
) -> list[str]:
    """Most likely causes of a difference, most specific first."""
    if v != DIFFERS:
        return []
    causes = []
    if data["changed"] or data["missing"]:
        causes.append("data changed: " + ", ".join(data["changed"] + data["missing"]))
    if code_changed:
        causes.append("code changed since the run was recorded")
    if env.get("differences") or env.get("packages"):
        what = [d["what"] for d in env.get("differences", [])] + [
            p["package"] for p in env.get("packages", [])[:5]
        ]
        causes.append("environment drift: " + ", ".join(what))
    if not causes:
        causes.append("non-determinism: same code, data and environment gave different numbers")
    return causes
