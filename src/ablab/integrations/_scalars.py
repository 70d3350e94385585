"""Picking the single numbers out of a framework's dict of logged values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``metrics`` that are single numbers (Python numbers, 0-d or 1-element
    tensors and arrays), as floats; everything else is left out."""
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if hasattr(v, "numel") and v.numel() != 1:  # tensors
            continue
        if hasattr(v, "size") and not hasattr(v, "numel") and getattr(v, "size", 1) != 1:
            continue  # numpy arrays
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        out[str(k)] = float(v)
    return out
