"""The default probe: multinomial logistic regression in the shrinkage-LDA discriminant
subspace of each layer, batched across layers.

Why: closed-form probes are fast but fall short of a logistic probe on collapsed late layers
probed with many new classes (ridge regression on one-hot targets masks classes, ESL sec 4.2;
LDA's Gaussian, shared-covariance model does not hold there). A full multinomial logistic
probe needs as many L-BFGS iterations as scikit-learn's. Here the expensive part stays closed
form and the iterative part runs in ``C`` dimensions instead of ``d``:

1. Shrinkage LDA on standardised features (ESL sec 4.3.1): the directions
   ``W = S^-1 M^T`` with ``M`` the centred class means and
   ``S = (1 - s) S_W + s (tr S_W / d) I``, ``S_W`` the pooled within-class covariance of the
   fitting rows. The shrinkage ``s`` is the Ledoit-Wolf estimate (Ledoit & Wolf, J.
   Multivariate Anal. 88, 2004; the one scikit-learn's ``LinearDiscriminantAnalysis(
   shrinkage="auto")`` uses), computed from the same Gram matrix, so each layer costs one
   Gram matrix and one Cholesky factorisation and no strength is searched.
2. The LDA scores ``Z = X W`` span the discriminant subspace (rank ``C - 1``; ESL sec 4.3.3,
   reduced-rank LDA). They are whitened, and a multinomial logistic regression
   ``softmax(Z U + b)`` with penalty ``l2/2 ||U||^2`` on the mean cross-entropy is fitted by
   L-BFGS (SciPy's L-BFGS-B), the layers stacked into one batched problem per penalty (they
   are independent, so the joint optimum is each one's optimum). The LDA classifier itself lies in this model
   family, so the logistic step can only move away from it where the data say so. Only the
   span of ``W`` matters (whitening removes any invertible map of the scores).

The logistic penalty is chosen on a held-out, class-stratified validation split of the
probe's *training* data (ties: the stronger); the LDA directions come from the fitting rows
only. The model is then refitted on the whole training split in the same subspace and scored
once on the test split, which is never used to choose. The penalties run from strong to
weak, each fit warm-started from the previous one; a layer whose validation accuracy is
already perfect leaves the path, since a weaker penalty could only tie and ties go to the
stronger.

Threads: the Gram matrices and Cholesky factorisations of large layers (at least
:data:`GRAM_THREADED_WORK` multiply-adds) run on as many BLAS threads as torch's intra-op
setting (``torch.get_num_threads()``; ablab's runs set it from ``[run] threads``); everything
else runs on one thread. On an idle 16-core machine a 26,000 x 512 Gram matrix took 86 ms on
one thread and 13 ms on 16 (50,000 x 2,048: 2.0 s and 0.26 s). But small products and L-BFGS
steps on several threads are a trap on a busy machine: with OpenBLAS on 2 threads on a 2-core
machine where another process kept one core busy, the whole probe of
``benchmarks/probe.py`` took 0.8-33 s instead of 0.3 s, and even the 26,000 x 512 Gram matrix
took 430-680 ms instead of 80-150 ms, so on a shared machine set ``torch.set_num_threads(1)``.

The products are NumPy/SciPy (OpenBLAS), not torch: in the MKL build of torch, products on
AMD processors ran 1.4-4x slower (see :func:`_lda_directions`), and NumPy computes ``D^T D``
with the symmetric ``syrk``. The softmax of the logistic step runs in torch, on the same
memory: its vectorised ``exp2`` takes 0.18 ms for 8 x 26 x 1,664 values against 0.45 ms for
NumPy's ``exp`` (15% less per evaluation in all, measured).
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import scipy.linalg as sl
import torch
from scipy.optimize import minimize

from ablab.probe.linear import (
    ProbeResult,
    _check_labels,
    blas_limit,
    few_threads,
    stratified_split,
)

#: L2 penalties of the logistic step, on whitened discriminant scores.
SUBSPACE_L2 = (1e-4, 1e-3, 1e-2)
#: L-BFGS stops once an iteration lowers a problem's objective (mean cross-entropy plus
#: penalty) by less than this: on the benchmark's layers the objective is then within about
#: 1e-5 of its optimum and no test prediction changes (measured, docs/probe.md).
FTOL = 1e-6
LOG2E, LN2 = float(np.log2(np.e)), float(np.log(2.0))
#: A layer's Gram matrix and Cholesky factorisation get torch's intra-op thread count as BLAS
#: threads from this many multiply-adds (``n d^2``) up; everything else runs on one thread.
GRAM_THREADED_WORK = 1e9
#: Bound on |logit| (base 2) below which the softmax needs no shift by the row's largest
#: logit: 2^+-100, and their sums over the classes, are normal float32 numbers.
SAFE_EXP2 = 100.0


def ledoit_wolf_shrinkage(gram, row_sq_sum: float, n: int, p: int) -> float:
    """Ledoit-Wolf shrinkage intensity of the covariance ``G = D^T D / n`` of ``n`` centred
    rows ``D`` (Ledoit & Wolf 2004, lemma 3.2/3.3; scikit-learn's ``ledoit_wolf_shrinkage``
    with ``assume_centered=True``), from ``G`` and ``sum_i ||d_i||^4`` (``row_sq_sum``);
    ``p`` is the dimension (the rows may be given in an orthonormal basis of their span)::

        mu = tr G / p,  delta = (||G||_F^2 - (tr G)^2 / p) / p,
        beta = (sum_i ||d_i||^4 / n - ||G||_F^2) / (n p),  s = min(beta, delta) / delta

    The shrunk covariance is ``(1 - s) G + s mu I``."""
    tr = float(gram.diagonal().sum())
    fro2 = float((gram * gram).sum())
    delta = (fro2 - tr * tr / p) / p
    beta = min((row_sq_sum / n - fro2) / (n * p), delta)
    return 0.0 if beta <= 0 or delta <= 0 else beta / delta


def _lda_directions(
    X,
    y,
    n_cls: int,
    shrinkage: float | str = "auto",
    project=None,
    rows=None,
    threads: int = 1,
    device: torch.device | None = None,
):
    """Shrinkage-LDA directions ``W`` (d, C) of fitting rows ``X[rows]`` (n, d) (all rows if
    ``rows`` is None), labels ``y`` (n,), in the coordinates of ``X`` (scores ``X W``), and the
    shrinkage used. Features are standardised by the rows' total standard deviation. With
    more features than rows (or ``project=True``) the standardised rows are first expressed in
    an orthonormal basis of the span of the centred rows: exact, since the class means and
    within-class deviations lie in it and the shrinkage is isotropic, and it keeps the
    matrices n x n.

    NumPy and SciPy, not torch: the Gram matrix ``D^T D`` goes to BLAS ``syrk`` (half the
    products of a general matrix product) and skinny products run 2-4x faster in OpenBLAS
    than in the MKL build of torch on AMD processors (measured: ``X^T X`` of 1600 x 512,
    7.0 vs 9.8 ms; ``X W`` with 10 columns, 0.39 vs 1.5 ms). The rows are gathered once,
    sorted by class, so class means and deviations are slice operations, and the
    standardisation is applied to the d x d Gram matrix rather than to the n x d rows.
    The Gram matrix and the Cholesky factorisation run on ``threads`` BLAS threads when the
    Gram matrix costs at least :data:`GRAM_THREADED_WORK` multiply-adds, or on ``device`` (a
    GPU) if one is given."""
    y = np.asarray(y)
    X = np.ascontiguousarray(X)
    order = np.argsort(y, kind="stable")
    take = order if rows is None else np.asarray(rows)[order]
    n, d = len(take), X.shape[1]
    D = X.take(take, axis=0)  # a copy, sorted by class: becomes the deviations
    counts = np.bincount(y, minlength=n_cls)
    ends = np.cumsum(counts)
    means = np.zeros((n_cls, d), dtype=X.dtype)
    for c in np.flatnonzero(counts):  # class means as BLAS products (gemv), then deviations
        block = D[ends[c] - counts[c] : ends[c]]
        np.dot(np.full(counts[c], 1 / counts[c], dtype=X.dtype), block, out=means[c])
        block -= means[c]
    means = means.astype(np.float64)
    w = counts / n
    mean = w @ means
    between = w @ (means - mean) ** 2
    project = project if project is not None else d > n
    alive = None if project else _varying_columns(D, between)
    if alive is not None:  # constant (dead) units: exactly zero rows of W, so leave them out
        D, means, mean, between = D[:, alive], means[:, alive], mean[alive], between[alive]
    big = threads > 1 and n * D.shape[1] ** 2 >= GRAM_THREADED_WORK
    wide = (lambda: blas_limit(threads)) if big else nullcontext  # a fresh context per use
    if project:
        within = np.einsum("ij,ij->j", D, D, dtype=np.float64) / n
    else:
        gram = _gram(D, device, wide)
        within = gram.diagonal().astype(np.float64) / n  # the centred columns' squares
    inv_sd = 1 / np.maximum(np.sqrt(within + between), 1e-6)  # total standard deviation
    s32 = inv_sd.astype(X.dtype)
    mus = (means - mean) * inv_sd  # (C, d), float64
    if project:
        D *= s32
        Xc = (X if rows is None else X[rows]) - mean.astype(X.dtype)
        Q = np.linalg.qr((Xc * s32).T)[0]  # (d, n)
        D, mus = D @ Q, mus @ Q
        gram = D.T @ D / n
        row_sq = np.einsum("ij,ij->i", D, D)
    else:
        Q = None
        gram *= s32[:, None]
        gram *= s32[None, :] / n
        # squared norms of the standardised rows, a cache-sized block of rows at a time
        s2 = s32 * s32
        step = max(1, (1 << 18) // (d * X.itemsize))
        row_sq = np.concatenate([np.square(D[i : i + step]) @ s2 for i in range(0, n, step)])
    # with constant units left out, p = d and mu = tr / d still count them (zero variance), so
    # the directions equal those of the whole matrix, whose constant block is decoupled
    if shrinkage == "auto":
        s = ledoit_wolf_shrinkage(gram, float(row_sq.astype(np.float64) @ row_sq), n, d)
    else:
        s = float(shrinkage)
    s = min(max(s, 1e-4), 1.0)  # a floor keeps singular S_W (dead, duplicated units) factorable
    mu = float(np.trace(gram, dtype=np.float64)) / d or 1.0
    S = gram
    S *= 1 - s
    S.flat[:: S.shape[0] + 1] += s * mu
    W = _solve_spd(S, mus.T.astype(S.dtype), device, wide)  # (d or n, C)
    if Q is not None:
        W = Q @ W
    W = (W * inv_sd[:, None]).astype(X.dtype)
    if alive is not None:
        full = np.zeros((d, W.shape[1]), dtype=X.dtype)
        full[alive] = W
        W = full
    return W, s


def _gram(D, device, wide):
    """``D^T D``: NumPy's ``syrk`` (on the threads ``wide()`` allows), or a float32 product on
    ``device`` at full float32 precision (no TF32)."""
    if device is None:
        with wide():
            return D.T @ D  # a symmetric product: NumPy calls syrk
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        Dt = torch.from_numpy(D).to(device)
        return (Dt.T @ Dt).cpu().numpy()
    finally:
        torch.set_float32_matmul_precision(precision)


def _solve_spd(S, B, device, wide):
    """``S^-1 B`` for a symmetric positive definite ``S`` by Cholesky, in ``S``'s precision,
    retried in float64 if the factorisation fails (float32 round-off on a near-singular
    ``S_W``); on ``device`` if one is given, else SciPy on the threads ``wide()`` allows."""
    if device is not None:
        for dtype in (S.dtype, np.float64):
            L, info = torch.linalg.cholesky_ex(torch.from_numpy(S.astype(dtype)).to(device))
            if int(info) == 0:
                B_t = torch.from_numpy(B.astype(dtype)).to(device)
                return torch.cholesky_solve(B_t, L).cpu().numpy().astype(S.dtype)
        raise np.linalg.LinAlgError("the shrunk covariance is not positive definite")
    try:
        with wide():
            factor = sl.cho_factor(S, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        with wide():
            factor = sl.cho_factor(S.astype(np.float64), lower=True, check_finite=False)
    return sl.cho_solve(factor, B, check_finite=False)


def _varying_columns(D, between):
    """Mask of the columns of the class-centred rows ``D`` that vary, or None if all do. A
    constant column has equal class means (zero ``between``) and all-zero deviations; only
    columns with zero ``between`` are read (a cheap test for layers without dead units).
    Dead ReLU units (all zeros) are caught exactly; a constant other than zero may escape
    through the round-off of its class means, which only costs its share of the work."""
    cand = np.flatnonzero(between == 0)
    if not len(cand):
        return None
    dead = cand[~D[:, cand].any(0)]
    if not len(dead):
        return None
    alive = np.ones(D.shape[1], dtype=bool)
    alive[dead] = False
    return alive


def _whiten(Z, rtol=1e-6):
    """Map of ``Z`` (L, n, C) to whitened coordinates: ``(Z - m) T``, T (L, C, k) with zero
    columns for directions of (relative) variance below ``rtol``; ``k`` is the largest number
    of directions any layer keeps (C - 1 for LDA scores, whose C class means span C - 1
    dimensions), so no column is zero in every layer."""
    m = Z.mean(1, keepdims=True)
    Zc = (Z - m).astype(np.float64)
    cov = Zc.transpose(0, 2, 1) @ Zc / Z.shape[1]
    e, V = np.linalg.eigh(cov)  # ascending: dropped directions come first
    keep = e > rtol * np.maximum(e[:, -1:], 1e-30)
    inv = np.where(keep, 1 / np.sqrt(np.maximum(e, 1e-30)), 0.0)
    k = max(int(keep.sum(1).max()), 1)
    return m, (V * inv[:, None, :])[:, :, -k:].astype(Z.dtype)


def _fit_logistic(Z, y, n_cls, lam, max_iter, init=None, tol=1e-6, ftol=FTOL, chunk_bytes=1 << 20):
    """Batched multinomial logistic regression: Z (B, n, k), lam (B,). Minimises the sum over
    problems of ``mean CE + lam/2 ||U||^2`` (bias unpenalised) by L-BFGS (SciPy's L-BFGS-B,
    10 corrections) with the gradient in closed form, from ``init`` (B, C, k + 1) or zero,
    until ``max_iter`` iterations, every gradient entry below ``tol``, or an iteration that
    lowers the objective by less than ``ftol`` per problem (relative, once the summed
    objective exceeds 1). Returns the (B, C, k + 1) parameters ``[U^T, b]``.

    Logits are kept as (B, C, rows), so the softmax runs over contiguous rows, and computed
    in chunks of rows of about ``chunk_bytes`` so that the logits stay in cache through the
    softmax and the gradient product (measured with 8 layers, 33,280 rows and 26 classes:
    46-52 ms per evaluation in one piece, 41-44 ms in chunks of about 1 MB). The true
    class's logit is read before the exponential, so a vanishing probability cannot
    underflow the loss. The logits are computed in base 2 (the parameters scaled by
    ``log2 e``) for torch's ``exp2``; the loss is converted back to nats. The shift by each
    row's largest logit (two passes over the logits) is made only where the bound
    ``max_c ||u_c|| max_i ||z_i||`` on the logits exceeds :data:`SAFE_EXP2`."""
    B, n, k = Z.shape
    Z1 = np.concatenate([Z, np.ones((B, n, 1), dtype=Z.dtype)], -1)  # (B, n, k + 1)
    rows = max(64, chunk_bytes // (Z.itemsize * B * n_cls))
    chunks = []
    for s in range(0, n, rows):
        m = min(n, s + rows) - s
        onehot = np.zeros((n_cls, m), dtype=Z.dtype)
        onehot[y[s : s + m], np.arange(m)] = 1
        logits = np.empty((B, n_cls, m), dtype=Z.dtype)  # -> probabilities -> residuals
        chunks.append((
            np.sqrt(np.square(Z1[:, s : s + m]).sum(2).max(1)),  # (B,) largest row norm
            np.ascontiguousarray(Z1[:, s : s + m].transpose(0, 2, 1)),  # (B, k + 1, m)
            np.ascontiguousarray(Z1[:, s : s + m]),  # (B, m, k + 1)
            ((np.arange(B)[:, None] * n_cls + y[None, s : s + m]) * m + np.arange(m)),  # flat
            torch.from_numpy(onehot),
            logits,
            torch.from_numpy(logits),  # the same memory
        ))  # fmt: skip
    lam_ = np.asarray(lam, dtype=Z.dtype)[:, None, None]
    shape = (B, n_cls, k + 1)

    def loss_grad(x):
        P = x.reshape(shape).astype(Z.dtype)
        U = P[:, :, :k]
        P2 = P * Z.dtype.type(LOG2E)  # logits in base 2: 2^(z log2 e) = e^z
        grad = np.zeros(shape, dtype=np.float64)
        ce = 0.0
        norms = np.sqrt(np.square(P2).sum(2).max(1))  # (B,) largest class weight norm
        for znorm, Z1t_c, Z1_c, true_c, onehot_c, A, At in chunks:
            np.matmul(P2, Z1t_c, out=A)
            if float((norms * znorm).max()) > SAFE_EXP2:  # else no exp2 can over/underflow
                At.sub_(At.amax(1, keepdim=True))
            true_logit = float(A.ravel()[true_c].sum(dtype=np.float64))
            At.exp2_()
            total = At.sum(1, keepdim=True)
            # cross-entropy: log-sum-exp minus the true class's (shifted) logit, in nats
            ce += float(total.log().sum(dtype=torch.float64)) - LN2 * true_logit
            At.div_(total).sub_(onehot_c)  # softmax - onehot
            grad += A @ Z1_c
        grad /= n
        grad[:, :, :k] += lam_ * U
        return ce / n + 0.5 * float((lam_ * U * U).sum()), grad.ravel()

    x0 = np.zeros(int(np.prod(shape))) if init is None else init.astype(np.float64).ravel()
    res = minimize(loss_grad, x0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "maxfun": 2 * max_iter + 2, "maxcor": 10,
                            "gtol": tol, "ftol": ftol * B})  # fmt: skip
    return res.x.reshape(shape).astype(Z.dtype)


def _param_shape(Z, n_cls):
    """Shape of one problem's parameters ``[U^T, b]`` for scores ``Z`` (B, n, k)."""
    return (n_cls, Z.shape[2] + 1)


