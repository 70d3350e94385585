"""Linear probes: closed-form ridge (one eigendecomposition serves every strength) and an
optional multinomial logistic probe fitted by L-BFGS, batched across layers.

The regularisation strength is chosen on a held-out, class-stratified validation split of the
probe's *training* data and never on the test split. (Harun et al., NeurIPS 2024 selected the
best epoch on the test set, which inflates accuracies on small OOD sets.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ablab.errors import DataError

#: Ridge strengths, relative to the mean eigenvalue of the standardised Gram matrix.
RIDGE_ALPHAS = tuple(np.logspace(-6, 1, 15).tolist())
#: L2 penalties of the logistic probe (on the mean cross-entropy).
LOGISTIC_L2 = (1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of one probe, the chosen strength and its validation accuracy."""

    accuracy: float
    alpha: float
    val_accuracy: float


def stratified_split(
    y: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, val)``: ``val_fraction`` of each class (at least one) to validation."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = max(1, int(round(val_fraction * len(idx)))) if len(idx) > 1 else 0
        val.append(idx[:k])
    v = np.sort(np.concatenate(val))
    mask = np.ones(len(y), dtype=bool)
    mask[v] = False
    return np.flatnonzero(mask), v


def _check_labels(y_train: np.ndarray, y_test: np.ndarray, what: str) -> int:
    if len(y_test) == 0:
        raise DataError(f"{what}: the test split is empty", hint="give the set a test split")
    classes = np.unique(y_train)
    if len(classes) < 2:
        raise DataError(
            f"{what}: the probe's training split has {len(classes)} class; a linear probe "
            "needs at least 2",
            hint="use a dataset with several classes",
        )
    return int(max(y_train.max(), y_test.max())) + 1


def _standardise(x_fit, *others):
    mu = x_fit.mean(0, keepdim=True)
    sd = x_fit.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mu) / sd for t in (x_fit, *others)]


def ridge_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    alphas: tuple[float, ...] = RIDGE_ALPHAS,
    val_fraction: float = 0.2,
    seed: int = 0,
    what: str = "probe",
) -> ProbeResult:
    """Ridge classification on one layer's features.

    Targets are one-hot rows ``Y``; features are standardised on the fitting split. With
    ``X^T X = V diag(s) V^T`` (or the kernel form ``X X^T`` when features outnumber samples),
    ``W(alpha) = V diag(1 / (s + alpha)) V^T X^T Y`` for every alpha from one ``eigh``. The
    alpha with the best validation accuracy (ties: the stronger) is refitted on the whole
    training split by a Cholesky solve and scored on the test split.
    """
    import torch

    n_cls = _check_labels(y_train, y_test, what)
    fit, val = stratified_split(y_train, val_fraction, seed)
    X = torch.as_tensor(np.asarray(x_train), dtype=torch.float64)
    Xt = torch.as_tensor(np.asarray(x_test), dtype=torch.float64)
    Y = torch.nn.functional.one_hot(torch.as_tensor(y_train), n_cls).double()

    xf, xv = _standardise(X[fit], X[val])
    yf = Y[fit]
    ym = yf.mean(0, keepdim=True)
    yc = yf - ym
    n, d = xf.shape
    if d <= n:
        s, V = torch.linalg.eigh(xf.T @ xf)
        B = V.T @ (xf.T @ yc)  # (d, C)
        P = xv @ V  # (n_val, d)
    else:
        s, U = torch.linalg.eigh(xf @ xf.T)
        B = U.T @ yc  # (n, C)
        P = xv @ (xf.T @ U)
    s = s.clamp_min(0)
    scale = float(s.mean()) if float(s.mean()) > 0 else 1.0
    a = torch.tensor(alphas, dtype=torch.float64) * scale
    scores = P[None] @ (B[None] / (s[None, :, None] + a[:, None, None])) + ym  # (A, n_val, C)
    yv = torch.as_tensor(y_train[val])
    val_acc = (scores.argmax(-1) == yv).double().mean(-1)
    best = int(torch.nonzero(val_acc == val_acc.max()).max())
    alpha = float(a[best])

    xa, xte = _standardise(X, Xt)
    ya = Y.mean(0, keepdim=True)
    G = xa.T @ xa if xa.shape[1] <= xa.shape[0] else None
    if G is not None:
        G.diagonal().add_(alpha)
        W = torch.cholesky_solve(xa.T @ (Y - ya), torch.linalg.cholesky(G))
    else:
        K = xa @ xa.T
        K.diagonal().add_(alpha)
        W = xa.T @ torch.cholesky_solve(Y - ya, torch.linalg.cholesky(K))
    pred = (xte @ W + ya).argmax(-1).numpy()
    acc = float((pred == np.asarray(y_test)).mean())
    return ProbeResult(acc, float(alphas[best]), float(val_acc[best]))


