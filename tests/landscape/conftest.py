"""Shared fixtures: scikit-learn digits and small classifiers trained on them."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids OpenMP spinning."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def mlp(seed: int, width: int = 32, bn: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(64, width)]
    if bn:
        layers.append(nn.BatchNorm1d(width))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int = 150
) -> nn.Module:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(model, x, y, seed, steps)
    finally:
        torch.set_num_threads(before)


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int, steps: int) -> nn.Module:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (256,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def trained_pair(digits):
    x, y = digits
    x, y = x[:1000], y[:1000]
    return train(mlp(1), x, y, 1), train(mlp(2), x, y, 2)


@pytest.fixture(scope="session")
def bn_pair(digits):
    x, y = digits
    x, y = x[:1000], y[:1000]
    return (
        train(mlp(3, bn=True, dropout=0.2), x, y, 3),
        train(mlp(4, bn=True, dropout=0.2), x, y, 4),
    )
