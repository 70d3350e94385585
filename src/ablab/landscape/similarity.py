"""Representation similarity: linear CKA, and CKA between two models' outputs.

Linear centred kernel alignment (Kornblith et al., "Similarity of Neural Network
Representations Revisited", ICML 2019, §3, Eq. 5) of ``X`` (n x p) and ``Y`` (n x q), both
column-centred:

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F)

It lies in [0, 1], equals 1 for identical representations, and is invariant to orthogonal
transforms and isotropic scaling of either side. MD tree (Zhou et al., ICML 2024, §3.2,
following Yang et al., NeurIPS 2021) uses CKA between the outputs of two models trained from
different seeds, on mixup-augmented training inputs, as an alternative global feature.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ablab.errors import DataError
from ablab.landscape._data import Measured, eval_mode, iter_batches, model_device
from ablab.landscape.connectivity import check_same_architecture


def _matrix(a: Any, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        arr = arr.reshape(arr.shape[0], -1)
    if not np.isfinite(arr).all():
        raise DataError(f"cka: {name} contains NaN or inf; expected finite features")
    return arr


def cka(features_a: Any, features_b: Any) -> float:
    """Linear CKA of two feature matrices with one row per sample (see module docstring).

    Inputs are tensors or arrays of shape ``(n, p)`` and ``(n, q)`` (extra dimensions are
    flattened). Computed in float64. Returns a :class:`~ablab.landscape.Measured` float with
    ``n_samples = n``.
    """
    x, y = _matrix(features_a, "features_a"), _matrix(features_b, "features_b")
    if x.shape[0] != y.shape[0]:
        raise DataError(
            f"cka: features_a has {x.shape[0]} rows and features_b has {y.shape[0]}; "
            "expected one row per sample in both, for the same samples"
        )
    if x.shape[0] < 2:
        raise DataError(f"cka: {x.shape[0]} sample(s); expected at least 2 rows")
    x = x - x.mean(axis=0, keepdims=True)
    y = y - y.mean(axis=0, keepdims=True)
    nx, ny = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    for norm, name in ((nx, "features_a"), (ny, "features_b")):
        if norm == 0.0:
            raise DataError(
                f"cka: {name} is constant across samples, so CKA is undefined",
                hint="compare representations that vary over the inputs",
            )
    value = float(np.linalg.norm(y.T @ x) ** 2 / (nx * ny))
    return Measured(min(max(value, 0.0), 1.0), n_samples=x.shape[0])


@torch.no_grad()
def model_cka(
    model_a: nn.Module,
    model_b: nn.Module,
    data: Any,
    *,
    mixup: bool = True,
    alpha: float = 1.0,
    seed: int = 0,
) -> float:
    """CKA between the outputs (logits) of two models on (mixup-augmented) training inputs.

    With ``mixup`` each input is replaced by ``lam * x_i + (1 - lam) * x_perm(i)`` with
    ``lam ~ Beta(alpha, alpha)`` per sample and a random permutation within the batch (Zhang et
    al., "mixup", ICLR 2018), drawn from ``seed``; both models see the same mixed inputs, in
    eval mode. Returns ``cka(f_A(X~), f_B(X~))`` as a :class:`~ablab.landscape.Measured` float.
    """
    check_same_architecture(model_a, model_b)
    device = model_device(model_a)
    gen = torch.Generator().manual_seed(seed)
    if mixup and not alpha > 0:
        raise DataError(f"model_cka: alpha={alpha}; expected a positive Beta concentration")
    from scipy.special import betaincinv

    outs_a, outs_b = [], []
    with eval_mode(model_a, model_b):
        for x, _ in iter_batches(data):
            x = x.to(device)
            if mixup:
                if not x.is_floating_point():
                    raise DataError(
                        f"model_cka: mixup needs floating-point inputs, got {x.dtype}",
                        hint="pass mixup=False for integer inputs (e.g. token ids)",
                    )
                n = x.shape[0]
                perm = torch.randperm(n, generator=gen).to(device)
                # lam ~ Beta(alpha, alpha) by inverse CDF of uniforms from our own generator
                u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
                lam = torch.from_numpy(betaincinv(alpha, alpha, u))
                lam = lam.to(device, x.dtype).reshape((n,) + (1,) * (x.dim() - 1))
                x = lam * x + (1 - lam) * x[perm]
            outs_a.append(model_a(x).reshape(x.shape[0], -1).cpu())
            outs_b.append(model_b(x).reshape(x.shape[0], -1).cpu())
    if not outs_a:
        raise DataError("model_cka: data is empty: no samples to evaluate")
    return cka(torch.cat(outs_a), torch.cat(outs_b))
