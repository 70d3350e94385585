"""A CPU-scale model zoo for MD tree: width x batch size x data fraction x seed, on real data.

Tasks (offline): scikit-learn ``digits`` (8x8 images, 1797 samples; fixed stratified 75/25
split) and ``mnist1d`` (``mnist1d.data.make_dataset`` with its default arguments: 4000 train /
1000 test signals of length 40, generated procedurally). Models are two-hidden-layer ReLU MLPs
of the given width. Training: SGD (momentum 0.9) at a fixed learning rate for a fixed number
of epochs, so the batch size is the temperature knob (Zhou et al., ICML 2024, §4.1). The
training subset for a data fraction is fixed (seed 0), so only initialisation and minibatch
order change with the seed.

``train_member`` trains one model and measures its single-model features; ``pair_features``
the pair features of two seeds; ``build_zoo`` runs a whole grid in this process and returns
one row per model (the form :func:`ablab.mdtree.training_table` takes). ``zoo_entry`` is the
same training as a study entry ``train(config, run)``: ``examples/mdtree_zoo/*.toml`` build the
zoos as ablab studies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ablab.errors import DataError, did_you_mean

TASKS = ("digits", "mnist1d")
DEFAULTS: dict[str, Any] = {"task": "digits", "epochs": 20, "lr": 0.05, "data_fraction": 1.0}


@lru_cache(maxsize=4)
def load_task(task: str) -> tuple[Any, Any, Any, Any]:
    """``(x_train, y_train, x_test, y_test)`` float32/int64 tensors for a zoo task."""
    import numpy as np
    import torch

    if task == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        xtr, xte, ytr, yte = train_test_split(
            x / 16.0, y, test_size=0.25, random_state=0, stratify=y
        )
    elif task == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        d = make_dataset(get_dataset_args())
        xtr, ytr, xte, yte = d["x"], d["y"], d["x_test"], d["y_test"]
    else:
        raise DataError(
            f"zoo task {task!r} is unknown; expected one of {list(TASKS)}",
            hint=did_you_mean(task, TASKS),
        )
    f = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    i = lambda a: torch.tensor(np.asarray(a), dtype=torch.long)  # noqa: E731
    return f(xtr), i(ytr), f(xte), i(yte)


def make_model(n_in: int, width: int, n_out: int = 10) -> Any:
    from torch import nn

    return nn.Sequential(
        nn.Linear(n_in, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, n_out),
    )


def _subset(x: Any, y: Any, fraction: float) -> tuple[Any, Any]:
    import torch

    if not 0.0 < fraction <= 1.0:
        raise DataError(f"zoo data_fraction={fraction}; expected a value in (0, 1]")
    n = max(10, int(round(fraction * x.shape[0])))
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:n]
    return x[idx], y[idx]


def train_member(
    config: Mapping[str, Any], seed: int, *, hessian_samples: int = 200
) -> tuple[Any, dict[str, float]]:
    """Train one zoo model; returns ``(model, metrics)`` with test accuracy and features.

    ``config`` keys: ``width``, ``batch_size`` and optionally ``task``, ``data_fraction``,
    ``epochs``, ``lr`` (defaults in ``DEFAULTS``). Deterministic for a seed on CPU.
    """
    import torch
    from torch import nn

    from ablab.landscape import hessian_top_eigenvalue, hessian_trace
    from ablab.landscape.basic import error_and_loss

    cfg = DEFAULTS | dict(config)
    for key in ("width", "batch_size"):
        if key not in cfg:
            raise DataError(f"zoo config has no {key!r}; got {sorted(cfg)}")
    xtr, ytr, xte, yte = load_task(cfg["task"])
    x, y = _subset(xtr, ytr, float(cfg["data_fraction"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model(x.shape[1], int(cfg["width"]))
    opt = torch.optim.SGD(model.parameters(), lr=float(cfg["lr"]), momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(int(cfg["epochs"])):
        for idx in torch.randperm(x.shape[0], generator=gen).split(int(cfg["batch_size"])):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    train_err, train_loss, _ = error_and_loss(model, loss_fn, (x, y))
    test_err, test_loss, _ = error_and_loss(model, loss_fn, (xte, yte))
    hdata = (x[:hessian_samples], y[:hessian_samples])
    params = sum(p.numel() for p in model.parameters())
    metrics = {
        "test_accuracy": 100.0 - test_err,
        "train_error": train_err,
        "train_loss": train_loss,
        "test_error": test_err,
        "test_loss": test_loss,
        "hessian_trace": float(hessian_trace(model, loss_fn, hdata, seed=seed)),
        "hessian_top_eigenvalue": float(hessian_top_eigenvalue(model, loss_fn, hdata, seed=seed)),
        "hessian_n_samples": float(hdata[0].shape[0]),
        "log_data_size": math.log(x.shape[0]),
        "log_param_count": math.log(params),
    }
    return model, metrics


def pair_features(
    model_a: Any, model_b: Any, config: Mapping[str, Any], *, epochs: int = 5, seed: int = 0
) -> dict[str, float]:
    """``mc_peak``, ``mu`` (trained Bezier curve) and ``cka`` of two seeds of one config.

    ``cka`` is NaN when a model's outputs are constant (a collapsed run), where it is undefined.
    """
    from torch import nn

    from ablab.landscape import mode_connectivity, model_cka

    cfg = DEFAULTS | dict(config)
    xtr, ytr, _, _ = load_task(cfg["task"])
    data = _subset(xtr, ytr, float(cfg["data_fraction"]))
    mc = mode_connectivity(model_a, model_b, nn.CrossEntropyLoss(), data, epochs=epochs, seed=seed)
    try:
        cka = float(model_cka(model_a, model_b, data, seed=seed))
    except DataError:  # a collapsed model with constant outputs: CKA is undefined
        cka = math.nan
    return {"mc_peak": mc.mc_peak, "mu": mc.mu, "cka": cka}


def grid_configs(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cross product of ``grid``'s value lists, in a stable order."""
    keys = sorted(grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]