def _predict(Z, p):
    return (Z @ p[:, :, :-1].transpose(0, 2, 1) + p[:, None, :, -1]).argmax(-1)


def lda_logistic_probes(
    features_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    features_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    **kwargs,
) -> dict[str, ProbeResult]:
    """Logistic probe in the LDA discriminant subspace of every layer (module docstring).

    Returns, per layer, the test accuracy, the chosen logistic penalty (in
    :attr:`ProbeResult.alpha`) and its validation accuracy; :func:`lda_logistic_details`
    (same arguments) also returns the LDA shrinkage of each layer.
    """
    return lda_logistic_details(features_train, y_train, features_test, y_test, **kwargs)[0]


def lda_logistic_details(
    features_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    features_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    *,
    shrinkage: float | str = "auto",
    l2: tuple[float, ...] = SUBSPACE_L2,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 15,
    tol: float = 1e-6,
    what: str = "probe",
    device: str | torch.device | None = None,
) -> tuple[dict[str, ProbeResult], dict[str, float]]:
    """:func:`lda_logistic_probes` plus the LDA shrinkage intensity of each layer.

    ``shrinkage``: ``"auto"`` (Ledoit-Wolf, per layer) or a fixed intensity in [0, 1].
    ``max_iter`` bounds the L-BFGS iterations of the first (strongest) penalty; the later
    penalties of the warm-started path and the refit get half as many; ``tol`` stops them
    earlier once every gradient entry is below it. ``device``: a GPU (e.g. ``"cuda"``) computes
    each layer's Gram matrix and Cholesky factorisation there (the costly part for wide layers
    and many rows); the rest runs on the CPU. ``None`` or a CPU device: all on the CPU.
    """
    n_cls = _check_labels(y_train, y_test, what)
    names = list(features_train)
    y_all = np.asarray(y_train).astype(np.int64)
    fit, val = stratified_split(y_all, val_fraction, seed)
    y_fit, y_val = y_all[fit], y_all[val]
    threads = torch.get_num_threads()  # the budget for large Gram matrices (module docstring)
    dev = None if device is None or torch.device(device).type == "cpu" else torch.device(device)
    with few_threads(0):
        z_all, z_test, shrink = [], [], {}
        for name in names:
            X = np.ascontiguousarray(features_train[name], dtype=np.float32)
            Xt = np.ascontiguousarray(features_test[name], dtype=np.float32)
            W, shrink[name] = _lda_directions(X, y_fit, n_cls, shrinkage, rows=fit,
                                              threads=threads, device=dev)  # fmt: skip
            z_all.append(X @ W)
            z_test.append(Xt @ W)
        z_all, z_test = np.stack(z_all), np.stack(z_test)
        m, T = _whiten(z_all[:, fit])
        za = (z_all - m) @ T
        zt = (z_test - m) @ T
        zf, zv = za[:, fit], za[:, val]
        L, P = len(names), len(l2)
        # regularisation path, strong -> weak, each fit warm-started from the previous one.
        # A layer whose validation accuracy is already perfect leaves the path: a weaker
        # penalty can at best tie, and ties go to the stronger one, so the pick is unchanged.
        order = sorted(range(P), key=lambda j: -l2[j])
        sols = np.zeros((P, L) + _param_shape(zf, n_cls), np.float32)
        val_acc = np.full((L, P), -1.0)
        active, p = np.arange(L), None
        for step, j in enumerate(order):
            iters = max_iter if step == 0 else max(1, max_iter // 2)
            p = _fit_logistic(zf[active], y_fit, n_cls, np.full(len(active), l2[j]), iters, p, tol)
            sols[j, active] = p
            val_acc[active, j] = (_predict(zv[active], p) == y_val).mean(-1)
            still = val_acc[active, j] < 1.0
            active, p = active[still], p[still]
            if not len(active):
                break
        pick = [order[int(val_acc[li, order].argmax())] for li in range(L)]  # ties: stronger
        init = sols[pick, np.arange(L)]
        lam = np.array([l2[j] for j in pick])
        # refit on every training row in the same subspace, from the chosen solution
        p = _fit_logistic(za, y_all, n_cls, lam, max(1, max_iter // 2), init, tol)
        test_acc = (_predict(zt, p) == np.asarray(y_test)).mean(-1)
    results = {
        nme: ProbeResult(float(test_acc[li]), float(l2[pick[li]]), float(val_acc[li, pick[li]]))
        for li, nme in enumerate(names)
    }
    return results, shrink
