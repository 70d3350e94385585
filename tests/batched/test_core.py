"""BatchedModels and the functional optimisers against plain torch modules trained one by one."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from ablab.batched import (
    BatchedAdam,
    BatchedError,
    BatchedModels,
    BatchedSGD,
    cross_entropy,
    evaluate,
    gather,
    per_model,
    permutations,
    smoothing_weights,
)


def make() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 24), nn.Tanh(), nn.Dropout(0.2), nn.Linear(24, 10))


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x[:400] / 16.0, dtype=torch.float32), torch.tensor(y[:400])


def solo_train(seed, opt_name, lr, wd, ls, data, steps=3, bs=32, **opt_kw):
    """The reference: one plain module, torch.optim, nn.Dropout on the global generator."""
    x, y = data
    torch.manual_seed(seed)
    model = make()
    opt = (torch.optim.Adam if opt_name == "adam" else torch.optim.SGD)(
        model.parameters(), lr=lr, weight_decay=wd, **opt_kw
    )
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, 96, bs):
            idx = perm[i : i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx], label_smoothing=ls)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return model, losses


def batched_train(seeds, opt_name, lr, wd, ls, data, steps=3, bs=32, **opt_kw):
    x, y = data
    bm = BatchedModels(make, seeds)
    k = len(seeds)
    opt = (BatchedAdam if opt_name == "adam" else BatchedSGD)(
        bm.params, lr=lr, weight_decay=wd, **opt_kw
    )
    w = smoothing_weights(ls, k, 10)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    losses = []
    for _ in range(steps):
        perms = permutations(gens, len(x))
        for i in range(0, 96, bs):
            idx = [p[i : i + bs] for p in perms]
            xb, yb = gather([x] * k, idx), gather([y] * k, idx)
            loss, grads = bm.loss_and_grad(cross_entropy, xb, yb, w, masks=bm.dropout_masks(xb))
            opt.step(grads)
            losses.append(loss)
    return bm, torch.stack(losses, 1)


@pytest.mark.parametrize(
    "opt_name,opt_kw",
    [
        ("adam", {}),
        ("sgd", {"momentum": 0.9}),
        ("sgd", {"momentum": 0.9, "nesterov": True}),
        ("sgd", {}),
    ],
)
def test_per_model_hyperparameters_match_solo_training(digits, opt_name, opt_kw, report_diff):
    torch.set_num_threads(1)
    seeds, lr, wd, ls = (
        [3, 4, 3, 5],
        [0.01, 0.01, 0.05, 0.002],
        [0.0, 1e-3, 1e-2, 0.0],
        [0.1, 0.0, 0.2, 0.0],
    )
    bm, losses = batched_train(seeds, opt_name, lr, wd, ls, digits, **opt_kw)
    models = bm.unstack()
    pdiff = ldiff = 0.0
    for k, s in enumerate(seeds):
        ref, ref_losses = solo_train(s, opt_name, lr[k], wd[k], ls[k], digits, **opt_kw)
        for a, b in zip(ref.state_dict().values(), models[k].state_dict().values(), strict=True):
            pdiff = max(pdiff, (a - b).abs().max().item())
        ldiff = max(ldiff, (torch.tensor(ref_losses) - losses[k]).abs().max().item())
    report_diff(f"{opt_name} {opt_kw}: parameters after 9 steps", pdiff)
    report_diff(f"{opt_name} {opt_kw}: per-step training loss", ldiff)
    assert pdiff < 1e-5 and ldiff < 1e-5
    # the hyperparameters made a difference: same seed, different lr/wd/smoothing
    assert not torch.equal(models[0].state_dict()["0.weight"], models[2].state_dict()["0.weight"])


@pytest.mark.parametrize("opt_cls,kw", [(BatchedAdam, {}), (BatchedSGD, {"momentum": 0.9})])
def test_flat_and_per_tensor_optimiser_paths_agree(opt_cls, kw):
    """BatchedModels keeps every parameter in one [K, P] tensor and the optimisers update it
    with whole-tensor calls; a dict of separate stacked tensors takes the per-tensor path.
    Interleaved per-model values (lr 0.01/0.05/0.01/0.002, wd 0/1e-3/0) must give the same
    numbers bit for bit on both."""
    from ablab.batched.optim import flat_layout

    bm = BatchedModels(make, [0, 1, 2, 3])
    assert flat_layout(bm.params) is bm.flat and bm.flat.shape == (4, 64 * 24 + 24 + 24 * 10 + 10)
    separate = {n: p.clone() for n, p in bm.params.items()}
    assert flat_layout(separate) is None
    lr, wd = [0.01, 0.05, 0.01, 0.002], [0.0, 1e-3, 0.0, 1e-3]
    flat_opt, sep_opt = (
        opt_cls(bm.params, lr=lr, weight_decay=wd, **kw),
        opt_cls(separate, lr=lr, weight_decay=wd, **kw),
    )
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        grads = {n: torch.randn(p.shape, generator=g) for n, p in separate.items()}
        flat_opt.step({n: t.clone() for n, t in grads.items()})
        sep_opt.step(grads)
    for n in separate:
        assert torch.equal(bm.params[n], separate[n]), n
    assert not torch.equal(bm.params["0.weight"][0], bm.params["0.weight"][1])
    with pytest.raises(BatchedError, match="no entry for parameter"):
        flat_opt.step({})


def test_init_equals_solo_and_global_rng_untouched():
    torch.manual_seed(99)
    before = torch.get_rng_state()
    bm = BatchedModels(make, [7, 8])
    assert torch.equal(torch.get_rng_state(), before)
    for k, s in enumerate([7, 8]):
        torch.manual_seed(s)
        ref = make().state_dict()
        assert all(torch.equal(ref[n], bm.state_dicts()[k][n]) for n in ref)


def test_same_seeds_give_bit_identical_results(digits):
    a, la = batched_train([1, 2], "adam", 0.01, 0.0, 0.1, digits)
    b, lb = batched_train([1, 2], "adam", 0.01, 0.0, 0.1, digits)
    assert torch.equal(la, lb)
    assert all(torch.equal(a.params[n], b.params[n]) for n in a.params)
    c, lc = batched_train([1, 3], "adam", 0.01, 0.0, 0.1, digits)
    assert torch.equal(la[0], lc[0]) and not torch.equal(la[1], lc[1])  # models are independent


def test_evaluate_matches_plain_modules(digits):
    x, y = digits
    bm = BatchedModels(make, [0, 1, 2])
    ev = evaluate(bm, x, y, shared_input=True)
    assert bm.training  # mode restored
    for k, m in enumerate(bm.unstack()):
        m.eval()
        with torch.no_grad():
            logits = m(x)
        assert ev["accuracy"][k].item() == (logits.argmax(1) == y).float().mean().item()
        assert ev["loss"][k].item() == F.cross_entropy(logits, y).item()


def test_bad_input_raises_clear_errors():
    with pytest.raises(BatchedError, match="non-empty list of integers"):
        BatchedModels(make, [])
    with pytest.raises(BatchedError, match="seeds must be integers"):
        BatchedModels(make, [0, 1.5])
    with pytest.raises(BatchedError, match="2 model builders for 3 seeds"):
        BatchedModels([make, make], [0, 1, 2])
    with pytest.raises(BatchedError, match="model 1 differs in architecture"):
        BatchedModels([make, lambda: nn.Linear(64, 10)], [0, 1])
    with pytest.raises(BatchedError, match="BatchNorm1d keeps running statistics"):
        BatchedModels(lambda: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), [0])
    bm = BatchedModels(make, [0, 1])
    with pytest.raises(BatchedError, match="lr has 3 values for 2 models"):
        BatchedAdam(bm.params, lr=[0.1, 0.1, 0.1])
    with pytest.raises(BatchedError, match=r"weight_decay\[1\] must be a number, got 'high'"):
        BatchedSGD(bm.params, lr=0.1, weight_decay=[0.0, "high"])
    with pytest.raises(BatchedError, match=r"lr\[0\] = -0.1 must be a finite number >= 0"):
        BatchedSGD(bm.params, lr=-0.1)
    with pytest.raises(BatchedError, match="label_smoothing must lie in"):
        smoothing_weights([0.1, 1.5], 2, 10)
    assert per_model("lr", torch.tensor([0.1, 0.2]), 2) == pytest.approx([0.1, 0.2])
    assert issubclass(BatchedError, __import__("ablab").AblabError)


def test_import_ablab_batched_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ablab, ablab.batched; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
