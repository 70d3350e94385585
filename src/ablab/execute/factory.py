"""Choose an executor by name."""

from __future__ import annotations

import os

from ablab.errors import SpecError
from ablab.execute.base import Executor
from ablab.spec.model import StudySpec

EXECUTORS = ("local", "ray")


def default_jobs(spec: StudySpec) -> int:
    """One worker per core, divided by the threads each run uses."""
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )
    return max(1, cores // max(1, spec.run.threads))


def make_executor(
    name: str, spec: StudySpec, *, jobs: int | None = None, address: str | None = None
) -> Executor:
    if jobs is not None and jobs < 1:
        raise SpecError(f"-j/--jobs {jobs}: expected at least 1 worker")
    if name == "local":
        from ablab.execute.local import LocalExecutor
        from ablab.spec.entry import CommandEntry

        # a command entry's worker only starts programs: no torch to import up front
        return LocalExecutor(
            jobs or default_jobs(spec), warm_up=not isinstance(spec.entry_spec, CommandEntry)
        )
    if name == "ray":
        from ablab.execute.ray_exec import RayExecutor

        return RayExecutor(
            jobs or default_jobs(spec), address=address, cpus=spec.run.cpus, gpus=spec.run.gpus
        )
    raise SpecError(
        f"--executor {name!r} is not an executor", hint=f"choose one of {', '.join(EXECUTORS)}"
    )
