"""The run engine: claim runs from the store, hand them to an executor, record outcomes.

Only this driver process writes to the store. Guarantees: runs already ``done`` are never
re-run; each run is claimed atomically (two drivers on one study run each run once); a
completed run is recorded in one transaction; Ctrl-C marks running runs ``interrupted`` and
they run again next time; runs left ``running`` by a dead driver are re-queued.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablab.errors import CodeChangedError, StoreError
from ablab.execute.base import Event, Executor
from ablab.execute.stopping import (
    Stop,
    deferred_stop_signals,
    install_stop_handlers,
    restore_handlers,
)
from ablab.plan.expand import Plan
from ablab.spec.model import StudySpec
from ablab.store.db import BadOutcome, Store

HEARTBEAT_S = 5.0
CHECKPOINT_EVERY = 50  # finished runs between WAL checkpoints


@dataclass
class Progress:
    """Counts the engine reports while it works (over the runs of this plan)."""

    total: int
    done: int = 0
    failed: int = 0
    skipped: int = 0  # already done before this invocation
    running: int = 0
    retried: int = 0
    last: list[str] = field(default_factory=list)  # messages about runs finished since last report
    running_dirs: dict[str, Path] = field(default_factory=dict)  # label -> run folder (its logs)

    @property
    def remaining(self) -> int:
        return self.total - self.done - self.failed


@dataclass
class RunSummary:
    """What an invocation of the engine achieved."""

    study: str
    revision: str
    store: Path
    total: int
    done: int
    failed: int
    skipped: int
    interrupted: bool = False
    signal: int | None = None  # the signal that stopped the driver (SIGINT for Ctrl-C)
    left_interrupted: int = 0  # runs that were running when it stopped, marked interrupted
    elsewhere: int = 0  # runs still running under another driver
    elsewhere_drivers: list[dict[str, Any]] = field(default_factory=list)  # host, pid
    failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. adaptive allocation: verdicts, runs saved

    @property
    def exit_code(self) -> int:
        """128 + the signal when stopped (130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP, like a shell);
        0 when every run is done, or when nothing failed and the rest is still running under
        another live driver; 1 otherwise."""
        if self.interrupted:
            return 128 + (self.signal or 2)
        return 0 if self.failed == 0 and self.done + self.elsewhere == self.total else 1


def prepare_study(
    spec: StudySpec, store: Store, *, revision: str | None = None, allow_code_change: bool = False
) -> dict[str, Any]:
    """Record the study revision (with provenance) and check its code fingerprint.

    Raises :class:`CodeChangedError` when runs exist under a different fingerprint and neither
    ``allow_code_change`` nor a new ``revision`` was given.
    """
    from ablab.runtime.entry import spec_fingerprint
    from ablab.runtime.provenance import environment, environment_hash
    from ablab.spec.serialize import spec_to_dict

    fp = spec_fingerprint(spec)
    env = environment(spec.root)
    env_id = store.environment_id(env, environment_hash(env))
    rev = revision or _latest_revision(store, spec)
    existing = store.study(spec.name, rev)
    spec_dict = spec_to_dict(spec)
    if existing is None:
        return store.create_study(
            spec.name, rev, str(spec.source) if spec.source else None, spec_dict, fp, env_id
        )
    what = code_changes(store.runs(existing["id"]), existing["fingerprint"], spec.root, fp)
    if what:
        if not allow_code_change:
            raise CodeChangedError(
                f"{spec.label}: the code changed since runs of study '{spec.name}' (revision '{rev}') "
                f"were recorded ({what})",
                hint="re-run with --allow-code-change to mix results (recorded per run), or "
                "--revision NAME to start a fresh revision of the study",
            )
    store.update_study(existing["id"], spec_dict, fp, env_id)
    found = store.study(spec.name, rev)
    assert found is not None
    return found


def code_changes(
    runs: list[dict[str, Any]],
    study_fp: dict[str, Any],
    root: Path,
    current: dict[str, Any] | None = None,
) -> str:
    """What changed in the code the study's done runs used ("modified: model.py"), or "".

    Each file is compared with the version the most recent done run that used it recorded (so
    after ``--allow-code-change`` the new code is the reference); runs recorded before per-run
    file lists existed fall back to the study's recorded fingerprint."""
    from ablab.runtime.codeprint import changed_files

    latest: dict[str, tuple[float, str]] = {}
    for r in runs:
        if r["status"] != "done":
            continue
        files = r.get("code_files") or study_fp.get("files", {})
        t = r.get("ended_at") or 0.0
        for f, h in files.items():
            if f not in latest or t >= latest[f][0]:
                latest[f] = (t, h)
    now = (current or {}).get("files", {})
    # labels that are not files (a notebook function's source, "entry cell of train") compare
    # with the current fingerprint; files are hashed on disk
    labels = {f: h for f, (_, h) in latest.items() if f in now and not (root / f).is_file()}
    modified, removed = changed_files(
        {f: h for f, (_, h) in latest.items() if f not in labels}, root
    )
    modified += [f for f, h in labels.items() if now[f] != h]
    parts = [
        f"{label}: {', '.join(sorted(names)[:8])}" + (" ..." if len(names) > 8 else "")
        for label, names in (("modified", modified), ("removed", removed))
        if names
    ]
    return "; ".join(parts)


