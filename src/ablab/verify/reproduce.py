"""Re-execute recorded runs and verify their numbers (``ablab reproduce``, ``check-determinism``)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablab.errors import AblabError, StoreError
from ablab.spec.model import StudySpec
from ablab.store.db import Store
from ablab.verify.compare import (
    BIT_IDENTICAL,
    DETERMINISM_CHECKLIST,
    DIFFERS,
    compare_data,
    compare_environment,
    compare_metrics,
    compare_series,
    likely_causes,
    metric_rules,
    verdict,
)


@dataclass
class Verification:
    key: str
    variant: str
    seed: int
    verdict: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.verdict != DIFFERS


def spec_of_study(study: dict[str, Any], source: Path | None = None) -> StudySpec:
    """The StudySpec a study revision was recorded with (its file must still exist for file entries)."""
    from ablab.spec.load import parse_study

    src = source or (Path(study["source"]) if study.get("source") else None)
    return parse_study(study["spec"], source=src)


def select_runs(
    store: Store,
    study: dict[str, Any],
    *,
    variant: str | None = None,
    seed: int | None = None,
    sample: int | None = None,
    sample_seed: int = 0,
) -> list[dict[str, Any]]:
    """Done runs to verify: all matching ``variant``/``seed``, or ``sample`` of them drawn
    reproducibly (one per variant first when ``sample`` allows, then at random)."""
    done = [r for r in store.runs(study["id"]) if r["status"] == "done"]
    if variant is not None:
        variants = sorted({r["variant"] for r in done})
        if variant not in variants:
            from ablab.errors import did_you_mean

            raise AblabError(
                f"study '{study['name']}' has no done run of variant '{variant}'",
                hint=did_you_mean(variant, variants)
                or f"variants with done runs: {', '.join(variants)}",
            )
        done = [r for r in done if r["variant"] == variant]
    if seed is not None:
        done = [r for r in done if r["seed"] == seed]
        if not done:
            raise AblabError(
                f"study '{study['name']}' has no done run with seed {seed}"
                + (f" for variant '{variant}'" if variant else "")
            )
    if not done:
        raise StoreError(
            f"study '{study['name']}' has no done runs to reproduce", hint="run the study first"
        )
    if sample is None or sample >= len(done):
        return done
    if sample < 1:
        raise AblabError(f"--sample {sample}: expected at least 1")
    rng = random.Random(sample_seed)
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for r in done:
        by_variant.setdefault(r["variant"], []).append(r)
    picked: list[dict[str, Any]] = []
    if sample >= len(by_variant):
        picked = [rng.choice(rs) for rs in by_variant.values()]
    rest = [r for r in done if r not in picked]
    picked += rng.sample(rest, sample - len(picked))
    return sorted(picked, key=lambda r: r["id"])


def reproduce(
    store: Store,
    spec: StudySpec,
    runs: list[dict[str, Any]],
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    jobs: int = 1,
    record: bool = True,
) -> list[Verification]:
    """Re-execute ``runs`` with their recorded config and seed in fresh workers, into a scratch
    folder (never the original run's), compare, and record a verification per run."""
    from ablab.analysis.derive import derive_metrics
    from ablab.execute.engine import build_task
    from ablab.execute.oneshot import execute_tasks
    from ablab.runtime.codeprint import changed_files, relative_files, run_fingerprint
    from ablab.runtime.entry import spec_fingerprint
    from ablab.runtime.provenance import environment, environment_hash
    from ablab.store.records import add_verification

    scratch = store.dir / "scratch" / time.strftime("%Y%m%d-%H%M%S")
    tasks = []
    for r in runs:
        full = store.find_run(r["key"], study_id=r.get("study_id"))
        tasks.append(build_task(spec, full, scratch / r["key"]))
    outcomes = execute_tasks(tasks, slots=jobs)
    env_now = environment(spec.root)
    env_id = store.environment_id(env_now, environment_hash(env_now))
    code_now = spec_fingerprint(spec)  # declared code (+ a by-value function's sources)
    results = []
    for r, out in zip(runs, outcomes, strict=True):
        full = store.find_run(r["key"], study_id=r.get("study_id"))
        post = {
            m.name for m in spec.metrics if m.reduce == "post"
        }  # attached after the run, not re-run
        # compare every declared metric as the report derives it, plus the raw returns
        was = derive_metrics(spec.metrics, full["metrics"], full["series"])
        if out["status"] == "done":
            out = {**out, "metrics": derive_metrics(spec.metrics, out["metrics"], out["series"])}
            now_fp = run_fingerprint(
                code_now["files"], relative_files(out.get("code_files") or {}, spec.root)
            )
        else:
            now_fp = code_now
        recorded_files = full.get("code_files") or full["study"]["fingerprint"].get("files", {})
        modified, removed = changed_files(recorded_files, spec.root)
        details = _compare(
            {
                **full,
                "metrics": {
                    k: v
                    for k, v in was.items()
                    if k not in post and not (v != v and k not in full["metrics"])
                },
            },
            out,
            rtol,
            atol,
            env_now,
            now_fp["digest"],
            metric_rules(spec),
            code_changed=bool(modified or removed),
        )
        details["code"]["changed_files"] = sorted(modified + removed)
        details["scratch_dir"] = str(scratch / r["key"])
        v = Verification(r["key"], r["variant"], r["seed"], details["verdict"], details)
        if record:
            add_verification(store, full["id"], "reproduce", v.verdict, details, env_id)
        results.append(v)
    return results


def _compare(
    full: dict[str, Any],
    out: dict[str, Any],
    rtol: float,
    atol: float,
    env_now: dict[str, Any],
    code_now: str,
    rules: dict[str, dict[str, Any]] | None = None,
    code_changed: bool = False,
) -> dict[str, Any]:
    if out["status"] != "done":
        return {
            "verdict": DIFFERS,
            "error": out["error"],
            "traceback": out.get("traceback"),
            "causes": ["the re-run failed: " + str(out["error"])],
            "rtol": rtol,
            "atol": atol,
            "code": {"recorded": full.get("code_digest"), "now": code_now, "changed": code_changed},
        }
    m = compare_metrics(full["metrics"], out["metrics"], rtol, atol, rules)
    s = compare_series(full["series"], [tuple(x) for x in out["series"]], rtol, atol, rules)
    d = compare_data(full["data"], out["data"])
    e = compare_environment(full["environment"], env_now)
    v = verdict(m, s)
    if v != DIFFERS and (d["changed"] or d["missing"]):
        v = DIFFERS
    return {
        "verdict": v,
        "metrics": m,
        "series": s,
        "data": d,
        "environment": e,
        "code": {"recorded": full.get("code_digest"), "now": code_now, "changed": code_changed},
        "causes": likely_causes(v, d, code_changed, e),
        "rtol": rtol,
        "atol": atol,
    }


def check_determinism(spec: StudySpec, variant: str, seed: int, scratch: Path) -> dict[str, Any]:
    """Run one run twice back to back (each in a fresh worker) and compare the two."""
    from ablab.execute.engine import build_task
    from ablab.execute.oneshot import execute_tasks
    from ablab.plan.designs_bridge import plan_for

    plan = plan_for(spec)
    match = [
        r for r in plan.runs if r.variant == variant and r.seed == seed and r.sensitivity is None
    ]
    if not match:
        from ablab.errors import did_you_mean

        variants = plan.variants()
        raise AblabError(
            f"{spec.label}: no run of variant '{variant}' with seed {seed}",
            hint=did_you_mean(variant, variants)
            or f"variants: {', '.join(variants)}; seeds: {list(spec.seeds)}",
        )
    r = match[0]
    row = {
        "key": r.key,
        "variant": r.variant,
        "seed": r.seed,
        "split_seed": r.split_seed,
        "config": r.config,
        "attempts": 1,
    }
    outs = [execute_tasks([build_task(spec, row, scratch / f"{r.key}-{i}")])[0] for i in (1, 2)]
    failed = [o for o in outs if o["status"] != "done"]
    if failed:
        return {
            "key": r.key,
            "variant": variant,
            "seed": seed,
            "deterministic": False,
            "error": failed[0]["error"],
            "traceback": failed[0].get("traceback"),
        }
    from ablab.analysis.derive import derive_metrics

    rules = {k: {**r, "tolerance": None} for k, r in metric_rules(spec).items()}  # bit for bit
    m = compare_metrics(
        *(derive_metrics(spec.metrics, o["metrics"], o["series"]) for o in outs), 0.0, 0.0, rules
    )
    s = compare_series(
        [tuple(x) for x in outs[0]["series"]],
        [tuple(x) for x in outs[1]["series"]],
        0.0,
        0.0,
        rules,
    )
    ok = m["identical"] and s["identical"]
    first_metric = next(
        (row for row in m["rows"] if row["status"] not in ("identical", "varies by nature")), None
    )
    return {
        "key": r.key,
        "variant": variant,
        "seed": seed,
        "deterministic": ok,
        "verdict": BIT_IDENTICAL if ok else DIFFERS,
        "metrics": m,
        "series": s,
        "first_metric": first_metric,
        "first_series_point": s["first_difference"],
        "varies_by_nature": sorted(set(m["varies"]) | set(s["varies"])),
        "checklist": [] if ok else DETERMINISM_CHECKLIST,
    }
