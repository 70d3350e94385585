"""Linear probes: closed-form ridge (one eigendecomposition serves every strength) and an
optional multinomial logistic probe fitted by L-BFGS, batched across layers.

The regularisation strength is chosen on a held-out, class-stratified validation split of the
probe's *training* data and never on the test split. (Harun et al., NeurIPS 2024 selected the
best epoch on the test set, which inflates accuracies on small OOD sets.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
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


_BLAS = None


def _blas():
    """threadpoolctl's controller of the loaded BLAS libraries, made once (scanning the loaded
    libraries costs about 1 ms; a limit through the kept controller 0.03 ms). SciPy's linear
    algebra is imported first so that its own OpenBLAS is among them."""
    global _BLAS
    if _BLAS is None:
        import scipy.linalg  # noqa: F401
        import scipy.optimize  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController().select(user_api="blas")
    return _BLAS


def blas_limit(n: int) -> AbstractContextManager[object]:
    """A context: BLAS on ``n`` threads inside the block; restores the settings after."""
    return _blas().limit(limits=n)


@contextmanager
def few_threads(work: float, threshold: float = 2e8) -> Iterator[None]:
    """Run small tensor work (``work < threshold``; ``work=0``: always) on one thread
    (torch's and the BLAS libraries'): on a loaded machine, thread hand-offs cost far more
    than tiny matrix products (20x measured on 2 busy cores; with OpenBLAS on 2 threads the
    lda-logistic probe of ``benchmarks/probe.py`` took 0.8-33 s instead of 0.3 s while
    another process kept one core busy). Restores the settings after."""
    import torch

    before = torch.get_num_threads()
    if work >= threshold:
        yield
        return
    if before > 1:
        torch.set_num_threads(1)
    try:
        with blas_limit(1):
            yield
    finally:
        torch.set_num_threads(before)


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
    X = torch.from_numpy(np.array(x_train, dtype=np.float64))
    Xt = torch.from_numpy(np.array(x_test, dtype=np.float64))
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


def lda_probe(
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
    """Shrinkage linear discriminant probe (Hastie, Tibshirani, Friedman, *Elements of
    Statistical Learning*, 2nd ed., sec 4.3 and 4.3.1, regularised discriminant analysis)::

        score_c(x) = x^T S^-1 mu_c - 1/2 mu_c^T S^-1 mu_c + log pi_c,   S = S_W + alpha I

    with ``S_W`` the pooled within-class covariance of the standardised fitting split. One
    ``eigh`` of ``S_W`` serves every alpha. Unlike regression on one-hot targets it does not
    mask classes when many classes share a low-dimensional space (ESL sec 4.2), which is the
    regime of late, collapsed layers probed with a new head. When features outnumber samples
    they are first projected onto the span of the training rows (exact: class means lie in
    it). Alpha is chosen on a validation split of the training data, then refitted.
    """
    import torch

    n_cls = _check_labels(y_train, y_test, what)
    fit, val = stratified_split(y_train, val_fraction, seed)
    X = torch.from_numpy(np.array(x_train, dtype=np.float64))
    Xt = torch.from_numpy(np.array(x_test, dtype=np.float64))
    yall = torch.as_tensor(np.asarray(y_train))

    def prepare(rows: np.ndarray, others: list[torch.Tensor]):
        xf, *rest = _standardise(X[rows], *others)
        if xf.shape[1] > xf.shape[0]:
            _, _, vh = torch.linalg.svd(xf, full_matrices=False)
            xf, rest = xf @ vh.T, [r @ vh.T for r in rest]
        y = yall[rows]
        onehot = torch.nn.functional.one_hot(y, n_cls).double()
        counts = onehot.sum(0)
        mu = (onehot.T @ xf) / counts.clamp_min(1)[:, None]
        within = xf - mu[y]
        s, V = torch.linalg.eigh(within.T @ within / len(y))
        prior = torch.log(counts.clamp_min(1) / len(y))
        prior[counts == 0] = -torch.inf
        return s.clamp_min(0), V, mu @ V, prior, [r @ V for r in rest]

    def scores(P, Q, s, prior, a):  # a: (A,) -> (A, n, C)
        inv = 1.0 / (s[None, :] + a[:, None])  # (A, d)
        lin = (P[None] * inv[:, None, :]) @ Q.T
        return lin - 0.5 * (Q[None] ** 2 * inv[:, None, :]).sum(-1)[:, None, :] + prior

    s, V, Q, prior, (P,) = prepare(fit, [X[val]])
    scale = float(s.mean()) if float(s.mean()) > 0 else 1.0
    a = torch.tensor(alphas, dtype=torch.float64) * scale
    yv = yall[val]
    val_acc = (scores(P, Q, s, prior, a).argmax(-1) == yv).double().mean(-1)
    best = int(torch.nonzero(val_acc == val_acc.max()).max())
    s2, _, Q2, prior2, (Pt,) = prepare(np.arange(len(y_train)), [Xt])
    alpha = torch.tensor([float(alphas[best]) * (float(s2.mean()) or 1.0)], dtype=torch.float64)
    pred = scores(Pt, Q2, s2, prior2, alpha)[0].argmax(-1).numpy()
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
    max_iter: int = 100,
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
            xa = torch.from_numpy(np.array(feats[nme], dtype=np.float32)[rows_tr])
            xb = torch.from_numpy(np.array(test[nme], dtype=np.float32))
            xa, xb = _standardise(xa, xb)
            pad = dmax - xa.shape[1]
            tr.append(torch.nn.functional.pad(xa, (0, pad)))
            te.append(torch.nn.functional.pad(xb, (0, pad)))
        return torch.stack(tr), torch.stack(te)

    def train(
        Xs: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, w0: torch.Tensor | None = None
    ) -> torch.Tensor:
        L, n, d = Xs.shape
        W = (torch.zeros(L, d + 1, n_cls) if w0 is None else w0.clone()).requires_grad_(True)
        Xb = torch.cat([Xs, torch.ones(L, n, 1)], -1)
        onehot = torch.nn.functional.one_hot(y, n_cls).float()
        opt = torch.optim.LBFGS([W], max_iter=max_iter, line_search_fn="strong_wolfe",
                                tolerance_grad=1e-5, tolerance_change=1e-7)  # fmt: skip

        def closure():
            opt.zero_grad()
            logp = torch.log_softmax(Xb @ W, -1)
            ce = -(logp * onehot).sum(-1).mean(-1)
            loss = (ce + 0.5 * lam * (W[:, :-1] ** 2).sum((1, 2))).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return W.detach()

    def predict(W: torch.Tensor, Xs: torch.Tensor) -> torch.Tensor:
        Xb = torch.cat([Xs, torch.ones(*Xs.shape[:2], 1)], -1)
        return (Xb @ W).argmax(-1)

    work = len(names) * len(y_train) * max(np.shape(f)[1] for f in features_train.values())
    with few_threads(work * n_cls):
        vfeats = {k: np.asarray(v)[val] for k, v in features_train.items()}
        Xf, Xv = stack(features_train, fit, vfeats)
        yf, yv = torch.as_tensor(y_train[fit]), torch.as_tensor(y_train[val])
        val_accs, W = {}, None
        for i in sorted(range(len(l2)), key=lambda i: -l2[i]):  # strong -> weak, warm started
            W = train(Xf, yf, torch.full((len(names),), l2[i]), W)
            val_accs[i] = (predict(W, Xv) == yv).float().mean(1)
        va = torch.stack([val_accs[i] for i in range(len(l2))])  # (n_l2, L)
        order = torch.tensor(sorted(range(len(l2)), key=lambda i: -l2[i]))
        best = order[va[order].argmax(0)]  # first max in strong -> weak order: ties -> stronger
        lam = torch.tensor([l2[int(b)] for b in best])
        Xa, Xt = stack(features_train, np.arange(len(y_train)), features_test)
        W = train(Xa, torch.as_tensor(y_train), lam)
        acc = (predict(W, Xt) == torch.as_tensor(y_test)).float().mean(1)
        return {
            nme: ProbeResult(float(acc[i]), float(lam[i]), float(va[int(best[i]), i]))
            for i, nme in enumerate(names)
        }
