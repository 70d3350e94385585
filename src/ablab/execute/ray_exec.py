"""Ray executor: each run is a Ray task with the resources the study declares.

Outcomes (metrics, series, data hashes, resources, small artifacts' paths) flow back to the
driver, which alone writes the SQLite store. Artifacts are written by the task to the run
directory: on a multi-node cluster that directory must be on shared storage (or set the store
on a shared file system), otherwise model files stay on the node that trained them.
"""

from __future__ import annotations

import time
from typing import Any

from ablab.errors import AblabError
from ablab.execute.base import Event


def _remote_execute(task: dict[str, Any]) -> dict[str, Any]:
    from ablab.runtime.execute_one import execute_task

    return execute_task(task)


class RayExecutor:
    """Runs tasks on a Ray cluster (``address=None`` starts a local one with ``slots`` CPUs)."""

    def __init__(
        self, slots: int, address: str | None = None, cpus: float = 1.0, gpus: float = 0.0
    ) -> None:
        self.slots = max(1, slots)
        self.address = address
        self.cpus, self.gpus = cpus, gpus
        self._inflight: dict[Any, tuple[str, float | None]] = {}  # ref -> (key, deadline)
        self._started_ray = False
        self._fn: Any = None

    def start(self) -> None:
        if self._fn is not None:
            return
        try:
            import ray
        except ImportError:
            raise AblabError(
                "--executor ray needs Ray", hint="pip install 'ablab-toolkit[ray]'"
            ) from None
        if not ray.is_initialized():
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.slots, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise AblabError(
                    f"cannot connect to the Ray cluster at '{self.address or 'local'}': {e}",
                    hint="start one with `ray start --head`, or use --address auto",
                ) from None
            self._started_ray = True
        self._fn = ray.remote(max_retries=0)(_remote_execute).options(
            num_cpus=self.cpus, num_gpus=self.gpus
        )

    def free_slots(self) -> int:
        return self.slots - len(self._inflight)

    def running(self) -> list[str]:
        return [k for k, _ in self._inflight.values()]

    def submit(self, task: dict[str, Any]) -> None:
        ref = self._fn.remote(task)
        limit = task.get("timeout")
        self._inflight[ref] = (task["key"], time.monotonic() + limit + 5.0 if limit else None)

    def poll(self, timeout: float) -> list[Event]:
        import ray

        if not self._inflight:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = ray.wait(list(self._inflight), num_returns=len(self._inflight), timeout=timeout)
        events = []
        for ref in ready:
            key, _ = self._inflight.pop(ref)
            try:
                events.append(Event("result", key, outcome=ray.get(ref)))
            except ray.exceptions.RayError as e:  # the worker or its node died
                events.append(
                    Event(
                        "lost",
                        key,
                        error=f"the Ray worker running the task died: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:300]}",
                    )
                )
        now = time.monotonic()
        for ref, (key, deadline) in list(self._inflight.items()):
            if deadline is not None and now >= deadline:
                ray.cancel(ref, force=True)
                del self._inflight[ref]
                events.append(Event("lost", key, error="timed out: the Ray task was cancelled"))
        return events

    def shutdown(self, kill: bool = False) -> None:
        try:
            import ray
        except ImportError:
            return
        for ref in list(self._inflight):
            ray.cancel(ref, force=True)
        self._inflight.clear()
        self._fn = None
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
            self._started_ray = False
