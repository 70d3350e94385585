"""Turn a study's design into its plan.

- one-at-a-time: the baseline and each ``[ablations]`` variant;
- factorial / fractional: one variant per cell, named by its factor levels (the cell equal to the
  baseline configuration is named ``baseline``);
- path: the Fawcett–Hoos ablation path, which grows as results arrive (:func:`path_plan`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ablab.plan.expand import Plan, expand, variant_configs
from ablab.spec.model import BASELINE, StudySpec, apply_overrides, flatten


def cell_name(levels: Mapping[str, Any]) -> str:
    return ",".join(
        f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in levels.items()
    )


def design_configs(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """variant name -> resolved configuration for factorial and fractional designs."""
    from ablab.plan.designs import fractional_factorial, full_factorial

    d = spec.design
    if d.type == "factorial":
        rows = full_factorial(d.factors)
    else:
        rows = fractional_factorial(d.factors, d.resolution or 4).rows
    base = json.dumps(spec.baseline, sort_keys=True, default=str)
    configs: dict[str, dict[str, Any]] = {}
    for row in rows:
        cfg = apply_overrides(spec.baseline, row)
        name = BASELINE if json.dumps(cfg, sort_keys=True, default=str) == base else cell_name(row)
        configs[name] = cfg
    return configs


def design_info(spec: StudySpec) -> dict[str, Any] | None:
    """The planned design as the report carries it (``effects.design``): for a fractional
    design its generators, defining relation, resolution and alias chains
    (``FractionalDesign.to_dict()``, which says when the full factorial was run because no
    fraction of the requested resolution exists); for a factorial design that it is full.
    ``max_order`` ([design] max_order) asks the ANOVA to pool higher interactions."""
    d = spec.design
    info = _planned(spec)
    if info is not None and d.max_order is not None:
        info["max_order"] = d.max_order
    return info


def _planned(spec: StudySpec) -> dict[str, Any] | None:
    from ablab.plan.designs import fractional_factorial

    d = spec.design
    if d.type == "fractional":
        return fractional_factorial(d.factors, d.resolution or 4).to_dict()
    if d.type == "factorial":
        runs = 1
        for levels in d.factors.values():
            runs *= len(levels)
        return {
            "type": "full factorial",
            "notation": " x ".join(str(len(levels)) for levels in d.factors.values()),
            "runs": runs,
            "resolution": None,
            "resolution_roman": "full",
            "generators": [],
            "defining_relation": [],
            "alias_chains": [],
        }
    return None


def reference_variant(spec: StudySpec) -> str:
    """The variant others are compared with: ``baseline``, or the first cell of a design that
    does not contain the baseline configuration."""
    if spec.design.type in ("factorial", "fractional"):
        configs = design_configs(spec)
        return BASELINE if BASELINE in configs else next(iter(configs))
    return BASELINE


def plan_for(
    spec: StudySpec,
    known: list[tuple[dict[str, Any], float]] | None = None,
    seeds_for: dict[str, int] | None = None,
) -> Plan:
    """The study's plan. For a path design, ``known`` (configuration, mean primary metric) pairs
    decide how far the path has grown; ``seeds_for`` (variant -> seeds) is the adaptive
    allocation so far (default: every variant at every seed)."""
    t = spec.design.type
    if t in ("factorial", "fractional"):
        return expand(spec, design_configs(spec), seeds_for)
    if t == "path":
        return expand(spec, path_plan(spec, known or [])[0], seeds_for)
    return expand(spec, variant_configs(spec), seeds_for)


def path_plan(
    spec: StudySpec, known: list[tuple[dict[str, Any], float]]
) -> tuple[dict[str, dict[str, Any]], bool]:
    """(variant -> config for every configuration the path needs so far, whether it is complete).

    ``known``: configurations with results (mean of the primary metric over seeds). Each
    configuration is named by the parameters it changed from the baseline."""
    from ablab.plan.designs import ablation_path_step, config_key

    target = apply_overrides(spec.baseline, spec.design.target)
    results = {config_key(c): v for c, v in known}
    step = ablation_path_step(spec.baseline, target, results, spec.primary_metric.direction)
    base_flat = flatten(spec.baseline)
    configs: dict[str, dict[str, Any]] = {}
    for cfg in [spec.baseline, *(c for c, _ in known), *step.to_run]:
        changed = sorted(p for p, v in flatten(cfg).items() if base_flat.get(p, object()) != v)
        configs.setdefault(BASELINE if not changed else "path:" + "+".join(changed), cfg)
    return configs, step.done
