"""Mode connectivity (Bezier curve and linear path), train error/loss."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from ablab.errors import DataError
from ablab.landscape import linear_barrier, mode_connectivity, train_error, train_loss

from .conftest import mlp


def _data(digits, n=1000):
    x, y = digits
    return x[:n], y[:n]


def test_train_error_and_loss_match_direct_computation(digits, trained_pair):
    x, y = _data(digits)
    model, _ = trained_pair
    with torch.no_grad():
        out = model(x)
    expected_err = 100.0 * float((out.argmax(1) != y).float().mean())
    batches = [(x[i : i + 300], y[i : i + 300]) for i in range(0, 1000, 300)]
    err = train_error(model, batches)
    assert err == pytest.approx(expected_err) and err.n_samples == 1000
    assert train_loss(model, nn.CrossEntropyLoss(), batches) == pytest.approx(
        float(nn.functional.cross_entropy(out, y)), rel=1e-5
    )
    assert train_error(model, (x[:10], y[:10] * 0 + out[:10].argmax(1))) == 0.0


def test_identical_endpoints_give_mu_near_zero(digits, trained_pair):
    data = _data(digits)
    model, _ = trained_pair
    mc = mode_connectivity(model, copy.deepcopy(model), nn.CrossEntropyLoss(), data, epochs=2)
    assert mc.errors[0] == pytest.approx(float(train_error(model, data)))
    assert mc.errors[0] == mc.errors[-1]
    assert abs(mc.mu) < 1.0  # percentage points
    assert mc.mc_peak == pytest.approx(-max(mc.errors[1:-1]))
    lin = linear_barrier(model, model, nn.CrossEntropyLoss(), data)
    assert lin.mu == 0.0 and lin.barrier == 0.0 and lin.path == "linear"


def test_curve_connects_two_seeds_better_than_the_line(digits, trained_pair):
    data = _data(digits)
    a, b = trained_pair
    before = [p.detach().clone() for p in a.parameters()]
    mc = mode_connectivity(a, b, nn.CrossEntropyLoss(), data, epochs=4, seed=0)
    lin = linear_barrier(a, b, nn.CrossEntropyLoss(), data)
    assert all(torch.equal(p, q) for p, q in zip(before, a.parameters(), strict=True))
    assert mc.ts == (0.0, 0.25, 0.5, 0.75, 1.0) and len(mc.errors) == 5 and mc.n_samples == 1000
    assert mc.errors[0] == pytest.approx(float(train_error(a, data)))
    assert mc.errors[-1] == pytest.approx(float(train_error(b, data)))
    # the line between two independently trained nets has a barrier; the trained curve less
    assert lin.mu < 0 and lin.barrier > 0
    assert mc.mc_peak > lin.mc_peak
    assert mc.t_star in (0.25, 0.5, 0.75)
    again = mode_connectivity(a, b, nn.CrossEntropyLoss(), data, epochs=4, seed=0)
    assert again == mc  # deterministic for a seed


def test_batchnorm_and_dropout_models(digits, bn_pair):
    data = _data(digits)
    a, b = bn_pair
    stats = a[1].running_mean.clone()
    mc = mode_connectivity(a, b, nn.CrossEntropyLoss(), data, epochs=2, seed=1)
    assert torch.equal(a[1].running_mean, stats)
    assert all(0.0 <= e <= 100.0 for e in mc.errors)
    assert mc == mode_connectivity(a, b, nn.CrossEntropyLoss(), data, epochs=2, seed=1)
    # endpoints use recomputed BN statistics, which differ only slightly from the trained ones
    assert mc.errors[0] == pytest.approx(float(train_error(a, data)), abs=3.0)


def test_bad_inputs(digits, trained_pair):
    data = _data(digits, 200)
    a, _ = trained_pair
    with pytest.raises(DataError, match="different architectures.*'0.weight'"):
        mode_connectivity(a, mlp(0, width=16), nn.CrossEntropyLoss(), data, epochs=1)
    with pytest.raises(DataError, match="exists only in model_a"):
        linear_barrier(a, mlp(0, bn=True), nn.CrossEntropyLoss(), data)
    with pytest.raises(DataError, match="empty"):
        mode_connectivity(a, a, nn.CrossEntropyLoss(), (data[0][:0], data[1][:0]))
    with pytest.raises(DataError, match="points"):
        mode_connectivity(a, a, nn.CrossEntropyLoss(), data, points=(0, 1))
    with pytest.raises(DataError, match="does not fit"):
        mode_connectivity(a, a, nn.NLLLoss(), (data[0], data[1].float()), epochs=1)
    with pytest.raises(DataError, match="empty"):
        train_error(a, [])
