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
from multiprocessing.connection import wait
from typing import Any

from ablab.execute.base import Event
from ablab.execute.channel import Channel, ChannelError

STARTED = "started"


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the driver dies (no orphans after ``kill -9``)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def worker_main(sock: Any, token: bytes, parent_pid: int, warm: bool = True) -> None:
    """A worker's loop: receive a task, execute it, send the outcome; stop on None or EOF."""
    _die_with_parent()
    if os.getppid() != parent_pid:  # the driver died before prctl took effect
        os._exit(0)
    # Ctrl-C, SIGTERM and SIGHUP go to the whole process group; stopping is the driver's job
    # (it marks the runs interrupted, then kills its workers), so a worker ignores them
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    from ablab.runtime.capture import quiet_worker_stdout
    from ablab.runtime.execute_one import execute_task, sendable, warm_up

    conn = Channel(sock, token)
    conn.move_high()
    quiet_worker_stdout()  # a run's own output goes to its run folder (runtime/capture.py)
    if warm:  # not for command entries: the programs import what they need themselves
        warm_up()

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, ChannelError):
            return
        if task is None:
            return
        conn.send(STARTED)  # the run's timeout counts from here, not from worker start-up
        _, payload = sendable(execute_task(task))
        try:
            conn.send_bytes(payload)
        except OSError:
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
    def __init__(self, ctx: Any, warm: bool = True) -> None:
        self.conn, (child, token) = Channel.pair()
        self.proc = ctx.Process(
            target=worker_main,
            args=(child, token, os.getpid(), warm),
            daemon=True,
            name="ablab-worker",
        )
        with _main_module_hidden():
            self.proc.start()
        child.close()
        self.task: dict[str, Any] | None = None
        self.deadline: float | None = None


class LocalExecutor:
    """``slots`` worker processes on this machine."""

    def __init__(self, slots: int, warm_up: bool = True) -> None:
        self.slots = max(1, slots)
        self.warm_up = warm_up
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker] = []

    def start(self) -> None:
        if not self._workers:  # idempotent: an adaptive study reuses warm workers across rounds
            self._workers = [_Worker(self._ctx, self.warm_up) for _ in range(self.slots)]

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
            try:
                messages, closed = w.conn.receive_ready()
            except ChannelError as e:
                events.append(Event("lost", key, error=_garbage_cause(e)))
                self._replace(w)
                done.add(id(w))
                continue
            outcome = None
            for m in messages:
                if m == STARTED:
                    limit = w.task.get("timeout")
                    w.deadline = time.monotonic() + limit if limit else None
                elif isinstance(m, dict):
                    outcome = m
            if outcome is not None:
                w.task, w.deadline = None, None
                events.append(Event("result", key, outcome=outcome))
                done.add(id(w))
                continue
            if not closed and w.proc.is_alive():
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
        self._workers[i] = _Worker(self._ctx, self.warm_up)

    def shutdown(self, kill: bool = False) -> None:
        for w in self._workers:
            if kill or w.task is not None:
                _kill(w)
            else:
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self._workers:
            w.proc.join(timeout=5)
            if w.proc.is_alive():
                _kill(w)
        self._workers = []


def _kill(w: _Worker) -> None:
    if w.proc.is_alive():
        # SIGTERM first: a worker running a command entry kills the program's process group
        # before it exits (runtime/entry_command.py); any other worker dies of it at once
        w.proc.terminate()
        w.proc.join(timeout=2.0)
    if w.proc.is_alive():
        w.proc.kill()
    w.proc.join(timeout=5)
    w.conn.close()
    w.task = None


def _garbage_cause(e: ChannelError) -> str:
    return (
        "the run wrote to ablab's result channel (an inherited file descriptor), so its result "
        f"could not be trusted; the worker was replaced ({e})"
    )


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
