"""Execute one run inside a worker: seed, call the entry, validate and measure.

This is what every executor (local processes, Ray tasks) runs for a task; it never touches the
store. The result is a plain dict that travels back to the driver.
"""

from __future__ import annotations

import math
import os
import pickle
import resource
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ablab.errors import AblabError, MetricError


class _PeakRSS:
    """Samples this process's resident memory in a thread; ``peak_mb`` after ``stop()``. With
    ``children`` (command entries) it adds that of the programs the worker started."""

    def __init__(self, interval: float = 0.05, children: bool = False) -> None:
        import psutil

        self._proc = psutil.Process()
        self._children = children
        self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._t.start()

    def _rss(self) -> int:
        rss = self._proc.memory_info().rss
        if self._children:
            for c in self._proc.children(recursive=True):
                try:
                    rss += c.memory_info().rss
                except Exception:  # noqa: BLE001 - it exited meanwhile
                    pass
        return rss

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.peak = max(self.peak, self._rss())
            except Exception:
                return

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())
        return self.peak / 2**20


def reduce_metric(
    series: list[tuple[str, int, float]], name: str, direction: str, how: str
) -> float:
    """The ``last`` (the last value logged at the highest step) or ``best`` (max or min by
    direction) value of a logged series; raises when the run logged no such series."""
    from ablab.analysis.derive import reduce_points

    points = [(s, v) for n, s, v in series if n == name]
    if not points:
        raise MetricError(
            f"metric '{name}' is declared reduce = \"{how}\" but the run logged no '{name}' series",
            hint=f"call run.log(step=..., {name}=...) during training",
        )
    value = reduce_points(points, direction, how)
    if how == "last":  # a series that ends in NaN (training diverged) has no final value
        top = max(s for s, _ in points)
        value = [v for s, v in points if s == top][-1]
    if not math.isfinite(value):
        raise MetricError(
            f"declared metric '{name}' (reduce = \"{how}\") is {value}: the logged '{name}' "
            "series is not finite there",
            hint="a NaN/inf metric usually means training diverged",
        )
    return value


def is_command(task: dict[str, Any]) -> bool:
    """Whether a task runs a program (a command entry) rather than a Python function."""
    return (task.get("entry_spec") or {}).get("kind") == "command"


def warm_up() -> None:
    """Import the heavy libraries once per worker, so the first run's time is its own."""
    import numpy  # noqa: F401
    import torch  # noqa: F401

    # torch.use_deterministic_algorithms (called by seed_everything) imports inductor's config,
    # which takes seconds; pay that here, not inside the first run's time and timeout
    import torch._inductor.config  # noqa: F401


