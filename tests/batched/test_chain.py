"""The fast path of BatchedModels for chains of Linear/ReLU/Dropout: batched operations under
ordinary autograd instead of vmap(grad), with the same kernels, hence the same bits."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from ablab.batched import (
    BatchedAdam,
    BatchedModels,
    cross_entropy,
    gather,
    permutations,
    smoothing_weights,
)
from ablab.batched.optim import flat_layout


def mlp(p: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(32, 24),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(24, 10),
    )


def nested(p: float = 0.2) -> nn.Module:
    return nn.Sequential(
        nn.Sequential(nn.Linear(64, 32, bias=False), nn.ReLU()),
        nn.Identity(),
        nn.Dropout(p),
        nn.Linear(32, 10),
    )


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x[:400] / 16.0, dtype=torch.float32), torch.tensor(y[:400])


def test_chain_is_detected_only_for_linear_relu_dropout_chains():
    assert [kind for kind, _ in BatchedModels(mlp, [0])._chain] == [
        "linear",
        "relu",
        "dropout",
        "linear",
        "relu",
        "dropout",
        "linear",
    ]
    assert [kind for kind, _ in BatchedModels(nested, [0])._chain] == [
        "linear",
        "relu",
        "dropout",
        "linear",
    ]
    assert (
        BatchedModels(
            lambda: nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 2)), [0]
        )._chain
        is None
    )
    assert (
        BatchedModels(lambda: nn.Sequential(nn.Linear(64, 8), nn.LayerNorm(8)), [0])._chain is None
    )
    assert (
        BatchedModels(lambda: nn.Linear(64, 8), [0])._chain is None
    )  # not a Sequential: vmap path


@pytest.mark.parametrize("make", [mlp, nested])
@pytest.mark.parametrize("loss", ["ablab", "vmapped"])
def test_chain_path_equals_vmap_path_bit_for_bit(make, loss):
    torch.set_num_threads(1)
    k = 4
    ps = [0.2, 0.0, 0.5, 0.2]  # per-model dropout, non-contiguous groups
    bm = BatchedModels([lambda p=p: make(p) for p in ps], [0, 1, 2, 0])
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn((k, 41, 64), generator=g), torch.randint(0, 10, (k, 41), generator=g)
    w = smoothing_weights([0.1, 0.0, 0.2, 0.1], k, 10)
    fn = cross_entropy if loss == "ablab" else (lambda lg, t, ww: F.cross_entropy(lg, t) * ww[0])
    masks = {n: m.clone() for n, m in bm.dropout_masks(x).items()}
    chain = bm._chain
    loss_c, grads_c = bm.loss_and_grad(fn, x, y, w, masks=masks)
    out_c = bm(x, masks=masks)
    bm._chain = None
    loss_v, grads_v = bm.loss_and_grad(fn, x, y, w, masks=masks)
    out_v = bm(x, masks=masks)
    bm._chain = chain
    assert grads_c.keys() == grads_v.keys()
    for n in grads_c:
        assert torch.equal(grads_c[n], grads_v[n]), n
    assert torch.equal(out_c, out_v)
    if loss == "ablab":  # batched loss value: another summation order, same gradient
        assert torch.allclose(loss_c, loss_v, rtol=1e-6, atol=0)
    else:
        assert torch.equal(loss_c, loss_v)


def test_chain_path_trains_like_solo_runs(digits, report_diff):
    """Adam, per-model lr/wd/smoothing/dropout, 3 epochs of 3 minibatches: equal to torch.optim
    and nn.Dropout on plain modules, bit for bit."""
    torch.set_num_threads(1)
    x, y = digits
    seeds, lr, wd, ls, ps = (
        [3, 4, 3],
        [0.01, 0.01, 0.05],
        [0.0, 1e-3, 1e-2],
        [0.1, 0.0, 0.2],
        [0.2, 0.0, 0.5],
    )
    bm = BatchedModels([lambda p=p: mlp(p) for p in ps], seeds)
    assert bm._chain is not None
    opt = BatchedAdam(bm.params, lr=lr, weight_decay=wd)
    w = smoothing_weights(ls, 3, 10)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    for _ in range(3):
        perms = permutations(gens, len(x))
        for i in range(0, 96, 32):
            idx = [p[i : i + 32] for p in perms]
            xb, yb = gather([x] * 3, idx), gather([y] * 3, idx)
            opt.step(bm.loss_and_grad(cross_entropy, xb, yb, w, masks=bm.dropout_masks(xb))[1])
    diff = 0.0
    for k, model in enumerate(bm.unstack()):
        torch.manual_seed(seeds[k])
        ref = mlp(ps[k])
        ref_opt = torch.optim.Adam(ref.parameters(), lr=lr[k], weight_decay=wd[k])
        g = torch.Generator().manual_seed(seeds[k])
        for _ in range(3):
            perm = torch.randperm(len(x), generator=g)
            for i in range(0, 96, 32):
                loss = F.cross_entropy(
                    ref(x[perm[i : i + 32]]), y[perm[i : i + 32]], label_smoothing=ls[k]
                )
                ref_opt.zero_grad()
                loss.backward()
                ref_opt.step()
        for a, b in zip(ref.state_dict().values(), model.state_dict().values(), strict=True):
            diff = max(diff, (a - b).abs().max().item())
    report_diff("chain path (Linear/ReLU/Dropout) vs solo: parameters after 9 Adam steps", diff)
    assert diff == 0.0


def test_inputs_with_more_dimensions_take_the_vmap_path():
    bm = BatchedModels(mlp, [0, 1])
    x = torch.randn(2, 3, 5, 64)  # per model [3, 5, 64]: F.linear's matmul path, not addmm
    loss, grads = bm.loss_and_grad(
        lambda lg, t: F.cross_entropy(lg.reshape(-1, 10), t),
        x,
        torch.zeros(2, 15, dtype=torch.long),
    )
    assert loss.shape == (2,) and grads["0.weight"].shape == (2, 32, 64)


def test_one_model_uses_the_flat_optimiser_layout():
    bm = BatchedModels(mlp, [0])
    assert flat_layout(bm.params) is bm.flat


def test_fused_adam_equals_torch_fused_adam_and_default_up_to_rounding(report_diff):
    """``BatchedAdam(fused=True)`` is torch's fused kernel: bit for bit
    ``torch.optim.Adam(fused=True)`` per model (flat and per-tensor layouts alike), and within
    float rounding of the default ``torch.optim.Adam``; the caller's gradients are untouched."""
    torch.set_num_threads(1)
    seeds, lr, wd = [0, 1, 2, 3], [0.01, 0.01, 0.05, 0.002], [0.0, 1e-3, 1e-2, 0.0]
    bm = BatchedModels(mlp, seeds)
    separate = {n: p.clone() for n, p in bm.params.items()}
    opt = BatchedAdam(bm.params, lr=lr, weight_decay=wd, fused=True)
    sep_opt = BatchedAdam(separate, lr=lr, weight_decay=wd, fused=True)
    g = torch.Generator().manual_seed(0)
    steps = [
        {n: torch.randn(p.shape, generator=g) for n, p in bm.params.items()} for _ in range(20)
    ]
    for grads in steps:
        kept = {n: t.clone() for n, t in grads.items()}
        opt.step(grads)
        sep_opt.step(grads)
        assert all(torch.equal(kept[n], grads[n]) for n in grads)
    assert all(torch.equal(separate[n], bm.params[n]) for n in separate)
    diffs = {}
    for fused in (True, False):
        diffs[fused] = 0.0
        for k, s in enumerate(seeds):
            torch.manual_seed(s)
            ref = mlp()
            ref_opt = torch.optim.Adam(ref.parameters(), lr=lr[k], weight_decay=wd[k], fused=fused)
            for grads in steps:
                for n, p in ref.named_parameters():
                    p.grad = grads[n][k].clone()
                ref_opt.step()
            for n, p in ref.named_parameters():
                diffs[fused] = max(diffs[fused], (p.detach() - bm.params[n][k]).abs().max().item())
    report_diff("BatchedAdam(fused=True) vs torch.optim.Adam (default), 20 steps", diffs[False])
    assert diffs[True] == 0.0
    assert 0.0 < diffs[False] < 1e-6
