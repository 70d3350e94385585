"""The batched entry contract, and checks an entry can use at its boundary.

A study opts in with ``[run] batch = K``; its entry then follows this contract::

    def train_batched(configs: list[dict], runs: list[Run]) -> list[dict[str, float]]:
        ...

- ``configs[k]`` is the resolved config of run k and ``runs[k]`` its :class:`ablab.Run` handle
  (``.seed``, ``.split_seed``, ``.generator()``, ``.log(step=..., **metrics)``, ``.track_data``,
  ``.save_model``, ``.run_dir``). ``len(configs) == len(runs) == K >= 1``; the executor groups
  runs whose configs share the keys the entry needs shared (e.g. architecture, batch size,
  epochs) and may pass fewer than K runs in the last group.
- The entry returns K metric dicts; ``result[k]`` is validated and stored exactly as a solo
  run's return value would be, and series logged on ``runs[k]`` belong to run k.
- Model k must be built and trained as the solo entry would train seed ``runs[k].seed``: init
  under ``torch.manual_seed(runs[k].seed)`` (:class:`~ablab.batched.BatchedModels` does this),
  data order and augmentation from ``runs[k].generator()``, dropout from the stream that follows
  model k's construction. The entry must not draw from torch's global generator, which the
  executor seeds once per batch (``seed_everything(runs[0].seed)``), not per model.
- Errors: a :class:`~ablab.batched.BatchedError` (bad batch) fails the K runs with its message;
  any other exception fails the K runs as well. Per-model divergence (non-finite metrics) fails
  only that run, through the ordinary metric validation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ablab.batched.errors import BatchedError


def check_batch(configs: Sequence[dict[str, Any]], runs: Sequence[Any]) -> int:
    """Validate the arguments of a batched entry; returns K. Raises :class:`BatchedError` when
    ``configs`` and ``runs`` differ in length, are empty, or a config is not a dict."""
    if isinstance(configs, dict) or not isinstance(configs, Sequence):
        raise BatchedError(
            f"a batched entry takes a list of configs, got {type(configs).__name__}",
            hint="for a single run call train_batched([config], [run])",
        )
    if len(configs) != len(runs):
        raise BatchedError(
            f"a batched entry got {len(configs)} configs but {len(runs)} runs; "
            "pass one config per run"
        )
    if not configs:
        raise BatchedError("a batched entry got no runs (K = 0)")
    for k, c in enumerate(configs):
        if not isinstance(c, dict):
            raise BatchedError(f"configs[{k}] is {type(c).__name__}, expected a dict")
    return len(configs)


def shared_value(configs: Sequence[dict[str, Any]], key: str) -> Any:
    """The value of ``key``, which every config of the batch must hold and agree on (e.g. the
    architecture or the number of epochs); raises :class:`BatchedError` naming the values."""
    missing = [k for k, c in enumerate(configs) if key not in c]
    if missing:
        raise BatchedError(f"config key '{key}' is missing from configs {missing}")
    values = [c[key] for c in configs]
    if any(v != values[0] for v in values[1:]):
        raise BatchedError(
            f"config key '{key}' must be the same for every model of a batch, got "
            f"{sorted(set(map(repr, values)))}",
            hint=f"group runs by '{key}' into separate batches",
        )
    return values[0]
