"""Functional SGD and Adam over stacked parameters with per-model learning rate / weight decay.

Both run, for every model, the same arithmetic as ``torch.optim.SGD`` / ``torch.optim.Adam``
(single-tensor path, the CPU default), operation by operation and with the same kernels, so a
model's trajectory equals its solo training given equal gradients. Per-model values are applied by
grouping the models that share a value (most batches have one or a few distinct values) and
calling the very kernel the solo optimiser calls with that value as a Python scalar; a per-model
tensor would change the rounding (e.g. a fused multiply-add in ``add(alpha=...)``).
They run wherever the parameters are (CPU or a CUDA device): every tensor they make (state,
buffers, index tensors, Adam's step counter) is made on the parameters' device. On CUDA a solo
``torch.optim.Adam`` defaults to its multi-tensor (foreach) path, whose kernels may round a
fused multiply-add differently from the single-tensor operations used here: equal up to float
rounding there, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real

import torch
from torch import Tensor

from ablab.batched.errors import BatchedError


def per_model(
    name: str, value: float | Sequence[float] | Tensor, k: int, *, minimum: float = 0.0
) -> list[float]:
    """``value`` as K Python floats: a scalar is repeated, a sequence/1-d tensor must have length
    K. Raises :class:`BatchedError` for a wrong length, a non-numeric, non-finite or too small
    value."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().reshape(-1).tolist() if value.ndim else value.item()
    if isinstance(value, (str, bytes)) or not isinstance(value, (Real, Sequence)):
        raise BatchedError(f"{name} must be a number or a list of {k} numbers, got {value!r}")
    values = [value] * k if isinstance(value, Real) else list(value)
    if len(values) != k:
        raise BatchedError(
            f"{name} has {len(values)} values for {k} models; give one value, or one per model"
        )
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, Real):
            raise BatchedError(f"{name}[{i}] must be a number, got {v!r} ({type(v).__name__})")
        if not math.isfinite(float(v)) or float(v) < minimum:
            raise BatchedError(f"{name}[{i}] = {v!r} must be a finite number >= {minimum}")
        out.append(float(v))
    return out


def _groups(
    values: list[float], device: torch.device | None = None
) -> list[tuple[float, slice | Tensor]]:
    """(value, selector) for each distinct value, the most frequent first; the selector is a
    slice when the models holding it are contiguous, else an index tensor (on ``device``)."""
    out: list[tuple[float, slice | Tensor]] = []
    for v in dict.fromkeys(values):
        idx = [i for i, x in enumerate(values) if x == v]
        sel: slice | Tensor = (
            slice(idx[0], idx[-1] + 1)
            if idx[-1] - idx[0] + 1 == len(idx)
            else torch.tensor(idx, device=device)
        )
        out.append((v, sel))
    return sorted(out, key=lambda vs: -_count(vs[1]))


def _count(sel: slice | Tensor) -> int:
    return sel.stop - sel.start if isinstance(sel, slice) else len(sel)


def _grouped(
    t: Tensor,
    groups: list[tuple[float, slice | Tensor]],
    fn: Callable[[Tensor, float, slice | Tensor], Tensor],
) -> None:
    """Apply a per-model scalar in place: rows ``sel`` of ``t`` become ``fn(t[sel], value, sel)``
    for each ``(value, sel)`` of :func:`_groups` (``fn`` updates its first argument in place and
    indexes any other operand with ``sel``). The most frequent value is applied to the whole
    tensor at once, after the rows of the other values are copied out; those rows are then
    recomputed from their copies. So the common case (one value) is a single whole-tensor call,
    and every row gets exactly the kernel call a solo model would make with its own value."""
    (v0, _), rest = groups[0], groups[1:]
    saved = [(v, sel, t[sel].clone()) for v, sel in rest]
    fn(t, v0, slice(None))
    for v, sel, rows in saved:
        t[sel] = fn(rows, v, sel)


def _check_params(params: dict[str, Tensor]) -> int:
    if not isinstance(params, dict) or not params:
        raise BatchedError(
            "params must be a non-empty dict of stacked tensors (BatchedModels.params)"
        )
    ks = {t.shape[0] for t in params.values()}
    if len(ks) != 1:
        raise BatchedError(f"stacked parameters disagree on the model axis: sizes {sorted(ks)}")
    return ks.pop()


