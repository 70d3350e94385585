"""MDTree fitting, prediction, explanation and persistence; the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ablab.errors import DataError, SpecError
from ablab.mdtree import BaselineTree, MDTree, majority_baseline
from ablab.mdtree.structure import TREES, predict_arrays

TRUE = {
    "q1": {"t1": 2.0, "t2": -20.0, "t3": 4.0},
    "q2": {"t1": 2.0, "t2": -30.0, "t3": -10.0},
    "q2_data": {"t1": 2.0, "t2": -30.0, "t3": 5.0, "t4": -15.0, "t5": 3.0, "t6": 2.5},
}


def _table(question: str, n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        dict(
            train_error=np.where(
                rng.random(n) < 0.5, rng.uniform(0, 1.9, n), rng.uniform(2.1, 40, n)
            ),
            mc_peak=rng.uniform(-60, 0, n),
            hessian_trace=np.exp(rng.uniform(0, 8, n)),
        )
    )
    roles = {
        "error": df.train_error.to_numpy(),
        "connectivity": df.mc_peak.to_numpy(),
        "sharpness": np.log(df.hessian_trace.to_numpy()),
    }
    return df, predict_arrays(TREES[question], roles, TRUE[question])


@pytest.mark.parametrize("question", ["q1", "q2", "q2_data"])
def test_fit_recovers_a_known_tree(question):
    X, y = _table(question, 400, 0)
    tree = MDTree(question).fit(X, y)
    assert tree.train_accuracy_ == 1.0
    X2, y2 = _table(question, 400, 1)
    assert tree.score(X2, y2) > 0.95
    # thresholds that matter land near the true ones (train errors avoid (1.9, 2.1))
    assert 1.5 <= tree.thresholds_["t1"] <= 2.5
    assert abs(tree.thresholds_["t2"] - TRUE[question]["t2"]) < 2.0


def test_noisy_labels_beat_majority():
    X, y = _table("q1", 300, 2)
    rng = np.random.default_rng(3)
    flip = rng.random(300) < 0.15
    noisy = np.where(flip, np.where(y == "small", "large", "small"), y)
    tree = MDTree("q1").fit(X, noisy)
    assert tree.train_accuracy_ >= 0.8
    X2, y2 = _table("q1", 300, 4)
    assert tree.score(X2, y2) > majority_baseline(noisy, y2) + 0.1


def test_cka_variant_flips_direction():
    X, y = _table("q1", 300, 5)
    X = X.assign(cka=1.0 / (1.0 + np.log(X.hessian_trace)))  # high CKA where the trace is low
    tree = MDTree("q1", features=("train_error", "mc_peak", "cka")).fit(X, y)
    assert tree.train_accuracy_ > 0.97


def test_explain_save_load(tmp_path):
    X, y = _table("q1", 300, 6)
    tree = MDTree("q1").fit(X, y)
    tree.provenance = {"zoo": "unit test"}
    path = tmp_path / "tree.json"
    tree.save(path)
    again = MDTree.load(path)
    assert list(again.predict(X)) == list(tree.predict(X))
    assert again.thresholds_ == tree.thresholds_ and again.provenance == {"zoo": "unit test"}
    x = {"train_error": 30.0, "mc_peak": -50.0, "hessian_trace": float(np.exp(7.0))}
    text = tree.explain(x)
    assert "train_error = 30" in text and "ln hessian_trace = 7" in text
    assert text.strip().endswith("use a smaller batch size or a larger learning rate")
    label, steps = tree.decide({"train_error": 30.0, "mc_peak": None, "hessian_trace": 5.0})
    assert label is None and steps[-1].feature == "mc_peak"
    assert "cannot decide" in tree.explain({"train_error": 30.0, "hessian_trace": 5.0})
    assert tree.decide({"train_error": 0.0})[0] == "small"  # decided before connectivity is needed


def test_errors(tmp_path):
    with pytest.raises(SpecError, match="did you mean 'q2_data'"):
        MDTree("q2-data")
    with pytest.raises(SpecError, match="unknown"):
        MDTree("q1", features=("train_error", "mc_peak", "sharpness"))
    with pytest.raises(SpecError, match="roles"):
        MDTree("q1", features=("mc_peak", "train_error", "cka"))
    with pytest.raises(DataError, match="not fitted"):
        MDTree("q1").predict(np.zeros((2, 3)))
    X, y = _table("q1", 50, 7)
    with pytest.raises(DataError, match="unknown labels \\['width'\\]"):
        MDTree("q1").fit(X, ["width"] * 50)
    with pytest.raises(DataError, match="needs feature 'mc_peak'"):
        MDTree("q1").fit(X.drop(columns="mc_peak"), y)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not an MD tree file"):
        MDTree.load(tmp_path / "bad.json")


def test_baselines():
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame(
        dict(
            data_size=np.exp(rng.uniform(5, 10, n)),
            param_count=np.exp(rng.uniform(8, 14, n)),
            train_error=rng.uniform(0, 30, n),
            test_error=rng.uniform(5, 50, n),
            train_loss=rng.uniform(0, 2, n),
            test_loss=rng.uniform(0.1, 3, n),
        )
    )
    y = np.where(np.log(df.param_count) < 11, "width", "batch")
    hp = BaselineTree("hyperparameter").fit(df, y)
    assert hp.score(df, y) == 1.0
    val = BaselineTree("validation").fit(df, y)
    assert val.model_.get_depth() <= 4
    assert val.score(df, y) < 0.9  # validation metrics here carry no signal
    with pytest.raises(SpecError, match="did you mean 'validation'"):
        BaselineTree("validaton")
    with pytest.raises(DataError, match="needs column 'test_error'"):
        BaselineTree("validation").fit(df.drop(columns="test_error"), y)
