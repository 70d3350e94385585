"""Feature cache keyed by model and data hashes, in memory or as float16 memory maps on disk.

Several probes (ridge and logistic, different layer subsets, repeated CLI calls) reuse one
extraction: the key is SHA-256 of the model's parameters and buffers, the data's hash, the
probe points and the pooling size.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np


def model_hash(model: Any) -> str:
    """SHA-256 of the model's class name and every parameter/buffer (names, shapes, values)."""
    import torch

    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in model.state_dict().items():
        a = t.detach().cpu().contiguous()
        h.update(f"{name}:{a.dtype}:{tuple(a.shape)}".encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()


def array_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def cache_key(model_id: str, data_id: str, points: list[str], pool: int) -> str:
    h = hashlib.sha256(json.dumps([model_id, data_id, points, pool]).encode())
    return h.hexdigest()[:32]


class FeatureCache:
    """``{key: {layer: features}}``; in memory, or on disk under ``directory`` as one float16
    memory map per layer (``directory/key/NNN.f16`` plus ``meta.json``)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = None if directory is None else Path(directory)
        self._mem: dict[str, dict[str, np.ndarray]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        if self.directory is not None:
            meta_path = self.directory / key / "meta.json"
            if meta_path.is_file():
                meta = json.loads(meta_path.read_text())
                out = {
                    name: np.memmap(
                        self.directory / key / f"{i:03d}.f16",
                        dtype=np.float16,
                        mode="r",
                        shape=tuple(shape),
                    )  # fmt: skip
                    for i, (name, shape) in enumerate(meta["layers"])
                }
                self._mem[key] = out
                self.hits += 1
                return out
        self.misses += 1
        return None

    def put(self, key: str, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Store ``feats``; returns what :meth:`get` will return (memmaps when on disk)."""
        if self.directory is None:
            self._mem[key] = feats
            return feats
        d = self.directory / key
        d.mkdir(parents=True, exist_ok=True)
        layers = []
        out = {}
        for i, (name, f) in enumerate(feats.items()):
            mm = np.memmap(d / f"{i:03d}.f16", dtype=np.float16, mode="w+", shape=f.shape)
            mm[:] = np.clip(f, -65504, 65504)
            mm.flush()
            layers.append([name, list(f.shape)])
            out[name] = np.memmap(d / f"{i:03d}.f16", dtype=np.float16, mode="r", shape=f.shape)
        (d / "meta.json").write_text(json.dumps({"layers": layers}))  # written last: complete
        self._mem[key] = out
        return out
