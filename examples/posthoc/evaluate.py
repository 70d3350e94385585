"""Post-hoc ablation: train the digits transformer once per seed, then ablate its components
without retraining and measure accuracy, per-example correctness and costs.

Entry contract: ``evaluate(config, run) -> dict of metrics``. The trained weights of a seed are
kept in ``checkpoints/`` beside this file (written atomically; training is deterministic, so a
checkpoint is the same whichever run writes it); delete the folder to retrain.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from models import DigitsTransformer
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
TRAIN_KEYS = ("d", "heads", "depth", "epochs", "lr", "batch_size")


def load_data(split_seed: int):
    """Stratified 80/20 train/test split of scikit-learn's bundled digits (no download)."""
    x, y = load_digits(return_X_y=True)
    x = (x.astype(np.float32) / 16.0 - 0.5) / 0.5
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=0.2, random_state=split_seed, stratify=y
    )
    t = torch.from_numpy
    return t(x_tr), t(y_tr).long(), t(x_te), t(y_te).long()


def train_model(config: dict, run, x_tr, y_tr) -> DigitsTransformer:
    torch.manual_seed(run.seed)
    model = DigitsTransformer(config["d"], config["heads"], config["depth"])
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"])
    loss_fn = nn.CrossEntropyLoss()
    g = run.generator("loader")
    for _ in range(config["epochs"]):
        for idx in torch.randperm(len(x_tr), generator=g).split(config["batch_size"]):
            opt.zero_grad()
            loss_fn(model(x_tr[idx]), y_tr[idx]).backward()
            opt.step()
    return model


def trained(config: dict, run, x_tr, y_tr) -> DigitsTransformer:
    """The seed's trained model: loaded from ``checkpoints/`` or trained and saved there."""
    setting = {k: config[k] for k in TRAIN_KEYS} | {"seed": run.seed, "split": run.split_seed}
    tag = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:12]
    path = HERE / "checkpoints" / f"{tag}.pt"
    model = DigitsTransformer(config["d"], config["heads"], config["depth"])
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    model = train_model(config, run, x_tr, y_tr)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return model


def evaluate(config: dict, run) -> dict:
    x_tr, y_tr, x_te, y_te = load_data(run.split_seed)
    run.track_data("digits_test", x_te)
    model = trained(config, run, x_tr, y_tr)
    # the variant's "@..." edits, post hoc; "mean" edits average over a training batch
    model = run.ablate(model, reference=x_tr[:256]).eval()
    with torch.no_grad():
        logits = model(x_te)
    correct = (logits.argmax(1) == y_te).float()
    run.log_examples("correct", correct)  # per test example, same order in every variant
    run.measure(model, x_te[:1], warmup=5, repeats=30)  # one image: ms/image, FLOPs/image
    return {
        "accuracy": correct.mean().item(),
        "test_loss": nn.functional.cross_entropy(logits, y_te).item(),
    }
