"""Benchmark: reports for a synthetic study of 10,000 runs (20 variants x 500 seeds).

Measures ``ablab.analysis.analyze`` and ``ablab.report.render`` for json, md and html
(targets from issue 3: json and md at most 3 s, html at most 10 s, analysis included) and
writes ``benchmarks/results/report.md``.

    .venv/bin/python benchmarks/report.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ablab.runtime.provenance import cpu_model

N_VARIANTS, N_SEEDS, N_STEPS = 20, 500, 10
TARGETS = {"json": 3.0, "md": 3.0, "html": 10.0}


def synthetic_study(seed: int = 0):
    rng = np.random.default_rng(seed)
    names = ["baseline"] + [f"variant_{i:02d}" for i in range(1, N_VARIANTS)]
    effects = rng.normal(0, 0.01, N_VARIANTS)
    effects[0] = 0.0
    seed_effect = rng.normal(0, 0.01, N_SEEDS)
    rows = []
    for v, eff in zip(names, effects, strict=True):
        acc = 0.8 + eff + seed_effect + rng.normal(0, 0.01, N_SEEDS)
        loss = 1.0 - acc + rng.normal(0, 0.01, N_SEEDS)
        status = np.where(rng.random(N_SEEDS) < 0.005, "failed", "done")
        acc = np.where(status == "done", acc, np.nan)
        loss = np.where(status == "done", loss, np.nan)
        rows.append(
            pd.DataFrame(
                {
                    "key": [f"{v}/{s}" for s in range(N_SEEDS)],
                    "variant": v,
                    "seed": np.arange(N_SEEDS),
                    "status": status,
                    "acc": acc,
                    "loss": loss,
                    "wall_s": rng.uniform(5, 10, N_SEEDS),
                }
            )
        )
    runs = pd.concat(rows, ignore_index=True)
    steps = np.arange(N_STEPS)
    series = pd.DataFrame(
        {
            "key": np.repeat(runs["key"].to_numpy(), N_STEPS),
            "variant": np.repeat(runs["variant"].to_numpy(), N_STEPS),
            "seed": np.repeat(runs["seed"].to_numpy(), N_STEPS),
            "name": "val_acc",
            "step": np.tile(steps, len(runs)),
            "value": np.repeat(np.nan_to_num(runs["acc"].to_numpy()), N_STEPS)
            * np.tile(1 - np.exp(-(steps + 1) / 3), len(runs)),
        }
    )
    configs = {v: {"component": v, "width": 64} for v in names}
    return runs, series, configs


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    import matplotlib
    import scipy
    import statsmodels

    from ablab.analysis import analyze
    from ablab.report import render

    runs, series, configs = synthetic_study()
    metrics = {"acc": {"direction": "max"}, "loss": {"direction": "min"}}
    t_an, result = timed(
        lambda: analyze(runs, study="bench", metrics=metrics, baseline="baseline", configs=configs)
    )
    prov = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "resources": {k: {"wall_s": w} for k, w in zip(runs["key"], runs["wall_s"], strict=True)},
    }
    rows = []
    for fmt in ("json", "md", "html"):
        kw = {"runs": runs, "series": series, "provenance": prov} if fmt == "html" else {}
        t_r, text = timed(lambda fmt=fmt, kw=kw: render(result, fmt, **kw))
        total = t_an + t_r
        rows.append((fmt, t_an, t_r, total, TARGETS[fmt], len(text.encode())))
        print(
            f"{fmt:5s} analyze {t_an:6.2f} s  render {t_r:6.2f} s  total {total:6.2f} s  "
            f"(target {TARGETS[fmt]:.0f} s, {'ok' if total <= TARGETS[fmt] else 'MISSED'})  "
            f"{len(text.encode()) / 1e6:.2f} MB"
        )
    lines = [
        "# Report benchmark",
        "",
        f"Synthetic study: {N_VARIANTS} variants x {N_SEEDS} seeds = {len(runs)} runs "
        f"({int((runs.status == 'failed').sum())} failed), 2 metrics, a logged series of "
        f"{N_STEPS} steps per run ({len(series)} points, used by html). Best of 3, wall clock. "
        "The analysis (per-variant t-intervals, paired or Welch t-tests with their intervals, Holm, "
        "effect sizes, leave-one-seed-out over 500 seeds, CI width by seeds, metric agreement) "
        "is timed once and added to each format's render time: `ablab report` does both.",
        "",
        "| format | analyze (s) | render (s) | total (s) | target (s) | met | output size |",
        "|---|---:|---:|---:|---:|:---:|---:|",
    ]
    for fmt, a, r, tot, tgt, size in rows:
        lines.append(
            f"| {fmt} | {a:.2f} | {r:.2f} | {tot:.2f} | {tgt:.0f} | "
            f"{'yes' if tot <= tgt else 'no'} | {size / 1e6:.2f} MB |"
        )
    lines += [
        "",
        "Machine:",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores (shared with other jobs)",
        "- GPU: none used",
        f"- load average when measured: {os.getloadavg()[0]:.1f} (other engineers' jobs share the cores)",
        f"- Python {platform.python_version()} on {platform.platform()}",
        f"- numpy {np.__version__}, pandas {pd.__version__}, scipy {scipy.__version__}, "
        f"statsmodels {statsmodels.__version__}, matplotlib {matplotlib.__version__}",
        "",
        "No peer tool was timed in this benchmark (it measures ablab against the issue's targets only).",
        "",
    ]
    out = Path(__file__).parent / "results" / "report.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
