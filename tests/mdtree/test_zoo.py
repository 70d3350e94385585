"""A tiny real zoo on digits: train, measure, label, fit a tree end to end."""

from __future__ import annotations

import pytest
import torch

from ablab.errors import DataError
from ablab.mdtree import MDTree, training_table
from ablab.mdtree.zoo import build_zoo, train_member


@pytest.fixture(scope="module")
def zoo():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    grid = {"width": [4, 32], "batch_size": [16, 256], "data_fraction": [0.2, 0.6], "epochs": [3]}
    df = build_zoo(grid, seeds=(0, 1), mc_epochs=1, hessian_samples=100)
    torch.set_num_threads(before)
    return df


@pytest.mark.slow
def test_zoo_rows_and_determinism(zoo):
    assert len(zoo) == 16
    for col in ("test_accuracy", "train_error", "hessian_trace", "mc_peak", "log_param_count"):
        assert zoo[col].notna().all()
    # the wide model fits the digits better than the tiny one
    assert zoo[zoo.width == 32].test_accuracy.mean() > zoo[zoo.width == 4].test_accuracy.mean()
    cfg = {"width": 4, "batch_size": 256, "data_fraction": 0.2, "epochs": 3}
    _, m = train_member(cfg, 1, hessian_samples=100)
    row = zoo[
        (zoo.width == 4) & (zoo.batch_size == 256) & (zoo.data_fraction == 0.2) & (zoo.seed == 1)
    ]
    assert m["test_accuracy"] == row.test_accuracy.item()
    assert m["hessian_trace"] == row.hessian_trace.item()


@pytest.mark.slow
def test_zoo_to_tree(zoo):
    table = training_table(zoo, data="data_fraction")
    assert len(table) == 8
    labelled = table[table.q1 != "optimal"]
    assert len(labelled) >= 2
    tree = MDTree("q1").fit(labelled, labelled.q1)
    assert tree.train_accuracy_ >= 0.5
    with pytest.raises(DataError, match="did you mean 'digits'"):
        train_member({"width": 4, "batch_size": 8, "task": "digit"}, 0)


def test_shipped_trees_refit_from_their_zoo():
    """The default trees were fitted on tests/mdtree/data/zoo_digits.csv (see _fit_defaults)."""
    from pathlib import Path

    import pandas as pd

    from ablab.mdtree import default_trees

    zoo = pd.read_csv(Path(__file__).parent / "data" / "zoo_digits.csv")
    assert len(zoo) == 240
    table = training_table(zoo, data="data_fraction")
    trees = {t.question: t for t in default_trees()}
    assert set(trees) == {"q1", "q2", "q2_data"}
    for q, shipped in trees.items():
        labelled = table[table[q] != "optimal"]
        refit = MDTree(q).fit(labelled, labelled[q])
        assert refit.thresholds_ == pytest.approx(shipped.thresholds_)
        assert shipped.score(labelled, labelled[q]) == pytest.approx(shipped.train_accuracy_)
        assert shipped.train_accuracy_ > labelled[q].value_counts(normalize=True).max()