def flat_layout(params: dict[str, Tensor]) -> Tensor | None:
    """The ``[K, P]`` tensor behind ``params`` when they are the views :class:`BatchedModels`
    makes (every parameter a column block of one tensor, in dict order), else ``None``."""
    tensors = list(params.values())
    base = tensors[0]._base
    if base is None or base.dim() != 2 or not base.is_contiguous():
        return None
    offset = 0
    row = base.stride(0)
    for t in tensors:
        n = t[0].numel()
        if (
            t._base is not base
            or t.shape[0] != base.shape[0]
            or (t.shape[0] > 1 and t.stride(0) != row)
            or t.storage_offset() - base.storage_offset() != offset
            or not t[0].is_contiguous()
        ):
            return None
        offset += n
    return base if offset == base.shape[1] else None


class BatchedSGD:
    """``torch.optim.SGD`` for K stacked models, updating ``params`` in place.

    Per model k (``lr``, ``weight_decay``: scalar or K values; ``momentum``, ``dampening``,
    ``nesterov`` shared): ``g = grad + wd_k * p``; with momentum ``b = g`` on the first step, else
    ``b = momentum * b + (1 - dampening) * g``, and ``g = g + momentum * b`` (Nesterov) or
    ``g = b``; then ``p = p - lr_k * g``.
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        lr: float | Sequence[float] | Tensor,
        *,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float | Sequence[float] = 0.0,
        nesterov: bool = False,
    ) -> None:
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
        device = next(iter(params.values())).device
        self._lr_groups, self._wd_groups = (
            _groups(self.lr, device),
            _groups(self.weight_decay, device),
        )
        self._flat = flat_layout(params)
        self._buffers: dict[str, Tensor] = {}

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor]) -> None:
        """Apply one update with ``grads`` (same keys and shapes as ``params``)."""
        for name, p, g in _slots(self.params, self._flat, grads, self._buffers):
            g = _decay(g, p, self._wd_groups, fresh=self._flat is not None)
            if self.momentum != 0:
                if name not in self.buf:
                    self.buf[name] = g.detach().clone()
                else:
                    self.buf[name].mul_(self.momentum).add_(g, alpha=1 - self.dampening)
                g = g.add(self.buf[name], alpha=self.momentum) if self.nesterov else self.buf[name]
            _grouped(p, self._lr_groups, lambda t, lr, s, g=g: t.add_(g[s], alpha=-lr))


def _slots(
    params: dict[str, Tensor],
    flat: Tensor | None,
    grads: dict[str, Tensor],
    buffers: dict[str, Tensor],
) -> list[tuple[str, Tensor, Tensor]]:
    """(state key, parameter, gradient) to update: one ``("flat", [K, P], [K, P])`` slot when
    the parameters are views of one tensor (the gradients concatenated in the same layout),
    else one slot per parameter."""
    missing = [n for n in params if n not in grads]
    if missing:
        raise BatchedError(
            f"grads has no entry for parameter(s) {missing}; pass the dict loss_and_grad returns"
        )
    if flat is None:
        return [(n, p, grads[n]) for n, p in params.items()]
    k = flat.shape[0]
    if "grad" not in buffers:  # reused: a fresh [K, P] tensor each step costs page faults
        buffers["grad"] = torch.empty_like(flat)
    return [
        ("flat", flat, torch.cat([grads[n].reshape(k, -1) for n in params], 1, out=buffers["grad"]))
    ]


def _decay(
    g: Tensor, p: Tensor, groups: list[tuple[float, slice | Tensor]], *, fresh: bool
) -> Tensor:
    """``g + wd_k * p`` per model (``torch.optim``'s L2 weight decay, ``grad.add(p, alpha=wd)``);
    ``g`` itself is updated when it is ``fresh`` (a tensor this step made), else copied first."""
    if all(wd == 0 for wd, _ in groups):
        return g
    if not fresh:
        g = g.clone()
    _grouped(g, groups, lambda t, wd, s: t.add_(p[s], alpha=wd) if wd != 0 else t)
    return g


class BatchedAdam:
    """``torch.optim.Adam`` (not AdamW) for K stacked models, updating ``params`` in place.

    Per model k at step t (``lr``, ``weight_decay``: scalar or K values; ``betas``, ``eps``
    shared): ``g = grad + wd_k * p``; ``m = lerp(m, g, 1 - b1)``; ``v = b2 * v + (1 - b2) g^2``;
    ``p = p - (lr_k / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``.

    By default these are the operations of ``torch.optim.Adam``'s default (single-tensor) path,
    so each model matches its solo run bit for bit. ``fused=True`` uses torch's fused kernel
    (``torch.optim.Adam(fused=True)``: one pass instead of nine, about 3x cheaper here), whose
    rounding differs from the default path by about an ulp per step (its first moment is
    ``b1 m + (1 - b1) g``, not ``lerp``): models then match their solo runs up to float
    rounding only, and the differences grow over training as in any chaotic iteration. On a
    CUDA device ``fused=True`` runs the same kernel call on the GPU (torch's CUDA fused Adam, as
    ``torch.optim.Adam(fused=True)`` calls it: one call for the whole [K, P] tensor, or one per
    group of models sharing ``(lr, weight_decay)``).
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        lr: float | Sequence[float] | Tensor = 1e-3,
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float | Sequence[float] = 0.0,
        fused: bool = False,
    ) -> None:
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
        self._flat = flat_layout(params)
        self._buffers: dict[str, Tensor] = {}
        slots = {"flat": self._flat} if self._flat is not None else params
        self.exp_avg = {n: torch.zeros_like(p) for n, p in slots.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in slots.items()}
        device = next(iter(params.values())).device
        self._lr_groups, self._wd_groups = (
            _groups(self.lr, device),
            _groups(self.weight_decay, device),
        )
        self.fused = bool(fused)
        self._step_tensor = torch.zeros(
            (), device=device
        )  # the fused kernel reads it on the device
        # models sharing (lr, weight decay): one fused call each
        pairs = list(zip(self.lr, self.weight_decay, strict=True))
        self._fused_groups = [
            (lr, wd, [k for k, pr in enumerate(pairs) if pr == (lr, wd)])
            for lr, wd in dict.fromkeys(pairs)
        ]

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor]) -> None:
        """Apply one update with ``grads`` (same keys and shapes as ``params``)."""
        if self.fused:
            self._fused_step(grads)
            return
        self.step_count += 1
        b1, b2 = self.betas
        step = float(self.step_count)  # torch.optim.Adam keeps the step as a float tensor
        bias_correction1 = 1 - b1**step
        bias_correction2_sqrt = (1 - b2**step) ** 0.5
        for name, p, g in _slots(self.params, self._flat, grads, self._buffers):
            g = _decay(g, p, self._wd_groups, fresh=self._flat is not None)
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            if f"denom:{name}" not in self._buffers:
                self._buffers[f"denom:{name}"] = torch.empty_like(v)
            denom = self._buffers[f"denom:{name}"]
            torch.sqrt(v, out=denom).div_(bias_correction2_sqrt).add_(self.eps)
            _grouped(
                p,
                self._lr_groups,
                lambda t, lr, s, m=m, d=denom: t.addcdiv_(
                    m[s], d[s], value=-(lr / bias_correction1)
                ),
            )

    def _fused_step(self, grads: dict[str, Tensor]) -> None:
        self.step_count += 1
        self._step_tensor.fill_(float(self.step_count))
        b1, b2 = self.betas
        for name, p, g in _slots(self.params, self._flat, grads, self._buffers):
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            for lr, wd, models in self._fused_groups:
                if len(models) == self.k:
                    ts = [[p], [g], [m], [v]]
                else:  # model k's rows: contiguous slices of the stacked tensors
                    ts = [[t[k] for k in models] for t in (p, g, m, v)]
                torch._fused_adam_(
                    *ts,
                    [],
                    [self._step_tensor] * len(ts[0]),
                    lr=lr,
                    beta1=b1,
                    beta2=b2,
                    weight_decay=wd,
                    eps=self.eps,
                    amsgrad=False,
                    maximize=False,
                )
