"""Functional SGD and Adam over stacked parameters with per-model learning rate / weight decay.

Both run, for every model, the same arithmetic as ``torch.optim.SGD`` / ``torch.optim.Adam``
(single-tensor path, the CPU default), operation by operation and with the same kernels, so a
model's trajectory equals its solo training given equal gradients. Per-model values are applied by
grouping the models that share a value (most batches have one or a few distinct values) and
calling the very kernel the solo optimiser calls with that value as a Python scalar; a per-model
tensor would change the rounding (e.g. a fused multiply-add in ``add(alpha=...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real

import torch
from torch import Tensor

from ablab.batched.errors import BatchedError


def per_model(name: str, value: float | Sequence[float] | Tensor, k: int, *,
              minimum: float = 0.0) -> list[float]:
    """``value`` as K Python floats: a scalar is repeated, a sequence/1-d tensor must have length
    K. Raises :class:`BatchedError` for a wrong length, a non-numeric, non-finite or too small
    value."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().reshape(-1).tolist() if value.ndim else value.item()
    if isinstance(value, (str, bytes)) or not isinstance(value, (Real, Sequence)):
        raise BatchedError(f"{name} must be a number or a list of {k} numbers, got {value!r}")
    values = [value] * k if isinstance(value, Real) else list(value)
    if len(values) != k:
        raise BatchedError(f"{name} has {len(values)} values for {k} models; give one value, or one per model")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, Real):
            raise BatchedError(f"{name}[{i}] must be a number, got {v!r} ({type(v).__name__})")
        if not math.isfinite(float(v)) or float(v) < minimum:
            raise BatchedError(f"{name}[{i}] = {v!r} must be a finite number >= {minimum}")
        out.append(float(v))
    return out


def _groups(values: list[float]) -> list[tuple[float, slice | Tensor]]:
    """(value, selector) for each distinct value; the selector is a slice when the models holding
    it are contiguous (in-place updates on a view), else an index tensor."""
    out: list[tuple[float, slice | Tensor]] = []
    for v in dict.fromkeys(values):
        idx = [i for i, x in enumerate(values) if x == v]
        sel: slice | Tensor = (slice(idx[0], idx[-1] + 1) if idx[-1] - idx[0] + 1 == len(idx)
                               else torch.tensor(idx))
        out.append((v, sel))
    return out


def _update(t: Tensor, sel: slice | Tensor, fn: Callable[[Tensor], Tensor]) -> None:
    """``t[sel] = fn(t[sel])`` for either kind of selector, in place."""
    if isinstance(sel, slice) and sel == slice(0, t.shape[0]):
        fn_out = fn(t)
        if fn_out is not t:
            t.copy_(fn_out)
    else:
        t[sel] = fn(t[sel])


def _check_params(params: dict[str, Tensor]) -> int:
    if not isinstance(params, dict) or not params:
        raise BatchedError("params must be a non-empty dict of stacked tensors (BatchedModels.params)")
    ks = {t.shape[0] for t in params.values()}
    if len(ks) != 1:
        raise BatchedError(f"stacked parameters disagree on the model axis: sizes {sorted(ks)}")
    return ks.pop()


class BatchedSGD:
    """``torch.optim.SGD`` for K stacked models, updating ``params`` in place.

    Per model k (``lr``, ``weight_decay``: scalar or K values; ``momentum``, ``dampening``,
    ``nesterov`` shared): ``g = grad + wd_k * p``; with momentum ``b = g`` on the first step, else
    ``b = momentum * b + (1 - dampening) * g``, and ``g = g + momentum * b`` (Nesterov) or
    ``g = b``; then ``p = p - lr_k * g``.
    """

    def __init__(self, params: dict[str, Tensor], lr: float | Sequence[float] | Tensor, *,
                 momentum: float = 0.0, dampening: float = 0.0, weight_decay: float | Sequence[float] = 0.0,
                 nesterov: bool = False) -> None:
        self.k = _check_params(params)
        self.params = params
        self.lr = per_model("lr", lr, self.k)
        self.weight_decay = per_model("weight_decay", weight_decay, self.k)
        self.momentum = per_model("momentum", momentum, 1)[0]
        self.dampening = per_model("dampening", dampening, 1)[0]
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise BatchedError("Nesterov momentum requires momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        self.buf: dict[str, Tensor] = {}
        self._lr_groups, self._wd_groups = _groups(self.lr), _groups(self.weight_decay)

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor]) -> None:
        """Apply one update with ``grads`` (same keys and shapes as ``params``)."""
        for name, p in self.params.items():
            g = grads[name]
            if any(wd != 0 for wd, _ in self._wd_groups):
                g = g.clone()
                for wd, sel in self._wd_groups:
                    if wd != 0:
                        _update_from(g, sel, lambda t, s=sel, w=wd, p=p: t.add(p[s], alpha=w))
            if self.momentum != 0:
                if name not in self.buf:
                    self.buf[name] = g.detach().clone()
                else:
                    self.buf[name].mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(self.buf[name], alpha=self.momentum) if self.nesterov else self.buf[name]
            for lr, sel in self._lr_groups:
                _update(p, sel, lambda t, s=sel, lr=lr, g=g: t.add_(g[s], alpha=-lr))


def _update_from(t: Tensor, sel: slice | Tensor, fn: Callable[[Tensor], Tensor]) -> None:
    """``t[sel] = fn(t[sel])`` where ``fn`` receives ``t[sel]`` and returns a new tensor."""
    t[sel] = fn(t[sel])


class BatchedAdam:
    """``torch.optim.Adam`` (not AdamW) for K stacked models, updating ``params`` in place.

    Per model k at step t (``lr``, ``weight_decay``: scalar or K values; ``betas``, ``eps``
    shared): ``g = grad + wd_k * p``; ``m = lerp(m, g, 1 - b1)``; ``v = b2 * v + (1 - b2) g^2``;
    ``p = p - (lr_k / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.
    """

    def __init__(self, params: dict[str, Tensor], lr: float | Sequence[float] | Tensor = 1e-3, *,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float | Sequence[float] = 0.0) -> None:
        self.k = _check_params(params)
        self.params = params
        self.lr = per_model("lr", lr, self.k)
        self.weight_decay = per_model("weight_decay", weight_decay, self.k)
        b1, b2 = per_model("betas", list(betas), 2)
        if not (b1 < 1 and b2 < 1):
            raise BatchedError(f"betas must lie in [0, 1), got {betas!r}")
        self.betas = (b1, b2)
        self.eps = per_model("eps", eps, 1)[0]
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self._lr_groups, self._wd_groups = _groups(self.lr), _groups(self.weight_decay)

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor]) -> None:
        """Apply one update with ``grads`` (same keys and shapes as ``params``)."""
        self.step_count += 1
        b1, b2 = self.betas
        step = float(self.step_count)  # torch.optim.Adam keeps the step as a float tensor
        bias_correction1 = 1 - b1**step
        bias_correction2_sqrt = (1 - b2**step) ** 0.5
        for name, p in self.params.items():
            g = grads[name]
            if any(wd != 0 for wd, _ in self._wd_groups):
                g = g.clone()
                for wd, sel in self._wd_groups:
                    if wd != 0:
                        _update_from(g, sel, lambda t, s=sel, w=wd, p=p: t.add(p[s], alpha=w))
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)
            for lr, sel in self._lr_groups:
                step_size = lr / bias_correction1
                _update(p, sel, lambda t, s=sel, a=-step_size, m=m, d=denom: t.addcdiv_(m[s], d[s], value=a))
