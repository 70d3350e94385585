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
   L-BFGS, all layers and penalties stacked into one batched problem (they are independent,
   so the joint optimum is each one's optimum). The LDA classifier itself lies in this model
   family, so the logistic step can only move away from it where the data say so. Only the
   span of ``W`` matters (whitening removes any invertible map of the scores).

The logistic penalty is chosen on a held-out, class-stratified validation split of the
probe's *training* data (ties: the stronger); the LDA directions come from the fitting rows
only. The model is then refitted on the whole training split in the same subspace and scored
once on the test split, which is never used to choose.
"""

from __future__ import annotations

import numpy as np

from ablab.probe.linear import ProbeResult, _check_labels, few_threads, stratified_split

#: L2 penalties of the logistic step, on whitened discriminant scores.
SUBSPACE_L2 = (1e-4, 1e-3, 1e-2)


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


def _lda_directions(X, y, n_cls: int, shrinkage: float | str = "auto", project=None):
    """Shrinkage-LDA directions ``W`` (d, C) of fitting rows ``X`` (n, d), labels ``y``, in
    the coordinates of ``X`` (scores ``X W``), and the shrinkage used. Features are
    standardised by the rows' total standard deviation. With more features than rows (or
    ``project=True``) the standardised rows are first expressed in an orthonormal basis of
    the span of the centred rows: exact, since the class means and within-class deviations
    lie in it and the shrinkage is isotropic, and it keeps the matrices n x n."""
    import torch

    n, d = X.shape
    onehot = torch.nn.functional.one_hot(y, n_cls).to(X.dtype)
    counts = onehot.sum(0)
    means = (onehot.T @ X) / counts.clamp_min(1)[:, None]  # (C, d)
    mean = (counts / n) @ means
    within = X - means[y]
    var = within.pow(2).mean(0) + (counts / n) @ (means - mean) ** 2  # within + between
    sd = var.sqrt().clamp_min(1e-6)
    within = within / sd
    mus = (means - mean) / sd
    Q = None
    if project if project is not None else d > n:
        Q = torch.linalg.qr(((X - mean) / sd).T).Q  # (d, n)
        within, mus = within @ Q, mus @ Q
    gram = within.T @ within / n
    if shrinkage == "auto":
        s = ledoit_wolf_shrinkage(gram, float(within.pow(2).sum(1).pow(2).sum()), n, d)
    else:
        s = float(shrinkage)
    s = min(max(s, 1e-4), 1.0)  # a floor keeps singular S_W (dead, duplicated units) factorable
    mu = float(gram.diagonal().sum()) / d or 1.0
    S = gram.mul_(1 - s)
    S.diagonal().add_(s * mu)
    chol, info = torch.linalg.cholesky_ex(S)
    if info != 0:  # float32 round-off on a near-singular S_W
        chol = torch.linalg.cholesky(S.double()).to(X.dtype)
    W = torch.cholesky_solve(mus.T.contiguous(), chol)  # (d or n, C)
    if Q is not None:
        W = Q @ W
    return W / sd[:, None], s


def _whiten(Z, rtol=1e-6):
    """Map of ``Z`` (L, n, C) to whitened coordinates: ``(Z - m) T``, T (L, C, C) with zero
    columns for directions of (relative) variance below ``rtol``."""
    import torch

    m = Z.mean(1, keepdim=True)
    Zc = Z - m
    cov = (Zc.transpose(1, 2) @ Zc / Z.shape[1]).double()
    e, V = torch.linalg.eigh(cov)
    keep = e > rtol * e[:, -1:].clamp_min(1e-30)
    inv = torch.where(keep, e.clamp_min(1e-30).rsqrt(), torch.zeros_like(e))
    return m, (V * inv[:, None, :]).to(Z.dtype)


def _fit_logistic(Z, y, n_cls, lam, max_iter, init=None, tol=1e-6):
    """Batched multinomial logistic regression: Z (B, n, k), lam (B,). Minimises the sum over
    problems of ``mean CE + lam/2 ||U||^2`` (bias unpenalised) by L-BFGS with the gradient in
    closed form, from ``init`` (B, C, k + 1) or zero, until ``max_iter`` iterations or every
    gradient entry is below ``tol``. Returns the (B, C, k + 1) parameters ``[U^T, b]``.
    Logits are kept as (B, C, n): the softmax then runs over contiguous rows (faster on CPU)."""
    import torch

    B, n, k = Z.shape
    Z1 = torch.cat([Z, torch.ones(B, n, 1, dtype=Z.dtype)], -1)  # (B, n, k + 1)
    Z1t = Z1.transpose(1, 2).contiguous()
    idx = y.view(1, 1, n).expand(B, 1, n)
    param = torch.zeros(B, n_cls, k + 1, dtype=Z.dtype) if init is None else init.clone()
    opt = torch.optim.LBFGS([param.requires_grad_(True)], max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=tol,
                            tolerance_change=1e-9)  # fmt: skip
    lam_ = lam.to(Z.dtype)[:, None, None]
    minus_one = torch.full((B, 1, n), -1.0, dtype=Z.dtype)

    def closure():
        P = param.detach()
        U = P[:, :, :k]
        R = torch.softmax(torch.bmm(P, Z1t), 1)  # (B, C, n)
        ce = -R.gather(1, idx).clamp_min(1e-30).log().sum((1, 2)) / n
        loss = (ce + 0.5 * lam_[:, 0, 0] * (U * U).sum((1, 2))).sum()
        R.scatter_add_(1, idx, minus_one)  # softmax - onehot
        grad = torch.bmm(R, Z1).div_(n)
        grad[:, :, :k] += lam_ * U
        param.grad = grad
        return loss

    opt.step(closure)
    return param.detach()


def _predict(Z, p):
    import torch

    return torch.baddbmm(p[:, None, :, -1], Z, p[:, :, :-1].transpose(1, 2)).argmax(-1)


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
) -> tuple[dict[str, ProbeResult], dict[str, float]]:
    """:func:`lda_logistic_probes` plus the LDA shrinkage intensity of each layer.

    ``shrinkage``: ``"auto"`` (Ledoit-Wolf, per layer) or a fixed intensity in [0, 1].
    ``max_iter`` bounds the L-BFGS iterations of the first (strongest) penalty; the later
    penalties of the warm-started path and the refit get half as many; ``tol`` stops them
    earlier once every gradient entry is below it.
    """
    import torch

    n_cls = _check_labels(y_train, y_test, what)
    names = list(features_train)
    y_np = np.asarray(y_train)
    fit, val = stratified_split(y_np, val_fraction, seed)
    y_all = torch.as_tensor(y_np)
    y_fit, y_val = y_all[fit], y_all[val]
    work = len(y_np) * sum(np.shape(f)[1] ** 2 for f in features_train.values())
    with few_threads(work):
        z_all, z_test, shrink = [], [], {}
        for name in names:
            X = torch.from_numpy(np.ascontiguousarray(features_train[name], dtype=np.float32))
            Xt = torch.from_numpy(np.ascontiguousarray(features_test[name], dtype=np.float32))
            W, shrink[name] = _lda_directions(X[fit], y_fit, n_cls, shrinkage)
            z_all.append(X @ W)
            z_test.append(Xt @ W)

        m, T = _whiten(torch.stack(z_all)[:, fit])
        za = (torch.stack(z_all) - m) @ T
        zt = (torch.stack(z_test) - m) @ T
        zf, zv = za[:, fit], za[:, val]
        L, P = len(names), len(l2)
        # regularisation path, strong -> weak, each fit warm-started from the previous one
        order = sorted(range(P), key=lambda j: -l2[j])
        sols, val_acc, p = {}, torch.zeros(L, P), None
        for step, j in enumerate(order):
            iters = max_iter if step == 0 else max(1, max_iter // 2)
            p = _fit_logistic(zf, y_fit, n_cls, torch.full((L,), l2[j]), iters, p, tol)
            sols[j] = p
            val_acc[:, j] = (_predict(zv, p) == y_val).float().mean(-1)
        pick = [order[int(val_acc[li, order].argmax())] for li in range(L)]  # ties: stronger
        init = torch.stack([sols[j][li] for li, j in enumerate(pick)])
        lam = torch.tensor([l2[j] for j in pick])
        # refit on every training row in the same subspace, from the chosen solution
        p = _fit_logistic(za, y_all, n_cls, lam, max(1, max_iter // 2), init, tol)
        test_acc = (_predict(zt, p) == torch.as_tensor(y_test)).float().mean(-1)
    results = {
        nme: ProbeResult(float(test_acc[li]), float(l2[pick[li]]), float(val_acc[li, pick[li]]))
        for li, nme in enumerate(names)
    }
    return results, shrink
