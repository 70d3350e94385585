"""Entry of the tunnel-effect study: train a small model on glyph ID data, then probe every
layer on ID data and five OOD sets; returns r, rho and A as run metrics.

Variables (config keys), after Harun et al., NeurIPS 2024, section 4:

* ``resolution``: image side in pixels;
* ``augment``: random resized crop (area 50-100 %) + random rotation (+-12 deg), as one affine
  map per image (no flip: glyphs are not mirror-symmetric);
* ``n_classes``: ID classes at a fixed total of ``n_train`` images (data diversity):
  the first ``n_classes`` of 0-9A-Z;
* ``arch`` (vgg, resnet, mlp, vit), ``depth``, ``width``, ``reduction`` (stride of the first
  VGG convolution: early spatial reduction).

OOD sets (each probed with its own linear head): the ID characters in held-out fonts,
lower-case letters (new classes), the ID characters with Gaussian noise and with blur, and
scikit-learn's handwritten digits at matching resolution.
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from models import build

from ablab import data
from ablab.probe import probe_model

OOD_SETS = {
    "fonts": ("glyphs", {"fonts": "heldout"}),
    "lower": ("glyphs-lower", {}),
    "noise": ("glyphs", {"corruption": "noise"}),
    "blur": ("glyphs", {"corruption": "blur"}),
    "digits": ("digits", {}),
}


def augment_batch(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random resized crop + rotation as one affine resampling per image."""
    n = len(x)
    u = torch.rand(n, 4, generator=g)
    scale = torch.sqrt(0.5 + 0.5 * u[:, 0])  # side fraction of the crop (area 50..100 %)
    ang = (u[:, 1] * 2 - 1) * math.radians(12)
    tx, ty = (u[:, 2] * 2 - 1) * (1 - scale), (u[:, 3] * 2 - 1) * (1 - scale)
    cos, sin = torch.cos(ang) * scale, torch.sin(ang) * scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def fit(model: torch.nn.Module, ds, epochs: int, lr: float, augment: bool,
        generator: torch.Generator, batch_size: int = 64, log=None) -> float:  # fmt: skip
    """AdamW with a cosine schedule on ``ds`` (an ablab Dataset); returns the mean training loss
    of the last epoch (how far training converged)."""
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = max(1, epochs * math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    model.train()
    total = float("nan")
    for ep in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x), batch_size):
            b = perm[i : i + batch_size]
            xb = augment_batch(x[b], generator) if augment else x[b]
            loss = F.cross_entropy(model(xb), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        if log is not None:
            log(step=ep, train_loss=total / len(x))
        total /= len(x)
    model.eval()
    return total


def train(config: dict, run) -> dict[str, float]:
    t0 = time.perf_counter()
    torch.manual_seed(run.seed)
    res = int(config.get("resolution", 32))
    n_cls = int(config.get("n_classes", 10))
    chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[:n_cls]
    n_train = int(config.get("n_train", 2000))
    data_seed = int(config.get("data_seed", 0))  # datasets fixed across seeds: seeds vary training
    id_ds = data.load("glyphs", seed=data_seed, classes=chars, resolution=res, n_train=n_train,
                      n_test_per_class=int(config.get("n_test_per_class", 20)))  # fmt: skip
    run.track_data("id", id_ds.x_train)
    model, layers = build(config, n_cls, res)
    final_loss = fit(model, id_ds, int(config.get("epochs", 10)), float(config.get("lr", 2e-3)),
        bool(config.get("augment", False)), run.generator(),
        batch_size=int(config.get("batch_size", 64)), log=run.log)  # fmt: skip
    with torch.no_grad():
        id_acc = float((model(torch.from_numpy(id_ds.x_test)).argmax(1).numpy()
                        == id_ds.y_test).mean())  # fmt: skip
    run.save_model(model)

    probe_n = {"n_train_per_class": int(config.get("probe_n", 40)),
               "n_test_per_class": int(config.get("probe_test_n", 20))}  # fmt: skip
    oods = {}
    for key in config.get("ood", list(OOD_SETS)):
        name, opts = OOD_SETS[key]
        if name == "digits":
            oods[key] = data.load("digits", seed=data_seed, resolution=res)
            continue
        if name == "glyphs":
            opts = {**opts, "classes": chars}
        oods[key] = data.load(name, seed=data_seed, resolution=res, **probe_n, **opts)
        run.track_data(f"ood_{key}", oods[key].x_train)
    id_probe = data.Dataset(f"id-{n_cls}", id_ds.x_train[: probe_n["n_train_per_class"] * n_cls * 2],
                            id_ds.y_train[: probe_n["n_train_per_class"] * n_cls * 2],
                            id_ds.x_test, id_ds.y_test, id_ds.classes)  # fmt: skip
    report = probe_model(model, id_probe, oods, layers, seed=run.seed,
                         method=config.get("probe", "ridge"))  # fmt: skip
    report.to_json(run.run_dir / "probe.json")
    s = report.summary()
    out = {
        "r": s["r"], "rho": s["rho"], "A": s["A"], "id_acc": id_acc,
        "probe_id_acc": s["id_acc"], "final_train_loss": final_loss, "tunnel_depth": s["tunnel_start_depth"],
        "train_seconds": time.perf_counter() - t0,
    }  # fmt: skip
    for key in oods:
        out[f"r_{key}"] = s[f"r/{key}"]
    return {k: (float("nan") if v is None else float(v)) for k, v in out.items()}
