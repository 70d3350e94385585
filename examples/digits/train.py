"""A small MLP on scikit-learn's bundled handwritten digits (8x8 images, 10 classes).

Components worth ablating: data augmentation (random pixel shifts + noise), dropout, width,
label smoothing and input normalisation. Follows ablab's entry contract:
``train(config, run) -> dict of metrics``.

Optional config key ``device`` (default ``"cpu"``; e.g. ``"cuda"``): the model is built on the
CPU (same initialisation for a seed on any device), then the model and the data move to the
device. The data order and the augmentation draws still come from the CPU generator
``run.generator()``, so every device sees the same minibatches; dropout draws from the default
generator of the device (on CUDA: the CUDA generator that ``seed_everything(seed)`` seeded).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def load_data(split_seed: int, normalize: bool, digits: tuple | None = None):
    """Train / validation / test tensors of the digits, from ``split_seed``.

    30% of the images are the test split (stratified); it is looked at once, after training, for
    the reported ``accuracy`` and ``test_loss``. Model selection (the per-epoch ``val_acc``
    series, its "best" epoch) uses a validation split of 20% carved from the *training* data,
    never the test split: choosing the best epoch on the test set would report an optimistic
    test accuracy. Normalisation uses the statistics of the remaining training images only.
    ``digits``: the arrays of ``load_digits(return_X_y=True)`` when the caller already has them
    (the batched entry reads the file once per batch, not once per split); the result is the same.
    Returns ``(x_tr, y_tr, x_te, y_te, x_val, y_val)``.
    """
    x, y = load_digits(return_X_y=True) if digits is None else digits
    x = x.astype(np.float32) / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.3, random_state=split_seed, stratify=y
    )
    x_tr, x_val, y_tr, y_val = train_test_split(  # validation: from the training data only
        x_tr, y_tr, test_size=0.2, random_state=split_seed, stratify=y_tr
    )
    if normalize:
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
        x_tr, x_te, x_val = (x_tr - mu) / sd, (x_te - mu) / sd, (x_val - mu) / sd
    return (
        torch.from_numpy(x_tr),
        torch.from_numpy(y_tr).long(),
        torch.from_numpy(x_te),
        torch.from_numpy(y_te).long(),
        torch.from_numpy(x_val),
        torch.from_numpy(y_val).long(),
    )


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Shift each 8x8 image by up to one pixel and add a little Gaussian noise (drawn from the CPU
    generator ``g`` wherever ``x`` is, then moved to ``x``'s device)."""
    img = x.view(-1, 1, 8, 8)
    shifts = torch.randint(-1, 2, (2,), generator=g).tolist()
    img = torch.roll(img, shifts=shifts, dims=(2, 3))
    noise = torch.randn(x.shape, generator=g)
    return img.reshape(len(x), 64) + 0.05 * (
        noise if x.device.type == "cpu" else noise.to(x.device)
    )


def train(config: dict, run) -> dict:
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te, x_val, y_val = load_data(run.split_seed, config["normalize"])
    run.track_data("train_x", x_tr)
    run.track_data("test_x", x_te)
    g = run.generator()
    model = nn.Sequential(
        nn.Linear(64, config["hidden"]),
        nn.ReLU(),
        nn.Dropout(config["dropout"]),
        nn.Linear(config["hidden"], config["hidden"]),
        nn.ReLU(),
        nn.Dropout(config["dropout"]),
        nn.Linear(config["hidden"], 10),
    )
    device = torch.device(config.get("device", "cpu"))
    if device.type != "cpu":  # built on the CPU above: the same initialisation on every device
        model.to(device)
        x_tr, y_tr, x_te, y_te, x_val, y_val = (
            t.to(device) for t in (x_tr, y_tr, x_te, y_te, x_val, y_val)
        )
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    n, bs = len(x_tr), config["batch_size"]
    for epoch in range(config["epochs"]):
        model.train()
        perm = torch.randperm(n, generator=g)
        if device.type != "cpu":
            perm = perm.to(device)
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            xb = x_tr[idx]
            if config["augment"]:
                xb = augment(xb, g)
            loss = loss_fn(model(xb), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():  # selection signal: the validation split, never the test split
            val_acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        run.log(step=epoch, val_acc=val_acc, train_loss=loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(x_te)
        accuracy = (logits.argmax(1) == y_te).float().mean().item()
        test_loss = nn.functional.cross_entropy(logits, y_te).item()
    run.save_model(model)
    return {"accuracy": accuracy, "test_loss": test_loss, "train_seconds": time.perf_counter() - t0}
