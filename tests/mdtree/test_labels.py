"""RFI labels against a brute-force reference implementation of the definition."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from ablab.errors import DataError
from ablab.mdtree import rfi_labels

BATCH, WIDTH, DATA = (16, 64, 256), (8, 32, 128), (0.25, 1.0)


def _zoo(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for b, w, d, s in itertools.product(BATCH, WIDTH, DATA, (0, 1)):
        acc = 0.5 + 0.1 * np.log(w) / np.log(128) + 0.2 * d - 0.05 * abs(np.log2(b) - 6) / 2
        rows.append(
            dict(
                batch_size=b, width=w, data_size=d, seed=s, test_accuracy=acc + rng.normal(0, 0.02)
            )
        )
    return pd.DataFrame(rows)


def _reference(zoo: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    mean = zoo.groupby(["batch_size", "width", "data_size"])["test_accuracy"].mean().to_dict()
    out = {}
    for (b, w, d), acc in mean.items():
        inc = max(a for (b2, w2, d2), a in mean.items() if w2 == w and d2 == d and b2 <= b) - acc
        dec = max(a for (b2, w2, d2), a in mean.items() if w2 == w and d2 == d and b2 >= b) - acc
        wid = max(a for (b2, w2, d2), a in mean.items() if b2 == b and d2 == d and w2 >= w) - acc
        dat = max(a for (b2, w2, d2), a in mean.items() if b2 == b and w2 == w and d2 >= d) - acc
        out[(b, w, d)] = dict(inc=inc, dec=dec, wid=wid, dat=dat)
    return out


def test_rfi_matches_the_definition():
    zoo = _zoo()
    labels = rfi_labels(zoo)
    ref = _reference(zoo)
    assert len(labels) == len(ref) == 18
    for row in labels.itertuples():
        r = ref[(row.batch_size, row.width, row.data_size)]
        assert row.rfi_inc_temp == pytest.approx(r["inc"])
        assert row.rfi_dec_temp == pytest.approx(r["dec"])
        assert row.rfi_width == pytest.approx(r["wid"])
        assert row.rfi_data == pytest.approx(r["dat"])
        expected_q1 = (
            "small" if r["inc"] > r["dec"] else "large" if r["dec"] > r["inc"] else "optimal"
        )
        assert row.q1 == expected_q1
        temp = max(r["inc"], r["dec"])
        assert row.q2 == ("width" if r["wid"] > temp else "batch" if temp > r["wid"] else "optimal")
        assert row.q2_data == (
            "data" if r["dat"] > temp else "batch" if temp > r["dat"] else "optimal"
        )
    assert {"small", "large"} <= set(labels.q1)
    assert (labels[["rfi_inc_temp", "rfi_dec_temp", "rfi_width", "rfi_data"]] >= 0).all().all()


def test_learning_rate_as_temperature_and_groups():
    zoo = _zoo().rename(columns={"batch_size": "lr"})
    zoo["lr"] = 1.0 / zoo["lr"]  # larger lr = hotter, like a smaller batch
    zoo2 = zoo.assign(dataset="b", test_accuracy=zoo.test_accuracy[::-1].to_numpy())
    both = pd.concat([zoo.assign(dataset="a"), zoo2])
    by_lr = rfi_labels(both, temperature="lr", higher_is_hotter=True, group=["dataset"])
    by_batch = rfi_labels(_zoo())
    a = by_lr[by_lr.dataset == "a"].sort_values(
        ["width", "data_size", "lr"], ascending=[True, True, False]
    )
    b = by_batch.sort_values(["width", "data_size", "batch_size"])
    assert list(a.q1) == list(b.q1)
    assert len(by_lr) == 36


def test_ties_are_optimal_and_bad_tables():
    flat = pd.DataFrame(
        [
            dict(batch_size=b, width=w, data_size=1.0, test_accuracy=0.9)
            for b in (8, 16)
            for w in (4, 8)
        ]
    )
    assert set(rfi_labels(flat).q1) == {"optimal"}
    with pytest.raises(DataError, match="no column 'batchsize'.*\n.*did you mean 'batch_size'"):
        rfi_labels(flat, temperature="batchsize")
    with pytest.raises(DataError, match="empty"):
        rfi_labels(flat.iloc[:0])
    with pytest.raises(DataError, match="non-numeric"):
        rfi_labels(flat.assign(test_accuracy=["x", 1, 2, 3]))
