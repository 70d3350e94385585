"""Builders of the named datasets: glyphs, corrupted glyphs, scikit-learn digits, MNIST-1D.

Every builder takes ``seed`` plus its options and returns a :class:`~ablab.data.Dataset`;
the registry in :mod:`ablab.data.registry` maps names to builders with preset options.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from ablab.data._dataset import Dataset, split_per_class
from ablab.data.glyphs import (
    ALL_CHARS,
    DIGITS,
    HELDOUT_FONTS,
    ID_FONTS,
    LOWER,
    UPPER,
    Jitter,
    available_fonts,
    render_glyphs,
)
from ablab.errors import DataError

CLASS_SETS = {
    "digits": DIGITS,
    "upper": UPPER,
    "lower": LOWER,
    "letters": UPPER,
    "all": ALL_CHARS,
}


def stream(seed: int, name: str) -> np.random.Generator:
    """A generator seeded by ``(seed, name)``: each dataset name gets its own stream."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _fonts(fonts: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(fonts, str):
        if fonts == "id":
            return list(ID_FONTS)
        if fonts == "heldout":
            return list(HELDOUT_FONTS)
        if fonts == "bundled":
            return list(ID_FONTS + HELDOUT_FONTS)
        if fonts == "system":
            bundled = set(ID_FONTS + HELDOUT_FONTS)
            return [f for f in available_fonts() if f not in bundled and "Sym" not in f]
        return [f.strip() for f in fonts.split(",") if f.strip()]
    return list(fonts)


def _chars(classes: str | int) -> str:
    if isinstance(classes, int):  # a count: the first k of 0-9A-Za-z
        k = classes
        if not 2 <= k <= len(ALL_CHARS):
            raise DataError(f"number of glyph classes must be 2..{len(ALL_CHARS)}, got {k}")
        return ALL_CHARS[:k]
    if classes in CLASS_SETS:
        return CLASS_SETS[classes]
    chars = "".join(dict.fromkeys(classes))
    bad = [c for c in chars if c not in ALL_CHARS]
    if bad or len(chars) < 2:
        raise DataError(
            f"glyph classes '{classes}' are not valid",
            hint=f"use one of {sorted(CLASS_SETS)}, a count 2..62, or >= 2 characters from 0-9A-Za-z",
        )
    return chars


def glyphs(
    seed: int = 0,
    *,
    name: str = "glyphs",
    classes: str | int = "digits",
    fonts: str | list[str] | tuple[str, ...] = "id",
    resolution: int = 32,
    n_train_per_class: int = 200,
    n_test_per_class: int = 100,
    n_train: int | None = None,
    jitter: Jitter | dict[str, Any] | None = None,
    corruption: str | None = None,
    severity: int = 3,
) -> Dataset:
    """Glyph classification: characters of ``classes`` rendered in ``fonts``.

    ``n_train`` (total training images, split evenly over classes) overrides
    ``n_train_per_class``; it keeps the image count fixed while the number of classes varies
    (the data-diversity variable of Harun et al., NeurIPS 2024, section 4). ``corruption``
    (``noise``/``blur``/``contrast``/``elastic``) is applied to both splits at ``severity``.
    """
    from ablab.data.corrupt import corrupt

    chars = _chars(classes)
    font_list = _fonts(fonts)
    if not font_list:
        raise DataError(f"no fonts selected by fonts={fonts!r}")
    if isinstance(jitter, dict):
        jitter = Jitter(**jitter)
    k = len(chars)
    ntr = n_train // k if n_train is not None else n_train_per_class
    if ntr < 1 or n_test_per_class < 1:
        raise DataError(
            f"dataset '{name}' needs at least one train and one test image per class, "
            f"got {ntr} train and {n_test_per_class} test per class"
        )
    rng = stream(seed, name)
    y_tr = np.repeat(np.arange(k), ntr)
    y_te = np.repeat(np.arange(k), n_test_per_class)
    y_tr, y_te = rng.permutation(y_tr), rng.permutation(y_te)
    x_tr, _ = render_glyphs(chars, y_tr, font_list, resolution, rng, jitter)
    x_te, _ = render_glyphs(chars, y_te, font_list, resolution, rng, jitter)
    if corruption is not None:
        x_tr = corrupt(x_tr, corruption, severity, rng)
        x_te = corrupt(x_te, corruption, severity, rng)
    meta = {
        "seed": seed, "classes": chars, "fonts": font_list, "resolution": resolution,
        "n_train_per_class": ntr, "n_test_per_class": n_test_per_class,
        "jitter": repr(jitter or Jitter()), "corruption": corruption,
        "severity": severity if corruption else None,
    }  # fmt: skip
    return Dataset(
        name, x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64), tuple(chars), meta
    )


def digits(
    seed: int = 0, *, name: str = "digits", resolution: int = 8, n_test_per_class: int = 50
) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images), bilinearly resized to
    ``resolution`` and scaled to [0, 1]; a stratified split with ``n_test_per_class``."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    if resolution != 8:
        t = F.interpolate(torch.from_numpy(x), size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=resolution < 8)  # fmt: skip
        x = t.clamp(0, 1).numpy()
    y = bunch.target.astype(np.int64)
    x_tr, y_tr, x_te, y_te = split_per_class(x, y, n_test_per_class, stream(seed, name))
    meta = {"seed": seed, "resolution": resolution, "n_test_per_class": n_test_per_class}
    return Dataset(name, x_tr, y_tr, x_te, y_te, tuple(DIGITS), meta)


MNIST1D_SHIFT = {
    "scale_coeff": 0.6,
    "max_translation": 60,
    "corr_noise_scale": 0.45,
    "iid_noise_scale": 0.05,
    "shear_scale": 1.25,
}


def mnist1d(
    seed: int = 0,
    *,
    name: str = "mnist1d",
    num_samples: int = 4000,
    shift: dict[str, Any] | bool = False,
) -> Dataset:
    """MNIST-1D (Greydanus, 2020), generated procedurally by the ``mnist1d`` package; shape
    ``(N, 1, 40)``. ``shift=True`` uses :data:`MNIST1D_SHIFT` generation parameters (larger
    scale, translation, shear and noise); a dict overrides parameters individually."""
    import random

    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise DataError(
            "dataset 'mnist1d' needs the mnist1d package", hint="pip install mnist1d"
        ) from exc
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = int(stream(seed, name).integers(2**31))
    params = dict(MNIST1D_SHIFT) if shift is True else dict(shift or {})
    for k, v in params.items():
        if not hasattr(args, k):
            raise DataError(f"unknown MNIST-1D generation parameter '{k}'")
        setattr(args, k, v)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # mnist1d seeds the global generators; restore them afterwards
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    meta = {"seed": seed, "num_samples": num_samples, "params": params}
    return Dataset(
        name,
        d["x"].astype(np.float32)[:, None],
        d["y"].astype(np.int64),
        d["x_test"].astype(np.float32)[:, None],
        d["y_test"].astype(np.int64),
        tuple(DIGITS),
        meta,
    )
