"""The hand-structured trees of MD tree (Zhou et al., ICML 2024, §3.3, Fig. 3) as data.

A tree is nested nodes: ``Split(feature_role, threshold_name, op, if_true, if_false)`` or a
leaf label. ``op`` is ``"le"`` (value <= threshold) or ``"gt"``. Feature roles are resolved to
actual feature names by the tree's ``features`` (so the CKA variant swaps the sharpness role).

    Q1:  train error <= t1                    -> small
         else mc_peak > t2 (well connected)   -> large
         else sharp <= t3 (flat)              -> large, otherwise small
    Q2:  train error <= t1: mc_peak <= t2 (poorly connected) -> width, else batch
         otherwise:         mc_peak <= t3                    -> width, else batch
    Q2': train error <= t1 (interpolating):
             mc_peak <= t2: sharp <= t5 -> data else batch
             otherwise:     sharp <= t3 -> data else batch
         not interpolating: mc_peak <= t4 -> batch, otherwise sharp <= t6 -> data else batch
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

ERROR, CONNECT, SHARP = "error", "connectivity", "sharpness"


@dataclass(frozen=True)
class Split:
    role: str
    threshold: str
    op: str  # "le" | "gt"
    if_true: Node
    if_false: Node


Node = Union[Split, str]  # noqa: UP007 (a forward-referenced alias)

TREES: dict[str, Node] = {
    "q1": Split(
        ERROR, "t1", "le", "small",
        Split(CONNECT, "t2", "gt", "large", Split(SHARP, "t3", "le", "large", "small")),
    ),
    "q2": Split(
        ERROR, "t1", "le",
        Split(CONNECT, "t2", "le", "width", "batch"),
        Split(CONNECT, "t3", "le", "width", "batch"),
    ),
    "q2_data": Split(
        ERROR, "t1", "le",
        Split(
            CONNECT, "t2", "le",
            Split(SHARP, "t5", "le", "data", "batch"),
            Split(SHARP, "t3", "le", "data", "batch"),
        ),
        Split(CONNECT, "t4", "le", "batch", Split(SHARP, "t6", "le", "data", "batch")),
    ),
}  # fmt: skip

CLASSES = {"q1": ("small", "large"), "q2": ("width", "batch"), "q2_data": ("data", "batch")}

ADVICE = {
    ("q1", "small"): "the training temperature is too low: use a smaller batch size or a "
    "larger learning rate",
    ("q1", "large"): "the training temperature is too high: use a larger batch size or a "
    "smaller learning rate",
    ("q2", "width"): "the model is too small: increase its width (more parameters) before "
    "tuning the temperature",
    ("q2", "batch"): "tune the training temperature (batch size / learning rate) rather than "
    "the model size",
    ("q2_data", "data"): "the model needs more training data",
    ("q2_data", "batch"): "tune the training temperature (batch size / learning rate) rather "
    "than collecting more data",
}

MEANING = {
    (ERROR, "le"): "interpolates the training data",
    (ERROR, "gt"): "does not interpolate the training data",
    (CONNECT, "le"): "poorly connected to another seed's solution",
    (CONNECT, "gt"): "well connected to another seed's solution",
    (SHARP, "le"): "in a flat region",
    (SHARP, "gt"): "in a sharp region",
}


def thresholds_of(node: Node) -> list[tuple[str, str]]:
    """``[(threshold_name, role), ...]`` in top-down (breadth-first) order."""
    out: list[tuple[str, str]] = []
    queue = [node]
    while queue:
        n = queue.pop(0)
        if isinstance(n, Split):
            out.append((n.threshold, n.role))
            queue += [n.if_true, n.if_false]
    return out


def predict_arrays(node: Node, values: dict[str, np.ndarray], th: dict[str, float]) -> np.ndarray:
    """Vectorised prediction: ``values`` maps each role to an array of feature values."""
    n = len(next(iter(values.values())))
    out = np.empty(n, dtype=object)
    _fill(node, values, th, np.ones(n, dtype=bool), out)
    return out


def _fill(node: Node, values: dict[str, np.ndarray], th: dict[str, float], mask, out) -> None:
    if not isinstance(node, Split):
        out[mask] = node
        return
    v = values[node.role]
    cond = v <= th[node.threshold] if node.op == "le" else v > th[node.threshold]
    _fill(node.if_true, values, th, mask & cond, out)
    _fill(node.if_false, values, th, mask & ~cond, out)
