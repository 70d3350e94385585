import itertools

import numpy as np
import pandas as pd
import pytest

from ablab.analysis import analyze

EVIL = "<script>window.__pwned=1;alert(1)</script>"
EVIL_IMG = '<img src=x onerror="window.__pwned=2">'
METRICS = {"acc": {"direction": "max"}, "loss": {"direction": "min"}}


def _study(variants, n_seeds=6, seed=0):
    rng = np.random.default_rng(seed)
    rows, series = [], []
    for v, eff in variants.items():
        for s in range(n_seeds):
            acc = 0.8 + eff + 0.01 * np.sin(s) + rng.normal(0, 0.005)
            rows.append(
                {
                    "key": f"{v}/{s}",
                    "variant": v,
                    "seed": s,
                    "status": "done",
                    "acc": acc,
                    "loss": 1 - acc + rng.normal(0, 0.005),
                    "wall_s": 2.0 + s,
                }
            )
            for step in range(0, 50, 10):
                series.append(
                    {
                        "key": f"{v}/{s}",
                        "variant": v,
                        "seed": s,
                        "name": "val_acc",
                        "step": step,
                        "value": acc * (1 - np.exp(-(step + 1) / 10)),
                    }
                )
    rows.append(
        {
            "key": "f/0",
            "variant": "no_aug",
            "seed": 99,
            "status": "failed",
            "acc": np.nan,
            "loss": np.nan,
            "wall_s": np.nan,
        }
    )
    return pd.DataFrame(rows), pd.DataFrame(series)


@pytest.fixture(scope="session")
def study():
    variants = {
        "baseline": 0.0,
        "no_aug": -0.03,
        "wider": 0.02,
        "same": 0.0,
        EVIL: 0.01,
        EVIL_IMG: -0.01,
    }
    runs, series = _study(variants)
    configs = {v: {"model": {"width": 64}, "aug": True, "name": v} for v in variants}
    configs["no_aug"]["aug"] = False
    configs["wider"]["model"] = {"width": 128}
    result = analyze(
        runs, study=f"demo {EVIL}", metrics=METRICS, baseline="baseline", configs=configs
    )
    provenance = {
        "python": "3.11.7",
        "platform": "Linux-x86_64",
        "cpu": "Test CPU <b>x</b>",
        "gpu": None,
        "packages": {"numpy": "2.0", "torch": "2.13.0"},
        "git": {"commit": "0123abc", "dirty": True},
        "data": {"digits": "sha256:feed"},
        "resources": {
            r.key: {"wall_s": r.wall_s, "max_rss_mb": 100.0}
            for r in runs.itertuples()
            if r.status == "done"
        },
    }
    verifications = [{"key": "baseline/0", "status": "identical", "max_abs_diff": 0.0}]
    return {
        "result": result,
        "runs": runs,
        "series": series,
        "provenance": provenance,
        "verifications": verifications,
    }


@pytest.fixture(scope="session")
def factorial_study():
    factors = {"augment": [False, True], "loss": ["ce", "focal"]}
    rng = np.random.default_rng(1)
    rows, configs = [], {}
    for i, (a, b) in enumerate(itertools.product(*factors.values())):
        name = f"augment={a},loss={b}"
        configs[name] = {"augment": a, "loss": b}
        for s in range(5):
            acc = 0.7 + 0.05 * a + 0.03 * a * (b == "focal") + rng.normal(0, 0.01)
            rows.append(
                {
                    "key": f"{i}/{s}",
                    "variant": name,
                    "seed": s,
                    "status": "done",
                    "acc": acc,
                    "loss": 1 - acc,
                }
            )
    runs = pd.DataFrame(rows)
    result = analyze(
        runs,
        study="factorial demo",
        metrics=METRICS,
        baseline="augment=False,loss=ce",
        configs=configs,
        design="factorial",
        factors=factors,
    )
    return {"result": result, "runs": runs}
