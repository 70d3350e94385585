"""`ablab logs KEY`: what a run printed (its stdout and stderr, kept in its run folder)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import err_console, find_store
from ablab.errors import AblabError, StoreError


def logs(
    key: Annotated[str, typer.Argument(help="A run key (or a unique prefix of one).")],
    study: Annotated[
        Path | None, typer.Option("--study", help="The study file whose store to use.")
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help="Store directory.")] = None,
    revision: Annotated[
        str | None, typer.Option("--revision", help="The study revision (default: the newest).")
    ] = None,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", help="Only the last N lines of each stream.")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new output while the run is running."),
    ] = False,
    stream: Annotated[
        str, typer.Option("--stream", help="stdout, stderr or both (default).")
    ] = "both",
) -> None:
    """Print a run's captured output: its stdout to stdout, its stderr to stderr.

    Example: ablab logs 3f2a9c --study examples/digits/study.toml --tail 20"""
    from ablab.runtime.capture import LogTailer, log_paths, read_tail
    from ablab.store.db import Store
    from ablab.store.records import revisions_with_key

    if stream not in ("stdout", "stderr", "both"):
        raise AblabError(f"--stream {stream!r}: expected stdout, stderr or both")
    if tail is not None and tail < 0:
        raise AblabError(f"--tail {tail}: expected a number of lines >= 0")
    st = Store(find_store(store, study))
    holders = revisions_with_key(st, key)
    if revision is not None:
        holders = [h for h in holders if h["revision"] == revision]
    if not holders:
        where = f" in revision '{revision}'" if revision else ""
        raise StoreError(
            f"no run with key '{key}'{where} in the store {st.dir}",
            hint="list keys with: ablab runs STUDY_FILE (or use --study FILE / --store DIR)",
        )
    if len({h["key"] for h in holders}) > 1:
        raise StoreError(
            f"run key prefix '{key}' is ambiguous: "
            f"{', '.join(sorted({h['key'] for h in holders})[:5])}",
            hint="give more characters of the key",
        )
    h = holders[-1]
    run_dir = st.run_dir(h["key"], h["revision"])
    paths = dict(zip(("stdout", "stderr"), log_paths(run_dir), strict=True))
    wanted = ["stdout", "stderr"] if stream == "both" else [stream]
    if not follow and not any(paths[s].is_file() for s in wanted):
        err_console.print(
            f"run {h['key']} ({h['status']}) has no captured output in {run_dir}", highlight=False
        )
        return
    outs = {"stdout": sys.stdout, "stderr": sys.stderr}
    if not follow:
        for s in wanted:
            outs[s].write(read_tail(paths[s], tail))
            outs[s].flush()
        return
    tailer = LogTailer()
    for s in wanted:  # start from the last --tail lines, then follow
        if tail is not None and paths[s].is_file():
            outs[s].write(read_tail(paths[s], tail))
            tailer.skip_to_end(paths[s])
    try:
        while True:
            for _label, s, text in tailer.poll({h["key"]: run_dir}):
                if s in wanted:
                    outs[s].write(text)
                    outs[s].flush()
            row = st.find_run(h["key"], study_id=h["study_id"])
            if row is None or row["status"] not in ("running", "pending", "interrupted"):
                for _label, s, text in tailer.poll({}):
                    if s in wanted:
                        outs[s].write(text)
                return
            time.sleep(0.5)
    except KeyboardInterrupt:
        return
