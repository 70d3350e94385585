"""The default probe: multinomial logistic regression in the shrinkage-LDA discriminant
subspace of each layer, batched across layers.

Why: closed-form probes are fast but fall short of a logistic probe on collapsed late layers
probed with many new classes (ridge regression on one-hot targets masks classes, ESL sec 4.2;
LDA's Gaussian, shared-covariance model does not hold there). A full multinomial logistic
probe needs as many L-BFGS iterations as scikit-learn's. Here the expensive part stays closed
form and the iterative part runs in ``C`` dimensions instead of ``d``:

1. Shrinkage LDA on standardised features (ESL sec 4.3.1): ``W = (S_W + a I)^-1 M^T`` with
   ``S_W`` the pooled within-class covariance and ``M`` the class means. ``S_W`` for the fitting
   split and for the whole training split come from one Gram matrix of the training rows
   (minus that of the validation rows); one Cholesky factorisation per strength ``a``.
2. The LDA scores ``Z = X W`` span the discriminant subspace (rank ``C - 1``; ESL sec 4.3.3,
   reduced-rank LDA). They are whitened, and a multinomial logistic regression
   ``softmax(Z U + b)`` with penalty ``l2/2 ||U||^2`` on the mean cross-entropy is fitted by
   L-BFGS, all layers and penalties stacked into one batched problem (they are independent,
   so the joint optimum is each one's optimum). The LDA classifier itself lies in this model
   family (``U`` = inverse whitening, ``b`` = LDA intercepts), so the logistic step can only
   move away from it where the data say so.

Both strengths are chosen on a held-out, class-stratified validation split of the probe's
*training* data: ``a`` by the validation accuracy of the LDA classifier, then the penalty by
the validation accuracy of the logistic fit (ties: the stronger). Both are then refitted on
the whole training split and scored once on the test split, which is never used to choose.
"""

from __future__ import annotations

import numpy as np

from ablab.probe.linear import ProbeResult, _check_labels, few_threads, stratified_split

#: LDA shrinkage strengths, relative to the mean within-class variance (standardised).
SUBSPACE_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1)
#: L2 penalties of the logistic step, on whitened discriminant scores.
SUBSPACE_L2 = (1e-4, 1e-3, 1e-2)


def _lda_weights(X, y, n_cls, alphas, standardise=True, dim=None):
    """Shrinkage-LDA weights on rows ``X`` (n, d) with labels ``y``, one per alpha;
    standardisation and shrinkage as in :func:`ablab.probe.linear.lda_probe` (``standardise``
    False: ``X`` is standardised already; ``dim``: the dimension the shrinkage scale, the mean
    within-class variance, is taken over). Returns ``W`` (A, d, C) and ``b`` (A, C), the scores
    being ``X W + b``, and a mask (A,) of the strengths whose factorisation succeeded."""
    import torch

    n = len(y)
    onehot = torch.nn.functional.one_hot(y, n_cls).to(X.dtype)
    counts = onehot.sum(0)
    nc = counts.clamp_min(1)
    means = (onehot.T @ X) / nc[:, None]  # (C, d)
    mean = (counts / n) @ means
    within = X - means[y]
    Sw = within.T @ within / n  # pooled within-class covariance
    # total variance = within + between (per feature), without another pass over X
    var = Sw.diagonal() + (counts / n) @ (means - mean) ** 2
    sd = var.clamp_min(0).sqrt().clamp_min(1e-6) if standardise else torch.ones_like(var)
    Sw = Sw / torch.outer(sd, sd)  # standardised
    mus = (means - mean) / sd
    scale = float(Sw.diagonal().sum()) / (dim or len(sd)) or 1.0
    A = Sw.expand(len(alphas), -1, -1).clone()
    A.diagonal(dim1=1, dim2=2).add_(torch.as_tensor(alphas, dtype=X.dtype)[:, None] * scale)
    chol, info = torch.linalg.cholesky_ex(A)
    ok = info == 0
    chol[~ok] = torch.eye(len(sd), dtype=X.dtype) * scale**0.5  # masked out by the caller
    Ws = torch.cholesky_solve(mus.T.expand(len(alphas), -1, -1).contiguous(), chol)
    prior = torch.log(nc / n)
    prior[counts == 0] = -torch.inf
    b = -0.5 * (mus.T[None] * Ws).sum(1) + prior
    W = Ws / sd[None, :, None]
    return W, b - (mean[None, None, :] @ W)[:, 0], ok


def _lda_scores(X, Xt, fit, val, y_fit, y_val, n_cls, alphas, project=None):
    """LDA scores of the training rows ``X`` and test rows ``Xt`` for the strength with the
    best validation accuracy (ties: the stronger), and its index. With more features than
    fitting rows (or ``project=True``) the standardised features are first projected onto
    the span of the centred fitting rows: exact, since the class means and within-class
    deviations lie in it and the shrinkage is isotropic, and it keeps the matrices n x n."""
    import torch

    Xf = X[fit]
    if project if project is not None else X.shape[1] > len(fit):
        mean = Xf.mean(0)
        sd = Xf.var(0, unbiased=False).sqrt().clamp_min(1e-6)
        Q = torch.linalg.qr(((Xf - mean) / sd).T).Q  # (d, n_fit)
        proj, shift = Q / sd[:, None], (mean / sd) @ Q
        X, Xt = X @ proj - shift, Xt @ proj - shift
        W, b, ok = _lda_weights(X[fit], y_fit, n_cls, alphas, standardise=False,
                                dim=len(sd))  # fmt: skip
    else:
        W, b, ok = _lda_weights(Xf, y_fit, n_cls, alphas)
    acc = ((X[val] @ W + b[:, None]).argmax(-1) == y_val).float().mean(-1)
    acc[~ok] = -1.0
    i = int(torch.nonzero(acc == acc.max()).max())
    return torch.addmm(b[i], X, W[i]), torch.addmm(b[i], Xt, W[i]), i


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


