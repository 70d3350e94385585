"""MDTree: the hand-structured diagnostic trees with thresholds fitted one at a time.

Zhou et al., "MD tree: a model-diagnostic tree grown on loss landscape", ICML 2024, §3.3:
the tree's shape is fixed by the question (see :mod:`ablab.mdtree.structure`); only the
thresholds are learned, each by a bounded one-dimensional search that maximises training
accuracy with the others held fixed (top-down, repeated until no threshold moves). The
search is exact: accuracy is piecewise constant in a threshold, so it tries the midpoints
between consecutive observed values of the feature (bounded by their range) and keeps the
middle of the best ones. Units as in the paper: train error in percent, Hessian trace and
top eigenvalue in natural log (``ln max(value, 1e-12)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ablab.errors import DataError, SpecError, did_you_mean
from ablab.mdtree.structure import (
    ADVICE,
    CLASSES,
    CONNECT,
    ERROR,
    MEANING,
    SHARP,
    TREES,
    Node,
    Split,
    predict_arrays,
    thresholds_of,
)

FORMAT = "ablab.mdtree/1"


@dataclass(frozen=True)
class FeatureSpec:
    role: str
    log: bool  # the tree sees ln(value)
    flip: bool  # the tree sees -value (higher is "flatter"/"better connected")
    needs_pair: bool
    unit: str


FEATURES: dict[str, FeatureSpec] = {
    "train_error": FeatureSpec(ERROR, False, False, False, "%"),
    "mc_peak": FeatureSpec(
        CONNECT, False, False, True, "% (minus the peak train error on the curve)"
    ),
    "mu": FeatureSpec(CONNECT, False, False, True, "% (mode connectivity mu)"),
    "hessian_trace": FeatureSpec(SHARP, True, False, False, "ln"),
    "hessian_top_eigenvalue": FeatureSpec(SHARP, True, False, False, "ln"),
    "cka": FeatureSpec(SHARP, False, True, True, "(linear CKA; high = similar)"),
}
DEFAULT_FEATURES = ("train_error", "mc_peak", "hessian_trace")
CKA_FEATURES = ("train_error", "mc_peak", "cka")
ROLE_ORDER = (ERROR, CONNECT, SHARP)


def _transform(name: str, values: np.ndarray) -> np.ndarray:
    spec = FEATURES[name]
    v = values.astype(float)
    if spec.log:
        v = np.log(np.maximum(v, 1e-12))
    return -v if spec.flip else v


@dataclass(frozen=True)
class Step:
    """One decision on the path: ``feature`` (raw ``value``) compared with ``threshold``."""

    feature: str
    value: float | None
    op: str
    threshold: float
    outcome: bool | None
    meaning: str

    def __str__(self) -> str:
        if self.value is None:
            return f"{self.feature} is not available: cannot go further"
        spec = FEATURES[self.feature]
        shown = math.log(max(self.value, 1e-12)) if spec.log else self.value
        th = -self.threshold if spec.flip else self.threshold
        op = self.op if not spec.flip else {"le": "gt", "gt": "le"}[self.op]
        sym = {("le", True): "<=", ("le", False): ">", ("gt", True): ">", ("gt", False): "<="}
        name = f"ln {self.feature}" if spec.log else self.feature
        return f"{name} = {shown:.4g} {sym[(op, bool(self.outcome))]} {th:.4g}: {self.meaning}"


class MDTree:
    """A model-diagnostic tree for one question: ``"q1"``, ``"q2"`` or ``"q2_data"``.

    ``features`` names the error, connectivity and sharpness features, in that order; the
    default is ``("train_error", "mc_peak", "hessian_trace")``, and the CKA variant is
    ``("train_error", "mc_peak", "cka")``. Scikit-learn style: ``fit(X, y)``, ``predict(X)``,
    ``score(X, y)``; ``X`` is a DataFrame / mapping with those columns or an array whose
    columns follow ``features``; ``y`` holds labels (rows labelled ``"optimal"`` are skipped).
    """

    def __init__(self, question: str = "q1", features: Sequence[str] | None = None) -> None:
        if question not in TREES:
            raise SpecError(
                f"MDTree question {question!r} is unknown; expected one of {sorted(TREES)}",
                hint=did_you_mean(question, TREES),
            )
        feats = tuple(features) if features is not None else DEFAULT_FEATURES
        for f in feats:
            if f not in FEATURES:
                raise SpecError(
                    f"MDTree feature {f!r} is unknown; expected names from {sorted(FEATURES)}",
                    hint=did_you_mean(f, FEATURES),
                )
        roles = tuple(FEATURES[f].role for f in feats)
        if roles != ROLE_ORDER:
            raise SpecError(
                f"MDTree features {list(feats)} have roles {list(roles)}; expected one error, one "
                "connectivity and one sharpness feature in that order, e.g. "
                f"{list(DEFAULT_FEATURES)} or {list(CKA_FEATURES)}"
            )
        self.question = question
        self.features = feats
        self.thresholds_: dict[str, float] | None = None
        self.train_accuracy_: float | None = None
        self.n_train_: int | None = None
        self.provenance: dict[str, Any] = {}

    @property
    def classes_(self) -> tuple[str, str]:
        return CLASSES[self.question]

    @property
    def tree(self) -> Node:
        return TREES[self.question]

    def _role_values(self, X: Any) -> dict[str, np.ndarray]:
        if isinstance(X, Mapping) or hasattr(X, "columns"):
            cols = list(X.keys()) if isinstance(X, Mapping) else list(X.columns)
            out = {}
            for f in self.features:
                if f not in cols:
                    raise DataError(
                        f"MDTree({self.question!r}) needs feature {f!r}; X has {sorted(map(str, cols))}",
                        hint=did_you_mean(f, map(str, cols)),
                    )
                out[FEATURES[f].role] = _transform(f, np.asarray(X[f], dtype=float).reshape(-1))
            return out
        arr = np.asarray(X, dtype=float)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(self.features):
            raise DataError(
                f"MDTree X has shape {arr.shape}; expected (n, {len(self.features)}) with "
                f"columns {list(self.features)}"
            )
        return {FEATURES[f].role: _transform(f, arr[:, i]) for i, f in enumerate(self.features)}

    def _check_fitted(self) -> dict[str, float]:
        if self.thresholds_ is None:
            raise DataError("this MDTree is not fitted; call fit(X, y) or MDTree.load(path) first")
        return self.thresholds_

    def fit(
        self,
        X: Any,
        y: Sequence[str],
        *,
        max_passes: int = 5,
        starts: Sequence[float] = (0.5, 0.1, 0.3, 0.7, 0.9),
    ) -> MDTree:
        """Fit the thresholds one at a time by exact bounded search on training accuracy.

        Coordinate ascent from every threshold at the same quantile of its feature, for each
        quantile in ``starts``; the most accurate result is kept (first wins ties).
        """
        values = self._role_values(X)
        labels = np.asarray(list(y), dtype=object)
        n = len(next(iter(values.values())))
        if len(labels) != n:
            raise DataError(f"MDTree.fit: X has {n} rows but y has {len(labels)} labels")
        bad = sorted({str(v) for v in labels} - set(self.classes_) - {"optimal", "None"})
        if bad:
            raise DataError(
                f"MDTree({self.question!r}).fit: unknown labels {bad}; expected "
                f"{list(self.classes_)} (rows labelled 'optimal' are skipped)"
            )
        keep = np.isin(labels, self.classes_)
        for v in values.values():
            keep &= np.isfinite(v)
        if keep.sum() == 0:
            raise DataError(
                f"MDTree.fit: no rows with a label in {list(self.classes_)} and finite features"
            )
        values = {r: v[keep] for r, v in values.items()}
        labels = labels[keep]
        order = thresholds_of(self.tree)
        best_acc, th = -1.0, {}
        for q in starts:
            start = {name: float(np.quantile(values[role], q)) for name, role in order}
            cand = _coordinate_ascent(self.tree, values, labels, start, order, max_passes)
            acc = float(np.mean(predict_arrays(self.tree, values, cand) == labels))
            if acc > best_acc + 1e-12:
                best_acc, th = acc, cand
        self.thresholds_ = th
        self.n_train_ = int(len(labels))
        self.train_accuracy_ = float(np.mean(predict_arrays(self.tree, values, th) == labels))
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (an object array of strings)."""
        return predict_arrays(self.tree, self._role_values(X), self._check_fitted())

    def score(self, X: Any, y: Sequence[str]) -> float:
        """Accuracy ``mean(predict(X) == y)`` over all given rows."""
        return float(np.mean(self.predict(X) == np.asarray(list(y), dtype=object)))

    def decide(self, x: Mapping[str, float | None]) -> tuple[str | None, list[Step]]:
        """Walk the tree for one model; stops (label None) at a feature that is missing/NaN."""
        th = self._check_fitted()
        node, steps = self.tree, []
        by_role = {FEATURES[f].role: f for f in self.features}
        while isinstance(node, Split):
            name = by_role[node.role]
            raw = x.get(name)
            if raw is None or not math.isfinite(float(raw)):
                steps.append(Step(name, None, node.op, th[node.threshold], None, ""))
                return None, steps
            v = float(_transform(name, np.array([float(raw)]))[0])
            ok = v <= th[node.threshold] if node.op == "le" else v > th[node.threshold]
            taken_op = node.op if ok else {"le": "gt", "gt": "le"}[node.op]
            steps.append(
                Step(
                    name,
                    float(raw),
                    node.op,
                    th[node.threshold],
                    ok,
                    MEANING[(node.role, taken_op)],
                )
            )
            node = node.if_true if ok else node.if_false
        return node, steps

    def explain(self, x: Mapping[str, float | None]) -> str:
        """The path taken, in words, with the metric values, thresholds and the advice."""
        label, steps = self.decide(x)
        lines = [f"MD tree {self.question} ({', '.join(self.features)}):"]
        lines += [f"  {s}" for s in steps]
        if label is None:
            lines.append(f"  -> cannot decide: {steps[-1].feature} is needed at this point")
        else:
            lines.append(f"  -> {label}: {ADVICE[(self.question, label)]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "question": self.question,
            "features": list(self.features),
            "thresholds": self._check_fitted(),
            "classes": list(self.classes_),
            "train_accuracy": self.train_accuracy_,
            "n_train": self.n_train_,
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> None:
        """Write the fitted tree as JSON (format ``ablab.mdtree/1``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<dict>") -> MDTree:
        if d.get("format") != FORMAT:
            raise DataError(
                f"{source}: not an MD tree file (format {d.get('format')!r}, expected {FORMAT!r})"
            )
        tree = cls(d["question"], d["features"])
        names = {n for n, _ in thresholds_of(tree.tree)}
        th = d.get("thresholds") or {}
        if set(th) != names:
            raise DataError(
                f"{source}: thresholds {sorted(th)} do not match tree {d['question']!r} ({sorted(names)})"
            )
        tree.thresholds_ = {k: float(v) for k, v in th.items()}
        tree.train_accuracy_ = d.get("train_accuracy")
        tree.n_train_ = d.get("n_train")
        tree.provenance = dict(d.get("provenance") or {})
        return tree

    @classmethod
    def load(cls, path: str | Path) -> MDTree:
        """Read a tree written by :meth:`save`."""
        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except FileNotFoundError:
            raise DataError(f"MD tree file {str(p)!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"MD tree file {str(p)!r} is not valid JSON: {exc}") from None
        return cls.from_dict(d, str(p))

    def __repr__(self) -> str:
        state = f"thresholds={self.thresholds_}" if self.thresholds_ else "unfitted"
        return f"MDTree(question={self.question!r}, features={self.features!r}, {state})"


def _coordinate_ascent(
    tree: Node,
    values: dict[str, np.ndarray],
    labels: np.ndarray,
    th: dict[str, float],
    order: list[tuple[str, str]],
    max_passes: int,
) -> dict[str, float]:
    th = dict(th)
    for _ in range(max_passes):
        moved = False
        for name, role in order:
            best = _best_threshold(tree, values, labels, th, name, role)
            if best != th[name]:
                th[name], moved = best, True
        if not moved:
            break
    return th


def _best_threshold(
    tree: Node,
    values: dict[str, np.ndarray],
    labels: np.ndarray,
    th: dict[str, float],
    name: str,
    role: str,
) -> float:
    u = np.unique(values[role])
    below = u[0] - 1e-6 * (1.0 + abs(u[0]))
    cands = np.concatenate([[below], (u[:-1] + u[1:]) / 2, [u[-1]]])
    trial = dict(th)
    accs = np.empty(len(cands))
    for i, c in enumerate(cands):
        trial[name] = float(c)
        accs[i] = np.mean(predict_arrays(tree, values, trial) == labels)
    best = np.flatnonzero(accs >= accs.max() - 1e-12)
    current = np.flatnonzero(np.isclose(cands, th[name]))
    if current.size and accs[current[0]] >= accs.max() - 1e-12:
        return th[name]  # keep a threshold that is already optimal (convergence)
    return float(cands[best[len(best) // 2]])
