"""Validation of :class:`~ablab.batched.BatchedModels`' inputs: seeds, model builders, and models
that a batch can hold (one architecture, no running statistics, plain ``nn.Dropout``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from ablab.batched.errors import BatchedError


def check_seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise BatchedError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise BatchedError(f"seeds must be integers, got {bad[0]!r} ({type(bad[0]).__name__})")
    return [int(s) for s in seeds]


def check_makers(make_model: Any, k: int) -> list[Callable[[], nn.Module]]:
    if callable(make_model):
        return [make_model] * k
    if isinstance(make_model, Sequence) and all(callable(m) for m in make_model):
        if len(make_model) != k:
            raise BatchedError(
                f"got {len(make_model)} model builders for {k} seeds; pass one "
                "builder, or one per seed"
            )
        return list(make_model)
    raise BatchedError(
        f"make_model must be a callable returning an nn.Module (or a list of K such "
        f"callables), got {type(make_model).__name__}"
    )


def check_same_architecture(models: list[nn.Module]) -> None:
    def signature(m: nn.Module) -> list[Any]:
        return [(n, tuple(t.shape), t.dtype) for n, t in m.state_dict().items()] + [
            type(mod).__name__ for mod in m.modules()
        ]

    ref = signature(models[0])
    for k, m in enumerate(models[1:], start=1):
        if signature(m) != ref:
            raise BatchedError(
                f"model {k} differs in architecture from model 0 (parameter names, "
                "shapes, dtypes or module types); a batch holds models of one "
                "architecture",
                hint="group models by architecture into separate batches",
            )
    for mod in models[0].modules():
        if getattr(mod, "track_running_stats", False) or isinstance(
            mod, nn.modules.batchnorm._BatchNorm
        ):
            raise BatchedError(
                f"{type(mod).__name__} keeps running statistics, which batched "
                "training does not support",
                hint="use LayerNorm/GroupNorm, or train solo",
            )
        if isinstance(mod, nn.modules.dropout._DropoutNd) and type(mod) is not nn.Dropout:
            raise BatchedError(
                f"{type(mod).__name__} is not supported in batched training; only nn.Dropout"
            )
