"""What a program run as a command entry imports to report to ablab (standard library only).

::

    import ablab.client as ab

    for epoch in range(10):
        ...
        ab.log(step=epoch, val_loss=val_loss)      # a point of each series
    ab.result(accuracy=acc, test_loss=loss)         # the run's metrics

Records are appended as JSON lines to ``$ABLAB_RUN_DIR/ablab_client.jsonl``, which ablab reads when
the program exits. Outside ablab (no ``ABLAB_RUN_DIR``) the calls do nothing, so the script still
runs on its own. ``config()`` and ``seed()`` give the run's resolved configuration and seed.

This module must stay light: it imports neither torch nor the rest of ablab.
"""

from __future__ import annotations

import json
import os
from typing import Any

FILE = "ablab_client.jsonl"

__all__ = ["config", "log", "result", "seed"]


def _number(name: str, value: Any) -> float:
    if hasattr(value, "item"):  # numpy / torch scalars, without importing either
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"ablab.client: {name} = {value!r} is not a number")
    return float(value)


def _append(record: dict[str, Any]) -> None:
    run_dir = os.environ.get("ABLAB_RUN_DIR")
    if not run_dir:
        return
    line = json.dumps(record, allow_nan=True) + "\n"
    fd = os.open(os.path.join(run_dir, FILE), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def log(step: int | None = None, **values: float) -> None:
    """Record a point of one or more series, e.g. ``log(step=epoch, val_loss=0.3)``."""
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise TypeError(f"ablab.client.log: step = {step!r} is not an integer")
    _append({"kind": "log", "step": step, "values": {k: _number(k, v) for k, v in values.items()}})


def result(**values: float) -> None:
    """Report the run's metrics (call once at the end; later calls add or overwrite names)."""
    _append({"kind": "result", "values": {k: _number(k, v) for k, v in values.items()}})


def config() -> dict[str, Any]:
    """The run's resolved configuration (``{}`` outside ablab)."""
    path = os.environ.get("ABLAB_CONFIG")
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def seed(default: int = 0) -> int:
    """The run's seed (``default`` outside ablab)."""
    return int(os.environ.get("ABLAB_SEED", default))
