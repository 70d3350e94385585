"""``ProbeReport``: per-layer ID/OOD probe accuracies, ranks and the tunnel metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablab.probe import metrics as M


@dataclass
class ProbeReport:
    """Result of :func:`ablab.probe.probe_model`.

    Accuracies are fractions per probed layer (in forward order). ``ood`` maps each OOD set's
    name to its curve. Ranks and NC1 are computed on the ID training features of each layer.
    """

    layers: list[str]
    id_name: str
    id_acc: np.ndarray
    ood: dict[str, np.ndarray]
    n_classes_id: int
    n_classes_ood: dict[str, int]
    numerical_rank: np.ndarray
    effective_rank: np.ndarray
    nc1: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def depth(self) -> np.ndarray:
        """Layer position normalised to [0, 1] (first probed layer 0, last 1)."""
        n = len(self.layers)
        return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)

    @property
    def r(self) -> dict[str, float]:
        """% OOD performance retained per OOD set (:func:`metrics.ood_retained`)."""
        return {k: M.ood_retained(v) for k, v in self.ood.items()}

    @property
    def r_mean(self) -> float:
        return float(np.nanmean(list(self.r.values())))

    @property
    def rho(self) -> dict[str, float]:
        """Pearson correlation of ID and OOD curves per OOD set."""
        return {k: M.pearson_id_ood(self.id_acc, v) for k, v in self.ood.items()}

    @property
    def alignment(self) -> dict[str, float]:
        """ID/OOD alignment A per OOD set, from the last layer."""
        return {
            k: M.alignment(
                float(self.id_acc[-1]), self.n_classes_id, float(v[-1]), self.n_classes_ood[k]
            )  # fmt: skip
            for k, v in self.ood.items()
        }

    @property
    def mean_ood_curve(self) -> np.ndarray:
        return np.mean(np.stack(list(self.ood.values())), axis=0)

    @property
    def tunnel_start(self) -> int | None:
        """Layer index where the mean OOD curve peaks, if before the last layer."""
        return M.tunnel_start(self.mean_ood_curve)

    @property
    def tunnel_strength(self) -> str:
        return M.tunnel_strength(list(self.r.values()))

    def summary(self) -> dict[str, float]:
        """Flat metrics for a study: ``r``, ``rho``, ``A`` (means over OOD sets), per set
        ``r/NAME``, ``rho/NAME``, ``A/NAME``, last-layer accuracies and the tunnel start as
        normalised depth (1.0 when there is no tunnel)."""
        out: dict[str, float] = {
            "r": self.r_mean,
            "rho": float(np.nanmean(list(self.rho.values()))),
            "A": float(np.mean(list(self.alignment.values()))),
            "id_acc": float(self.id_acc[-1]),
            "id_acc_max": float(self.id_acc.max()),
        }
        ts = self.tunnel_start
        out["tunnel_start_depth"] = 1.0 if ts is None else float(self.depth[ts])
        for k in self.ood:
            out[f"r/{k}"] = self.r[k]
            out[f"rho/{k}"] = self.rho[k]
            out[f"A/{k}"] = self.alignment[k]
            out[f"ood_acc/{k}"] = float(self.ood[k][-1])
        return out

    def to_frame(self) -> Any:
        """One row per layer: depth, ID and OOD accuracies, ranks and NC1 (pandas)."""
        import pandas as pd

        cols: dict[str, Any] = {"layer": self.layers, "depth": self.depth, "id_acc": self.id_acc}
        for k, v in self.ood.items():
            cols[f"ood_acc[{k}]"] = v
        cols["numerical_rank"] = self.numerical_rank
        cols["effective_rank"] = self.effective_rank
        cols["nc1"] = self.nc1
        return pd.DataFrame(cols)

    def to_dict(self) -> dict[str, Any]:
        def clean(x: float) -> float | None:
            return None if not np.isfinite(x) else float(x)

        return {
            "id": self.id_name,
            "layers": self.layers,
            "depth": self.depth.tolist(),
            "id_acc": self.id_acc.tolist(),
            "ood_acc": {k: v.tolist() for k, v in self.ood.items()},
            "n_classes": {"id": self.n_classes_id, **{k: c for k, c in self.n_classes_ood.items()}},
            "numerical_rank": [int(v) for v in self.numerical_rank],
            "effective_rank": [clean(v) for v in self.effective_rank],
            "nc1": [clean(v) for v in self.nc1],
            "r": {k: clean(v) for k, v in self.r.items()},
            "rho": {k: clean(v) for k, v in self.rho.items()},
            "A": {k: clean(v) for k, v in self.alignment.items()},
            "tunnel_start": self.tunnel_start,
            "tunnel_start_layer": None
            if self.tunnel_start is None
            else self.layers[self.tunnel_start],
            "tunnel_strength": self.tunnel_strength,
            "summary": {k: clean(v) for k, v in self.summary().items()},
            "meta": self.meta,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text of :meth:`to_dict` (NaN written as null); also written to ``path``."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            Path(path).write_text(text)
        return text

    def plot(self, path: str | Path | None = None, formats: tuple[str, ...] = ("png", "svg")):
        """Accuracy against normalised depth, each curve divided by its maximum; the tunnel
        start is marked by a dashed line. With ``path`` (suffix ignored) the figure is saved
        once per format, e.g. ``probe.png`` and ``probe.svg``. Returns the figure."""
        from ablab.probe.plot import plot_report

        return plot_report(self, path, formats)
