"""Input handling shared by the landscape metrics: batches, loss checks, recorded values.

``data`` everywhere in :mod:`ablab.landscape` is either one ``(X, y)`` pair of tensors (or
NumPy arrays) or an iterable of such pairs (a list of batches, a ``DataLoader``). The helpers
here turn either form into a list of tensor pairs on the model's device, and validate them at
the boundary so the metrics themselves can assume clean input.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from ablab.errors import DataError

Batch = tuple[torch.Tensor, torch.Tensor]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Measured(float):
    """A float that also records how it was measured.

    Every landscape metric returns one of these, so ``float`` arithmetic works unchanged while
    the sample count (and, for iterative estimators, the iteration count and whether the
    tolerance was reached) travel with the value. Record it next to the metric, e.g.::

        lam = hessian_top_eigenvalue(model, loss_fn, (X[:200], y[:200]))
        run.log(hessian_top_eigenvalue=lam, hessian_n_samples=lam.n_samples)
        # or: run.log(**lam.as_dict("hessian_top_eigenvalue"))
    """

    n_samples: int
    iterations: int | None
    converged: bool | None

    def __new__(
        cls,
        value: float,
        *,
        n_samples: int,
        iterations: int | None = None,
        converged: bool | None = None,
    ) -> Measured:
        obj = super().__new__(cls, float(value))
        obj.n_samples = int(n_samples)
        obj.iterations = iterations
        obj.converged = converged
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (float(self), self.n_samples, self.iterations, self.converged))

    def __repr__(self) -> str:
        extra = f", iterations={self.iterations}" if self.iterations is not None else ""
        return f"Measured({float(self)!r}, n_samples={self.n_samples}{extra})"

    def as_dict(self, name: str) -> dict[str, float | int | bool]:
        """``{name: value, name_n_samples: n, ...}``, ready to log as run metrics."""
        out: dict[str, float | int | bool] = {
            name: float(self),
            f"{name}_n_samples": self.n_samples,
        }
        if self.iterations is not None:
            out[f"{name}_iterations"] = self.iterations
        if self.converged is not None:
            out[f"{name}_converged"] = self.converged
        return out


def _rebuild(value: float, n: int, it: int | None, conv: bool | None) -> Measured:
    return Measured(value, n_samples=n, iterations=it, converged=conv)


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _as_tensor(x: Any, what: str, index: int) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    raise DataError(
        f"data batch {index}: {what} is a {type(x).__name__}; expected a torch.Tensor or a NumPy array",
        hint="pass data as (X, y) tensors or an iterable of (X, y) batches",
    )


def _is_pair(obj: Any) -> bool:
    return (
        isinstance(obj, (tuple, list))
        and len(obj) == 2
        and all(isinstance(o, (torch.Tensor, np.ndarray)) for o in obj)
    )


def iter_batches(data: Any) -> Iterator[Batch]:
    """Yield ``(X, y)`` tensor pairs from a pair or an iterable of pairs (validated)."""
    if _is_pair(data):
        items: Iterable[Any] = [data]
    elif isinstance(data, (torch.Tensor, np.ndarray)):
        raise DataError(
            "data is a single array; expected a pair (X, y) or an iterable of (X, y) batches",
            hint="pass the labels too: metric(model, ..., (X, y))",
        )
    else:
        try:
            items = iter(data)
        except TypeError:
            raise DataError(
                f"data is a {type(data).__name__}; expected a pair (X, y) of tensors or an "
                "iterable of (X, y) batches (e.g. a DataLoader)"
            ) from None
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise DataError(
                f"data batch {i} is a {type(item).__name__}; expected an (X, y) pair",
                hint="an iterable of batches must yield (inputs, targets) pairs",
            )
        x, y = _as_tensor(item[0], "X", i), _as_tensor(item[1], "y", i)
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"data batch {i}: X has {x.shape[0]} rows but y has {y.shape[0]}; "
                "inputs and targets must have the same number of samples"
            )
        if x.shape[0] == 0:
            continue
        yield x, y


def collect_batches(
    data: Any, device: torch.device, n_samples: int | None = None, what: str = "data"
) -> list[Batch]:
    """Materialise ``data`` as a list of batches on ``device``; at most ``n_samples`` rows."""
    if n_samples is not None and n_samples < 1:
        raise DataError(f"n_samples={n_samples}; expected a positive number of samples")
    out: list[Batch] = []
    total = 0
    for x, y in iter_batches(data):
        if n_samples is not None and total + x.shape[0] > n_samples:
            keep = n_samples - total
            x, y = x[:keep], y[:keep]
        out.append((x.to(device), y.to(device)))
        total += x.shape[0]
        if n_samples is not None and total >= n_samples:
            break
    if not out:
        raise DataError(
            f"{what} is empty: no samples to evaluate",
            hint="pass at least one non-empty (X, y) batch",
        )
    return out


def n_rows(batches: list[Batch]) -> int:
    return sum(int(x.shape[0]) for x, _ in batches)


def checked_loss(loss_fn: LossFn, out: torch.Tensor, y: torch.Tensor, index: int) -> torch.Tensor:
    """Call ``loss_fn(out, y)`` and turn a mismatch or a non-finite value into a DataError."""
    try:
        loss = loss_fn(out, y)
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise DataError(
            f"loss_fn does not fit the model's output: on batch {index} the model returned "
            f"shape {tuple(out.shape)} ({out.dtype}) and the targets have shape "
            f"{tuple(y.shape)} ({y.dtype}); loss_fn raised: {str(exc).splitlines()[0]}",
            hint="use a loss that takes (model(X), y), e.g. nn.CrossEntropyLoss() for class "
            "labels with logits",
        ) from exc
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise DataError(
            f"loss_fn returned {shape}; expected a scalar tensor (the mean loss of the batch)",
            hint="use reduction='mean'",
        )
    if not torch.isfinite(loss.detach()).all():
        raise DataError(
            f"the loss is {loss.item()} on batch {index}: landscape metrics need a finite loss",
            hint="check the model's weights and the data for NaN/inf, or a diverged training run",
        )
    return loss.reshape(())


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put models in eval mode for the block and restore each module's previous mode."""
    saved = [[(m, m.training) for m in model.modules()] for model in models]
    try:
        for model in models:
            model.eval()
        yield
    finally:
        for modes in saved:
            for m, training in modes:
                m.training = training


def trainable_params(model: nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise DataError(
            f"{type(model).__name__} has no trainable parameters; the Hessian is taken with "
            "respect to parameters with requires_grad=True"
        )
    return params


def finite_or_raise(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise DataError(f"{what} is {value}; the computation produced a non-finite value")
    return value
