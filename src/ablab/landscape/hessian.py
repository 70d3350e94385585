"""Hessian sharpness of a trained model: top eigenvalue (Lanczos or power iteration) and trace
(Hutchinson).

Both work on Hessian-vector products ``Hv`` of the mean training loss
``L(theta) = (1/n) sum_i loss(f(x_i; theta), y_i)`` with respect to all trainable parameters,
with the model in eval mode (dropout off, BatchNorm running statistics), as PyHessian does
(Yao et al., "PyHessian: Neural Networks Through the Lens of the Hessian", IEEE BigData 2020)
and as MD tree uses them (Zhou et al., ICML 2024, §3.2).

How it is fast: the gradient ``g = dL/dtheta`` is built once with ``create_graph=True`` over
all batches together (a single flat tensor), and every product is one reverse pass through
that retained graph, ``Hv = d(g . v)/dtheta`` (PyHessian, given a DataLoader, re-runs forward and backward for
every batch at every product). On the CPU batches are re-cut into chunks of up to 1024
samples: consecutive batches of equal shape concatenated, larger ones split (in eval mode
samples are independent, and for a mean-reduced ``loss_fn`` the mean over the union is the
size-weighted mean over batches). On a GPU consecutive batches of equal shape are
concatenated and nothing is split: one large pass beats several small ones there
(measured on an H100: the MNIST-1D CNN on 32,000 samples, top eigenvalue 0.47 s in chunks of
1,024 vs 0.07 s in one; PyHessian 0.16 s).
Eval-mode BatchNorm enters that graph as the per-channel affine map it is (the same function;
see :class:`_AffineBatchNorm`), whose double backward is far cheaper than
``native_batch_norm``'s. The top eigenvalue uses the Lanczos iteration by default, which
stops in fewer products than power iteration at the same ``tol`` (``method="power"`` keeps
PyHessian's algorithm). The retained graph costs memory proportional to the number of
samples: pass as many as you want measured. ``loss_fn`` must return the batch mean
(``reduction='mean'``).

Several Hutchinson probes per pass (``is_grads_batched``): on a GPU the trace takes its
probes :data:`GPU_PROBE_BLOCK` at a time (on an H100, 0.87 vs 1.95 ms per probe for the
paper's MLP, 1.64 vs 2.80 ms for the MNIST-1D CNN on 4,000 samples), with the same probes and
the same stopping rule, so the same value up to float round-off; on the CPU they, and
forward-over-reverse ``jvp(grad(f))``, were slower per probe than one reverse pass per probe
through the retained graph (benchmarks/results/hessian.md), so the CPU keeps one per pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ablab.landscape._data import (
    Batch,
    LossFn,
    Measured,
    checked_loss,
    collect_batches,
    eval_mode,
    finite_or_raise,
    model_device,
    n_rows,
    trainable_params,
)

_MERGE_CAP = 1024  # samples per chunk on the CPU (see _merge); no cap on a GPU
#: Hutchinson probes per reverse pass on a GPU (one on the CPU; module docstring).
GPU_PROBE_BLOCK = 4


class HessianOperator:
    """The Hessian of the mean loss over ``data`` as a linear operator on flat vectors.

    ``op.matvec(v)`` returns ``H v`` for a flat vector ``v`` of length ``op.dim``;
    ``op.matmat(V)`` returns ``V H`` for a ``(k, dim)`` block of vectors.
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, data: Any, *, n_samples: int | None = None
    ) -> None:
        self.params = trainable_params(model)
        device = model_device(model)
        cap = _MERGE_CAP if device.type == "cpu" else None
        batches = _merge(collect_batches(data, device, n_samples), cap)
        self.n_samples = n_rows(batches)
        self.dim = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        self.device = device
        with eval_mode(model), torch.enable_grad(), _AffineBatchNorm():
            total: torch.Tensor | None = None
            for i, (x, y) in enumerate(batches):
                loss = checked_loss(loss_fn, model(x), y, i) * (x.shape[0] / self.n_samples)
                total = loss if total is None else total + loss
            assert total is not None
            grads = torch.autograd.grad(total, self.params, create_graph=True, allow_unused=True)
        flat = [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, self.params, strict=True)
        ]
        self.grad = torch.cat(flat)
        self._zero = not self.grad.requires_grad
        self._batched_ok = True

    def _flatten(
        self, parts: tuple[torch.Tensor | None, ...], lead: tuple[int, ...]
    ) -> torch.Tensor:
        return torch.cat(
            [
                (h if h is not None else p.new_zeros(lead + p.shape)).reshape(*lead, -1)
                for h, p in zip(parts, self.params, strict=True)
            ],
            dim=-1,
        )

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """``H v`` for a flat vector ``v``."""
        if self._zero:
            return torch.zeros_like(v)
        parts = torch.autograd.grad(
            self.grad, self.params, grad_outputs=v, retain_graph=True, allow_unused=True
        )
        return self._flatten(parts, ())

    def matmat(self, vs: torch.Tensor, *, batched: bool = False) -> torch.Tensor:
        """``H v_j`` for each row ``v_j`` of a ``(k, dim)`` block.

        By default one reverse pass per row: on CPU that was faster than one vmapped pass
        over the block (``is_grads_batched``; 1.3x slower on an MLP, 1.2-1.7x on a CNN,
        ``benchmarks/results/hessian.md``). ``batched=True`` asks for the vmapped pass, which
        may pay off on a GPU; it falls back to the loop for ops without a batching rule."""
        if self._zero:
            return torch.zeros_like(vs)
        if batched and self._batched_ok and vs.shape[0] > 1:
            try:
                parts = torch.autograd.grad(
                    self.grad,
                    self.params,
                    grad_outputs=vs,
                    retain_graph=True,
                    allow_unused=True,
                    is_grads_batched=True,
                )
                return self._flatten(parts, (vs.shape[0],))
            except RuntimeError:  # an op without a batching rule: fall back to a loop
                self._batched_ok = False
        return torch.stack([self.matvec(v) for v in vs])


