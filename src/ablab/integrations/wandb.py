"""``ablab sync --to wandb``: an ablab study as Weights & Biases runs (extra ``ablab-toolkit[wandb]``).

Layout in W&B: one project (default: the study's name); the runs of a study revision form the
group ``<study>@<revision>``. Each finished ablab run becomes a W&B run (job type
``ablab-run``, name ``<variant>/seed<N>``) whose config is the flattened resolved config plus
an ``ablab`` section (key, variant, seed, revision, study, code, status, error); its logged
series are logged with their steps and its metric values go to the run summary; a failed run
finishes with exit code 1. One more run per revision (job type ``ablab-summary``) carries the
analysis: per-variant mean/std/CI, delta, p and Holm-adjusted p in its summary, the verdicts
in its config, and the Markdown/HTML reports and analysis JSON as an artifact.

W&B has no query in offline mode, so idempotency rests on a small ledger beside W&B's own
files (``<dir>/wandb/ablab-sync.json``: run key -> digest and W&B run id): a second sync sends
nothing for unchanged runs; a run whose record changed (re-done) is sent again as a new W&B run
(id ``<key>-<digest prefix>``), and the ledger points at it. Offline runs (``WANDB_MODE=offline``,
the default here unless ``--online``) are uploaded later with ``wandb sync <dir>/wandb``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ablab.errors import AblabError
from ablab.integrations.mlflow import SyncCounts
from ablab.integrations.payload import RunRecord, SyncPayload

LEDGER = "ablab-sync.json"


def _import():
    try:
        import wandb
    except ImportError as e:
        raise AblabError(
            f"ablab sync --to wandb needs wandb, which is not installed ({e.name or e})",
            hint="pip install 'ablab-toolkit[wandb]'",
        ) from None
    return wandb


def _ledger(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_ledger(path: Path, data: dict[str, Any]) -> None:
    """Atomic replace, so an interrupted sync never leaves a torn ledger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ablab-sync-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def sync_wandb(
    payload: SyncPayload,
    *,
    project: str | None = None,
    directory: str | Path = ".",
    online: bool = False,
) -> SyncCounts:
    """Write ``payload`` as W&B runs (offline unless ``online``) under ``directory``/wandb."""
    wandb = _import()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    project = project or _safe(payload.study)
    ledger_path = directory / "wandb" / LEDGER
    ledger = _ledger(ledger_path)
    scope = ledger.setdefault(f"{project}|{payload.study}|{payload.revision}", {})
    mode = "online" if online else os.environ.get("WANDB_MODE", "offline")
    group = f"{payload.study}@{payload.revision}"
    counts = SyncCounts()
    for rec in payload.runs:
        before = scope.get(rec.key)
        if before and before.get("digest") == rec.digest:
            counts.unchanged += 1
            continue
        run_id = _safe(f"{rec.key}-{payload.revision}-{rec.digest[:8]}")
        _send_run(wandb, rec, project=project, group=group, run_id=run_id, mode=mode, d=directory)
        if before:
            counts.updated += 1
        else:
            counts.created += 1
        scope[rec.key] = {"digest": rec.digest, "id": run_id}
        _save_ledger(ledger_path, ledger)  # after each run: an interrupted sync resumes
    summary = payload.summary
    before = scope.get("__summary__")
    if summary is None:
        counts.summary = "none"
    elif before and before.get("digest") == summary.digest:
        counts.summary = "unchanged"
    else:
        run_id = _safe(f"summary-{payload.revision}-{summary.digest[:8]}")
        config = {"ablab": {**summary.tags}}
        with wandb.init(
            project=project,
            id=run_id,
            name=f"{payload.study} @ {payload.revision}",
            group=group,
            job_type="ablab-summary",
            config=config,
            mode=mode,
            dir=str(directory),
            reinit="create_new",
            settings=_settings(wandb),
        ) as run:
            run.summary.update(summary.metrics)
            art = wandb.Artifact(
                _safe(f"report-{payload.study}-{payload.revision}"), "ablab-report"
            )
            with tempfile.TemporaryDirectory() as tmp:
                for name, text in (
                    ("report.md", summary.markdown),
                    ("report.html", summary.html),
                    ("analysis.json", json.dumps(summary.analysis, indent=2)),
                ):
                    (Path(tmp) / name).write_text(text, encoding="utf-8")
                    art.add_file(str(Path(tmp) / name))
                run.log_artifact(art)
        counts.summary = "updated" if before else "created"
        scope["__summary__"] = {"digest": summary.digest, "id": run_id}
        _save_ledger(ledger_path, ledger)
    return counts


def _send_run(wandb, rec: RunRecord, *, project, group, run_id, mode, d: Path) -> None:
    ablab_cfg = {k.removeprefix("ablab."): v for k, v in rec.tags.items()}
    if rec.error:
        ablab_cfg["error"] = rec.error[:5000]
    with wandb.init(
        project=project,
        id=run_id,
        name=rec.name,
        group=group,
        job_type="ablab-run",
        config={**rec.params, "ablab": ablab_cfg},
        mode=mode,
        dir=str(d),
        reinit="create_new",
        settings=_settings(wandb),
    ) as run:
        by_step: dict[int, dict[str, float]] = {}
        for name, points in rec.series.items():
            key = name if name not in rec.metrics else f"{name}/series"
            for step, value in points:
                by_step.setdefault(step, {})[key] = value
        for step in sorted(s for s in by_step if s >= 0):  # W&B steps only increase
            run.log(by_step[step], step=step)
        run.summary.update(rec.metrics)
        if rec.status != "done":
            run.finish(exit_code=1)


def _settings(wandb):
    """Quiet (ablab prints its own summary line), no system metrics, no code or git capture:
    the run's provenance is ablab's, already recorded."""
    return wandb.Settings(
        silent=True, console="off", x_disable_stats=True, save_code=False, disable_git=True
    )


def _safe(text: str) -> str:
    """W&B ids and names of artifacts: letters, digits, ``-_.``."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:120]
