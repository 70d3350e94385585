"""Metrics of layer-wise OOD probing (names fixed by the public API).

References
----------
Harun, Lee, Gallardo, Krishnan, Kanan. "What Variables Affect Out-of-Distribution
Generalization in Pretrained Models?" NeurIPS 2024 (r, tunnel strength, rho, A: section 3).
Masarczyk et al. "The Tunnel Effect: Building Data Representations in Deep Neural Networks."
NeurIPS 2023 (numerical rank of representations).
Garrido, Balestriero, Najman, LeCun. "RankMe." ICML 2023 (effective rank).
Papyan, Han, Donoho. "Prevalence of neural collapse." PNAS 2020 (NC1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ablab.errors import DataError


def _curve(acc: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    a = np.asarray(acc, dtype=np.float64).ravel()
    if a.size == 0:
        raise DataError(f"{what}: the per-layer accuracy curve is empty")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{what}: the per-layer accuracies contain NaN or inf")
    return a


def ood_retained(acc_per_layer: Sequence[float] | np.ndarray) -> float:
    """% OOD performance retained (Harun et al. 2024, eq. 1)::

        r = 100 * a_L / max_l a_l

    with ``a_l`` the OOD probe accuracy at layer ``l`` and ``L`` the last probed layer.
    100 means the last layer is the best; a tunnel lowers r. Returns NaN if all ``a_l`` are 0.
    """
    a = _curve(acc_per_layer, "ood_retained")
    m = a.max()
    return float("nan") if m <= 0 else float(100.0 * a[-1] / m)


def tunnel_start(acc_per_layer: Sequence[float] | np.ndarray) -> int | None:
    """Index of the layer with the highest accuracy, if it precedes the last layer, else None.

    After this layer the accuracy drops: the start of the tunnel (Masarczyk et al. 2023, sec 3).
    The first maximum is taken when several layers tie.
    """
    a = _curve(acc_per_layer, "tunnel_start")
    i = int(np.argmax(a))
    return None if i == len(a) - 1 or a[i] <= a[-1] else i


def tunnel_strength(r: float | Sequence[float]) -> str:
    """Tunnel strength from r (Harun et al. 2024, sec 3), r averaged if several are given:

    ``negligible`` r >= 95; ``weak`` 90 <= r < 95; ``medium`` 80 <= r < 90; ``strong`` r < 80.
    """
    vals = np.atleast_1d(np.asarray(r, dtype=np.float64))
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        raise DataError("tunnel_strength: no finite r value given")
    m = float(vals.mean())
    if m >= 95:
        return "negligible"
    if m >= 90:
        return "weak"
    if m >= 80:
        return "medium"
    return "strong"


def pearson_id_ood(
    id_acc_per_layer: Sequence[float] | np.ndarray, ood_acc_per_layer: Sequence[float] | np.ndarray
) -> float:
    """Pearson correlation rho of the ID and OOD per-layer accuracy curves (Harun et al. 2024,
    sec 3)::

        rho = sum_l (x_l - x_bar)(y_l - y_bar) / sqrt(sum_l (x_l - x_bar)^2 sum_l (y_l - y_bar)^2)

    NaN when either curve is constant (correlation undefined).
    """
    x = _curve(id_acc_per_layer, "pearson_id_ood")
    y = _curve(ood_acc_per_layer, "pearson_id_ood")
    if x.shape != y.shape:
        raise DataError(f"pearson_id_ood: curves have {x.size} and {y.size} layers; must match")
    xc, yc = x - x.mean(), y - y.mean()
    den = np.sqrt((xc**2).sum() * (yc**2).sum())
    return float("nan") if den == 0 else float((xc * yc).sum() / den)


def alignment(acc_id: float, n_classes_id: int, acc_ood: float, n_classes_ood: int) -> float:
    """ID/OOD alignment (Harun et al. 2024, sec 3), from the last layer's probes::

        A = (acc_id - 1/C_id) * (acc_ood - 1/C_ood)

    accuracies as fractions in [0, 1]. Positive when both beat chance; a model that fits ID but
    not OOD has A near 0.
    """
    for acc, c, what in ((acc_id, n_classes_id, "ID"), (acc_ood, n_classes_ood, "OOD")):
        if not 0.0 <= acc <= 1.0:
            raise DataError(f"alignment: {what} accuracy must be a fraction in [0, 1], got {acc}")
        if c < 2:
            raise DataError(f"alignment: {what} needs at least 2 classes, got {c}")
    return float((acc_id - 1.0 / n_classes_id) * (acc_ood - 1.0 / n_classes_ood))


def _matrix(features: np.ndarray, what: str) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise DataError(f"{what}: features must be (N >= 2, D), got shape {f.shape}")
    return f


def numerical_rank(features: np.ndarray, rtol: float = 1e-3) -> int:
    """Numerical rank of the feature covariance (Masarczyk et al. 2023, sec 3): the number of
    singular values of ``Cov(H)`` (``H`` centred, ``N x D``) above ``rtol * sigma_max``.

    The covariance's singular values are ``s_i^2 / (N - 1)`` with ``s_i`` those of the centred
    ``H``, so they are computed from one SVD of ``H``.
    """
    h = _matrix(features, "numerical_rank")
    h = h - h.mean(0)
    s = np.linalg.svd(h, compute_uv=False) ** 2
    if s.size == 0 or s[0] <= 0:
        return 0
    return int((s > rtol * s[0]).sum())


def effective_rank(features: np.ndarray, eps: float = 1e-12) -> float:
    """Effective rank, RankMe (Garrido et al., ICML 2023, eq. 1)::

        p_k = sigma_k / sum_j sigma_j + eps,   erank = exp(-sum_k p_k log p_k)

    with ``sigma_k`` the singular values of the (uncentred) feature matrix ``H`` (``N x D``).
    Equals ``k`` for ``k`` equal non-zero singular values.
    """
    h = _matrix(features, "effective_rank")
    s = np.linalg.svd(h, compute_uv=False)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def nc1(features: np.ndarray, labels: np.ndarray) -> float:
    """Within-class variability collapse (Papyan et al. 2020, sec 3, NC1)::

        Sigma_W = 1/N sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T
        Sigma_B = 1/C sum_c (mu_c - mu_G)(mu_c - mu_G)^T
        NC1     = tr(Sigma_W Sigma_B^+) / C

    Computed in the span of the ``C`` centred class means (rank(Sigma_B) <= C - 1), so no
    ``D x D`` matrix is formed. 0 means every sample sits on its class mean.
    """
    h = _matrix(features, "nc1")
    y = np.asarray(labels).ravel()
    if len(y) != len(h):
        raise DataError(f"nc1: {len(h)} feature rows but {len(y)} labels")
    classes = np.unique(y)
    C = len(classes)
    if C < 2:
        raise DataError("nc1: needs at least 2 classes")
    mu = np.stack([h[y == c].mean(0) for c in classes])  # (C, D)
    mg = h.mean(0)
    M = (mu - mg).T  # (D, C)
    # eigen-decomposition of Sigma_B = M M^T / C through the C x C matrix M^T M / C
    lam, Q = np.linalg.eigh(M.T @ M / C)
    keep = lam > lam.max() * 1e-10
    U = M @ Q[:, keep] / np.sqrt(lam[keep] * C)  # orthonormal eigenvectors of Sigma_B
    within = h - mu[np.searchsorted(classes, y)]
    proj = within @ U  # (N, k)
    quad = (proj**2).sum(0) / len(h)  # u_k^T Sigma_W u_k
    return float((quad / lam[keep]).sum() / C)
