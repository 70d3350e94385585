"""Plot of a :class:`ProbeReport`: normalised accuracy against normalised depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_report(report: Any, path: str | Path | None, formats: tuple[str, ...]) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    depth = report.depth

    def norm(a: np.ndarray) -> np.ndarray:
        m = float(np.max(a))
        return a / m if m > 0 else a

    ax.plot(depth, norm(report.id_acc), "-o", color="black", lw=2, ms=3,
            label=f"ID: {report.id_name} (max {report.id_acc.max():.1%})")  # fmt: skip
    for name, acc in report.ood.items():
        ax.plot(depth, norm(acc), "-o", lw=1.5, ms=3,
                label=f"OOD: {name} (r={report.r[name]:.1f})")  # fmt: skip
    ts = report.tunnel_start
    if ts is not None:
        ax.axvline(depth[ts], color="tab:red", ls="--", lw=1)
        ax.text(depth[ts], 0.03, f" tunnel start: {report.layers[ts]}", color="tab:red",
                fontsize=8, transform=ax.get_xaxis_transform(), va="bottom", rotation=90)  # fmt: skip
    ax.set_xlabel("normalised depth (layer index / last)")
    ax.set_ylabel("accuracy / max accuracy")
    ax.set_title(f"Layer-wise probes · r = {report.r_mean:.1f} ({report.tunnel_strength} tunnel)")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if path is not None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        stem = p.with_suffix("") if p.suffix in {".png", ".svg", ".pdf"} else p
        for fmt in formats:
            fig.savefig(f"{stem}.{fmt}", dpi=150)
    return fig
