"""Image corruptions in the style of MNIST-C (Mu & Gilmer, 2019) and ImageNet-C (Hendrycks &
Dietterich, ICLR 2019): Gaussian noise, Gaussian blur, contrast reduction, elastic warping.

Each takes images ``(N, C, H, W)`` in [0, 1], a severity 1..5 and a ``numpy`` generator, and
returns a new float32 array in [0, 1]. Spatial parameters scale with the image side relative to
32 pixels, so a severity means the same visual strength at any resolution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ablab.errors import DataError, did_you_mean

# severity 1..5 parameters (ImageNet-C's CIFAR settings, blur/elastic scaled per 32 px)
_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.25, 1.6)
_CONTRAST = (0.5, 0.4, 0.3, 0.2, 0.1)
_ELASTIC = ((1.5, 0.9), (2.0, 0.9), (2.5, 0.8), (3.0, 0.8), (3.5, 0.7))  # (alpha, sigma) / 32 px


def _check(x: np.ndarray, severity: int) -> None:
    if x.ndim != 4:
        raise DataError(f"corruptions expect images (N, C, H, W), got shape {x.shape}")
    if not 1 <= severity <= 5:
        raise DataError(f"corruption severity must be 1..5, got {severity}")


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``clip(x + N(0, s^2))`` with ``s`` in (0.08, 0.12, 0.18, 0.26, 0.38) by severity."""
    _check(x, severity)
    s = _NOISE_STD[severity - 1]
    return np.clip(x + rng.normal(0.0, s, x.shape), 0, 1).astype(np.float32)


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian filter over H and W with sigma (0.5 .. 1.6) * side / 32 pixels."""
    from scipy.ndimage import gaussian_filter

    _check(x, severity)
    sigma = _BLUR_SIGMA[severity - 1] * x.shape[-1] / 32
    return np.clip(gaussian_filter(x, sigma=(0, 0, sigma, sigma)), 0, 1).astype(np.float32)


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """``(x - m) * c + m`` with ``m`` the per-image mean and ``c`` in (0.5 .. 0.1)."""
    _check(x, severity)
    c = _CONTRAST[severity - 1]
    m = x.mean(axis=(1, 2, 3), keepdims=True)
    return np.clip((x - m) * c + m, 0, 1).astype(np.float32)


def elastic(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Elastic deformation (Simard et al., ICDAR 2003): a uniform random displacement field
    smoothed by a Gaussian of width ``sigma`` and scaled by ``alpha`` (pixels per 32 px side),
    applied by bilinear resampling."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    _check(x, severity)
    n, c, h, w = x.shape
    alpha, sigma = _ELASTIC[severity - 1]
    k = w / 32
    out = np.empty_like(x, dtype=np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for i in range(n):
        d = rng.uniform(-1, 1, (2, h, w))
        d = gaussian_filter(d, sigma=(0, sigma * k, sigma * k), mode="constant")
        d /= np.abs(d).max() + 1e-12
        dy, dx = d[0] * alpha * k, d[1] * alpha * k
        for ch in range(c):
            out[i, ch] = map_coordinates(x[i, ch], [yy + dy, xx + dx], order=1, mode="constant")
    return np.clip(out, 0, 1)


CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "noise": gaussian_noise,
    "blur": gaussian_blur,
    "contrast": contrast,
    "elastic": elastic,
}


def corrupt(x: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Apply the corruption named ``kind`` (one of :data:`CORRUPTIONS`)."""
    if kind not in CORRUPTIONS:
        hint = did_you_mean(kind, CORRUPTIONS) or f"choose one of {', '.join(CORRUPTIONS)}"
        raise DataError(f"unknown corruption '{kind}'", hint=hint)
    return CORRUPTIONS[kind](x, severity, rng)
