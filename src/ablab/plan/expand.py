"""Expand a study into its runs: variants x seeds (x sensitivity settings x split seeds)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ablab.errors import PlanError
from ablab.spec.checks import MAX_RUNS
from ablab.spec.model import BASELINE, StudySpec, apply_overrides, flatten


@dataclass(frozen=True)
class RunSpec:
    """One run: a variant's resolved configuration at one seed.

    ``key`` is stable: the same entry, configuration and seeds always give the same key.
    """

    key: str
    variant: str
    config: dict[str, Any] = field(hash=False)
    seed: int
    split_seed: int | None = None
    sensitivity: str | None = None  # label of the sensitivity setting, e.g. "lr=0.1"


@dataclass(frozen=True)
class Plan:
    runs: tuple[RunSpec, ...]

    def __len__(self) -> int:
        return len(self.runs)

    def variants(self) -> list[str]:
        return list(dict.fromkeys(r.variant for r in self.runs))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def run_key(entry: str, config: dict[str, Any], seed: int, split_seed: int | None = None) -> str:
    """Stable run key: the first 16 hex digits of SHA-256 over (entry, resolved config, seed)."""
    payload: dict[str, Any] = {"entry": entry, "config": config, "seed": seed}
    if split_seed is not None:
        payload["split_seed"] = split_seed
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def variant_configs(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """Every variant's resolved configuration, in declaration order."""
    return {name: spec.resolved(name) for name in spec.variants}


def expand(
    spec: StudySpec,
    configs: dict[str, dict[str, Any]] | None = None,
    seeds_for: dict[str, int] | None = None,
) -> Plan:
    """The study's plan.

    ``configs`` (variant -> resolved configuration) defaults to the one-at-a-time variants of
    the spec; designs that form variants differently pass their own. ``seeds_for`` (variant ->
    number of seeds) limits a variant to the first seeds (adaptive allocation).
    """
    configs = configs if configs is not None else variant_configs(spec)
    settings: list[tuple[str | None, dict[str, Any]]] = [(None, {})]
    base_flat = flatten(spec.baseline)
    for key, values in spec.sensitivity.items():
        # the baseline's own value is the main study: not run twice
        settings += [(f"{key}={v}", {key: v}) for v in values if base_flat.get(key, object()) != v]
    split_seeds: list[int | None] = (
        [None] if spec.split_seeds is None else list(range(spec.split_seeds))
    )
    n_seeds = len(spec.seeds) if seeds_for is None else max(seeds_for.values(), default=0)
    total = len(settings) * len(configs) * min(n_seeds, len(spec.seeds)) * len(split_seeds)
    if total > MAX_RUNS:
        raise PlanError(
            f"{spec.label}: the study plans {total:,} runs; ablab runs at most {MAX_RUNS:,} per "
            "study",
            hint="use fewer factors, levels or seeds, or split the study into several files",
        )
    runs = []
    for label, override in settings:
        for variant, config in configs.items():
            cfg = apply_overrides(config, override) if override else config
            n = len(spec.seeds) if seeds_for is None else seeds_for.get(variant, 0)
            for seed in spec.seeds[:n]:
                for split in split_seeds:
                    runs.append(
                        RunSpec(
                            run_key(spec.entry, cfg, seed, split), variant, cfg, seed, split, label
                        )
                    )
    _refuse_shared_keys(spec, runs)
    return Plan(tuple(runs))


def _refuse_shared_keys(spec: StudySpec, runs: list[RunSpec]) -> None:
    """Two planned runs with one key would be one run recorded under one label: the other
    never completes and its analysis is silently lost. The study loader refuses the usual causes
    (see ``spec.checks.check_sensitivity``); this is the backstop for designs."""
    seen: dict[str, RunSpec] = {}
    for r in runs:
        first = seen.setdefault(r.key, r)
        if first is not r:
            what = [
                f"'{x.variant}'" + (f" at [sensitivity] {x.sensitivity}" if x.sensitivity else "")
                for x in (first, r)
            ]
            raise PlanError(
                f"{spec.label}: {what[1]} is the same configuration as {what[0]} (seed {r.seed}), "
                "so the two would be one run",
                hint="remove the [sensitivity] value or the ablation that repeats the other",
            )


__all__ = ["BASELINE", "Plan", "RunSpec", "canonical_json", "expand", "run_key", "variant_configs"]