def _fit_logistic(Z, y, n_cls, lam, max_iter, init=None):
    """Batched multinomial logistic regression: Z (B, n, k), lam (B,). Minimises the sum over
    problems of ``mean CE + lam/2 ||U||^2`` (bias unpenalised) by L-BFGS with the gradient in
    closed form, from ``init`` (B, k + 1, C) or zero. Returns the (B, k + 1, C) parameters,
    the last row being the bias."""
    import torch

    B, n, k = Z.shape
    idx = y.view(1, n, 1).expand(B, n, 1)
    param = torch.zeros(B, k + 1, n_cls, dtype=Z.dtype) if init is None else init.clone()
    opt = torch.optim.LBFGS([param.requires_grad_(True)], max_iter=max_iter, history_size=10,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6,
                            tolerance_change=1e-9)  # fmt: skip
    lam_ = lam.to(Z.dtype)[:, None, None]
    Zt = Z.transpose(1, 2).contiguous()
    minus_one = torch.full((B, n, 1), -1.0, dtype=Z.dtype)

    def closure():
        U, b = param.detach()[:, :k], param.detach()[:, k]
        logp = torch.log_softmax(torch.baddbmm(b[:, None, :], Z, U), -1)
        ce = -logp.gather(-1, idx).sum((1, 2)) / n
        loss = (ce + 0.5 * lam_[:, 0, 0] * (U * U).sum((1, 2))).sum()
        R = logp.exp_().scatter_add_(-1, idx, minus_one).div_(n)  # softmax - onehot, / n
        param.grad = torch.cat([torch.baddbmm(lam_ * U, Zt, R), R.sum(1, keepdim=True)], 1)
        return loss

    opt.step(closure)
    return param.detach()


def _predict(Z, p):
    import torch

    return torch.baddbmm(p[:, -1:], Z, p[:, :-1]).argmax(-1)


def lda_logistic_probes(
    features_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    features_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    *,
    alphas: tuple[float, ...] = SUBSPACE_ALPHAS,
    l2: tuple[float, ...] = SUBSPACE_L2,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 20,
    what: str = "probe",
) -> dict[str, ProbeResult]:
    """Logistic probe in the LDA discriminant subspace of every layer (module docstring).

    Returns, per layer, the test accuracy, the chosen logistic penalty (in
    :attr:`ProbeResult.alpha`) and its validation accuracy; :func:`lda_logistic_details`
    also returns the chosen LDA shrinkage of each layer.
    """
    return lda_logistic_details(features_train, y_train, features_test, y_test, alphas=alphas,
                                l2=l2, val_fraction=val_fraction, seed=seed,
                                max_iter=max_iter, what=what)[0]  # fmt: skip


def lda_logistic_details(
    features_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    features_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    *,
    alphas: tuple[float, ...] = SUBSPACE_ALPHAS,
    l2: tuple[float, ...] = SUBSPACE_L2,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 20,
    what: str = "probe",
) -> tuple[dict[str, ProbeResult], dict[str, float]]:
    """:func:`lda_logistic_probes` plus the chosen relative LDA strength of each layer."""
    import torch

    n_cls = _check_labels(y_train, y_test, what)
    names = list(features_train)
    y_np = np.asarray(y_train)
    fit, val = stratified_split(y_np, val_fraction, seed)
    y_all = torch.as_tensor(y_np)
    y_fit, y_val = y_all[fit], y_all[val]
    work = len(y_np) * sum(np.shape(f)[1] ** 2 for f in features_train.values())
    with few_threads(work):
        z_all, z_test, best_alpha = [], [], {}
        for name in names:
            X = torch.from_numpy(np.ascontiguousarray(features_train[name], dtype=np.float32))
            Xt = torch.from_numpy(np.ascontiguousarray(features_test[name], dtype=np.float32))
            za, zt, i = _lda_scores(X, Xt, fit, val, y_fit, y_val, n_cls, alphas)
            best_alpha[name] = float(alphas[i])
            z_all.append(za)
            z_test.append(zt)

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
            p = _fit_logistic(zf, y_fit, n_cls, torch.full((L,), l2[j]), iters, p)
            sols[j] = p
            val_acc[:, j] = (_predict(zv, p) == y_val).float().mean(-1)
        pick = [order[int(val_acc[li, order].argmax())] for li in range(L)]  # ties: stronger
        init = torch.stack([sols[j][li] for li, j in enumerate(pick)])
        lam = torch.tensor([l2[j] for j in pick])
        # refit on every training row in the same subspace, from the chosen solution
        p = _fit_logistic(za, y_all, n_cls, lam, max(1, max_iter // 2), init)
        test_acc = (_predict(zt, p) == torch.as_tensor(y_test)).float().mean(-1)
    results = {
        nme: ProbeResult(float(test_acc[li]), float(l2[pick[li]]), float(val_acc[li, pick[li]]))
        for li, nme in enumerate(names)
    }
    return results, best_alpha
