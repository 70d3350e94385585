"""Whole-study checks that need the parsed parts together: setting names, plan size, and runs
that two parts of the study would both plan (same configuration, same seed: the same run key).

Limits (documented in the README, "Study files"): at most :data:`MAX_RUNS` planned runs and
:data:`MAX_SEEDS` seeds per study; seeds are below 2**63 (they are stored as SQLite integers).
"""

from __future__ import annotations

import json
import math
from typing import Any

from ablab.errors import SpecError
from ablab.spec.model import BASELINE, StudySpec, apply_overrides, flatten

MAX_RUNS = 100_000
MAX_SEEDS = 10_000
MAX_SEED_VALUE = 2**63 - 1


def check_setting_names(baseline: dict[str, Any], where: str) -> None:
    """Refuse a baseline in which two settings have the same dotted name.

    ``"optim.lr" = 0.1`` (a quoted key with a dot) and ``[optim] lr = 0.1`` both have the dotted
    name ``optim.lr``; overrides, factors and sensitivity keys name settings by that dotted name,
    so with both present an override could not say which one it changes.
    """
    seen: dict[str, tuple[str, ...]] = {}
    stack: list[tuple[dict[str, Any], tuple[str, ...]]] = [(baseline, ())]
    while stack:
        node, path = stack.pop()
        for k, v in node.items():
            p = (*path, k)
            if isinstance(v, dict) and v:
                stack.append((v, p))
                continue
            name = ".".join(p)
            if name in seen and seen[name] != p:
                a, b = (" -> ".join(repr(x) for x in q) for q in (seen[name], p))
                raise SpecError(
                    f"{where}: [baseline] has two settings named '{name}' ({a} and {b})",
                    hint="rename one: overrides name a setting by its dotted name, so these "
                    "two cannot be told apart",
                )
            seen[name] = p


def check_seeds(v: Any, where: str, key: str = "seeds") -> None:
    """Bound a seed count or list before anything is built from it."""
    n = v if isinstance(v, int) else len(v) if isinstance(v, list) else 0
    if n > MAX_SEEDS:
        raise SpecError(
            f"{where}: {key} = {n:,} seeds; a study has at most {MAX_SEEDS:,}",
            hint="a few to a few dozen seeds per variant is the usual range",
        )
    if isinstance(v, list):
        big = [s for s in v if isinstance(s, int) and s > MAX_SEED_VALUE]
        if big:
            raise SpecError(f"{where}: {key}: seed {big[0]} is too large (at most 2**63 - 1)")


def planned_runs(spec: StudySpec) -> int:
    """An upper bound of the study's planned runs, computed without building the plan."""
    d = spec.design
    if d.type in ("factorial", "fractional"):
        configs = math.prod(len(levels) for levels in d.factors.values())
    elif d.type == "path":
        n = len(d.target)
        configs = n * (n + 1) // 2 + 1  # the ablation path tries each remaining change per step
    else:
        configs = len(spec.variants)
    settings = 1 + sum(len(v) for v in spec.sensitivity.values())
    return configs * settings * len(spec.seeds) * (spec.split_seeds or 1)


def check_plan_size(spec: StudySpec, where: str) -> None:
    n = planned_runs(spec)
    if n > MAX_RUNS:
        raise SpecError(
            f"{where}: the study plans {n:,} runs (configurations x sensitivity settings x "
            f"seeds x split seeds); ablab runs at most {MAX_RUNS:,} per study",
            hint="use fewer factors, levels or seeds (a fractional design needs fewer runs), "
            "or split the study into several files",
        )


def check_sensitivity(spec: StudySpec, where: str) -> None:
    """Refuse a [sensitivity] setting that would plan a run the study already plans.

    A run's key is a hash of its configuration and seed, so two planned runs with the same
    configuration are one run: the store keeps one row, the second label never gets its result
    and the study never completes. This happens when an ablation or a design factor changes the
    key a [sensitivity] varies (at that setting the variant becomes the baseline), or when a
    sensitivity value equals a variant's own configuration.
    """
    if not spec.sensitivity:
        return
    factors = set(spec.design.factors)
    for key in spec.sensitivity:
        if key in factors:
            raise SpecError(
                f"{where}: [sensitivity] {key} is also a [design] factor",
                hint="vary it in one place: as a factor (its levels are already analysed) "
                "or in [sensitivity]",
            )
        for name, override in spec.variants.items():
            if key in {k.lstrip("+") for k in override}:
                raise SpecError(
                    f"{where}: [sensitivity] {key} is also changed by the ablation '{name}': "
                    f"at each sensitivity value '{name}' would become the same run as "
                    f"'{BASELINE}'",
                    hint=f"remove {key} from [sensitivity], or run the ablation '{name}' in "
                    "a study of its own",
                )
    if spec.design.type in ("factorial", "fractional"):
        return  # the design's configurations are checked when the plan is expanded
    seen: dict[str, str] = {_blob(spec.resolved(n)): f"variant '{n}'" for n in spec.variants}
    base_flat = flatten(spec.baseline)
    for key, values in spec.sensitivity.items():
        for v in values:
            if base_flat.get(key, object()) == v:
                continue  # the baseline's own value is the main study (see plan.expand)
            for name in spec.variants:
                blob = _blob(apply_overrides(spec.resolved(name), {key: v}))
                label = f"[sensitivity] {key} = {v!r} of variant '{name}'"
                if blob in seen:
                    raise SpecError(
                        f"{where}: {label} is the same configuration as {seen[blob]}, so the "
                        "two would be one run",
                        hint=f"remove {v!r} from [sensitivity] {key}",
                    )
                seen[blob] = label


def _blob(cfg: dict[str, Any]) -> str:
    return json.dumps(cfg, sort_keys=True, default=str)


def check_revision(name: Any, where: str = "revision") -> str:
    """A revision name becomes a folder of the store (``runs/REVISION/KEY``): 1-100 characters,
    no '/' or '\\', no ':' and no control characters, not starting with '.' (so never '.' or
    '..'). Names ablab itself writes ('main', or what ``--revision`` was given) all pass."""
    ok = (
        isinstance(name, str)
        and 0 < len(name) <= 100
        and not name.startswith(".")
        and not any(c in name for c in "/\\:")
        and all(c.isprintable() for c in name)
        and name.strip() == name
    )
    if not ok:
        raise SpecError(
            f"{where}: {name!r} is not a revision name",
            hint="use letters, digits, '-', '_', '.', '+' (no '/', not starting with '.')",
        )
    return name
