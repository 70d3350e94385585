"""Landscape metrics and layer probing computed inside a run become study metrics."""

import math

import torch
from torch import nn

from ablab.runtime.run import Run


def _model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    )


def test_run_landscape_and_probe(tmp_path):
    from ablab.data import load

    ds = load("digits", seed=0)
    x = torch.as_tensor(ds.x_train[:200]).float()
    y = torch.as_tensor(ds.y_train[:200]).long()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    run = Run(key="k", variant="baseline", seed=0, config={}, run_dir=tmp_path / "run")
    m = run.landscape(model, (x, y), nn.CrossEntropyLoss(), hessian_samples=200)
    assert 0 <= m["train_error"] < 50
    assert m["hessian_top_eigenvalue"] > 0 and math.isfinite(m["hessian_top_eigenvalue"])
    assert m["hessian_top_eigenvalue_samples"] == 200
    again = Run(
        key="k", variant="baseline", seed=0, config={}, run_dir=tmp_path / "run2"
    ).landscape(model, (x, y), nn.CrossEntropyLoss(), hessian_samples=200)
    assert again == m  # seeded from the run: deterministic
    p = run.probe(model, "glyphs-digits", ["corrupt-noise"], data_options={"resolution": 8})
    assert 0 <= p["r"] <= 100 and "A" in p
    assert (tmp_path / "run" / "probe.json").exists()
