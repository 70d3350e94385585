"""The executor interface the engine drives, and the events it gets back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Event:
    """``kind``: ``result`` (a worker returned an outcome) or ``lost`` (the run's worker died or
    it ran past its timeout; ``error`` says which)."""

    kind: str
    key: str
    outcome: dict[str, Any] | None = None
    error: str | None = None


class Executor(Protocol):
    """Runs tasks somewhere; only the engine (the driver) writes to the store."""

    slots: int

    def start(self) -> None: ...

    def free_slots(self) -> int: ...

    def submit(self, task: dict[str, Any]) -> None: ...

    def poll(self, timeout: float) -> list[Event]: ...

    def running(self) -> list[str]: ...

    def shutdown(self, kill: bool = False) -> None: ...
