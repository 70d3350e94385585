"""Training error and training loss of a fixed model (the model is evaluated in eval mode)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ablab.errors import DataError
from ablab.landscape._data import (
    LossFn,
    Measured,
    checked_loss,
    collect_batches,
    eval_mode,
    iter_batches,
    model_device,
)


def predictions(
    out: torch.Tensor, y: torch.Tensor, index: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true class indices from logits ``out`` and targets ``y``.

    Multi-class logits ``(N, C)`` use ``argmax``; a single logit ``(N,)`` or ``(N, 1)`` is a
    binary classifier thresholded at 0. Targets may be class indices or one-hot rows.
    """
    if out.dim() == 2 and out.shape[1] > 1:
        pred = out.argmax(dim=1)
    elif out.dim() == 1 or (out.dim() == 2 and out.shape[1] == 1):
        pred = (out.reshape(-1) > 0).long()
    else:
        raise DataError(
            f"train_error: the model's output on batch {index} has shape {tuple(out.shape)}; "
            "expected class logits of shape (N, C) or (N,)"
        )
    true = y
    if true.dim() == 2 and true.shape[1] == out.shape[-1] and true.shape[1] > 1:
        true = true.argmax(dim=1)
    if true.dim() != 1 or true.is_floating_point() and not torch.equal(true, true.round()):
        raise DataError(
            f"train_error: targets on batch {index} have shape {tuple(y.shape)} ({y.dtype}); "
            "expected integer class labels of shape (N,) or one-hot rows (N, C)"
        )
    return pred, true.long()


@torch.no_grad()
def _error_count(model: nn.Module, x: torch.Tensor, y: torch.Tensor, index: int) -> int:
    pred, true = predictions(model(x), y, index)
    return int((pred != true).sum())


def train_error(model: nn.Module, data: Any) -> float:
    """Classification error in percent: ``100 * #{i : argmax f(x_i) != y_i} / n``.

    The "training error" feature of MD tree (Zhou et al., ICML 2024, §3.2), measured on the
    training data in eval mode. Returns a :class:`~ablab.landscape.Measured` float whose
    ``n_samples`` records how many samples were used.
    """
    device = model_device(model)
    wrong = total = 0
    with eval_mode(model):
        for i, (x, y) in enumerate(iter_batches(data)):
            x, y = x.to(device), y.to(device)
            wrong += _error_count(model, x, y, i)
            total += int(x.shape[0])
    if total == 0:
        raise DataError("train_error: data is empty: no samples to evaluate")
    return Measured(100.0 * wrong / total, n_samples=total)


@torch.no_grad()
def train_loss(model: nn.Module, loss_fn: LossFn, data: Any) -> float:
    """Mean training loss ``(1/n) * sum_b n_b * loss_fn(f(X_b), y_b)`` in eval mode.

    ``loss_fn`` must return the mean loss of a batch (``reduction='mean'``); batches are
    weighted by their size, so the result does not depend on how the data is batched.
    """
    device = model_device(model)
    acc = 0.0
    total = 0
    with eval_mode(model):
        for i, (x, y) in enumerate(iter_batches(data)):
            x, y = x.to(device), y.to(device)
            loss = checked_loss(loss_fn, model(x), y, i)
            acc += float(loss) * int(x.shape[0])
            total += int(x.shape[0])
    if total == 0:
        raise DataError("train_loss: data is empty: no samples to evaluate")
    return Measured(acc / total, n_samples=total)


def error_and_loss(model: nn.Module, loss_fn: LossFn, data: Any) -> tuple[float, float, int]:
    """Both training error (percent) and mean loss in one pass; returns ``(err, loss, n)``."""
    device = model_device(model)
    batches = collect_batches(data, device)
    wrong = 0
    acc = 0.0
    n = 0
    with eval_mode(model), torch.no_grad():
        for i, (x, y) in enumerate(batches):
            out = model(x)
            acc += float(checked_loss(loss_fn, out, y, i)) * int(x.shape[0])
            pred, true = predictions(out, y, i)
            wrong += int((pred != true).sum())
            n += int(x.shape[0])
    return 100.0 * wrong / n, acc / n, n
