"""The ``device=`` argument of BatchedModels on a machine without a GPU: ``"cpu"`` is the default
path, bad or unavailable devices are user errors, the optimisers make nothing on the CPU behind
the parameters' back, and the CUDA mask bookkeeping (with a stand-in for the CUDA kernel)."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from ablab.batched import (
    BatchedAdam,
    BatchedError,
    BatchedModels,
    BatchedSGD,
    cross_entropy,
    gather,
    permutations,
    smoothing_weights,
)
from ablab.batched.device import CudaDropout, resolve_device


def mlp(p: float = 0.2) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(p), nn.Linear(32, 10))


def tanh_net(p: float = 0.2) -> nn.Module:  # not a Linear/ReLU chain: the vmap path
    return nn.Sequential(nn.Linear(64, 24), nn.Tanh(), nn.Dropout(p), nn.Linear(24, 10))


def _train(make, device, steps: int = 6):
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x[:200] / 16.0, dtype=torch.float32), torch.tensor(y[:200])
    ps, seeds = [0.2, 0.0, 0.5], [3, 4, 3]
    bm = BatchedModels([lambda p=p: make(p) for p in ps], seeds, device=device)
    opt = BatchedAdam(bm.params, lr=[0.01, 0.05, 0.01], weight_decay=[0.0, 1e-3, 0.0])
    w = smoothing_weights([0.1, 0.0, 0.1], 3, 10, device=device)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    losses = []
    for _ in range(steps // 3):
        perms = permutations(gens, len(x))
        for i in range(0, 96, 32):
            idx = [p[i : i + 32] for p in perms]
            xb, yb = gather([x] * 3, idx), gather([y] * 3, idx)
            loss, grads = bm.loss_and_grad(cross_entropy, xb, yb, w, masks=bm.dropout_masks(xb))
            opt.step(grads)
            losses.append(loss)
    return bm, torch.stack(losses)


@pytest.mark.parametrize("make", [mlp, tanh_net])
def test_device_cpu_is_the_default_path(make):
    torch.set_num_threads(1)
    ref, ref_losses = _train(make, None)
    assert ref.device == torch.device("cpu") and ref.flat.device.type == "cpu"
    for device in ("cpu", torch.device("cpu")):
        bm, losses = _train(make, device)
        assert bm.device == torch.device("cpu")
        assert torch.equal(losses, ref_losses)
        assert all(torch.equal(bm.params[n], ref.params[n]) for n in ref.params)
        assert all(g.device.type == "cpu" for g in bm.dropout_generators)
        assert all(
            torch.equal(a.get_state(), b.get_state())
            for a, b in zip(bm.dropout_generators, ref.dropout_generators, strict=True)
        )
        models = bm.unstack()
        assert all(p.device.type == "cpu" for m in models for p in m.parameters())


def test_bad_or_unavailable_devices_raise_clear_errors(monkeypatch):
    with pytest.raises(BatchedError, match="unknown device 'gpu'"):
        BatchedModels(mlp, [0], device="gpu")
    with pytest.raises(BatchedError, match="unknown device 'cuda:x'"):
        resolve_device("cuda:x")
    with pytest.raises(BatchedError, match="'meta' is not supported by batched training"):
        BatchedModels(mlp, [0], device="meta")
    with pytest.raises(BatchedError, match="device must be a string"):
        resolve_device(0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BatchedError, match="'cuda' was asked for, but CUDA is not available") as e:
        BatchedModels(mlp, [0, 1], device="cuda")
    assert "device='cpu'" in str(e.value.hint)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(
        BatchedError, match=r"'cuda:3' does not exist: this machine has 1 CUDA device\(s\)"
    ):
        resolve_device("cuda:3")


@pytest.mark.parametrize("fused", [False, True])
def test_optimisers_make_their_tensors_on_the_parameters_device(fused):
    """On the meta device (shapes only, no data) any tensor an optimiser made on the CPU would
    meet the parameters in an operation and fail: per-model values with non-contiguous groups
    (index tensors), weight decay, state and Adam's step counter."""
    k, lr, wd = 4, [0.01, 0.05, 0.01, 0.002], [0.0, 1e-3, 0.0, 1e-3]
    flat = torch.zeros(k, 30, device="meta")
    params = {"w": flat[:, :20].view(k, 4, 5), "b": flat[:, 20:]}
    grads = {"w": torch.zeros(k, 4, 5, device="meta"), "b": torch.zeros(k, 10, device="meta")}
    opts = [BatchedAdam(params, lr=lr, weight_decay=wd, fused=fused)]
    if not fused:
        opts += [
            BatchedSGD(params, lr=lr, weight_decay=wd, momentum=0.9),
            BatchedSGD(dict(params), lr=lr),
        ]
    for opt in opts:
        for _ in range(2):
            opt.step(grads)
    assert all(
        g[1].device.type == "meta" for g in opts[0]._lr_groups if isinstance(g[1], torch.Tensor)
    )
    assert opts[0]._step_tensor.device.type == "meta"


def test_cuda_dropout_bookkeeping_with_a_stand_in_kernel(monkeypatch):
    """CudaDropout's rows and draw order, with torch._fused_dropout replaced by a CPU stand-in:
    p = 0 rows stay ones and p = 1 rows zeros (no draws), the other rows (not contiguous here)
    get their generator's draws layer by layer, and each model's draws equal a solo sequence."""

    def fake(x, keep, g):  # what the CUDA kernel returns: (x * keep_mask / keep, mask)
        m = torch.empty_like(x).bernoulli_(keep, generator=g)
        return x * m / keep, m.bool()

    monkeypatch.setattr(torch, "_fused_dropout", fake)
    ps = [[0.2, 0.5], [0.0, 0.0], [1.0, 0.3], [0.2, 0.5]]
    seeds = [0, 1, 2, 5]
    cd = CudaDropout(seeds, ps, torch.device("cpu"))
    shapes = [(6, 4), (6, 3)]
    steps = [[m.clone() for m in cd.masks(shapes, torch.float32)] for _ in range(3)]
    for k, seed in enumerate(seeds):
        g = torch.Generator().manual_seed(seed)
        for masks in steps:
            for j, shape in enumerate(shapes):
                p = ps[k][j]
                want = (
                    torch.ones(shape)
                    if p == 0
                    else torch.zeros(shape)
                    if p == 1
                    else fake(torch.ones(shape), 1 - p, g)[0]
                )
                assert torch.equal(masks[j][k], want), (k, j)
    assert not torch.equal(steps[0][0][0], steps[1][0][0])  # fresh draws every step
