"""Adaptive seed allocation in the run engine: run a round, decide, run the next round.

The decisions are ``ablab.analysis.adaptive.allocate_seeds`` (``seeds = "auto"``) and
``ablab.analysis.adaptive_race.race_round`` (``--race``): pure and stateless, so an
interrupted study resumes where it stopped (the allocation is recomputed from the store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ablab.execute.base import Executor
from ablab.execute.engine import Progress, RunSummary, execute
from ablab.spec.model import StudySpec
from ablab.store.db import Store


def seed_results(spec: StudySpec, st: Store, study_id: int) -> dict[str, dict[int, float]]:
    """variant -> {seed: primary metric} over the done runs of the main study."""
    import math

    from ablab.results import derived_metrics

    primary = spec.primary_metric.name
    rows = st.runs(study_id)
    derived = derived_metrics(spec, st, study_id, rows)  # series metrics: reduced from the store
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        v = derived.get(r["key"], {}).get(primary, math.nan)
        if r["status"] == "done" and r["sensitivity"] is None and not math.isnan(v):
            out.setdefault(r["variant"], {})[r["seed"]] = v
    return out


def recorded_seed_counts(spec: StudySpec, st: Store, study_id: int) -> dict[str, int]:
    """Seeds allocated so far per variant: at least ``min_seeds``, more where runs were added."""
    from ablab.plan.designs_bridge import plan_for

    counts = {v: spec.min_seeds for v in plan_for(spec).variants()}
    index = {s: i for i, s in enumerate(spec.seeds)}
    for r in st.runs(study_id):
        if r["variant"] in counts and r["seed"] in index:
            counts[r["variant"]] = max(counts[r["variant"]], index[r["seed"]] + 1)
    return counts


def run_adaptive(
    spec: StudySpec,
    st: Store,
    record: dict[str, Any],
    make: Callable[[], Executor],
    *,
    race: bool = False,
    alpha: float = 0.05,
    on_progress: Callable[[Progress], None] | None = None,
) -> RunSummary:
    """Rounds of runs until the allocation (or the race) is done; workers stay warm between rounds."""
    from ablab.analysis.adaptive import allocate_seeds, runs_saved
    from ablab.analysis.adaptive_race import race_round
    from ablab.plan.designs_bridge import plan_for, reference_variant

    max_seeds = len(spec.seeds)
    min_seeds = min(spec.min_seeds, max_seeds)
    seeds_for = {
        v: min(n, max_seeds) for v, n in recorded_seed_counts(spec, st, record["id"]).items()
    }
    direction = spec.primary_metric.direction
    baseline = reference_variant(spec)
    alive = None
    ex = make()
    try:
        while True:
            summary = execute(
                spec,
                plan_for(spec, seeds_for=seeds_for),
                st,
                record,
                ex,
                on_progress=on_progress,
                close=False,
            )
            if summary.interrupted or summary.failed:
                return summary
            results = seed_results(spec, st, record["id"])
            results = {v: results.get(v, {}) for v in seeds_for}
            if race:
                dec: Any = race_round(
                    results,
                    direction=direction,
                    alpha=alpha,
                    alive=alive,
                    min_seeds=min_seeds,
                    max_seeds=max_seeds,
                )
                alive = dec.alive
            else:
                dec = allocate_seeds(
                    results,
                    baseline=baseline,
                    direction=direction,
                    alpha=alpha,
                    min_seeds=min_seeds,
                    max_seeds=max_seeds,
                )
            grow = {
                v: min(t, max_seeds)
                for v, t in dec.target.items()
                if v in seeds_for and t > seeds_for[v]
            }
            if dec.done or not grow:
                break
            seeds_for.update(grow)
    finally:
        ex.shutdown()
    if race:
        summary.notes.append(
            f"race: best {dec.best}; still racing {', '.join(dec.alive)}; "
            f"dropped {', '.join(dec.eliminated) or 'none'}"
        )
    else:
        summary.notes.append(
            "adaptive verdicts: " + ", ".join(f"{v} {d}" for v, d in dec.verdicts.items())
        )
    summary.notes.append(
        f"adaptive allocation {runs_saved(results, fixed_seeds=max_seeds)} against "
        f"{max_seeds} seeds per variant"
    )
    return summary
