"""A study's results as tables: the bridge from the store to ``analysis`` and ``report``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ablab.errors import StoreError
from ablab.spec.model import StudySpec
from ablab.store.db import Store

#: The run columns of :attr:`StudyResults.runs` before the metric columns.
RUN_FIELDS = (
    "key",
    "variant",
    "seed",
    "split_seed",
    "sensitivity",
    "status",
    "attempts",
    "wall_seconds",
    "cpu_seconds",
    "peak_rss_mb",
    "error",
    "started_at",
    "ended_at",
    "code_digest",
    "run_order",
)


@dataclass
class StudyResults:
    spec: StudySpec
    study: dict[str, Any]  # the store's study row
    runs: Any  # pandas DataFrame: key, variant, seed, split_seed, sensitivity, status, attempts, ..., one column per metric
    series: Any  # pandas DataFrame: key, variant, seed, name, step, value
    configs: dict[str, dict[str, Any]]
    provenance: dict[str, Any]
    run_configs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run key -> its config


def load_results(spec: StudySpec, store: Store, revision: str | None = None) -> StudyResults:
    """Everything recorded for ``spec`` (its newest revision unless ``revision`` is given)."""
    import pandas as pd

    from ablab.api import current_plan

    study = study_revision(spec, store, revision)
    plan = current_plan(spec, store, study["id"])
    keys = [r.key for r in plan.runs]
    rows = store.runs(study["id"], keys)
    derived = derived_metrics(spec, store, study["id"], rows)
    metric_names = [m.name for m in spec.metrics]
    records = []
    for r in rows:
        rec = {k: r[k] for k in RUN_FIELDS}
        for m in metric_names:
            rec[m] = derived.get(r["key"], {}).get(m, float("nan"))
        rec.update({k: v for k, v in r["metrics"].items() if k.startswith("cost.")})  # run.measure
        records.append(rec)
    runs_df = pd.DataFrame.from_records(
        records,
        columns=[
            *RUN_FIELDS,
            *metric_names,
            *sorted({k for r in records for k in r if k.startswith("cost.")}),
        ],
    )
    keyset = set(keys)
    series_df = pd.DataFrame.from_records(
        [s for s in store.series(study["id"]) if s[0] in keyset],
        columns=["key", "variant", "seed", "name", "step", "value"],
    )
    configs = {r.variant: r.config for r in plan.runs if r.sensitivity is None}
    env = store.environment(study["environment_id"]) or {}
    data_hashes: dict[str, dict[str, str]] = {}
    for key, name, kind, digest in store.data_hashes(study["id"]):
        if key in keyset:
            data_hashes.setdefault(name, {})[digest] = kind
    provenance = {
        **env,
        "code_fingerprint": study["fingerprint"],
        "data": {n: sorted(d) for n, d in data_hashes.items()},
        "revision": study["revision"],
        "recorded_at": study["created_at"],
    }
    run_configs = {r["key"]: r["config"] for r in rows}
    return StudyResults(spec, study, runs_df, series_df, configs, provenance, run_configs)


def study_revision(spec: StudySpec, store: Store, revision: str | None = None) -> dict[str, Any]:
    """The store's record of ``spec``'s study (its newest revision unless ``revision`` is given);
    an unknown revision is an error that lists the existing ones."""
    study = store.study(spec.name, revision)
    if study is None:
        revs = [s["revision"] for s in store.studies() if s["name"] == spec.name]
        if revision is not None and revs:
            from ablab.errors import did_you_mean

            raise StoreError(
                f"{spec.label}: study '{spec.name}' has no revision '{revision}' in {store.dir}",
                hint=(did_you_mean(revision, revs) or "")
                + f" existing revisions: {', '.join(revs)}".lstrip(),
            )
        raise StoreError(
            f"{spec.label}: no runs recorded for study '{spec.name}' in {store.dir}"
            + (f" (revision '{revision}')" if revision else ""),
            hint=f"run it first: ablab run {spec.source or 'STUDY_FILE'}",
        )
    return study


def derived_metrics(
    spec: StudySpec, store: Store, study_id: int, rows: list[dict[str, Any]] | None = None
) -> dict[str, dict[str, float]]:
    """Run key -> every declared metric of that done run, derived from what it stored (the
    numbers its entry returned, its logged series) with the study's *current* declarations."""
    from ablab.analysis.derive import derive_metrics

    rows = store.runs(study_id) if rows is None else rows
    series: dict[str, list[tuple[str, int, float]]] = {}
    for key, _v, _s, name, step, value in store.series(study_id):
        series.setdefault(key, []).append((name, step, value))
    return {
        r["key"]: derive_metrics(spec.metrics, r["metrics"], series.get(r["key"], []))
        for r in rows
        if r["status"] == "done"
    }


