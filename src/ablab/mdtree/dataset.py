"""From a zoo's runs (one row per trained model) to a training table for the trees.

Pure function over a DataFrame: no store access here (the CLI reads the store and passes the
rows). Features are averaged over the seeds of a configuration, like the accuracies behind
the labels (Zhou et al., ICML 2024, §3.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ablab.errors import DataError
from ablab.mdtree.labels import _frame, rfi_labels

FEATURE_COLUMNS = (
    "train_error", "train_loss", "test_error", "test_loss", "hessian_trace",
    "hessian_top_eigenvalue", "mc_peak", "mu", "cka", "log_data_size", "log_param_count",
)  # fmt: skip


def runs_frame(runs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Flatten store run dicts (``config`` and ``metrics`` mappings) into one row per done run."""
    rows = []
    for r in runs:
        if r.get("status", "done") != "done":
            continue
        row = (
            pd.json_normalize(r.get("config", {}), sep=".").to_dict("records")[0]
            if r.get("config")
            else {}
        )
        row |= dict(r.get("metrics", {}))
        row["seed"] = r.get("seed")
        rows.append(row)
    if not rows:
        raise DataError(
            "the zoo has no finished runs to learn from", hint="run the zoo study first"
        )
    return pd.DataFrame(rows)


def training_table(
    table: Any,
    *,
    temperature: str = "batch_size",
    higher_is_hotter: bool = False,
    width: str = "width",
    data: str = "data_size",
    accuracy: str = "test_accuracy",
    group: Sequence[str] = (),
    features: Sequence[str] = FEATURE_COLUMNS,
) -> pd.DataFrame:
    """One row per configuration: knob values, seed-averaged features present, RFIs, labels."""
    df = _frame(table)
    labels = rfi_labels(
        df, temperature=temperature, higher_is_hotter=higher_is_hotter, width=width, data=data,
        accuracy=accuracy, group=group,
    )  # fmt: skip
    keys = [*group, temperature, width, data]
    present = [f for f in features if f in df.columns and f not in keys]
    if not present:
        raise DataError(
            f"the zoo table has none of the feature columns {list(features)}",
            hint="log train_error, hessian_trace, mc_peak ... as run metrics",
        )
    feats = df.groupby(keys, as_index=False, sort=True)[present].mean(numeric_only=True)
    return labels.merge(feats, on=keys, how="left")
