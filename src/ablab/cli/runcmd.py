"""`ablab run`, `ablab status`, `ablab runs`, `ablab show`."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from ablab.cli.common import (
    clean,
    console,
    dumps,
    err_console,
    find_store,
    fmt_num,
    load,
    safe,
    table_console,
)
from ablab.errors import AblabError, StoreError

StudyArg = Annotated[
    Path, typer.Argument(help="The study file (.toml, .yaml).", show_default=False)
]
StoreOpt = Annotated[
    Path | None,
    typer.Option("--store", help="Store directory (default: .ablab beside the study file)."),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option("--revision", help="The study revision to read (default: the newest)."),
]


def _study(spec, st, revision: str | None):
    """The study record (None when never run); an unknown --revision lists the existing ones."""
    if revision is None:
        return st.study(spec.name)
    from ablab.results import study_revision

    return study_revision(spec, st, revision)


def run(
    study_file: StudyArg,
    jobs: Annotated[
        int | None, typer.Option("-j", "--jobs", help="Parallel workers (default: one per core).")
    ] = None,
    store: StoreOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log lines only, no progress bar.")
    ] = False,
    executor: Annotated[str, typer.Option("--executor", help="local or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (auto, or host:port).")
    ] = None,
    allow_code_change: Annotated[
        bool,
        typer.Option("--allow-code-change", help="Mix results of changed code (recorded per run)."),
    ] = False,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Run as a fresh, named revision of the study.")
    ] = None,
    race: Annotated[
        bool,
        typer.Option(
            "--race",
            help="Race the variants: drop clearly worse ones round by round (docs/adaptive.md).",
        ),
    ] = False,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="Run only this variant (repeat for several)."),
    ] = None,
    seed: Annotated[
        list[int] | None,
        typer.Option("--seed", help="Run only this seed (repeat for several)."),
    ] = None,
    show_output: Annotated[
        bool,
        typer.Option(
            "--show-output",
            help="Stream what the runs print (to stderr, each line prefixed by its run). "
            "It is always kept per run: ablab logs KEY.",
        ),
    ] = False,
) -> None:
    """Run every variant of a study over its seeds. Runs already done are skipped.

    What a run prints goes to stdout.log/stderr.log in its run folder, never to this command's
    output (see it with ablab logs KEY, or live with --show-output)."""
    from ablab.api import run as run_study
    from ablab.runtime.capture import LogTailer
    from ablab.spec.load import load_study

    spec = load_study(study_file)
    bar: Progress | None = None
    task = None
    t0 = time.monotonic()

    tailer = LogTailer() if show_output else None

    def on_progress(p) -> None:
        nonlocal task
        if tailer is not None:
            for label, stream, text in tailer.poll(p.running_dirs):
                for line in text.splitlines():
                    err_console.print(
                        f"[dim]{safe(label)} {stream}:[/] {safe(line)}", highlight=False
                    )
        for line in p.last:
            (bar.console if bar else console).print(
                safe(line), style="red" if line.startswith("failed") else None, highlight=False
            )
        if bar is not None:
            if task is None:
                task = bar.add_task(
                    safe(spec.name), total=p.total, completed=p.done + p.failed, stats=""
                )
            bar.update(
                task,
                completed=p.done + p.failed,
                stats=f"[green]{p.done} done[/] [red]{p.failed} failed[/] {p.running} running "
                f"{p.remaining - p.running} queued",
            )

    if not quiet and console.is_terminal:
        bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        bar.start()
    from ablab.execute.stopping import install_stop_handlers, restore_handlers

    handlers = install_stop_handlers()  # SIGTERM/SIGHUP before or between rounds: exit 128+sig
    try:
        try:
            summary = run_study(
                spec,
                jobs=jobs,
                store=store,
                revision=revision,
                executor=executor,
                address=address,
                allow_code_change=allow_code_change,
                race=race,
                on_progress=on_progress,
                variants=variant or None,
                seeds=seed or None,
            )
        finally:
            restore_handlers(handlers)
            if bar is not None:
                bar.stop()
    except KeyboardInterrupt as e:  # outside the engine's loop (it handles its own)
        err_console.print("interrupted before or between rounds of runs; nothing was running")
        raise typer.Exit(128 + getattr(e, "signum", 2)) from None
    took = time.monotonic() - t0
    msg = (
        f"{summary.study}: {summary.done}/{summary.total} done, {summary.failed} failed"
        f" ({summary.skipped} already done before), {took:.1f} s; store {summary.store}"
    )
    if summary.interrupted:
        import signal as _signal

        how = _signal.Signals(summary.signal or 2).name
        err_console.print(
            f"[yellow]interrupted[/] ({how}): {safe(msg)}. The {summary.left_interrupted} "
            "run(s) that were running are marked interrupted; run the same command again to "
            "finish.",
            highlight=False,
        )
    else:
        console.print(safe(msg), highlight=False)
    for note in summary.notes:
        console.print(safe(note), highlight=False)
    if summary.elsewhere:
        who = ", ".join(f"pid {d['pid']} on {d['host']}" for d in summary.elsewhere_drivers)
        console.print(
            f"{summary.elsewhere} run(s) are still running under another ablab driver "
            f"({safe(who or 'unknown')}), which is still working on them; this one is done. "
            f"Follow them with: ablab status {safe(str(study_file))}",
            highlight=False,
        )
    for f in summary.failures[:10]:
        err_console.print(
            safe(f"failed {f['variant']} seed {f['seed']} [{f['key']}]: {f['error']}"),
            style="red",
            highlight=False,
            soft_wrap=True,
        )
    if summary.failures:
        err_console.print(
            f"see a run's traceback with: ablab show KEY --study {safe(study_file)}",
            highlight=False,
        )
    raise typer.Exit(summary.exit_code)


def status(study_file: StudyArg, store: StoreOpt = None, revision: RevisionOpt = None) -> None:
    """Per variant, how many runs are pending, running, done, failed or interrupted."""
    from ablab.api import current_plan

    spec, st = load(study_file, store)
    study = _study(spec, st, revision)
    plan = current_plan(spec, st, study["id"] if study else None)
    if study:
        st.requeue_orphans()  # `running` only for runs a live driver owns
    rows = st.runs(study["id"], [r.key for r in plan.runs]) if study else []
    by_key = {r["key"]: r["status"] for r in rows}
    states = ("pending", "running", "done", "failed", "interrupted")
    table = Table(
        title=Text(
            clean(spec.name + (f" (revision {study['revision']})" if study else " (not run yet)"))
        )
    )
    table.add_column("variant")
    for s in states:
        table.add_column(s, justify="right")
    totals = dict.fromkeys(states, 0)
    for variant in plan.variants():
        counts = dict.fromkeys(states, 0)
        for r in plan.runs:
            if r.variant == variant:
                counts[by_key.get(r.key, "pending")] += 1
        for s in states:
            totals[s] += counts[s]
        table.add_row(Text(clean(variant)), *(str(counts[s]) for s in states))
    table.add_row("[bold]total", *(f"[bold]{totals[s]}" for s in states))
    table_console().print(table)


RUN_FIELDS = ("key", "variant", "seed", "status", "attempts", "metrics", "wall_seconds", "error")


def runs(
    study_file: StudyArg,
    store: StoreOpt = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    revision: RevisionOpt = None,
) -> None:
    """One row per run of the study. The JSON form is documented in the README."""
    from ablab.api import current_plan
    from ablab.results import derived_metrics

    if format not in ("table", "json", "csv"):
        raise AblabError(
            f"--format {format!r} is not a runs format", hint="choose table, json or csv"
        )
    spec, st = load(study_file, store)
    study = _study(spec, st, revision)
    plan = current_plan(spec, st, study["id"] if study else None)
    if study:
        st.requeue_orphans()  # `running` only for runs a live driver owns
    rows = st.runs(study["id"]) if study else []
    recorded = {r["key"]: r for r in rows}
    derived = derived_metrics(spec, st, study["id"], rows) if study else {}
    out = []
    for p in plan.runs:
        r = recorded.get(p.key)
        out.append(
            {
                "key": p.key,
                "variant": p.variant,
                "seed": p.seed,
                "split_seed": p.split_seed,
                "sensitivity": p.sensitivity,
                "status": r["status"] if r else "pending",
                "attempts": r["attempts"] if r else 0,
                "metrics": derived.get(p.key, r["metrics"]) if r else {},
                "wall_seconds": r["wall_seconds"] if r else None,
                "error": r["error"] if r else None,
                "order": r["run_order"] if r else None,
                "code_digest": r["code_digest"] if r else None,
                "revision": study["revision"] if study else None,
            }
        )
    metric_names = [m.name for m in spec.metrics]
    if format == "json":
        print(dumps(out))
    elif format == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            ["key", "variant", "seed", "status", "attempts", *metric_names, "wall_seconds", "error"]
        )
        for r in out:
            w.writerow(
                [
                    r["key"],
                    clean(r["variant"]),
                    r["seed"],
                    r["status"],
                    r["attempts"],
                    *(r["metrics"].get(m, "") for m in metric_names),
                    r["wall_seconds"] or "",
                    clean(r["error"] or ""),
                ]
            )
        print(buf.getvalue(), end="")
    else:
        table = Table(
            title=Text(clean(spec.name + (f" (revision {study['revision']})" if study else "")))
        )
        for c in ("key", "variant", "seed", "status", "att", *metric_names, "wall s", "error"):
            table.add_column(Text(clean(c)), overflow="fold")
        for r in out:
            color = {"done": "green", "failed": "red", "running": "yellow"}.get(r["status"], "")
            table.add_row(
                Text(clean(r["key"])),
                Text(clean(r["variant"])),
                str(r["seed"]),
                Text(clean(r["status"]), style=color),
                str(r["attempts"]),
                *(Text(clean(fmt_num(r["metrics"].get(m)))) for m in metric_names),
                fmt_num(r["wall_seconds"], 3),
                Text(clean(r["error"] or "")[:60]),
            )
        table_console().print(table)


def show(
    key: Annotated[str, typer.Argument(help="A run key (or a unique prefix of one).")],
    study: Annotated[
        Path | None, typer.Option("--study", help="The study file whose store to use.")
    ] = None,
    store: StoreOpt = None,
    revision: RevisionOpt = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the whole record as JSON.")
    ] = False,
) -> None:
    """Everything recorded about one run: config, metrics, series, provenance, resources, error.

    Reads the --study file's store, --store, or the current folder's .ablab (and says which).
    Run keys are the same in every revision of a study: all revisions holding the key are
    listed; --revision picks one (default: the newest)."""
    from ablab.store.db import Store
    from ablab.store.records import revisions_with_key

    where = find_store(store, study)
    st = Store(where)
    st.requeue_orphans()  # a dead driver's run is not shown `running`
    holders = revisions_with_key(st, key)
    if revision is not None:
        chosen = [h for h in holders if h["revision"] == revision]
        if not chosen:
            revs = sorted({h["revision"] for h in holders}) or sorted(
                {s["revision"] for s in st.studies()}
            )
            raise StoreError(
                f"no run with key '{key}' in revision '{revision}' of the store {st.dir}",
                hint=f"revisions holding it: {', '.join(revs)}"
                if holders
                else f"existing revisions: {', '.join(revs) or 'none'}",
            )
        r = st.find_run(key, study_id=chosen[-1]["study_id"])
    else:
        r = st.find_run(key)
    if r is None:
        raise StoreError(
            f"no run with key '{key}' in the store {st.dir}",
            hint="list keys with: ablab runs STUDY_FILE (or point at another store with "
            "--study STUDY_FILE / --store DIR)",
        )
    from ablab.store.records import verifications as load_verifications

    verifications = [v for v in load_verifications(st, key=r["key"]) if v["run_id"] == r["id"]]
    revisions = [h["revision"] for h in holders if h["study"] == r["study"]["name"]]
    derived = _derived(r, study)
    if json_out:
        r = dict(r)
        r["verifications"] = verifications
        r["store"] = str(st.dir)
        r["revisions"] = revisions
        r["derived_metrics"] = derived
        print(dumps(r))
        return
    console.rule(
        safe(f"run {r['key']}  ({r['study']['name']} / {r['variant']} / seed {r['seed']})")
    )
    console.print(safe(f"store: {st.dir}"), highlight=False)
    console.print(
        f"status: [bold]{safe(r['status'])}[/]  attempts: {r['attempts']}  "
        f"revision: {safe(r['study']['revision'])}  "
        f"order: {r.get('run_order') if r.get('run_order') is not None else '-'}",
        highlight=False,
    )
    if len(revisions) > 1:
        console.print(
            safe(
                f"revisions holding this key: {', '.join(revisions)} "
                "(pick one with --revision NAME)"
            ),
            highlight=False,
        )
    console.print("config:", safe(dumps(r["config"])), highlight=False)
    if r["metrics"] or derived:
        t = Table("metric", "value", "from")
        for k, v in r["metrics"].items():
            t.add_row(Text(clean(k)), Text(clean(fmt_num(v, 6))), "returned")
        for k, (v, how) in derived.items():
            t.add_row(Text(clean(k)), Text(clean(fmt_num(v, 6))), Text(clean(how)))
        console.print(t)
    if r["series"]:
        t = Table("series", "points", "first", "last", "min", "max")
        names = dict.fromkeys(n for n, _, _ in r["series"])
        for n in names:
            vals = [v for m, _, v in r["series"] if m == n]
            t.add_row(
                Text(clean(n)),
                str(len(vals)),
                fmt_num(vals[0]),
                fmt_num(vals[-1]),
                fmt_num(min(vals)),
                fmt_num(max(vals)),
            )
        console.print(t)
    if r["data"]:
        for n, (kind, h) in r["data"].items():
            console.print(safe(f"data {n} ({kind}): sha256 {h}"), highlight=False)
    for n, p in r["artifacts"].items():
        console.print(safe(f"artifact {n}: {p}"), highlight=False)
    console.print(
        safe(
            f"resources: wall {fmt_num(r['wall_seconds'])} s, cpu {fmt_num(r['cpu_seconds'])} s, "
            f"peak RSS {fmt_num(r['peak_rss_mb'])} MB, peak GPU {fmt_num(r['peak_gpu_mb'])} MB, "
            f"threads {r['threads']}, host {r['host']}, started {_ts(r['started_at'])}, "
            f"ended {_ts(r['ended_at'])}"
        ),
        highlight=False,
    )
    env = r["environment"] or {}
    if env:
        git = env.get("git") or {}
        console.print(
            safe(
                f"environment: Python {env.get('python')} on {env.get('platform')}, "
                f"{env.get('cpu')} ({env.get('cores')} cores), torch {env.get('torch')}, "
                f"ablab {env.get('ablab')}, {len(env.get('packages', {}))} packages; "
                f"git {str(git.get('commit', '-'))[:12]}{' (dirty)' if git.get('dirty') else ''}"
            ),
            highlight=False,
        )
    files = r.get("code_files") or {}
    console.print(
        safe(
            f"code fingerprint: {r['code_digest']}"
            + (f" ({len(files)} source file(s): {', '.join(sorted(files)[:6])})" if files else "")
        ),
        highlight=False,
    )
    from ablab.runtime.capture import log_paths

    logs = [p for p in log_paths(st.run_dir(r["key"], r["study"]["revision"])) if p.is_file()]
    if logs:
        console.print(
            safe(f"output: {', '.join(str(p) for p in logs)} (ablab logs {r['key'][:12]})"),
            highlight=False,
        )
    for v in verifications:
        console.print(
            safe(f"verification ({v['kind']}) {_ts(v['created_at'])}: {v['verdict']}"),
            highlight=False,
        )
    if r["error"]:
        console.print(f"[red]error:[/] {safe(r['error'])}", highlight=False)
    if r["traceback"]:
        console.print(clean(r["traceback"]), highlight=False, markup=False)


def _derived(r: dict, study_file: Path | None) -> dict[str, tuple[float, str]]:
    """Metrics reduced from the run's series, with the --study file's declarations (else those
    recorded with the study): name -> (value, "last of SERIES" / "best of SERIES")."""
    from ablab.analysis.derive import derive_metrics, series_of

    try:
        if study_file is not None:
            from ablab.spec.load import load_study

            metrics = load_study(study_file).metrics
        else:
            from ablab.spec.load import parse_study

            metrics = parse_study(r["study"]["spec"]).metrics
    except AblabError:
        return {}
    reduced = [m for m in metrics if m.reduce in ("last", "best")]
    if not reduced or r["status"] != "done":
        return {}
    values = derive_metrics(reduced, r["metrics"], r["series"])
    return {m.name: (values[m.name], f"{m.reduce} of {series_of(m)}") for m in reduced}


def _ts(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"
