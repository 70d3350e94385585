"""Seeding and deterministic execution.

Every random choice of a run flows from its seed: Python's ``random``, NumPy's global state,
torch on every device, DataLoader workers (:func:`seed_worker`) and explicit generators
(``run.generator()``).
"""

from __future__ import annotations

import os
import random
from typing import Any

CUBLAS_CONFIG = ":4096:8"


def seed_everything(
    seed: int, *, deterministic: bool | str = True, threads: int | None = None
) -> None:
    """Seed all global generators and switch torch to deterministic kernels.

    ``deterministic``: True (error on a non-deterministic op), "warn" (warn only) or False.
    ``threads``: torch intra-op threads; fixed per run because the reduction order of float
    sums, and so the low bits of results, can depend on it.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_CONFIG)
    import torch

    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)  # seeds CPU and every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=deterministic == "warn")
    else:
        torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cudnn.benchmark = False


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` for ``torch.utils.data.DataLoader``: seed each loader worker from torch's
    per-worker seed (itself derived from the run's seed), so augmentation is reproducible::

        DataLoader(ds, num_workers=2, worker_init_fn=ablab.seed_worker, generator=run.generator())
    """
    import numpy as np
    import torch

    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)


def derive_seed(seed: int, *salt: Any) -> int:
    """A 63-bit seed derived from ``seed`` and ``salt`` (stable across processes and platforms)."""
    import hashlib

    h = hashlib.sha256(repr((seed, *salt)).encode()).digest()
    return int.from_bytes(h[:8], "big") >> 1
