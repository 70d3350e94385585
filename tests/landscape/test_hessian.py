"""Hessian top eigenvalue and trace against exact Hessians and known spectra."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from ablab.errors import DataError
from ablab.landscape import HessianOperator, hessian_top_eigenvalue, hessian_trace

from .conftest import mlp


def _exact_hessian(model: nn.Module, loss_fn, x, y) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    model = model.double().eval()

    def f(flat: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            k = math.prod(s)
            parts[n] = flat[i : i + k].reshape(s)
            i += k
        return loss_fn(functional_call(model, parts, (x.double(),)), y)

    return torch.autograd.functional.hessian(f, flat0)


class Quadratic(nn.Module):
    """Loss 0.5 w^T A w regardless of the input: the Hessian is exactly A."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(x.shape[0], -1)


def _quad_loss(a: torch.Tensor):
    return lambda out, y: 0.5 * out[0] @ a @ out[0]


def _spectrum_matrix(eigs: torch.Tensor, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(len(eigs), len(eigs), generator=torch.Generator().manual_seed(seed))
    )
    return q @ torch.diag(eigs) @ q.T


@pytest.mark.slow
def test_small_network_matches_exact_hessian(digits):
    x, y = digits
    x, y = x[:300, ::4], y[:300]  # 16 features
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 10))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    loss_fn = nn.CrossEntropyLoss()
    h = _exact_hessian(model, loss_fn, x, y)
    eig = torch.linalg.eigvalsh(h)
    exact_top = float(eig[eig.abs().argmax()])
    exact_trace = float(torch.trace(h))
    model = model.float()
    top = hessian_top_eigenvalue(model, loss_fn, (x, y), max_iter=3000, tol=1e-7)
    tr = hessian_trace(model, loss_fn, (x, y), max_iter=20000, tol=1e-12, seed=0)
    assert abs(top - exact_top) / abs(exact_top) < 0.01
    power = hessian_top_eigenvalue(model, loss_fn, (x, y), max_iter=3000, tol=1e-7, method="power")
    assert abs(power - exact_top) / abs(exact_top) < 0.01
    assert abs(tr - exact_trace) / abs(exact_trace) < 0.01
    assert top.n_samples == tr.n_samples == 300
    assert top.converged


def test_quadratic_with_diagonal_spectrum_is_exact():
    eigs = torch.tensor([5.0, -2.0, 1.0, 0.5, 0.25, 3.0])
    model = Quadratic(6)
    data = (torch.zeros(4, 1), torch.zeros(4))
    loss = _quad_loss(torch.diag(eigs))
    assert hessian_top_eigenvalue(model, loss, data, tol=1e-8, max_iter=500) == pytest.approx(
        5.0, rel=1e-4
    )
    # every Rademacher probe gives z^T D z = tr(D) exactly: the estimator stops after 2 probes
    tr = hessian_trace(model, loss, data)
    assert tr == pytest.approx(float(eigs.sum()), rel=1e-6)
    assert tr.iterations == 2


def test_quadratic_with_rotated_spectrum():
    eigs = torch.cat([torch.tensor([10.0, 4.0]), torch.linspace(-1.0, 2.0, 38)])
    a = _spectrum_matrix(eigs, seed=3)
    model = Quadratic(40)
    data = (torch.zeros(2, 1), torch.zeros(2))
    top = hessian_top_eigenvalue(model, _quad_loss(a), data, tol=1e-9, max_iter=1000)
    assert top == pytest.approx(10.0, rel=1e-4)
    tr = hessian_trace(model, _quad_loss(a), data, tol=1e-9, max_iter=4000)
    assert tr == pytest.approx(float(eigs.sum()), rel=0.03)
    assert tr.iterations == 4000 and not tr.converged


def test_largest_magnitude_negative_eigenvalue():
    model = Quadratic(3)
    loss = _quad_loss(torch.diag(torch.tensor([1.0, -7.0, 2.0])))
    top = hessian_top_eigenvalue(
        model, loss, (torch.zeros(1, 1), torch.zeros(1)), tol=1e-9, max_iter=500
    )
    assert top == pytest.approx(-7.0, rel=1e-4)


