"""The Run handle an entry receives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ablab.errors import MetricError
from ablab.runtime.run import Run, check_metrics


def make_run(tmp_path, seed=3):
    return Run(key="k", variant="baseline", seed=seed, config={}, run_dir=tmp_path / "run")


def test_log_series_with_and_without_steps(tmp_path):
    run = make_run(tmp_path)
    run.log(step=5, loss=0.5, acc=torch.tensor(0.75))
    run.log(loss=0.25)
    run.log(loss=np.float32(0.125))
    assert run.series == [("loss", 5, 0.5), ("acc", 5, 0.75), ("loss", 1, 0.25), ("loss", 2, 0.125)]
    with pytest.raises(MetricError, match=r"run.log\(loss=...\): expected a number"):
        run.log(loss="high")


def test_save_model_loads_with_weights_only(tmp_path):
    run = make_run(tmp_path)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    path = run.save_model(model, name="net")
    assert path == tmp_path / "run" / "net.pt" and run.artifacts == {"net": str(path)}
    state = torch.load(path, weights_only=True)
    assert set(state) == {"weight", "bias"} and torch.equal(state["weight"], model.weight.detach())


def test_generators_follow_the_seed(tmp_path):
    a, b, c = make_run(tmp_path, 3), make_run(tmp_path, 3), make_run(tmp_path, 4)
    x = torch.rand(5, generator=a.generator())
    assert torch.equal(x, torch.rand(5, generator=b.generator()))
    assert not torch.equal(x, torch.rand(5, generator=c.generator()))
    assert not torch.equal(x, torch.rand(5, generator=a.generator("loader")))
    assert np.array_equal(a.rng().random(4), b.rng().random(4))
    assert not np.array_equal(a.rng().random(4), c.rng().random(4))


def test_track_data_records_kind_and_hash(tmp_path):
    run = make_run(tmp_path)
    h = run.track_data("x", np.ones(3))
    assert run.data == {"x": ("array", h)}


def test_check_metrics():
    assert check_metrics({"acc": 0.5, "n": 3, "t": torch.tensor(1.5)}, ["acc"], set()) == {
        "acc": 0.5,
        "n": 3.0,
        "t": 1.5,
    }
    assert check_metrics({"other": "text", "acc": 1}, ["acc"], set()) == {
        "acc": 1.0
    }  # undeclared non-numbers dropped
    with pytest.raises(MetricError, match=r"did not return declared metric\(s\) loss"):
        check_metrics({"acc": 0.5}, ["acc", "loss"], set())
    assert check_metrics({"acc": 0.5}, ["acc", "loss"], {"loss"}) == {"acc": 0.5}
    with pytest.raises(MetricError, match=r"non-finite metric\(s\): acc=nan"):
        check_metrics({"acc": float("nan")}, ["acc"], set())
    with pytest.raises(MetricError, match="non-finite.*acc=inf"):
        check_metrics({"acc": float("inf")}, ["acc"], set())
    with pytest.raises(MetricError, match="returned list, expected a dict"):
        check_metrics([0.5], ["acc"], set())
    with pytest.raises(MetricError, match="metric 'acc': expected a number, got str"):
        check_metrics({"acc": "0.5"}, ["acc"], set())
    with pytest.raises(MetricError, match="expected a number, got bool"):
        check_metrics({"acc": True}, ["acc"], set())
