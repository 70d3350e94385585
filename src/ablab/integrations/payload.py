"""What ``ablab sync`` sends to a tracker: one record per finished ablab run and one summary
per study revision, built from the store through ``ablab.results`` (no SQL here).

Both trackers (MLflow, W&B) get the same payload, so they show the same numbers as
``ablab report``. Each record carries a ``digest`` (SHA-256 of its canonical JSON), which the
trackers store beside the run: a second sync compares digests and sends only what changed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ablab.jsonutil import clean_json
from ablab.spec.model import flatten

#: Run statuses that are synced (a pending, running or interrupted run has nothing final).
SYNCED_STATUSES = ("done", "failed")


@dataclass
class RunRecord:
    """One finished ablab run, as a tracker run."""

    key: str
    variant: str
    seed: int
    status: str  # "done" | "failed"
    error: str | None
    params: dict[str, Any]  # flattened resolved config (JSON values)
    metrics: dict[str, float]  # the run's metric values (as the report sees them)
    series: dict[str, list[tuple[int, float]]]  # logged series: name -> [(step, value)]
    tags: dict[str, str]
    started_at: float | None
    ended_at: float | None
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclass
class SummaryRecord:
    """The analysis of one study revision: metrics, tags and the reports as artifacts."""

    metrics: dict[str, float]
    tags: dict[str, str]
    analysis: dict[str, Any]
    markdown: str
    html: str
    digest: str = ""


@dataclass
class SyncPayload:
    study: str
    revision: str
    code: str  # short code fingerprint of the revision
    runs: list[RunRecord] = field(default_factory=list)
    summary: SummaryRecord | None = None
    pending: int = 0  # runs not finished yet (pending/running/interrupted)


def param_str(v: Any) -> str:
    """A config value as a tracker param string (JSON for anything but a string)."""
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def digest_of(obj: Any) -> str:
    text = json.dumps(clean_json(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _finite(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def build_payload(spec, store, revision: str | None = None, alpha: float = 0.05) -> SyncPayload:
    """Everything recorded for ``spec`` in ``store`` (newest revision unless given)."""
    from ablab.results import load_results

    res = load_results(spec, store, revision)
    study = res.study
    fp = study.get("fingerprint") or {}
    code = str(fp.get("digest") or study.get("code_digest") or "")[:16]
    payload = SyncPayload(study=spec.name, revision=str(study["revision"]), code=code)
    rows = {r["key"]: r for r in store.runs(study["id"])}
    metric_names = [m.name for m in spec.metrics]
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for rec in res.series.itertuples(index=False):
        value = _finite(rec.value)
        if value is not None:
            series.setdefault(rec.key, {}).setdefault(str(rec.name), []).append(
                (int(rec.step), value)
            )
    for r in res.runs.to_dict("records"):
        status = str(r["status"])
        if status not in SYNCED_STATUSES:
            payload.pending += 1
            continue
        row = rows.get(r["key"], {})
        metrics = {}
        if status == "done":
            for m in metric_names:
                value = _finite(r.get(m))
                if value is not None:
                    metrics[m] = value
        tags = {
            "ablab.key": str(r["key"]),
            "ablab.variant": str(r["variant"]),
            "ablab.seed": str(int(r["seed"])),
            "ablab.revision": payload.revision,
            "ablab.study": payload.study,
            "ablab.code": str(row.get("code_digest") or code)[:16],
            "ablab.status": status,
        }
        if r.get("sensitivity") not in (None, "") and not (
            isinstance(r.get("sensitivity"), float) and math.isnan(r["sensitivity"])
        ):
            tags["ablab.sensitivity"] = str(r["sensitivity"])
        rec = RunRecord(
            key=str(r["key"]),
            variant=str(r["variant"]),
            seed=int(r["seed"]),
            status=status,
            error=(str(row.get("error")) if row.get("error") else None),
            params=clean_json(flatten(row.get("config") or {})),
            metrics=metrics,
            series={k: sorted(v) for k, v in series.get(r["key"], {}).items()},
            tags=tags,
            started_at=_finite(row.get("started_at")),
            ended_at=_finite(row.get("ended_at")),
        )
        rec.digest = digest_of(
            [rec.status, rec.error, rec.params, rec.metrics, rec.series, rec.tags, rec.ended_at]
        )
        payload.runs.append(rec)
    if any(r.status == "done" for r in payload.runs):
        payload.summary = _summary(res, payload, alpha)
    return payload


def _summary(res, payload: SyncPayload, alpha: float) -> SummaryRecord:
    from ablab.report import render
    from ablab.results import analyze_results

    analysis = clean_json(analyze_results(res, alpha=alpha))
    metrics: dict[str, float] = {}
    tags = {
        "ablab.study": payload.study,
        "ablab.revision": payload.revision,
        "ablab.code": payload.code,
        "ablab.kind": "summary",
        "ablab.primary_metric": str(analysis.get("primary_metric")),
        "ablab.baseline": str(analysis.get("baseline")),
    }
    for v in analysis.get("variants", []):
        name = v["name"]
        metrics[f"{name}/n"] = float(v.get("n") or 0)
        metrics[f"{name}/failed"] = float(v.get("failed") or 0)
        for m, s in (v.get("metrics") or {}).items():
            for stat in ("mean", "std", "ci_low", "ci_high"):
                value = _finite(s.get(stat))
                if value is not None:
                    metrics[f"{name}/{m}/{stat}"] = value
        for m, c in (v.get("vs_baseline") or {}).items():
            for stat in ("delta", "p_value", "p_adjusted"):
                value = _finite(c.get(stat))
                if value is not None:
                    metrics[f"{name}/{m}/{stat}"] = value
            if c.get("verdict") is not None:
                tags[f"verdict.{name}.{m}"] = str(c["verdict"])
    md = render(analysis, "md")
    html = render(analysis, "html", runs=res.runs, series=res.series, provenance=res.provenance)
    rec = SummaryRecord(metrics=metrics, tags=tags, analysis=analysis, markdown=md, html=html)
    rec.digest = digest_of([metrics, tags, analysis])
    return rec