def build_zoo(
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int] = (0, 1),
    *,
    mc_epochs: int = 5,
    hessian_samples: int = 200,
    progress: Callable[[str], None] | None = None,
) -> Any:
    """Train every configuration of ``grid`` for every seed, in this process.

    Returns a DataFrame with one row per model: the configuration, ``seed``, the metrics of
    :func:`train_member` and the pair features of the configuration's first two seeds.
    """
    import pandas as pd

    if len(seeds) < 2:
        raise DataError(
            f"build_zoo: seeds={list(seeds)}; mode connectivity and CKA need at least 2 seeds"
        )
    rows = []
    for cfg in grid_configs(grid):
        models = []
        for s in seeds:
            model, metrics = train_member(cfg, s, hessian_samples=hessian_samples)
            models.append(model)
            rows.append(DEFAULTS | cfg | {"seed": s} | metrics)
        pair = pair_features(models[0], models[1], cfg, epochs=mc_epochs, seed=0)
        for row in rows[-len(seeds) :]:
            row.update(pair)
        if progress is not None:
            progress(
                f"{cfg}: test accuracy {[round(r['test_accuracy'], 1) for r in rows[-len(seeds) :]]}"
            )
    return pd.DataFrame(rows)


def zoo_entry(config: dict[str, Any], run: Any) -> dict[str, float]:
    """Study entry: train the member for ``run.seed``, save its checkpoint, return its metrics.

    Pair features need both seeds of a configuration: once both runs are done,
    ``ablab mdtree pairs STUDY_FILE`` (:func:`ablab.mdtree.zoo_pairs`) computes them from the
    saved checkpoints with :func:`pair_features` and attaches them to both runs.
    """
    model, metrics = train_member(config, int(run.seed))
    run.save_model(model)
    return metrics
