"""Linear CKA invariances and CKA between models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ablab.errors import DataError
from ablab.landscape import cka, model_cka

from .conftest import mlp


@pytest.fixture
def feats(digits):
    x, _ = digits
    return x[:500].double().numpy()


def test_identity_rotation_and_scaling(feats):
    assert cka(feats, feats) == pytest.approx(1.0, abs=1e-12)
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))
    assert cka(feats, feats @ q) == pytest.approx(1.0, abs=1e-10)
    assert cka(feats, 7.5 * feats) == pytest.approx(1.0, abs=1e-12)
    other = feats[:, :20]
    base = cka(feats, other)
    assert 0.0 < base < 1.0
    assert cka(feats @ q * 3.0, other + 5.0) == pytest.approx(base, rel=1e-10)  # centring
    assert cka(feats, other) == pytest.approx(cka(other, feats), rel=1e-12)


def test_independent_features_are_dissimilar(feats):
    noise = np.random.default_rng(1).standard_normal((500, 5))
    assert cka(feats, noise) < 0.1
    assert cka(torch.tensor(feats), torch.tensor(feats)).n_samples == 500


def test_model_cka(digits, trained_pair):
    x, y = digits
    a, b = trained_pair
    data = (x[:600], y[:600])
    assert model_cka(a, copy.deepcopy(a), data) == pytest.approx(1.0, abs=1e-9)
    ab = model_cka(a, b, data, seed=0)
    assert 0.3 < ab < 1.0
    assert float(ab) == float(model_cka(a, b, data, seed=0))
    assert float(ab) != float(model_cka(a, b, data, seed=1))
    assert float(ab) != float(model_cka(a, b, data, mixup=False))


def test_bad_inputs(digits, trained_pair):
    x, y = digits
    with pytest.raises(DataError, match="500 rows.*400"):
        cka(np.ones((500, 3)), np.ones((400, 3)))
    with pytest.raises(DataError, match="constant"):
        cka(np.ones((10, 3)), np.arange(30.0).reshape(10, 3))
    with pytest.raises(DataError, match="NaN"):
        cka(np.full((10, 3), np.nan), np.ones((10, 3)))
    with pytest.raises(DataError, match="different architectures"):
        model_cka(trained_pair[0], mlp(0, width=8), (x[:50], y[:50]))