class _AffineBatchNorm(TorchFunctionMode):
    """Evaluate eval-mode ``F.batch_norm`` as the per-channel affine map it is.

    With running statistics, ``batch_norm(x) = x * s + t`` with ``s = w / sqrt(var + eps)``
    and ``t = b - mean * s`` (per channel): the same function, so the same gradient and
    Hessian (up to float round-off). Written with ``mul``/``add`` its double backward costs a
    few elementwise products, whereas ``native_batch_norm``'s double-backward formula (written
    for the training case) costs ~20 full-size products (the profiler put it at 35% of a
    Hessian-vector product of the benchmark CNN; the measured saving per product was ~8%).
    Training-mode calls (batch statistics) pass through unchanged.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        if func is F.batch_norm:
            a = dict(zip(_BN_ARGS, args, strict=False)) | kwargs
            x, mean, var = a["input"], a.get("running_mean"), a.get("running_var")
            if not a.get("training", False) and mean is not None and var is not None:
                scale = torch.rsqrt(var + a.get("eps", 1e-5))
                if a.get("weight") is not None:
                    scale = a["weight"] * scale
                shift = -mean * scale
                if a.get("bias") is not None:
                    shift = shift + a["bias"]
                shape = (1, -1) + (1,) * (x.dim() - 2)
                return torch.addcmul(shift.reshape(shape), x, scale.reshape(shape))
        return func(*args, **kwargs)


_BN_ARGS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")


def _merge(batches: list[Batch], cap: int | None = _MERGE_CAP) -> list[Batch]:
    """Re-cut the batches into chunks of at most ``cap`` samples (concatenate or split;
    ``cap=None``: concatenate only, with no limit).

    In eval mode samples are independent, and for a mean-reduced loss the mean over a chunk
    is the size-weighted mean over its batches, so this changes no value. Fewer, larger
    chunks make each Hessian-vector product cheaper until the activations overflow the
    caches: measured per product (1 thread), the digits MLP on 1797 samples took 11 ms as
    one chunk vs 16 ms in chunks of 256; the MNIST-1D CNN on 4000 samples 0.18 s in chunks of
    1000 vs 0.27 s as one batch. Batches larger than ``cap`` are split (views, no copy).
    """
    if cap is None:
        pieces = list(batches)
        cap = sum(x.shape[0] for x, _ in batches)
    else:
        pieces = [
            (x[i : i + cap], y[i : i + cap]) if x.shape[0] > cap else (x, y)
            for x, y in batches
            for i in range(0, x.shape[0], cap)
        ]
    chunks: list[list[Batch]] = []
    size = 0
    for x, y in pieces:
        last = chunks[-1][-1] if chunks else None
        fits = (
            last is not None
            and size + x.shape[0] <= cap
            and x.shape[1:] == last[0].shape[1:]
            and y.shape[1:] == last[1].shape[1:]
            and x.dtype == last[0].dtype
            and y.dtype == last[1].dtype
        )
        if fits:
            chunks[-1].append((x, y))
            size += x.shape[0]
        else:
            chunks.append([(x, y)])
            size = x.shape[0]
    return [
        c[0] if len(c) == 1 else (torch.cat([x for x, _ in c]), torch.cat([y for _, y in c]))
        for c in chunks
    ]


def _relative_change(new: float, old: float) -> float:
    return abs(new - old) / (abs(old) + 1e-12)


def hessian_top_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    n_samples: int | None = None,
    method: str = "lanczos",
) -> float:
    """Largest-magnitude eigenvalue ``lambda_max`` of the loss Hessian (MD tree's sharpness).

    Both methods start from the same ``v_1 ~ N(0, I)`` (drawn from ``seed``, normalised),
    spend one Hessian-vector product per iteration, and stop when the estimate changes by
    less than ``tol`` relative to the previous one, ``|l_k - l_{k-1}| / |l_{k-1}| < tol``,
    or after ``max_iter`` products:

    - ``method="lanczos"`` (default): the Lanczos iteration (Golub & Van Loan, *Matrix
      Computations*, §10.1) builds an orthonormal basis ``Q_k`` of the Krylov space
      ``span{v_1, H v_1, ..., H^{k-1} v_1}`` and the tridiagonal ``T_k = Q_k^T H Q_k``;
      ``l_k`` is the Ritz value of ``T_k`` of largest magnitude. Power iteration's ``v_k``
      lies in the same Krylov space, and the extreme Ritz value is the extreme Rayleigh
      quotient over that space, so Lanczos reaches a given accuracy in fewer products (30-55%
      fewer on the benchmark networks) and stops closer to the exact value. Basis vectors are
      reorthogonalised (kept while they fit in 256 MiB, else the last two only).
    - ``method="power"``: power iteration, ``v_{k+1} = H v_k / ||H v_k||`` with the Rayleigh
      quotient ``l_k = v_k^T H v_k`` (Yao et al. 2020, Alg. 1, PyHessian's method).

    ``data`` is ``(X, y)`` or an iterable of batches; ``n_samples`` keeps only the first that
    many rows (the paper used 200; PyHessian's authors suggest ~4096 for stable values). The
    result is a :class:`~ablab.landscape.Measured` float: ``.n_samples``, ``.iterations`` (the
    number of Hessian-vector products) and ``.converged`` say how it was obtained.
    """
    _check_iter(max_iter, tol)
    if method not in ("lanczos", "power"):
        from ablab.errors import DataError

        raise DataError(f"method={method!r}; expected 'lanczos' or 'power'")
    op = HessianOperator(model, loss_fn, data, n_samples=n_samples)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(op.dim, generator=gen).to(op.device, op.dtype)
    v = v / v.norm()
    run = _lanczos if method == "lanczos" else _power
    lam, iterations, converged = run(op, v, max_iter, tol)
    finite_or_raise(lam, "the Hessian top eigenvalue")
    return Measured(lam, n_samples=op.n_samples, iterations=iterations, converged=converged)


def _power(
    op: HessianOperator, v: torch.Tensor, max_iter: int, tol: float
) -> tuple[float, int, bool]:
    lam_prev: float | None = None
    lam = 0.0
    for it in range(1, max_iter + 1):
        hv = op.matvec(v)
        lam = float(torch.dot(v, hv))
        norm = hv.norm()
        if float(norm) == 0.0:
            return lam, it, True
        v = hv / norm
        if lam_prev is not None and _relative_change(lam, lam_prev) < tol:
            return lam, it, True
        lam_prev = lam
    return lam, max_iter, False


_REORTH_BUDGET = 2**26  # floats kept for full reorthogonalisation (256 MiB in float32)


def _lanczos(
    op: HessianOperator, q: torch.Tensor, max_iter: int, tol: float
) -> tuple[float, int, bool]:
    """Lanczos with reorthogonalisation; the Ritz values come from the tridiagonal in float64."""
    import numpy as np

    basis: list[torch.Tensor] = [q]
    keep_all = True
    alphas: list[float] = []
    betas: list[float] = []
    q_prev: torch.Tensor | None = None
    beta = 0.0
    lam_prev: float | None = None
    lam = 0.0
    for it in range(1, max_iter + 1):
        w = op.matvec(q)
        alpha = float(torch.dot(q, w))
        alphas.append(alpha)
        w = w - alpha * q
        if q_prev is not None:
            w = w - beta * q_prev
        # reorthogonalise (twice is enough: Giraud et al. 2005) against the kept basis
        keep_all = keep_all and (it + 1) * op.dim <= _REORTH_BUDGET
        vecs = torch.stack(basis) if keep_all else torch.stack(basis[-2:])
        for _ in range(2):
            w = w - vecs.T @ (vecs @ w)
        # T_k is usually < 20 x 20, where a dense solve costs less than the tridiagonal one
        if it <= 64:
            ritz = np.linalg.eigvalsh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
        else:
            from scipy.linalg import eigvalsh_tridiagonal

            ritz = eigvalsh_tridiagonal(np.array(alphas), np.array(betas), lapack_driver="stev")
        lam = float(ritz[np.argmax(np.abs(ritz))])
        beta = float(w.norm())
        # an invariant subspace: T_k's eigenvalues are exact eigenvalues of H
        if beta <= 1e-6 * max(abs(a) for a in alphas) or beta == 0.0:
            return lam, it, True
        if lam_prev is not None and _relative_change(lam, lam_prev) < tol:
            return lam, it, True
        lam_prev = lam
        betas.append(beta)
        q_prev, q = q, w / beta
        basis = basis + [q] if keep_all else [q_prev, q]
    return lam, max_iter, False


def hessian_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-3,
    seed: int = 0,
    n_samples: int | None = None,
    probe_block: int | None = None,
) -> float:
    """Trace of the loss Hessian by Hutchinson's estimator with Rademacher probes.

    ``tr(H) = E[z^T H z]`` for ``z`` with i.i.d. entries ``+-1`` (Hutchinson, 1989); the
    estimate is the running mean ``T_k = (1/k) sum_{j<=k} z_j^T H z_j``, stopped when
    ``|T_k - T_{k-1}| / |T_{k-1}| < tol`` or after ``max_iter`` probes (Yao et al. 2020,
    Alg. 2). MD tree uses ``ln tr(H)`` as its flatness feature (Zhou et al. 2024, §3.2).

    Probes are drawn from a generator seeded with ``seed`` (the same stream PyHessian draws
    from the global RNG after ``torch.manual_seed(seed)``). Returns a :class:`~ablab.landscape.Measured` float (``.n_samples``, ``.iterations`` = the
    number of probes averaged, ``.converged``).

    ``probe_block`` probes share one reverse pass (default: 1 on the CPU,
    :data:`GPU_PROBE_BLOCK` on a GPU); the probes, their order and the stopping rule are the
    same, so only the cost changes (and float round-off), at the price of computing up to
    ``probe_block - 1`` probes past the stopping point.
    """
    _check_iter(max_iter, tol)
    op = HessianOperator(model, loss_fn, data, n_samples=n_samples)
    if probe_block is None:
        probe_block = 1 if op.device.type == "cpu" else GPU_PROBE_BLOCK
    if probe_block < 1:
        from ablab.errors import DataError

        raise DataError(f"probe_block={probe_block}; expected at least 1 probe per pass")
    gen = torch.Generator().manual_seed(seed)
    total = 0.0
    mean_prev: float | None = None
    mean = 0.0
    converged = False
    k = 0
    while k < max_iter and not converged:
        m = min(probe_block, max_iter - k)
        zs = torch.stack([torch.randint(0, 2, (op.dim,), generator=gen) for _ in range(m)])
        zs = zs.to(op.device, op.dtype) * 2 - 1
        if m == 1:
            values = [float(torch.dot(zs[0], op.matvec(zs[0])))]
        else:
            values = (zs * op.matmat(zs, batched=True)).sum(1).tolist()
        for value in values:  # z_j^T H z_j, in the order drawn
            k += 1
            total += value
            mean = total / k
            if mean_prev is not None and _relative_change(mean, mean_prev) < tol:
                converged = True
                break
            mean_prev = mean
    finite_or_raise(mean, "the Hessian trace")
    return Measured(mean, n_samples=op.n_samples, iterations=k, converged=converged)


def _check_iter(max_iter: int, tol: float) -> None:
    from ablab.errors import DataError

    if max_iter < 1:
        raise DataError(f"max_iter={max_iter}; expected at least 1 iteration")
    if not tol > 0:
        raise DataError(f"tol={tol}; expected a positive relative tolerance")
