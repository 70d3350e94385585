"""How the driver stops on a signal.

Schedulers (Slurm, Kubernetes, systemd), ``kill`` and a closed terminal send SIGTERM or SIGHUP,
not SIGINT. Like PostgreSQL's fast shutdown, the driver treats all three the same way: it stops
claiming runs, kills its workers, marks the runs that were in flight ``interrupted`` (they run
again next time) and exits with 128 + the signal number, as a shell reports a process killed by
it. Signals that arrive while it cleans up do not abort the clean-up (which would leave runs
``running``); each one is answered with a line that says what is being left behind.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stop(KeyboardInterrupt):
    """The driver was asked to stop by ``signum`` (a KeyboardInterrupt, so code that handles
    Ctrl-C handles SIGTERM and SIGHUP too)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop(signum)


def install_stop_handlers() -> dict[int, Any] | None:
    """SIGTERM and SIGHUP raise :class:`Stop` in the main thread (SIGINT already raises
    KeyboardInterrupt); returns the previous handlers, or None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        old[sig] = signal.signal(sig, _raise_stop)
    return old


def restore_handlers(old: dict[int, Any] | None) -> None:
    for sig, handler in (old or {}).items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def deferred_stop_signals(in_flight: int) -> Iterator[None]:
    """While the driver cleans up after a stop, further stop signals only print what happens."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum: int, frame: Any) -> None:
        sys.stderr.write(
            f"\nablab: still stopping ({signal.Signals(signum).name} ignored): the workers are "
            f"being stopped and the {in_flight} run(s) that were running are being marked "
            "interrupted; they run again on the next `ablab run`. Runs already finished are "
            "recorded.\n"
        )
        sys.stderr.flush()

    old = {sig: signal.signal(sig, note) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        restore_handlers(old)
