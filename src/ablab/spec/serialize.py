"""StudySpec <-> plain dict (what the store records, and what a bundle carries)."""

from __future__ import annotations

import dataclasses
from typing import Any

from ablab.spec.model import MetricSpec, StudySpec


def metric_to_decl(m: MetricSpec) -> str | dict[str, Any]:
    """A metric as the study file declares it (the short form when only the direction is set)."""
    decl: dict[str, Any] = {"direction": m.direction}
    if m.reduce != "value":
        decl["reduce"] = m.reduce
    if m.margin is not None:
        decl["margin"] = m.margin
    if not m.deterministic:
        decl["deterministic"] = False
    if m.tolerance is not None:
        decl["tolerance"] = {"rtol": m.tolerance[0], "atol": m.tolerance[1]}
    if m.series is not None:
        decl["series"] = m.series
    if m.pattern is not None:
        decl["pattern"] = m.pattern
    return m.direction if len(decl) == 1 else decl


def spec_to_dict(spec: StudySpec) -> dict[str, Any]:
    """A JSON-ready dict in the study-file shape; ``parse_study`` reads it back."""
    metrics = {m.name: metric_to_decl(m) for m in spec.metrics}
    run = {
        k: (list(v) if isinstance(v, tuple) else v)
        for k, v in dataclasses.asdict(spec.run).items()
        if v is not None
        and v != ()
        and not (k == "deterministic" and v is True)
        and not (k == "order" and v == "interleave")
    }
    out: dict[str, Any] = {
        "name": spec.name,
        "entry": spec.entry_spec.to_dict() if spec.entry_spec is not None else spec.entry,
        "seeds": list(spec.seeds),
        "metrics": metrics,
        "baseline": spec.baseline,
        "ablations": {k: v for k, v in spec.variants.items() if k != "baseline"},
        "run": run,
    }
    d = spec.design
    if d.type != "one-at-a-time":
        design: dict[str, Any] = {"type": d.type}
        if d.factors:
            design["factors"] = {k: list(v) for k, v in d.factors.items()}
        if d.resolution:
            design["resolution"] = {3: "III", 4: "IV", 5: "V"}[d.resolution]
        if d.target:
            design["target"] = d.target
        out["design"] = design
    if spec.sensitivity:
        out["sensitivity"] = {k: list(v) for k, v in spec.sensitivity.items()}
    if spec.adaptive:
        out.update(seeds="auto", min_seeds=spec.min_seeds, max_seeds=len(spec.seeds))
    if spec.split_seeds is not None:
        out["split_seeds"] = spec.split_seeds
    return out
