"""`ablab sync`: push a study's runs and its analysis into MLflow or Weights & Biases."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import console, load
from ablab.cli.runcmd import StoreOpt, StudyArg
from ablab.errors import AblabError

TARGETS = ("mlflow", "wandb")


def sync(
    study_file: StudyArg,
    to: Annotated[str, typer.Option("--to", help="mlflow or wandb.")],
    store: StoreOpt = None,
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri", help="MLflow tracking URI (default: MLflow's, e.g. sqlite:///mlflow.db)."
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option("--experiment", help="MLflow experiment (default: the study's name)."),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", help="W&B project (default: the study's name).")
    ] = None,
    wandb_dir: Annotated[
        Path | None,
        typer.Option(
            "--wandb-dir", help="Where W&B writes its files (default: beside the study file)."
        ),
    ] = None,
    online: Annotated[
        bool, typer.Option("--online", help="W&B: send to the server now instead of offline files.")
    ] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Sync this revision (default: newest).")
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level of the verdicts.")
    ] = 0.05,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep syncing while the study runs (Ctrl-C to stop).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between syncs with --watch.")
    ] = 10.0,
) -> None:
    """One tracker run per finished ablab run, and a summary run per study revision carrying
    ablab's statistics (mean, CI, verdict) and its reports. Idempotent: a second sync sends
    only what changed."""
    from ablab.errors import did_you_mean

    if to not in TARGETS:
        raise AblabError(
            f"--to {to!r} is not a tracker ablab syncs to",
            hint=did_you_mean(to, TARGETS) or f"choose one of {', '.join(TARGETS)}",
        )
    if interval <= 0:
        raise AblabError(f"--interval {interval}: expected a positive number of seconds")
    if to == "mlflow":
        from ablab.integrations.mlflow import _import

        _import()  # a missing package is an error before anything is read
    else:
        from ablab.integrations.wandb import _import

        _import()
    spec, st = load(study_file, store)
    while True:
        pending = _sync_once(
            spec, st, to, uri, experiment, project, wandb_dir, online, revision, alpha
        )
        if not watch or pending == 0:
            return
        console.print(
            f"{pending} runs not finished yet; next sync in {interval:g} s", highlight=False
        )
        time.sleep(interval)


def _sync_once(spec, st, to, uri, experiment, project, wandb_dir, online, revision, alpha) -> int:
    from ablab.integrations.payload import build_payload
    from ablab.termtext import safe

    payload = build_payload(spec, st, revision, alpha=alpha)
    if to == "mlflow":
        from ablab.integrations.mlflow import sync_mlflow

        counts = sync_mlflow(payload, uri=uri, experiment=experiment)
        import mlflow

        where = f"MLflow {uri or mlflow.get_tracking_uri()}, experiment '{experiment or spec.name}'"
    else:
        from ablab.integrations.wandb import sync_wandb

        directory = wandb_dir if wandb_dir is not None else spec.root
        counts = sync_wandb(payload, project=project, directory=directory, online=online)
        where = f"W&B project '{project or spec.name}', files in {directory}/wandb"
    console.print(safe(f"{spec.name} @ {payload.revision}: {counts.line(where)}"), highlight=False)
    return payload.pending
