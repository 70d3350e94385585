"""A small study from fixed numbers (no randomness): the input of the golden-file tests."""

import math

import pandas as pd

from ablab.analysis import analyze

SEEDS = range(5)
# per variant: acc offset, loss offset, parameter count, seeds that failed
VARIANTS = {
    "full": (0.0, 0.0, 205_000, ()),
    "no_aug": (-0.0312, 0.041, 205_000, ()),
    "wide": (0.0154, -0.012, 1_230_400, ()),
    "no_dropout": (0.0011, 0.003, 205_000, (3, 4)),
    "broken_lr": (0.0, 0.0, 205_000, SEEDS),
}
METRICS = {
    "acc": {"direction": "max", "margin": 0.005},
    "loss": {"direction": "min"},
    "n_params": {"direction": "min"},
}


def fixed_runs() -> pd.DataFrame:
    rows = []
    for i, (v, (da, dl, params, failed)) in enumerate(VARIANTS.items()):
        for s in SEEDS:
            wiggle = 0.004 * math.sin(1.7 * s + 2.3 * i)
            ok = s not in failed
            rows.append(
                {
                    "key": f"{v}/s{s}",
                    "variant": v,
                    "seed": s,
                    "status": "done" if ok else "failed",
                    "acc": 0.9123 + da + wiggle + 0.002 * math.cos(s) if ok else math.nan,
                    "loss": 0.3141 + dl - 2 * wiggle if ok else math.nan,
                    "n_params": float(params) if ok else math.nan,
                }
            )
    return pd.DataFrame(rows)


def fixed_result() -> dict:
    return analyze(fixed_runs(), study="digits-ablation", metrics=METRICS, baseline="full")
