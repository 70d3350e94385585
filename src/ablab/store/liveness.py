"""Is the driver that owns a ``running`` run still alive?

A driver row records the host name, the pid, its start time, a heartbeat (every few seconds)
and a *node* identity: the kernel's boot id plus the inode of the driver's PID namespace
(``/proc/self/ns/pid``). Two processes with the same node identity see the same pids, so a
driver on the same node is judged by its pid alone (alive, not a zombie, started no later than
the driver row: not a reused pid), never by the heartbeat's age: a driver that is stopped
(SIGSTOP, a closed laptop lid, a long GC pause) keeps its runs. Only a driver on another node
(another host, or a container with its own PID namespace and the same host name) is judged by
its heartbeat, as nothing else can be known about it.
"""

from __future__ import annotations

import os
import socket
import time
from functools import cache
from typing import Any

STALE_HEARTBEAT_S = 120.0


@cache
def node_id() -> str:
    """``boot-id/pid-namespace-inode`` of this process ('' where /proc does not say)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    return f"{boot}/{ns}"


def pid_alive(pid: int, started_at: float) -> bool:
    """The process exists, is not a zombie, and is not a newer process that reused the pid."""
    try:
        import psutil

        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and p.create_time() <= started_at + 1.0
    except Exception:
        return False


def driver_alive(row: Any, now: float | None = None) -> bool:
    """Judge a ``drivers`` row (host, pid, started_at, heartbeat, node) from this process."""
    if row is None or row["host"] is None:
        return False
    now = time.time() if now is None else now
    mine = node_id()
    node = row["node"] if "node" in row.keys() else None
    if node and mine and node == mine:
        return pid_alive(row["pid"], row["started_at"])
    if not node and row["host"] == socket.gethostname():  # a row from an older ablab
        if not pid_alive(row["pid"], row["started_at"]):
            return False
    return now - row["heartbeat"] <= STALE_HEARTBEAT_S
