import numpy as np
import pytest
import torch
import torch.nn as nn

from ablab import data

RES = 12
SMALL = {"resolution": RES, "n_train_per_class": 40, "n_test_per_class": 20}


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 36, 32), nn.ReLU(), nn.Linear(32, 10),
    )  # fmt: skip


@pytest.fixture(scope="session")
def id_data():
    return data.load("glyphs-digits", seed=0, **SMALL)


@pytest.fixture(scope="session")
def trained_cnn(id_data):
    torch.manual_seed(0)
    m = small_cnn()
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    x, y = torch.tensor(id_data.x_train), torch.tensor(id_data.y_train)
    g = torch.Generator().manual_seed(0)
    for _ in range(8):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 50):
            b = perm[i : i + 50]
            opt.zero_grad()
            nn.functional.cross_entropy(m(x[b]), y[b]).backward()
            opt.step()
    m.eval()
    acc = (m(torch.tensor(id_data.x_test)).argmax(1).numpy() == id_data.y_test).mean()
    assert acc > 0.8, acc
    return m


@pytest.fixture(scope="session")
def ood_sets():
    return {
        "fonts": data.load("glyphs-heldout-fonts", seed=0, **SMALL),
        "letters": data.load("glyphs-letters", seed=0, resolution=RES, n_train_per_class=15,
                             n_test_per_class=8),
    }  # fmt: skip


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors on 2 shared cores: one thread avoids hand-off stalls (tests only)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