def execute_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` (as built by the engine) and return its outcome.

    Outcome keys: ``key``, ``status`` (done|failed), ``metrics`` (what the entry returned; series
    metrics are derived at report time), ``series``, ``data``, ``artifacts``, ``resources``,
    ``code_files`` (source files the run imported), ``error`` (one line), ``traceback``. The
    run's stdout/stderr go to ``stdout.log``/``stderr.log`` in its run folder. A batched task
    (``{"key": ..., "batch": [task, ...]}``, ``[run] batch = K``) calls the batched entry
    ``train_batched(configs, runs) -> list[dict]`` once and returns ``{"key", "batch": [outcome, ...]}``.
    """
    from ablab.runtime.entry import resolve_entry
    from ablab.runtime.run import Run

    batched = "batch" in task
    subtasks = task["batch"] if batched else [task]
    first = subtasks[0]
    t0, c0 = time.perf_counter(), _cpu()
    rss = _PeakRSS(children=is_command(first))
    outs = [
        {
            "key": t["key"],
            "status": "failed",
            "metrics": {},
            "series": [],
            "data": {},
            "artifacts": {},
            "error": None,
            "traceback": None,
        }
        for t in subtasks
    ]
    torch = None
    from ablab.runtime.capture import capture_output

    attempt = first.get("attempt", 1)
    capture = capture_output(
        first["run_dir"],
        append=attempt > 1,
        header=f"--- ablab: attempt {attempt} ---" if attempt > 1 else "",
    )
    try:
        capture.__enter__()
    except OSError:  # an unwritable run folder: the run still runs, its output is not kept
        from contextlib import nullcontext

        capture = nullcontext()
    try:
        from ablab.runtime.seeding import seed_everything

        if not is_command(first):  # a program is seeded through its arguments and environment
            seed_everything(
                first["seed"],
                deterministic=first.get("deterministic", True),
                threads=first.get("threads", 1),
            )
        torch = sys.modules.get("torch")
        cuda = bool(torch is not None and torch.cuda.is_available())
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        fn = resolve_entry(first)
        runs = [
            Run(
                key=t["key"],
                variant=t["variant"],
                seed=t["seed"],
                config=t["config"],
                run_dir=Path(t["run_dir"]),
                split_seed=t["seed"] if t.get("split_seed") is None else t["split_seed"],
                device="cuda" if cuda else "cpu",
                attempt=t.get("attempt", 1),
                root=Path(t.get("root", first["root"])),
            )
            for t in subtasks
        ]
        if batched:
            results = fn([dict(t["config"]) for t in subtasks], runs)
            if not isinstance(results, (list, tuple)) or len(results) != len(runs):
                raise MetricError(
                    f"the batched entry returned {type(results).__name__} "
                    f"{'of length ' + str(len(results)) if hasattr(results, '__len__') else ''}; "
                    f"expected a list of {len(runs)} metric dicts, one per run"
                )
        else:
            results = [fn(dict(first["config"]), runs[0])]
        for t, run, result, out in zip(subtasks, runs, results, outs, strict=True):
            _validate(t, run, result, out)
    except BaseException as e:  # noqa: BLE001 - a run's failure must never kill the worker
        # KeyboardInterrupt too: workers ignore SIGINT (Ctrl-C is the driver's), so one raised
        # here came from the entry itself and is that run's failure, recorded as such
        for out in outs:
            out.update(status="failed", error=_one_line(e), traceback=traceback.format_exc())
    finally:
        peak = rss.stop()
        capture.__exit__(None, None, None)
        _share_logs(subtasks)
    code = _imported_code()
    gpu_mb = None
    if torch is not None and torch.cuda.is_available():
        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    k = len(subtasks)
    for out in outs:  # a batch's time is shared equally by its runs
        out["resources"] = {
            "wall_seconds": (time.perf_counter() - t0) / k,
            "cpu_seconds": (_cpu() - c0) / k,
            "peak_rss_mb": peak,
            "peak_gpu_mb": gpu_mb,
            "threads": first.get("threads", 1),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "batch": k,
        }
        out["code_files"] = code
    return {"key": task["key"], "batch": outs} if batched else outs[0]


def sendable(outcome: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``(outcome, pickle of it)``; an outcome that cannot be pickled (an entry that put a lambda
    or an open file into ``run.artifacts``...) becomes a failed outcome that says so."""
    try:
        return outcome, pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001 - whatever the entry left in its records
        error = (
            "the run's outcome cannot be sent to the driver: "
            f"{_one_line(e)} (records must be plain numbers and strings)"
        )
        tb = traceback.format_exc()
        outs = outcome["batch"] if "batch" in outcome else [outcome]
        clean = [
            {
                "key": o.get("key"),
                "status": "failed",
                "metrics": {},
                "series": [],
                "data": {},
                "artifacts": {},
                "error": error,
                "traceback": tb,
                "resources": _plain(o.get("resources")),
            }
            for o in outs
        ]
        fixed = {"key": outcome["key"], "batch": clean} if "batch" in outcome else clean[0]
        return fixed, pickle.dumps(fixed, protocol=pickle.HIGHEST_PROTOCOL)


def _plain(resources: Any) -> dict[str, Any]:
    ok = (int, float, str, type(None))
    return {k: v for k, v in (resources or {}).items() if isinstance(v, ok)}


def _imported_code() -> dict[str, str]:
    try:
        from ablab.runtime.codeprint import imported_sources

        return imported_sources()
    except Exception:  # never fail a finished run over its provenance
        return {}


def _share_logs(subtasks: list[dict[str, Any]]) -> None:
    """A batch's runs share one process, so they share its output: copy the logs to every run."""
    import shutil

    from ablab.runtime.capture import log_paths

    src = log_paths(subtasks[0]["run_dir"])
    for t in subtasks[1:]:
        for a, b in zip(src, log_paths(t["run_dir"]), strict=True):
            try:
                b.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(a, b)
            except OSError:
                pass


def _validate(task: dict[str, Any], run: Any, result: Any, out: dict[str, Any]) -> None:
    """Check one run's returned metrics and reduce series metrics; fills ``out`` (failed on error)."""
    from ablab.runtime.run import check_metrics

    try:
        declared = [m["name"] for m in task["metrics"]]
        reduced = {m["name"] for m in task["metrics"] if m.get("reduce", "value") != "value"}
        metrics = {
            **run.measured,
            **check_metrics(result, declared, reduced),
        }  # run.measure's cost.*
        for m in task["metrics"]:  # the series must exist; reports reduce it from the store
            if m["name"] in reduced and m.get("reduce") != "post":  # post: attached after the run
                reduce_metric(run.series, m.get("series") or m["name"], m["direction"], m["reduce"])
        out.update(
            status="done",
            metrics=metrics,
            series=run.series,
            data=run.data,
            artifacts=run.artifacts,
        )
    except AblabError as e:
        out.update(status="failed", error=_one_line(e), traceback=traceback.format_exc())


def _one_line(e: BaseException) -> str:
    if isinstance(e, AblabError):
        msg = e.message
    else:
        msg = f"{type(e).__name__}: {e}"
    return msg.strip().splitlines()[0][:500] if msg.strip() else type(e).__name__


def _cpu() -> float:
    """CPU seconds of this worker and of the programs it ran (command entries) and waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total
