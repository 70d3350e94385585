"""What a report must tell the reader about the records behind its numbers: which code versions
the runs came from, whether the metric declarations changed since the runs, and whether a metric
that varies by nature was compared across variants that ran at different times."""

from __future__ import annotations

import time
from typing import Any


def iso(t: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC (``2026-12-02T13:56:09Z``)."""
    if t is None or t != t:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(t)))


def code_versions(runs: Any) -> list[dict[str, Any]]:
    """One entry per code fingerprint among the done runs, oldest first:
    ``{"fingerprint", "runs", "first_seen", "keys"}``."""
    done = runs[runs["status"] == "done"] if len(runs) else runs
    out = []
    for fp, g in done.groupby(done["code_digest"].fillna("unknown"), sort=False):
        first = g["ended_at"].min()
        out.append(
            {
                "fingerprint": str(fp),
                "runs": int(len(g)),
                "first_seen": iso(first),
                "keys": sorted(str(k) for k in g["key"]),
                "_t": float(first) if first == first else 0.0,
            }
        )
    out.sort(key=lambda d: d.pop("_t"))
    return out


def declaration_notes(res: Any) -> list[str]:
    from ablab.analysis.derive import declaration_changes
    from ablab.spec.serialize import spec_to_dict

    recorded = (res.study.get("spec") or {}).get("metrics") or {}
    changes = declaration_changes(recorded, spec_to_dict(res.spec)["metrics"])
    if not changes:
        return []
    return [
        "The metric declarations changed since the runs were recorded ("
        + "; ".join(changes)
        + "). Every number here is derived from the stored returns and logged series with the "
        "current declarations, as a fresh run would give; nothing was re-run."
    ]


def order_notes(res: Any) -> list[str]:
    """A note per nondeterministic metric when some variant's runs did not overlap in time with
    the baseline's (e.g. ``[run] order = "variant"``): a difference may be drift of the machine."""
    from ablab.plan.designs_bridge import reference_variant

    varying = [m.name for m in res.spec.metrics if not m.deterministic]
    runs = res.runs
    if not varying or not len(runs):
        return []
    done = runs[(runs["status"] == "done") & runs["sensitivity"].isna()]
    span = {
        v: (g["started_at"].min(), g["ended_at"].max())
        for v, g in done.groupby("variant")
        if g["started_at"].notna().any()
    }
    base = reference_variant(res.spec)
    if base not in span:
        return []
    b0, b1 = span[base]
    apart = [v for v, (s0, s1) in span.items() if v != base and (s0 >= b1 or s1 <= b0)]
    if not apart:
        return []
    return [
        f"{', '.join(varying)} {'is' if len(varying) == 1 else 'are'} declared deterministic = "
        f"false (varies by nature), and {len(apart)} variant(s) ran at different times from the "
        f"baseline ({', '.join(sorted(apart)[:6])}{' ...' if len(apart) > 6 else ''}): a difference "
        "in it may be drift of the machine rather than an effect of the variant. The default "
        'interleaved run order avoids this ([run] order = "interleave").'
    ]


def record_notes(res: Any) -> dict[str, Any]:
    """``code_versions`` (always), ``warnings`` (mixed code) and ``notes`` for the result."""
    versions = code_versions(res.runs)
    warnings = []
    if len(versions) > 1:
        parts = [
            f"{v['fingerprint']} ({v['runs']} run(s), first {v['first_seen']}: "
            + ", ".join(k[:8] for k in v["keys"][:8])
            + (" ..." if len(v["keys"]) > 8 else "")
            + ")"
            for v in versions
        ]
        warnings.append(
            f"Mixed code: the runs come from {len(versions)} code versions: "
            + "; ".join(parts)
            + ". Comparisons may mix code changes with the variants' effects; re-run under one "
            "version (ablab run --revision NAME) to separate them."
        )
    return {
        "code_versions": versions,
        "warnings": warnings,
        "notes": declaration_notes(res) + order_notes(res),
    }
