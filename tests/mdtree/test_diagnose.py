"""diagnose(): metrics on real digits models, trees applied with and without a second model."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from ablab.landscape import hessian_trace, train_error
from ablab.mdtree import MDTree, diagnose
from ablab.mdtree.diagnose import Diagnosis


@pytest.fixture(scope="module")
def setup():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x[:600] / 16.0, dtype=torch.float32), torch.tensor(y[:600])
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        for _ in range(100):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        models.append(m.eval())
    yield models, (x, y)
    torch.set_num_threads(before)


def _tree(question: str, th: dict[str, float]) -> MDTree:
    from ablab.mdtree.structure import CLASSES

    return MDTree.from_dict(
        {
            "format": "ablab.mdtree/1",
            "question": question,
            "features": ["train_error", "mc_peak", "hessian_trace"],
            "thresholds": th,
            "classes": list(CLASSES[question]),
        }  # fmt: skip
    )


def test_single_model_reports_missing_features(setup):
    (a, _), data = setup
    q1 = _tree("q1", {"t1": 50.0, "t2": -10.0, "t3": 0.0})  # error <= 50%: decided without mc
    q2 = _tree("q2", {"t1": 50.0, "t2": -10.0, "t3": -10.0})
    d = diagnose(a, data, nn.CrossEntropyLoss(), tree=[q1, q2])
    assert isinstance(d, Diagnosis)
    assert set(d.missing) == {"mc_peak", "mu", "cka"}
    assert d.metrics["train_error"] == pytest.approx(float(train_error(a, data)))
    assert d.metrics["hessian_trace"] == pytest.approx(
        float(hessian_trace(a, nn.CrossEntropyLoss(), data))
    )
    assert d.n_samples["hessian_trace"] == 600
    assert d.answers == {"q1": "small", "q2": None}
    text = str(d)
    assert "not computed: needs a second model" in text and "cannot decide" in text
    assert "use a smaller batch size" in d.advice["q1"]


def test_pair_decides_every_question(setup):
    (a, b), data = setup
    trees = [
        _tree("q1", {"t1": -1.0, "t2": -100.0, "t3": 0.0}),
        _tree("q2", {"t1": -1.0, "t2": -100.0, "t3": -100.0}),
    ]
    d = diagnose(
        a, data, nn.CrossEntropyLoss(), second_model=b, tree=trees, mc_epochs=2, hessian_samples=200
    )
    assert not d.missing
    assert d.metrics["mc_peak"] <= 0.0 and 0.0 < d.metrics["cka"] <= 1.0
    assert d.n_samples["hessian_trace"] == 200 and d.n_samples["mc_peak"] == 600
    assert d.answers == {"q1": "large", "q2": "batch"}  # mc_peak > -100: well connected
    assert "well connected" in d.explanations["q1"]


def test_without_trees(setup):
    (a, _), data = setup
    d = diagnose(a, data, nn.CrossEntropyLoss(), tree=[])
    assert d.answers == {} and "no fitted MD tree" in str(d)
