"""The digits MLP of ``train.py``, K models at once: ablab's batched entry contract.

``train_batched(configs, runs) -> list of metric dicts``; use it from a study with
``entry = "train_batched.py:train_batched"`` and ``[run] batch = K``. Model k gets exactly what
``train(configs[k], runs[k])`` in ``train.py`` gives it, so its metrics, logged series and saved
weights equal the solo run's (bit-identical on CPU with one thread in our tests; float rounding
otherwise):

- initialisation under ``torch.manual_seed(runs[k].seed)`` (what the runtime does before a solo
  run), data order and augmentation from ``runs[k].generator()`` with the same calls in the same
  order as ``train.py``;
- dropout masks from a per-model generator that continues torch's global stream after model k's
  construction: the stream ``nn.Dropout`` draws from in ``train.py``. (If ``train.py`` drew its
  dropout from an explicit generator instead, both would still agree as long as the generator is
  seeded the same way; nothing in ``train.py`` needs to change for the current scheme.)

Per model: ``lr``, ``weight_decay``, ``dropout``, ``label_smoothing``, ``augment``,
``normalize`` (and the run's split seed). Shared by the batch: ``hidden``, ``batch_size``,
``epochs``, the optional ``fused_adam`` (default false; true: torch's fused Adam kernel,
cheaper, but equal to ``train.py``'s default Adam up to float rounding only, not bit for bit)
and the optional ``device`` (default ``"cpu"``; e.g. ``"cuda"``: the K models and the data on
that device, as ``train.py`` with the same ``device``). On a GPU the data order and augmentation
are still drawn model by model from the CPU generators (then moved to the device), so each model
sees its solo run's minibatches, and its dropout masks are the ones its solo GPU run draws (see
``ablab.batched.BatchedModels``); the batched products and the optimiser round differently from
the solo run's kernels there, so the metrics agree up to float rounding, not bit for bit.
``train_seconds`` is the batch's wall time divided by K.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from functools import partial
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F

from ablab.batched import (
    BatchedAdam,
    BatchedModels,
    check_batch,
    cross_entropy,
    evaluate,
    permutations,
    resolve_device,
    shared_value,
    smoothing_weights,
)


def _solo_module():
    """``train.py`` next to this file, imported under a private name (for load_data, augment)."""
    name = "_ablab_digits_train_solo"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("train.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ROLLS[dy + 1, dx + 1][j]: the pixel that ``torch.roll(img, shifts=(dy, dx), dims=(2, 3))`` moves
# to position j of a flattened 8x8 image (train.py's augmentation shift)
ROLLS = torch.stack(
    [
        torch.stack(
            [
                torch.roll(torch.arange(64).view(8, 8), shifts=(dy, dx), dims=(0, 1)).reshape(64)
                for dx in (-1, 0, 1)
            ]
        )
        for dy in (-1, 0, 1)
    ]
)


def make_mlp(hidden: int, dropout: float) -> nn.Module:
    """The MLP of ``train.py``."""
    return nn.Sequential(
        nn.Linear(64, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, 10),
    )


def train_batched(configs: list[dict], runs: list) -> list[dict[str, float]]:
    t0 = time.perf_counter()
    solo = _solo_module()
    k_models = check_batch(configs, runs)
    hidden = shared_value(configs, "hidden")
    bs = shared_value(configs, "batch_size")
    epochs = shared_value(configs, "epochs")
    device = resolve_device(
        shared_value([{"device": c.get("device", "cpu")} for c in configs], "device")
    )
    on_cpu = device.type == "cpu"
    cache: dict[tuple[int, bool], tuple] = {}
    digits = load_digits(return_X_y=True)  # read once; every seed has its own split by default
    source = []  # model k trains on dataset source[k] of the distinct (split seed, normalize) pairs
    for cfg, run in zip(configs, runs, strict=True):
        key = (run.split_seed, bool(cfg["normalize"]))
        if key not in cache:
            cache[key] = (len(cache), solo.load_data(run.split_seed, cfg["normalize"], digits))
        source.append(cache[key][0])
        run.track_data("train_x", cache[key][1][0])
        run.track_data("test_x", cache[key][1][2])
    data = [d for _, d in cache.values()]
    x_tr, y_tr = torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data])  # [D, N, 64]
    src = torch.tensor(source)[:, None, None]
    rolls = ROLLS
    if on_cpu:
        x_te, y_te, x_val, y_val = (torch.stack([data[i][j] for i in source]) for j in (2, 3, 4, 5))
    else:  # the data on the device (each test set copied there once); draws stay on the CPU generators
        x_tr, y_tr, src, rolls = (t.to(device) for t in (x_tr, y_tr, src, ROLLS))
        x_te, y_te, x_val, y_val = (
            torch.stack([d[j] for d in data]).to(device)[src[:, 0, 0]] for j in (2, 3, 4, 5)
        )
    gens = [run.generator() for run in runs]
    bm = BatchedModels(
        [partial(make_mlp, hidden, c["dropout"]) for c in configs],
        [r.seed for r in runs],
        device=device,
    )
    fused = bool(
        shared_value([{"fused_adam": c.get("fused_adam", False)} for c in configs], "fused_adam")
    )
    opt = BatchedAdam(
        bm.params,
        lr=[c["lr"] for c in configs],
        weight_decay=[c["weight_decay"] for c in configs],
        fused=fused,
    )
    smoothing = [c["label_smoothing"] for c in configs]
    w = smoothing_weights(smoothing, k_models, 10, device=device)
    augmented = [k for k, c in enumerate(configs) if c["augment"]]
    aug_rows = augmented if on_cpu else torch.tensor(augmented, dtype=torch.long, device=device)
    n = x_tr.shape[1]
    shifts = torch.empty(
        (len(augmented), 2), dtype=torch.long
    )  # reused: each model's draws land here
    noise = torch.empty((len(augmented), bs, 64))
    for epoch in range(epochs):
        bm.train()
        perms = torch.stack(permutations(gens, n))
        if not on_cpu:
            perms = perms.to(device)
        train_loss: list[float] = []
        for i in range(0, n, bs):
            rows = perms[:, i : i + bs]
            b = rows.shape[1]
            xb = x_tr[src[:, :, 0], rows]
            if augmented:
                # train.py's augment(x[idx], g), model by model with the same draws in the same
                # order: a pixel shift (a permutation of the 64 columns) and Gaussian noise
                for j, k in enumerate(augmented):
                    torch.randint(-1, 2, (2,), generator=gens[k], out=shifts[j])
                    torch.randn((b, 64), generator=gens[k], out=noise[j, :b])
                sh, nz = (
                    (shifts, noise[:, :b])
                    if on_cpu
                    else (shifts.to(device), noise[:, :b].to(device))
                )
                cols = rolls[sh[:, 0] + 1, sh[:, 1] + 1][:, None, :].expand(-1, b, -1)
                if len(augmented) == k_models:
                    xb = xb.gather(2, cols) + 0.05 * nz
                else:
                    xb[aug_rows] = xb[aug_rows].gather(2, cols) + 0.05 * nz
            yb = y_tr[src[:, :, 0], rows]
            masks = bm.dropout_masks(xb)
            if i + bs >= n:  # the solo run logs the last minibatch's loss, computed as F does
                with torch.no_grad():
                    logits = bm(xb, masks=masks)
                train_loss = torch.stack(
                    [
                        F.cross_entropy(logits[k], yb[k], label_smoothing=smoothing[k])
                        for k in range(k_models)
                    ]
                ).tolist()  # one wait for a GPU, not K
            _, grads = bm.loss_and_grad(cross_entropy, xb, yb, w, masks=masks)
            opt.step(grads)
        acc = evaluate(bm, x_val, y_val)["accuracy"].tolist()  # selection: validation split
        for k, run in enumerate(runs):
            run.log(step=epoch, val_acc=acc[k], train_loss=train_loss[k])
    final = evaluate(bm, x_te, y_te)
    for run, state in zip(
        runs, bm.state_dicts(), strict=True
    ):  # = the state dict of bm.unstack()[k]
        run.save_model(state)
    seconds = (time.perf_counter() - t0) / k_models
    accuracy, test_loss = final["accuracy"].tolist(), final["loss"].tolist()
    return [
        {"accuracy": accuracy[k], "test_loss": test_loss[k], "train_seconds": seconds}
        for k in range(k_models)
    ]
