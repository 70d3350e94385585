"""The kinds of the metrics ``run.measure`` records (no torch import).

Measured costs are stored as extra run metrics named ``cost.<what>``. They are informational
(``direction = "none"``: summarised, never tested, no verdicts); latency and memory vary by
nature between runs (``deterministic = false``: left out of bit-identity checks).
"""

from __future__ import annotations

PREFIX = "cost."

COST_KINDS: dict[str, dict[str, object]] = {
    "cost.params": {"direction": "none", "deterministic": True, "unit": "parameters"},
    "cost.trainable_params": {"direction": "none", "deterministic": True, "unit": "parameters"},
    "cost.flops": {"direction": "none", "deterministic": True, "unit": "FLOPs per forward pass"},
    "cost.latency_ms": {"direction": "none", "deterministic": False, "unit": "ms (median)"},
    "cost.latency_iqr_ms": {"direction": "none", "deterministic": False, "unit": "ms (IQR)"},
    "cost.peak_memory_mb": {"direction": "none", "deterministic": False, "unit": "MiB"},
    "cost.threads": {"direction": "none", "deterministic": True, "unit": "threads"},
}


def is_cost(name: str) -> bool:
    return name in COST_KINDS


def is_nondeterministic(name: str) -> bool:
    """True for a measured metric whose value varies by nature (latency, memory)."""
    kind = COST_KINDS.get(name)
    return bool(kind) and not kind["deterministic"]
