"""JSON helpers shared by the CLI and bundles."""

from __future__ import annotations

import math
from typing import Any


def clean_json(obj: Any) -> Any:
    """NaN/inf -> None, tuples -> lists, recursively (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj
