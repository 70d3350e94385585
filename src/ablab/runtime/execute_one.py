"""Execute one run inside a worker: seed, call the entry, validate and measure.

This is what every executor (local processes, Ray tasks) runs for a task; it never touches the
store. The result is a plain dict that travels back to the driver.
"""

from __future__ import annotations

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
    """Samples this process's resident memory in a thread; ``peak_mb`` after ``stop()``."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, args=(interval,), daemon=True)
        self._t.start()

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.peak = max(self.peak, self._proc.memory_info().rss)
            except Exception:
                return

    def stop(self) -> float:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        return self.peak / 2**20


def reduce_metric(series: list[tuple[str, int, float]], name: str, direction: str, how: str) -> float:
    """The ``last`` (highest step) or ``best`` (max or min by direction) value of a logged series."""
    points = sorted((s, v) for n, s, v in series if n == name)
    if not points:
        raise MetricError(f"metric '{name}' is declared reduce = \"{how}\" but the run logged no "
                          f"'{name}' series", hint=f"call run.log(step=..., {name}=...) during training")
    if how == "last":
        return points[-1][1]
    values = [v for _, v in points]
    return max(values) if direction == "max" else min(values)


def warm_up() -> None:
    """Import the heavy libraries once per worker, so the first run's time is its own."""
    import numpy  # noqa: F401
    import torch  # noqa: F401
    # torch.use_deterministic_algorithms (called by seed_everything) imports inductor's config,
    # which takes seconds; pay that here, not inside the first run's time and timeout
    import torch._inductor.config  # noqa: F401


def execute_task(task: dict[str, Any]) -> dict[str, Any]:
    """Run ``task`` (as built by the engine) and return its outcome.

    Outcome keys: ``key``, ``status`` (done|failed), ``metrics``, ``series``, ``data``,
    ``artifacts``, ``resources``, ``error`` (one line), ``traceback``.
    """
    from ablab.runtime.entry import load_entry
    from ablab.runtime.run import Run, check_metrics
    from ablab.runtime.seeding import seed_everything

    t0, c0 = time.perf_counter(), _cpu()
    rss = _PeakRSS()
    out: dict[str, Any] = {"key": task["key"], "status": "failed", "metrics": {}, "series": [],
                           "data": {}, "artifacts": {}, "error": None, "traceback": None}
    torch = None
    try:
        seed_everything(task["seed"], deterministic=task.get("deterministic", True),
                        threads=task.get("threads", 1))
        torch = sys.modules.get("torch")
        cuda = bool(torch is not None and torch.cuda.is_available())
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        fn = load_entry(task["entry"], Path(task["root"]))
        run = Run(key=task["key"], variant=task["variant"], seed=task["seed"], config=task["config"],
                  run_dir=Path(task["run_dir"]), split_seed=task.get("split_seed") or task["seed"],
                  device="cuda" if cuda else "cpu", attempt=task.get("attempt", 1))
        result = fn(dict(task["config"]), run)
        declared = [m["name"] for m in task["metrics"]]
        reduced = {m["name"] for m in task["metrics"] if m.get("reduce", "value") != "value"}
        metrics = check_metrics(result, declared, reduced)
        for m in task["metrics"]:
            if m["name"] in reduced:
                metrics[m["name"]] = reduce_metric(run.series, m["name"], m["direction"], m["reduce"])
        out.update(status="done", metrics=metrics, series=run.series, data=run.data,
                   artifacts=run.artifacts)
    except BaseException as e:  # noqa: BLE001 - a run's failure must never kill the worker
        if isinstance(e, KeyboardInterrupt):
            raise
        out["error"] = _one_line(e)
        out["traceback"] = traceback.format_exc()
    finally:
        peak = rss.stop()
    gpu_mb = None
    if torch is not None and torch.cuda.is_available():
        gpu_mb = torch.cuda.max_memory_allocated() / 2**20
    out["resources"] = {"wall_seconds": time.perf_counter() - t0, "cpu_seconds": _cpu() - c0,
                        "peak_rss_mb": peak, "peak_gpu_mb": gpu_mb, "threads": task.get("threads", 1),
                        "host": socket.gethostname(), "pid": _pid()}
    return out


def _one_line(e: BaseException) -> str:
    if isinstance(e, AblabError):
        msg = e.message
    else:
        msg = f"{type(e).__name__}: {e}"
    return msg.strip().splitlines()[0][:500] if msg.strip() else type(e).__name__


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _pid() -> int:
    import os

    return os.getpid()