def test_deterministic_for_a_seed_and_independent_of_batching(digits, trained_pair):
    x, y = digits
    model, _ = trained_pair
    loss_fn = nn.CrossEntropyLoss()
    pair = (x[:256], y[:256])
    batches = [(x[i : i + 64], y[i : i + 64]) for i in range(0, 256, 64)]
    a = hessian_trace(model, loss_fn, pair, seed=5)
    assert float(a) == float(hessian_trace(model, loss_fn, pair, seed=5))
    assert hessian_trace(model, loss_fn, batches, seed=5) == pytest.approx(float(a), rel=1e-5)
    assert float(hessian_trace(model, loss_fn, pair, seed=6)) != float(a)
    e1 = hessian_top_eigenvalue(model, loss_fn, batches, seed=1)
    assert float(e1) == float(hessian_top_eigenvalue(model, loss_fn, batches, seed=1))
    assert e1 > 0


def test_n_samples_is_recorded(digits, trained_pair):
    x, y = digits
    model, _ = trained_pair
    batches = [(x[i : i + 100], y[i : i + 100]) for i in range(0, 500, 100)]
    v = hessian_top_eigenvalue(model, nn.CrossEntropyLoss(), batches, n_samples=250)
    assert v.n_samples == 250
    d = v.as_dict("hessian_top_eigenvalue")
    assert d["hessian_top_eigenvalue_n_samples"] == 250 and d["hessian_top_eigenvalue"] == float(v)


def test_batchnorm_and_dropout_use_eval_mode(digits, bn_pair):
    x, y = digits
    model, _ = bn_pair
    model.train()
    loss_fn = nn.CrossEntropyLoss()
    a = hessian_top_eigenvalue(model, loss_fn, (x[:200], y[:200]), seed=0)
    assert model.training  # mode restored
    # dropout is off and BN uses running stats: the same value every time, despite dropout
    assert float(a) == float(hessian_top_eigenvalue(model, loss_fn, (x[:200], y[:200]), seed=0))
    op = HessianOperator(model, loss_fn, (x[:200], y[:200]))
    v = torch.randn(op.dim)
    for batched in (False, True):  # one pass per row, or one vmapped pass
        block = op.matmat(torch.stack([v, 2 * v]), batched=batched)
        assert torch.allclose(block[1], 2 * op.matvec(v), rtol=1e-4, atol=1e-6)
    model.eval()


@pytest.mark.filterwarnings("ignore:Using a target size")
def test_bad_inputs(digits):
    x, y = digits
    model = mlp(0)
    with pytest.raises(DataError, match="does not fit the model's output"):
        hessian_trace(model, nn.MSELoss(), (x[:50], y[:50]))
    with pytest.raises(DataError, match="empty"):
        hessian_trace(model, nn.CrossEntropyLoss(), (x[:0], y[:0]))
    with pytest.raises(DataError, match="empty"):
        hessian_top_eigenvalue(model, nn.CrossEntropyLoss(), [])
    with pytest.raises(DataError, match="same number of samples"):
        hessian_trace(model, nn.CrossEntropyLoss(), (x[:50], y[:40]))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    with pytest.raises(DataError, match="nan"):
        hessian_top_eigenvalue(model, nn.CrossEntropyLoss(), (x[:50], y[:50]))


def test_lanczos_needs_fewer_products_than_power_iteration(digits, trained_pair):
    x, y = digits
    model, _ = trained_pair
    loss_fn = nn.CrossEntropyLoss()
    data = (x[:300], y[:300])
    lan = hessian_top_eigenvalue(model, loss_fn, data, seed=0)
    pow_ = hessian_top_eigenvalue(model, loss_fn, data, seed=0, method="power")
    ref = hessian_top_eigenvalue(model, loss_fn, data, seed=0, tol=1e-9, max_iter=300)
    assert lan.converged and pow_.converged
    assert lan.iterations < pow_.iterations
    # at the same tol Lanczos stops closer to the converged value than power iteration
    assert abs(lan - ref) <= abs(pow_ - ref) + 1e-6 * abs(ref)
    assert abs(lan - ref) / abs(ref) < 1e-3
    assert float(lan) == float(hessian_top_eigenvalue(model, loss_fn, data, seed=0))


def test_lanczos_respects_max_iter_and_rejects_unknown_method(digits, trained_pair):
    x, y = digits
    model, _ = trained_pair
    data = (x[:100], y[:100])
    top = hessian_top_eigenvalue(model, nn.CrossEntropyLoss(), data, max_iter=2, tol=1e-12)
    assert top.iterations == 2 and not top.converged
    with pytest.raises(DataError, match="method"):
        hessian_top_eigenvalue(model, nn.CrossEntropyLoss(), data, method="arnoldi")


