"""Per-model data order, batch gathering, a label-smoothed loss and evaluation for batched models.

Each model draws its own data order from its own ``torch.Generator`` with the same calls a solo
run makes (``torch.randperm(n, generator=g)`` once per epoch), so model k sees exactly the
minibatches that the same seed sees when trained alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import vmap
from torch.nn import functional as F

from ablab.batched.errors import BatchedError
from ablab.batched.optim import per_model

if TYPE_CHECKING:
    from ablab.batched.models import BatchedModels


def permutations(generators: Sequence[torch.Generator], n: int) -> list[Tensor]:
    """One epoch's data order per model: ``torch.randperm(n, generator=g)`` for each generator."""
    return [torch.randperm(n, generator=g) for g in generators]


def gather(data: Sequence[Tensor], idx: Sequence[Tensor]) -> Tensor:
    """Stack model k's minibatch ``data[k][idx[k]]`` into one [K, B, ...] tensor (``data[k]`` may
    be the same tensor for every model, or each model's own dataset)."""
    if len(data) != len(idx):
        raise BatchedError(f"gather got {len(data)} datasets for {len(idx)} index sets")
    return torch.stack([d[i] for d, i in zip(data, idx, strict=True)])


def smoothing_weights(
    label_smoothing: float | Sequence[float],
    k: int,
    num_classes: int,
    *,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-model label-smoothing coefficients ``[K, 2]`` = ``(1 - s_k, s_k / C)`` in float32, the
    Python-float factors ``F.cross_entropy`` multiplies by (computed in double, then rounded),
    for :func:`cross_entropy`. Each ``s_k`` must lie in [0, 1]. ``device``: where the tensor is
    made (the models' device; default the CPU)."""
    values = per_model("label_smoothing", label_smoothing, k)
    bad = [s for s in values if s > 1]
    if bad:
        raise BatchedError(f"label_smoothing must lie in [0, 1], got {bad[0]}")
    return torch.tensor(
        [[1 - s, s / num_classes] for s in values], dtype=torch.float32, device=device
    )


def cross_entropy(logits: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of one model's ``logits`` [B, C] against class indices ``y`` [B], with
    label smoothing given as ``w = (1 - s, s / C)`` (a row of :func:`smoothing_weights`):

        loss = (1 - s) * NLL(log_softmax(logits), y) + (s / C) * mean_i(-sum_c log_softmax(logits)_ic)

    the formula and operation order of ``F.cross_entropy(..., label_smoothing=s)``, written so
    that ``s`` can differ per model under ``vmap``. ``w=None``: plain ``F.cross_entropy``.
    """
    if w is None:
        return F.cross_entropy(logits, y)
    logp = torch.log_softmax(logits, 1)
    nll = F.nll_loss(logp, y)
    smooth = -(logp.sum(1))
    return w[0] * nll + (smooth.sum() / y.shape[0]) * w[1]


def _cross_entropy_batched(logits: Tensor, y: Tensor, w: Tensor | None = None) -> Tensor:
    """:func:`cross_entropy` of K models at once (``logits`` [K, B, C], ``y`` [K, B], ``w`` [K, 2]),
    without ``vmap``: returns [K]. Its gradient with respect to ``logits`` is, element for
    element, the one ``F.cross_entropy`` gives each model (the same operations on the same
    values: ``-(w0 / B)`` at the target, ``-(w1 / B)`` everywhere, ``log_softmax``'s backward
    row by row); the loss values themselves may differ from it in the last bits (another
    summation order)."""
    logp = torch.log_softmax(logits, 2)
    n = y.shape[1]
    nll = -(logp.gather(2, y.unsqueeze(2)).squeeze(2))
    if w is None:
        return nll.sum(1) / n
    smooth = -(logp.sum(2))
    return w[:, 0] * (nll.sum(1) / n) + (smooth.sum(1) / n) * w[:, 1]


cross_entropy.batched = _cross_entropy_batched  # type: ignore[attr-defined]  # used by BatchedModels


def evaluate(
    bm: BatchedModels, x: Tensor, y: Tensor, *, shared_input: bool = False
) -> dict[str, Tensor]:
    """Per-model accuracy and mean cross-entropy (no label smoothing) in eval mode, without
    gradients: ``accuracy[k] = mean(argmax(model_k(x_k)) == y_k)``, ``loss[k] = CE(model_k(x_k),
    y_k)``. ``x``/``y`` carry the model axis unless ``shared_input`` (then one ``x``, ``y``), and
    are on the models' device (the results are too: read them with one ``.tolist()``, not a
    ``.item()`` per model, which on a GPU waits for the device K times).
    Returns ``{"accuracy": [K], "loss": [K], "logits": [K, N, C]}``; the mode is restored."""
    was_training = bm.training
    bm.eval()
    try:
        with torch.no_grad():
            logits = bm(x, shared_input=shared_input)
            ys = y.expand(bm.k, *y.shape) if shared_input else y
            acc = vmap(lambda lg, t: (lg.argmax(1) == t).float().mean())(logits, ys)
            # per model, not vmapped: vmap's nll_loss rule sums in another order (1-ulp changes)
            loss = torch.stack([F.cross_entropy(logits[k], ys[k]) for k in range(bm.k)])
    finally:
        bm.training = was_training
    return {"accuracy": acc, "loss": loss, "logits": logits}