def _latest_revision(store: Store, spec: StudySpec) -> str:
    """The revision ``ablab run`` continues: the newest one recorded from this study file, so
    that a revision imported from a bundle (recorded from someone else's file) never silently
    becomes the one your next run writes to; else the newest revision of that name."""
    rows = [r for r in store.studies() if r["name"] == spec.name]
    if not rows:
        return "main"
    if spec.source is not None:
        here = str(Path(spec.source).resolve())
        mine = [r for r in rows if r.get("source") and _same_path(r["source"], here)]
        if mine:
            return mine[-1]["revision"]
    return rows[-1]["revision"]


def _same_path(recorded: str, here: str) -> bool:
    try:
        return str(Path(recorded).resolve()) == here
    except (OSError, ValueError):
        return False


def build_task(spec: StudySpec, run: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """The picklable description of a run that a worker executes."""
    from ablab.runtime.entry import entry_payload

    return {
        "key": run["key"],
        "variant": run["variant"],
        "seed": run["seed"],
        "split_seed": run["split_seed"],
        "config": run["config"],
        "attempt": run["attempts"],
        "entry": spec.entry,
        "entry_spec": entry_payload(spec),
        "root": str(spec.root),
        "run_dir": str(run_dir),
        "metrics": [
            {
                "name": m.name,
                "direction": m.direction,
                "reduce": m.reduce,
                "series": m.series,
                "pattern": m.pattern,
            }
            for m in spec.metrics
        ],
        "threads": spec.run.threads,
        "deterministic": spec.run.deterministic,
        "timeout": spec.run.timeout,
        "gpus": spec.run.gpus,
        "cpus": spec.run.cpus,
    }


def execute(
    spec: StudySpec,
    plan: Plan,
    store: Store,
    study: dict[str, Any],
    executor: Executor,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    close: bool = True,
) -> RunSummary:
    """Execute the plan's runs that are not done yet; returns when none is left to claim.

    ``close=False`` keeps the executor's workers for another round (adaptive plans); the caller
    then shuts it down."""
    from ablab.execute.order import run_order

    store.add_runs(study["id"], plan.runs)
    keys = [r.key for r in plan.runs]
    store.set_order(study["id"], run_order(plan.runs, spec.run.order, spec.name))
    store.reset_for_new_invocation(study["id"], keys, spec.run.retries)
    store.requeue_orphans(study["id"])
    before = {r["key"]: r["status"] for r in store.runs(study["id"], keys)}
    prog = Progress(total=len(keys), skipped=sum(s == "done" for s in before.values()))
    prog.done = prog.skipped
    keyset = set(keys)
    batch_sig = _batch_signatures(plan, spec.run.batch_by) if spec.run.batch else {}
    batch_size = _batch_sizes(spec.run.batch, batch_sig, before, executor.slots)
    driver = store.register_driver()
    inflight: dict[str, list[dict[str, Any]]] = {}  # task key -> its runs (K when batched)
    stop: Stop | None = None
    left_behind = 0
    last_beat = time.monotonic()
    finished = 0
    handlers = install_stop_handlers()
    try:
        if any(s != "done" for s in before.values()):  # a finished study starts no workers
            executor.start()
        while True:
            while executor.free_slots() > 0:
                group = []
                allowed, limit = keyset, 1
                while len(group) < limit:
                    run = store.claim(study["id"], driver, allowed)
                    if run is None:
                        break
                    group.append(run)
                    if (
                        batch_sig and len(group) == 1
                    ):  # the rest of the batch must match on batch_by
                        sig = batch_sig[run["key"]]
                        allowed, limit = (
                            {k for k, s in batch_sig.items() if s == sig},
                            batch_size[sig],
                        )
                if not group:
                    break
                tasks = [
                    build_task(spec, r, store.run_dir(r["key"], study["revision"])) for r in group
                ]
                if spec.run.batch:
                    key = "batch:" + group[0]["key"]
                    task = {"key": key, "batch": tasks, "timeout": tasks[0]["timeout"]}
                else:
                    key, task = group[0]["key"], tasks[0]
                inflight[key] = group
                executor.submit(task)
            prog.running = sum(len(g) for g in inflight.values())
            prog.running_dirs = {
                f"{r['variant']} seed {r['seed']} [{r['key'][:8]}]": store.run_dir(
                    r["key"], study["revision"]
                )
                for g in inflight.values()
                for r in g
            }
            if on_progress:
                on_progress(prog)
                prog.last = []
            if not inflight:
                break
            for ev in executor.poll(0.25):
                group = inflight[ev.key]
                if ev.outcome is not None and "batch" in ev.outcome:
                    for run, outcome in zip(group, ev.outcome["batch"], strict=True):
                        _record(
                            store,
                            driver,
                            study,
                            run,
                            Event("result", run["key"], outcome=outcome),
                            prog,
                            spec.root,
                        )
                else:
                    for run in group:
                        _record(store, driver, study, run, ev, prog, spec.root)
                del inflight[ev.key]
                finished += len(group)
                if finished >= CHECKPOINT_EVERY:  # keep ablab.db itself close to complete
                    store.checkpoint()
                    finished = 0
            if time.monotonic() - last_beat > HEARTBEAT_S:
                store.heartbeat(driver)
                last_beat = time.monotonic()
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP through install_stop_handlers
        stop = e if isinstance(e, Stop) else Stop(signal.SIGINT)
        ids = [r["id"] for g in inflight.values() for r in g]
        with deferred_stop_signals(len(ids)):
            executor.shutdown(kill=True)
            try:
                store.mark_interrupted(ids, driver)
            except StoreError:
                pass  # left `running` under a dead driver: the next start re-queues them
            left_behind = len(ids)
    except BaseException as e:
        executor.shutdown(kill=True)
        ids = [r["id"] for g in inflight.values() for r in g]
        _quietly(store.mark_interrupted, ids, driver)
        _quietly(store.unregister_driver, driver)
        if isinstance(e, StoreError):
            raise StoreError(
                f"{e.message}. Runs finished so far are recorded; the {len(ids)} run(s) in "
                "flight were not, and run again on the next `ablab run`",
                hint=e.hint,
            ) from e
        raise
    else:
        if close:
            executor.shutdown()
    finally:
        restore_handlers(handlers)
    _quietly(store.unregister_driver, driver)
    rows = store.runs(study["id"], keys)
    summary = RunSummary(
        study=spec.name,
        revision=study["revision"],
        store=store.dir,
        total=len(keys),
        done=sum(r["status"] == "done" for r in rows),
        failed=sum(r["status"] == "failed" for r in rows),
        skipped=prog.skipped,
        interrupted=stop is not None,
        signal=stop.signum if stop is not None else None,
        left_interrupted=left_behind,
        elsewhere=sum(r["status"] == "running" for r in rows),
        elsewhere_drivers=store.drivers_of([r["id"] for r in rows if r["status"] == "running"]),
        failures=[
            {"key": r["key"], "variant": r["variant"], "seed": r["seed"], "error": r["error"]}
            for r in rows
            if r["status"] == "failed"
        ],
    )
    prog.done, prog.failed, prog.running = summary.done, summary.failed, 0
    if on_progress:
        on_progress(prog)
    return summary


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """A clean-up step after a storage fault; if the store still fails, the next start's
    orphan check (this driver is dead by then) re-queues what it could not mark."""
    try:
        fn(*args)
    except StoreError:
        pass


def _batch_sizes(
    batch: int | str | None, signatures: dict[str, str], status: dict[str, str], workers: int
) -> dict[str, int]:
    """Signature -> how many runs one batched task takes: ``batch`` itself, or for ``"auto"``
    the signature's runs still to do split evenly over the workers (``ceil(n / workers)``), so
    each worker gets one batch of every kind and none waits for a straggler."""
    sizes: dict[str, int] = {}
    for key, sig in signatures.items():
        sizes[sig] = sizes.get(sig, 0) + (status.get(key) != "done")
    if batch == "auto":
        return {sig: max(1, -(-n // max(1, workers))) for sig, n in sizes.items()}
    return {sig: int(batch or 1) for sig in sizes}


def _batch_signatures(plan: Plan, keys: tuple[str, ...]) -> dict[str, str]:
    """Run key -> its configuration's values on ``batch_by`` keys; runs with equal signatures may
    share a batch."""
    import json

    from ablab.spec.model import flatten

    out = {}
    for r in plan.runs:
        flat = flatten(r.config)
        out[r.key] = json.dumps([flat.get(k) for k in keys], sort_keys=True, default=str)
    return out


def _record(
    store: Store,
    driver: int,
    study: dict[str, Any],
    run: dict[str, Any],
    ev: Event,
    prog: Progress,
    root: Path,
) -> None:
    from ablab.runtime.codeprint import relative_files, run_fingerprint

    code, env = study["code_digest"], study["environment_id"]
    files = None
    if ev.kind == "result" and ev.outcome is not None:
        o = ev.outcome
        fp = run_fingerprint(
            study["fingerprint"].get("files", {}),
            relative_files(o.get("code_files") or {}, root),
        )
        code, files = fp["digest"], fp["files"]
        try:
            final = store.finish(
                run["id"],
                driver,
                status=o["status"],
                metrics=o["metrics"],
                series=o["series"],
                data=o["data"],
                artifacts=o["artifacts"],
                resources=o["resources"],
                error=o["error"],
                traceback=o["traceback"],
                code_digest=code,
                environment_id=env,
                code_files=files,
            )
            ok, err = o["status"] == "done", o["error"]
        except BadOutcome as e:  # the driver never dies of what a run sent back
            err = str(e)
            final = store.finish(
                run["id"],
                driver,
                status="failed",
                error=err,
                resources=o.get("resources"),
                code_digest=code,
                environment_id=env,
                code_files=files,
            )
            ok = False
    else:
        final = store.finish(
            run["id"], driver, status="failed", error=ev.error, code_digest=code, environment_id=env
        )
        ok, err = False, ev.error
    label = f"{run['variant']} seed {run['seed']} [{run['key'][:8]}]"
    if ok:
        prog.done += 1
        prog.last.append(f"done    {label}")
        return
    if final == "pending":
        prog.retried += 1
        prog.last.append(f"retry   {label}: {err}")
    else:
        prog.failed += 1
        prog.last.append(f"failed  {label}: {err}")