def logistic_probes(
    features_train: dict[str, np.ndarray],
    y_train: np.ndarray,
    features_test: dict[str, np.ndarray],
    y_test: np.ndarray,
    *,
    l2: tuple[float, ...] = LOGISTIC_L2,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_iter: int = 200,
    what: str = "probe",
) -> dict[str, ProbeResult]:
    """Multinomial logistic regression on every layer at once.

    Layers are zero-padded to a common width and stacked, and the sum over layers of
    ``mean cross-entropy + l2/2 ||W||^2`` is minimised by L-BFGS (the problems are
    independent, so the joint optimum is each layer's optimum; padded weights stay 0). The
    penalty is picked per layer on the validation split, then refitted on all training data.
    """
    import torch

    n_cls = _check_labels(y_train, y_test, what)
    names = list(features_train)
    fit, val = stratified_split(y_train, val_fraction, seed)

    def stack(feats: dict[str, np.ndarray], rows_tr, test):
        dmax = max(np.asarray(f).shape[1] for f in feats.values())
        tr, te = [], []
        for nme in names:
            xa = torch.as_tensor(np.asarray(feats[nme])[rows_tr], dtype=torch.float32)
            xb = torch.as_tensor(np.asarray(test[nme]), dtype=torch.float32)
            xa, xb = _standardise(xa, xb)
            pad = dmax - xa.shape[1]
            tr.append(torch.nn.functional.pad(xa, (0, pad)))
            te.append(torch.nn.functional.pad(xb, (0, pad)))
        return torch.stack(tr), torch.stack(te)

    def train(Xs: torch.Tensor, y: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        L, _, d = Xs.shape
        W = torch.zeros(L, d + 1, n_cls, requires_grad=True)
        ones = torch.ones(L, Xs.shape[1], 1)
        Xb = torch.cat([Xs, ones], -1)
        opt = torch.optim.LBFGS([W], max_iter=max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-6, tolerance_change=1e-9)  # fmt: skip

        def closure():
            opt.zero_grad()
            logits = Xb @ W
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, n_cls), y.repeat(L), reduction="none"
            ).reshape(L, -1).mean(1)
            loss = (ce + 0.5 * lam * (W[:, :-1] ** 2).sum((1, 2))).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return W.detach()

    def predict(W: torch.Tensor, Xs: torch.Tensor) -> torch.Tensor:
        Xb = torch.cat([Xs, torch.ones(*Xs.shape[:2], 1)], -1)
        return (Xb @ W).argmax(-1)

    vfeats = {k: np.asarray(v)[val] for k, v in features_train.items()}
    Xf, Xv = stack(features_train, fit, vfeats)
    yf, yv = torch.as_tensor(y_train[fit]), torch.as_tensor(y_train[val])
    val_accs = []
    for lam in l2:
        W = train(Xf, yf, torch.full((len(names),), lam))
        val_accs.append((predict(W, Xv) == yv).float().mean(1))
    va = torch.stack(val_accs)  # (n_l2, L)
    best = va.shape[0] - 1 - va.flip(0).argmax(0)  # ties -> stronger penalty
    lam = torch.tensor([l2[int(b)] for b in best])
    Xa, Xt = stack(features_train, np.arange(len(y_train)), features_test)
    W = train(Xa, torch.as_tensor(y_train), lam)
    acc = (predict(W, Xt) == torch.as_tensor(y_test)).float().mean(1)
    return {
        nme: ProbeResult(float(acc[i]), float(lam[i]), float(va[int(best[i]), i]))
        for i, nme in enumerate(names)
    }
