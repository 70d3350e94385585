"""Execute a list of tasks once in fresh worker processes (no store): for verification re-runs."""

from __future__ import annotations

from typing import Any

from ablab.execute.local import LocalExecutor


def execute_tasks(tasks: list[dict[str, Any]], slots: int = 1) -> list[dict[str, Any]]:
    """Run ``tasks`` (distinct keys) in a fresh pool of ``slots`` workers; returns one outcome per
    task, in order. A worker that dies or times out gives a ``failed`` outcome naming the cause."""
    from ablab.runtime.execute_one import is_command

    ex = LocalExecutor(
        min(slots, max(1, len(tasks))), warm_up=not all(is_command(t) for t in tasks)
    )
    ex.start()
    pending = list(tasks)
    outcomes: dict[str, dict[str, Any]] = {}
    try:
        while pending or ex.running():
            while pending and ex.free_slots():
                ex.submit(pending.pop(0))
            for ev in ex.poll(0.25):
                outcomes[ev.key] = (
                    ev.outcome
                    if ev.outcome is not None
                    else {
                        "key": ev.key,
                        "status": "failed",
                        "metrics": {},
                        "series": [],
                        "data": {},
                        "artifacts": {},
                        "error": ev.error,
                        "traceback": None,
                        "resources": {},
                    }
                )
    finally:
        ex.shutdown(kill=bool(ex.running()))
    return [outcomes[t["key"]] for t in tasks]