def analyze_results(res: StudyResults, alpha: float = 0.05) -> dict[str, Any]:
    """Run the statistical analysis over recorded results, with the record notes of
    :func:`ablab.results_notes.record_notes` (code versions, changed declarations, run order)."""
    from ablab.results_notes import record_notes

    result = _analyze(res, alpha)
    result.update(record_notes(res))
    return result


def _analyze(res: StudyResults, alpha: float) -> dict[str, Any]:
    from ablab.analysis import analyze
    from ablab.plan.designs_bridge import design_info, reference_variant

    spec = res.spec
    metrics = {
        m.name: {"direction": m.direction, "reduce": m.reduce, "margin": m.margin}
        for m in spec.metrics
    }
    factors = {k: list(v) for k, v in spec.design.factors.items()} or None
    result = analyze(
        res.runs,
        study=spec.name,
        metrics=metrics,
        baseline=reference_variant(spec),
        configs=res.configs,
        alpha=alpha,
        design=spec.design.type,
        factors=factors,
        design_info=design_info(spec),
        adaptive=(
            {"min_seeds": spec.min_seeds, "max_seeds": len(spec.seeds)} if spec.adaptive else None
        ),
    )
    from ablab.analysis.costs import cost_summary
    from ablab.analysis.examples import example_tests

    for key, value in (
        ("costs", cost_summary(res.runs, result)),  # run.measure's cost.* metrics
        (
            "examples",
            example_tests(
                res.series, result["baseline"], alpha, [v["name"] for v in result["variants"]]
            ),
        ),  # run.log_examples
    ):
        if value:
            result[key] = value
    return result


def build_report(
    spec: StudySpec, store: Store, revision: str | None = None, alpha: float = 0.05
) -> tuple[dict[str, Any], StudyResults, list[dict[str, Any]]]:
    """What ``ablab report`` shows: (analysis result with its reproducibility sentence, the
    recorded results, one row per verification)."""
    from ablab.store.records import verifications as load_verifications

    res = load_results(spec, store, revision)
    result = analyze_results(res, alpha=alpha)
    sentence, verifications = summarize_verifications(
        load_verifications(store, study_id=res.study["id"])
    )
    if sentence:
        result["verification"] = sentence
    return result, res, verifications


def summarize_verifications(
    records: list[dict[str, Any]],
) -> tuple[str | None, list[dict[str, Any]]]:
    """A sentence ("3 of 3 verified runs reproduced bit-identically on 2026-11-24, same environment")
    and one short row per verification, from the store's verification records."""
    import time

    if not records:
        return None, []
    rows = []
    for v in records:
        env = v["details"].get("environment") or {}
        same_env = not env.get("differences") and not env.get("packages")
        rows.append(
            {
                "run": v["key"],
                "variant": v["variant"],
                "seed": v["seed"],
                "check": v["kind"],
                "verdict": v["verdict"],
                "date": time.strftime("%Y-%m-%d %H:%M", time.localtime(v["created_at"])),
                "environment": "same" if same_env else "differs",
            }
        )
    latest = {}
    for r in rows:
        if r["check"] == "reproduce":
            latest[r["run"]] = r
    if not latest:
        return None, rows
    vals = list(latest.values())
    bit = sum(r["verdict"] == "reproduced (bit-identical)" for r in vals)
    tol = sum(r["verdict"] == "reproduced (within tolerance)" for r in vals)
    day = max(r["date"] for r in vals)[:10]
    env = (
        "same environment"
        if all(r["environment"] == "same" for r in vals)
        else "environment differed"
    )
    parts = [f"{bit} of {len(vals)} verified runs reproduced bit-identically"]
    if tol:
        parts.append(f"{tol} within tolerance")
    return ", ".join(parts) + f" (latest check {day}, {env})", rows