def test_eval_batchnorm_as_affine_map_gives_the_same_hessian(digits, bn_pair):
    """The affine rewrite of eval-mode BatchNorm must not change any Hessian-vector product."""
    x, y = digits
    model, _ = bn_pair
    loss_fn = nn.CrossEntropyLoss()
    data = (x[:200], y[:200])
    op = HessianOperator(model, loss_fn, data)
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    g = torch.autograd.grad(loss_fn(model(x[:200]), y[:200]), params, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in g])
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0))
    native = torch.cat([t.reshape(-1) for t in torch.autograd.grad(g, params, grad_outputs=v)])
    assert torch.allclose(op.matvec(v), native, rtol=1e-4, atol=1e-5 * float(native.abs().max()))
    assert torch.allclose(op.grad.detach(), g.detach(), rtol=1e-4, atol=1e-7)


def test_batch_statistics_batchnorm_is_left_alone(digits):
    """BatchNorm without running statistics uses batch statistics even in eval mode."""
    x, y = digits
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 16), nn.BatchNorm1d(16, track_running_stats=False), nn.ReLU(),
        nn.Linear(16, 10),
    )  # fmt: skip
    loss_fn = nn.CrossEntropyLoss()
    op = HessianOperator(model, loss_fn, (x[:100], y[:100]))
    params = list(model.parameters())
    g = torch.autograd.grad(loss_fn(model(x[:100]), y[:100]), params, create_graph=True)
    g = torch.cat([t.reshape(-1) for t in g])
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(1))
    native = torch.cat([t.reshape(-1) for t in torch.autograd.grad(g, params, grad_outputs=v)])
    assert torch.allclose(op.matvec(v), native, rtol=1e-4, atol=1e-6)


def test_batches_are_recut_without_changing_values(digits, trained_pair):
    from ablab.landscape.hessian import _merge

    x, y = digits
    chunks = _merge([(x[:1500], y[:1500]), (x[1500:1600], y[1500:1600])], cap=1024)
    assert [c[0].shape[0] for c in chunks] == [1024, 576]
    assert torch.equal(torch.cat([c[0] for c in chunks]), x[:1600])
    merged = _merge([(x[i : i + 100], y[i : i + 100]) for i in range(0, 1600, 100)], cap=1024)
    assert [c[0].shape[0] for c in merged] == [1000, 600]
    model, _ = trained_pair
    loss_fn = nn.CrossEntropyLoss()
    one = hessian_trace(model, loss_fn, (x[:1600], y[:1600]), seed=2)
    many = hessian_trace(
        model, loss_fn, [(x[i : i + 100], y[i : i + 100]) for i in range(0, 1600, 100)], seed=2
    )
    assert one.iterations == many.iterations
    assert one == pytest.approx(float(many), rel=1e-5)


def test_no_cap_concatenates_without_splitting(digits):
    """A GPU's setting: equal-shape batches become one chunk, large ones stay whole."""
    from ablab.landscape.hessian import _merge

    x, y = digits
    merged = _merge([(x[:1500], y[:1500]), (x[1500:1600], y[1500:1600])], cap=None)
    assert [c[0].shape[0] for c in merged] == [1600]
    assert torch.equal(merged[0][0], x[:1600]) and torch.equal(merged[0][1], y[:1600])
    odd = _merge([(x[:10], y[:10]), (x[10:20, :32], y[10:20])], cap=None)  # another shape
    assert [c[0].shape for c in odd] == [x[:10].shape, x[10:20, :32].shape]


def test_probes_in_blocks_give_the_same_estimate(digits, trained_pair):
    """Several probes per reverse pass (the GPU default): same probes, same stopping point,
    same value up to float round-off; a block never runs past max_iter."""
    x, y = digits
    model, _ = trained_pair
    loss_fn = nn.CrossEntropyLoss()
    pair = (x[:300], y[:300])
    one = hessian_trace(model, loss_fn, pair, seed=3, probe_block=1)
    for block in (3, 8):
        blocked = hessian_trace(model, loss_fn, pair, seed=3, probe_block=block)
        assert blocked.iterations == one.iterations and blocked.converged == one.converged
        assert float(blocked) == pytest.approx(float(one), rel=1e-5)
    capped = hessian_trace(model, loss_fn, pair, seed=3, probe_block=4, max_iter=6, tol=1e-12)
    assert capped.iterations == 6 and not capped.converged
    assert float(capped) == pytest.approx(
        float(hessian_trace(model, loss_fn, pair, seed=3, max_iter=6, tol=1e-12)), rel=1e-5
    )
    with pytest.raises(DataError, match="probe_block"):
        hessian_trace(model, loss_fn, pair, probe_block=0)
