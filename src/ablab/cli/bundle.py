"""`ablab export` and `ablab import`: publishable study bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import console, err_console, load, safe


def export(
    study_file: Annotated[Path, typer.Argument(help="The study file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The bundle to write (.zip).")],
    store: Annotated[Path | None, typer.Option("--store", help="Store directory.")] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Revision to export (default: newest).")
    ] = None,
    with_artifacts: Annotated[
        bool,
        typer.Option("--with-artifacts", help="Include the runs' checkpoints (sizes listed)."),
    ] = False,
) -> None:
    """Write a self-contained bundle: study file and code, plan, records, an installable lock file,
    a Dockerfile, RO-Crate metadata, report, README."""
    from ablab.verify.bundle import export_bundle

    spec, st = load(study_file, store)
    manifest = export_bundle(spec, st, output, revision, with_artifacts=with_artifacts)
    console.print(
        safe(
            f"wrote {output} ({len(manifest['files'])} files, study {manifest['study']}, "
            f"revision {manifest['revision']})"
        ),
        highlight=False,
    )


def import_(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by ablab export.")],
    store: Annotated[
        Path | None, typer.Option("--store", help="Store directory to load the records into.")
    ] = None,
    study_file: Annotated[
        Path | None,
        typer.Option("--study", help="Load into this study file's store (where report reads)."),
    ] = None,
) -> None:
    """Load a bundle's run records into a store (validated first; nothing is written on error).

    The default store is the one `ablab report` reads: the --study file's, else $ABLAB_STORE or
    ./.ablab (the store of a study file in the current folder)."""
    from ablab.cli.common import default_store_here
    from ablab.verify.bundle import import_bundle

    if store is None:
        store = load(study_file)[1].dir if study_file is not None else default_store_here()
    before = _revisions(store)
    study = import_bundle(bundle, store)
    mine = [r for n, r in before if n == study["name"] and r != study["revision"]]
    if mine and (study["name"], study["revision"]) not in before:
        err_console.print(
            safe(
                f"note: {store} already held study {study['name']} (revision {mine[-1]}); "
                f"`ablab run` on your study file keeps continuing the revision recorded from "
                f"it; see the imported one with --revision {study['revision']}"
            ),
            highlight=False,
        )
    console.print(
        safe(f"imported study {study['name']} (revision {study['revision']}) into {store}"),
        highlight=False,
    )


def _revisions(store: Path) -> list[tuple[str, str]]:
    """(study, revision) pairs already in ``store`` (nothing is created when it has no database)."""
    if not (store / "ablab.db").is_file():
        return []
    from ablab.store.db import Store

    with Store(store) as st:
        return [(s["name"], s["revision"]) for s in st.studies()]
