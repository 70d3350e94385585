"""The :class:`Dataset` container shared by every offline data source."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ablab.errors import DataError


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset with a train and a test split.

    Arrays are ``float32`` channels-first (``(N, C, H, W)`` images, ``(N, C, L)`` sequences)
    and ``int64`` labels in ``0 .. n_classes - 1``. ``classes`` names each label.
    ``meta`` records every generation parameter (seed, fonts, resolution, ...) for provenance;
    :attr:`hash` is a SHA-256 over the arrays and ``meta``, so two datasets with the same hash
    hold the same numbers.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x is None or y is None:
                continue
            if len(x) != len(y):
                raise DataError(
                    f"dataset '{self.name}': x_{split} has {len(x)} rows but y_{split} has "
                    f"{len(y)} labels; they must match"
                )

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example (without the batch dimension)."""
        return tuple(self.x_train.shape[1:])

    @cached_property
    def hash(self) -> str:
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(json.dumps(self.meta, sort_keys=True, default=str).encode())
        for arr in (self.x_train, self.y_train, self.x_test, self.y_test):
            if arr is None:
                h.update(b"none")
                continue
            a = np.ascontiguousarray(arr)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        ntest = 0 if self.x_test is None else len(self.x_test)
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}, test={ntest}, "
            f"shape={self.shape}, classes={self.n_classes}, hash={self.hash[:12]})"
        )


def split_per_class(
    x: np.ndarray, y: np.ndarray, n_test_per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split: ``n_test_per_class`` examples of each class go to the test split."""
    test_idx = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test_idx.append(rng.permutation(idx)[:n_test_per_class])
    test = np.sort(np.concatenate(test_idx))
    mask = np.ones(len(y), dtype=bool)
    mask[test] = False
    return x[mask], y[mask], x[test], y[test]
