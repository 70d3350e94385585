"""The two baselines of MD tree (Zhou et al., ICML 2024, §4.1): depth-4 decision trees.

- ``validation``: scikit-learn ``DecisionTreeClassifier(max_depth=4)`` on validation metrics
  (train error, test error, train loss, test loss);
- ``hyperparameter``: the same on hyperparameters (ln of the training-set size, ln of the
  parameter count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ablab.errors import DataError, SpecError, did_you_mean

BASELINE_FEATURES: dict[str, tuple[str, ...]] = {
    "validation": ("train_error", "test_error", "train_loss", "test_loss"),
    "hyperparameter": ("log_data_size", "log_param_count"),
}


class BaselineTree:
    """A depth-limited decision tree on validation metrics or on hyperparameters.

    ``X`` is a DataFrame/mapping with the kind's columns (``log_data_size`` and
    ``log_param_count`` may instead be given as ``data_size`` and ``param_count``, which are
    log-transformed here). Rows labelled ``"optimal"`` are skipped by ``fit``.
    """

    def __init__(
        self, kind: str = "validation", *, max_depth: int = 4, random_state: int = 0
    ) -> None:
        if kind not in BASELINE_FEATURES:
            raise SpecError(
                f"baseline kind {kind!r} is unknown; expected one of {sorted(BASELINE_FEATURES)}",
                hint=did_you_mean(kind, BASELINE_FEATURES),
            )
        self.kind = kind
        self.features = BASELINE_FEATURES[kind]
        self.max_depth = max_depth
        self.random_state = random_state
        self.model_: Any = None

    def _matrix(self, X: Any) -> np.ndarray:
        if not (isinstance(X, Mapping) or hasattr(X, "columns")):
            arr = np.asarray(X, dtype=float)
            if arr.ndim != 2 or arr.shape[1] != len(self.features):
                raise DataError(
                    f"{self.kind} baseline: X has shape {arr.shape}; expected (n, {len(self.features)})"
                )
            return arr
        cols = list(X.keys()) if isinstance(X, Mapping) else list(X.columns)
        out = []
        for f in self.features:
            if f in cols:
                out.append(np.asarray(X[f], dtype=float))
            elif f.startswith("log_") and f[4:] in cols:
                out.append(np.log(np.asarray(X[f[4:]], dtype=float)))
            else:
                raise DataError(
                    f"{self.kind} baseline needs column {f!r}; X has {sorted(map(str, cols))}",
                    hint=did_you_mean(f, map(str, cols)),
                )
        return np.column_stack(out)

    def fit(self, X: Any, y: Sequence[str]) -> BaselineTree:
        from sklearn.tree import DecisionTreeClassifier

        m = self._matrix(X)
        labels = np.asarray(list(y), dtype=object)
        keep = (labels != "optimal") & np.isfinite(m).all(axis=1)
        if not keep.any():
            raise DataError(f"{self.kind} baseline: no labelled rows with finite features to fit")
        self.model_ = DecisionTreeClassifier(
            max_depth=self.max_depth, random_state=self.random_state
        )
        self.model_.fit(m[keep], labels[keep].astype(str))
        return self

    def predict(self, X: Any) -> np.ndarray:
        if self.model_ is None:
            raise DataError(f"the {self.kind} baseline is not fitted; call fit(X, y) first")
        return self.model_.predict(self._matrix(X)).astype(object)

    def score(self, X: Any, y: Sequence[str]) -> float:
        return float(np.mean(self.predict(X) == np.asarray(list(y), dtype=object)))


def majority_baseline(y_train: Sequence[str], y_test: Sequence[str]) -> float:
    """Accuracy on ``y_test`` of always predicting the most frequent training label."""
    labels = [v for v in y_train if v != "optimal"]
    if not labels:
        raise DataError("majority baseline: no labelled training rows")
    values, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    top = values[np.argmax(counts)]
    return float(np.mean(np.asarray(list(y_test), dtype=str) == top))
