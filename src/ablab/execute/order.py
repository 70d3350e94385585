"""The order runs execute in. By default variants are interleaved: seed-major blocks (every
variant's run of the first seed, then of the second, ...), in a seeded random order within each
block, so drift of the machine over time (thermal throttling, other jobs, caches) spreads over
the variants instead of landing on whichever ran first. ``[run] order = "variant"`` keeps the
plan's order (all runs of a variant together)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def run_order(runs: Sequence[Any], how: str = "interleave", salt: str = "") -> dict[str, int]:
    """``{run key: position}`` for the plan's runs (objects with ``key``, ``seed``, optional
    ``split_seed``). ``interleave``: blocks by (seed, split seed) in order of first appearance,
    each shuffled by ``random.Random(f"{salt}:{seed}:{split_seed}")`` (the same order on every
    invocation and machine); ``variant``: the plan's order."""
    if how == "variant":
        return {r.key: i for i, r in enumerate(runs)}
    blocks: dict[tuple[Any, Any], list[Any]] = {}
    for r in runs:
        blocks.setdefault((r.seed, getattr(r, "split_seed", None)), []).append(r)
    out: dict[str, int] = {}
    for (seed, split), members in blocks.items():
        members = list(members)
        random.Random(f"{salt}:{seed}:{split}").shuffle(members)
        for r in members:
            out[r.key] = len(out)
    return out
