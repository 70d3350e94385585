"""Local executor: N persistent worker processes (spawn), each executing many runs.

A run that raises is a failed *result*; a run that kills its worker (segfault, ``os._exit``,
OOM kill) or runs past its timeout is *lost*: the worker is replaced and the study goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any

from ablab.execute.base import Event

STARTED = "started"


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the driver dies (no orphans after ``kill -9``)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def worker_main(conn: Connection, parent_pid: int) -> None:
    """A worker's loop: receive a task, execute it, send the outcome; stop on None or EOF."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    from ablab.runtime.capture import quiet_worker_stdout
    from ablab.runtime.execute_one import execute_task, warm_up

    quiet_worker_stdout()  # a run's own output goes to its run folder (runtime/capture.py)
    warm_up()

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(STARTED)  # the run's timeout counts from here, not from worker start-up
        outcome = execute_task(task)
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


@contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start workers without re-importing the caller's ``__main__`` (spawn does by default), so
    ``ablab.run(...)`` works in a script without an ``if __name__ == "__main__"`` guard and the
    user's script never runs twice. Workers only need ablab and the entry module."""
    main = sys.modules.get("__main__")
    saved = {
        k: getattr(main, k)
        for k in ("__file__", "__spec__")
        if main is not None and hasattr(main, k)
    }
    try:
        if main is not None:
            if "__file__" in saved:
                delattr(main, "__file__")
            main.__spec__ = None  # type: ignore[assignment]
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)
        if main is not None and "__spec__" not in saved:
            del main.__spec__


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=worker_main, args=(child, os.getpid()), daemon=True, name="ablab-worker"
        )
        with _main_module_hidden():
            self.proc.start()
        child.close()
        self.task: dict[str, Any] | None = None
        self.deadline: float | None = None


class LocalExecutor:
    """``slots`` worker processes on this machine."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []

    def start(self) -> None:
        if not self._workers:  # idempotent: an adaptive study reuses warm workers across rounds
            self._workers = [_Worker(self._ctx) for _ in range(self.slots)]

    def free_slots(self) -> int:
        return sum(w.task is None for w in self._workers)

    def running(self) -> list[str]:
        return [w.task["key"] for w in self._workers if w.task is not None]

    def submit(self, task: dict[str, Any]) -> None:
        w = next(w for w in self._workers if w.task is None)
        w.task = task
        w.deadline = None  # set when the worker says it started the run
        w.conn.send(task)

    def poll(self, timeout: float) -> list[Event]:
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            time.sleep(min(timeout, 0.05))
            return []
        now = time.monotonic()
        deadlines = [w.deadline - now for w in busy if w.deadline is not None]
        wait_s = max(0.0, min([timeout, *deadlines]))
        handles: dict[Any, _Worker] = {}
        for w in busy:
            handles[w.conn] = w
            handles[w.proc.sentinel] = w
        ready = wait(list(handles), timeout=wait_s)
        events: list[Event] = []
        done: set[int] = set()
        for h in ready:
            w = handles[h]
            if id(w) in done or w.task is None:
                continue
            key = w.task["key"]
            if h is w.conn or w.conn.poll():
                try:
                    outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
                if outcome == STARTED:
                    limit = w.task.get("timeout")
                    w.deadline = time.monotonic() + limit if limit else None
                    done.add(id(w))
                    continue
                if outcome is not None:
                    w.task, w.deadline = None, None
                    events.append(Event("result", key, outcome=outcome))
                    done.add(id(w))
                    continue
            w.proc.join(timeout=1.0)
            events.append(Event("lost", key, error=_death_cause(w.proc.exitcode)))
            self._replace(w)
            done.add(id(w))
        now = time.monotonic()
        for w in busy:
            if (
                id(w) not in done
                and w.task is not None
                and w.deadline is not None
                and now >= w.deadline
            ):
                key, limit = w.task["key"], w.task["timeout"]
                _kill(w)
                events.append(
                    Event("lost", key, error=f"timed out after {_fmt_s(limit)}: the run was killed")
                )
                self._replace(w)
        return events

    def _replace(self, w: _Worker) -> None:
        _kill(w)
        i = self._workers.index(w)
        self._workers[i] = _Worker(self._ctx)

    def shutdown(self, kill: bool = False) -> None:
        for w in self._workers:
            if kill or w.task is not None:
                _kill(w)
            else:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
        for w in self._workers:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                _kill(w)
        self._workers = []


def _kill(w: _Worker) -> None:
    if w.proc.is_alive():
        w.proc.kill()
    w.proc.join(timeout=5)
    w.conn.close()
    w.task = None


def _death_cause(code: int | None) -> str:
    if code is None:
        return "the worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = (
            " (out of memory? the kernel's OOM killer sends SIGKILL)"
            if -code == signal.SIGKILL
            else ""
        )
        return f"the worker process was killed by {name}{extra}"
    return f"the worker process exited with code {code} before returning (os._exit or sys.exit in the entry?)"


def _fmt_s(s: float) -> str:
    return f"{s:g} s" if s < 120 else f"{s / 60:g} min"
