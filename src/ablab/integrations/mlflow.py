"""``ablab sync --to mlflow``: an ablab study as MLflow runs (optional extra ``ablab-toolkit[mlflow]``).

Layout in MLflow: one experiment (default: the study's name); per study revision one parent
run, ``<study> @ <revision>`` (tag ``ablab.kind = summary``), that carries ablab's analysis
(per-variant mean/std/CI, delta, p and Holm-adjusted p as metrics ``<variant>/<metric>/<stat>``;
verdicts as tags ``verdict.<variant>.<metric>``; the Markdown and HTML reports and the analysis
JSON as artifacts); under it one child run per finished ablab run with tags ``ablab.key``,
``ablab.variant``, ``ablab.seed``, ``ablab.revision``, ``ablab.study``, ``ablab.code``, params =
the flattened resolved config, metrics = the run's metric values and its logged series (with
their steps), status FINISHED/FAILED and the error as the tag ``ablab.error``.

Idempotent: every run carries the digest of what was sent (tag ``ablab.digest``); a second sync
sends nothing for unchanged runs, replaces a run whose record changed (a re-done run: the old
MLflow run is deleted, a new one created) and adds new runs. Written with MLflow's
``MlflowClient`` only; MLflow is imported lazily.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from ablab.errors import AblabError
from ablab.integrations.payload import RunRecord, SyncPayload, param_str

_BAD = re.compile(r"[^A-Za-z0-9_\-. :/]")
PARAM_LIMIT = 6000  # MLflow's limit on a param value (characters)
TAG_LIMIT = 5000


@dataclass
class SyncCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    summary: str = "unchanged"  # "created" | "updated" | "unchanged" | "none"

    def line(self, where: str) -> str:
        return (
            f"{self.created} runs created, {self.updated} updated, {self.unchanged} unchanged; "
            f"summary run {self.summary} ({where})"
        )


def _import():
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient
    except ImportError as e:
        raise AblabError(
            f"ablab sync --to mlflow needs MLflow, which is not installed ({e.name or e})",
            hint="pip install 'ablab-toolkit[mlflow]'  (or pip install mlflow-skinny sqlalchemy alembic)",
        ) from None
    return MlflowClient


def metric_key(name: str) -> str:
    """A name MLflow accepts as a metric key (letters, digits, ``_-. :/``)."""
    return _BAD.sub("_", name)[:250] or "_"


def _ms(t: float | None) -> int:
    return int((t if t is not None else time.time()) * 1000)


def sync_mlflow(
    payload: SyncPayload, *, uri: str | None = None, experiment: str | None = None
) -> SyncCounts:
    """Push ``payload`` into the MLflow tracking store at ``uri`` (MLflow's default when None)."""
    client_cls = _import()
    from mlflow.entities import Metric, Param, RunTag

    try:
        client = client_cls(tracking_uri=uri)
        name = experiment or payload.study
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(name)
        existing = _existing_runs(client, exp_id, payload)
    except AblabError:
        raise
    except Exception as e:  # MLflow raises its own exception types for bad URIs, locked dbs, ...
        raise AblabError(
            f"MLflow at {uri or 'its default tracking URI'}: {type(e).__name__}: {e}",
            hint="give a tracking URI that works, e.g. --uri sqlite:///mlflow.db",
        ) from e
    try:
        return _sync(client, exp_id, existing, payload, Metric, Param, RunTag)
    except AblabError:
        raise
    except Exception as e:
        if type(e).__name__ != "MlflowException":
            raise
        raise AblabError(
            f"MLflow refused part of the sync: {e}",
            hint="what was sent before stays; fix the cause and sync again (unchanged runs are skipped)",
        ) from e


def _sync(client, exp_id, existing, payload: SyncPayload, Metric, Param, RunTag) -> SyncCounts:
    counts = SyncCounts()
    parent = existing.pop(("summary", ""), None)
    parent_id = parent.info.run_id if parent is not None else None
    if parent_id is None:
        run = client.create_run(
            exp_id,
            run_name=f"{payload.study} @ {payload.revision}",
            tags=_summary_tags(payload),
        )
        parent_id = run.info.run_id
        counts.summary = "created"
    summary = payload.summary
    if summary is None:
        counts.summary = "none" if counts.summary != "created" else "created"
    elif parent is None or parent.data.tags.get("ablab.digest") != summary.digest:
        if counts.summary != "created":
            counts.summary = "updated"
        step = sum(r.status == "done" for r in payload.runs)
        now = _ms(None)
        metrics = [Metric(metric_key(k), v, now, step) for k, v in summary.metrics.items()]
        tags = [RunTag(k, v[:TAG_LIMIT]) for k, v in summary.tags.items()]
        tags.append(RunTag("ablab.digest", summary.digest))
        _log_batch(client, parent_id, metrics=metrics, tags=tags)
        client.log_text(parent_id, summary.markdown, "report.md")
        client.log_text(parent_id, summary.html, "report.html")
        client.log_text(parent_id, json.dumps(summary.analysis, indent=2), "analysis.json")
    # the parent stays RUNNING while the study has unfinished runs
    client.set_terminated(parent_id, "FINISHED" if payload.pending == 0 else "RUNNING")

    for rec in payload.runs:
        old = existing.pop(("run", rec.key), None)
        if old is not None and old.data.tags.get("ablab.digest") == rec.digest:
            if old.data.tags.get("mlflow.parentRunId") != parent_id:
                client.set_tag(old.info.run_id, "mlflow.parentRunId", parent_id)
            counts.unchanged += 1
            continue
        if old is not None:
            client.delete_run(old.info.run_id)
            counts.updated += 1
        else:
            counts.created += 1
        _create_run(client, exp_id, parent_id, rec, Metric, Param, RunTag)
    return counts


def _summary_tags(payload: SyncPayload) -> dict[str, str]:
    return {
        "ablab.kind": "summary",
        "ablab.study": payload.study,
        "ablab.revision": payload.revision,
        "ablab.code": payload.code,
    }


def _existing_runs(client, exp_id: str, payload: SyncPayload) -> dict[tuple[str, str], Any]:
    """This study revision's runs already in the experiment: ("summary", "") and ("run", key)."""
    found: dict[tuple[str, str], Any] = {}
    token = None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        for run in page:
            tags = run.data.tags
            if tags.get("ablab.study") != payload.study:
                continue
            if tags.get("ablab.revision") != payload.revision:
                continue
            if tags.get("ablab.kind") == "summary":
                found[("summary", "")] = run
            elif "ablab.key" in tags:
                found[("run", tags["ablab.key"])] = run
        token = getattr(page, "token", None)
        if not token:
            return found


def _create_run(client, exp_id: str, parent_id: str, rec: RunRecord, Metric, Param, RunTag):
    tags = {**rec.tags, "ablab.digest": rec.digest, "mlflow.parentRunId": parent_id}
    if rec.error:
        tags["ablab.error"] = rec.error[:TAG_LIMIT]
    run = client.create_run(exp_id, start_time=_ms(rec.started_at), tags=tags, run_name=rec.name)
    rid = run.info.run_id
    end = _ms(rec.ended_at)
    params = [Param(metric_key(k), param_str(v)[:PARAM_LIMIT]) for k, v in rec.params.items()]
    metrics = []
    for name, points in rec.series.items():
        key = metric_key(name if name not in rec.metrics else f"{name}/series")
        metrics.extend(Metric(key, value, end, step) for step, value in points)
    for name, value in rec.metrics.items():
        metrics.append(Metric(metric_key(name), value, end, 0))
    _log_batch(client, rid, metrics=metrics, params=params)
    client.set_terminated(rid, "FINISHED" if rec.status == "done" else "FAILED", end_time=end)


def _log_batch(client, run_id: str, *, metrics=(), params=(), tags=()) -> None:
    """MLflow takes at most 1000 metrics, 100 params and 100 tags per batch."""
    metrics, params, tags = list(metrics), list(params), list(tags)
    while metrics or params or tags:
        client.log_batch(run_id, metrics=metrics[:1000], params=params[:100], tags=tags[:100])
        metrics, params, tags = metrics[1000:], params[100:], tags[100:]
