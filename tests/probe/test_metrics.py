import math

import numpy as np
import pytest

from ablab.errors import DataError
from ablab.probe.metrics import (
    alignment,
    effective_rank,
    nc1,
    numerical_rank,
    ood_retained,
    pearson_id_ood,
    tunnel_start,
    tunnel_strength,
)


def test_ood_retained():
    assert ood_retained([0.5, 0.8, 0.6]) == pytest.approx(75.0)
    assert ood_retained([0.2, 0.4, 0.9]) == pytest.approx(100.0)
    assert math.isnan(ood_retained([0.0, 0.0]))


def test_tunnel_start():
    assert tunnel_start([0.5, 0.9, 0.7, 0.6]) == 1
    assert tunnel_start([0.5, 0.6, 0.7]) is None
    assert tunnel_start([0.7, 0.5, 0.7]) is None  # last layer ties the max: no tunnel
    assert tunnel_start([0.9, 0.9, 0.3]) == 0


@pytest.mark.parametrize(
    "r,label",
    [(100, "negligible"), (95, "negligible"), (94.9, "weak"), (90, "weak"),
     (89.99, "medium"), (80, "medium"), (79.9, "strong")],
)  # fmt: skip
def test_tunnel_strength_boundaries(r, label):
    assert tunnel_strength(r) == label


def test_tunnel_strength_averages_over_sets():
    assert tunnel_strength([100.0, 70.0]) == "medium"  # mean 85


def test_pearson_id_ood():
    x = np.array([0.1, 0.4, 0.5, 0.9])
    assert pearson_id_ood(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson_id_ood(x, -x) == pytest.approx(-1.0)
    y = np.array([0.3, 0.1, 0.7, 0.2])
    assert pearson_id_ood(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert math.isnan(pearson_id_ood(x, np.ones(4)))
    with pytest.raises(DataError, match="must match"):
        pearson_id_ood(x, x[:3])


def test_alignment():
    assert alignment(0.9, 10, 0.6, 26) == pytest.approx((0.9 - 0.1) * (0.6 - 1 / 26))
    assert alignment(0.1, 10, 0.9, 2) == pytest.approx(0.0)  # ID at chance
    with pytest.raises(DataError, match="fraction"):
        alignment(90.0, 10, 0.5, 10)


def test_numerical_rank_of_low_rank_data():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 3))
    f = z @ rng.normal(size=(3, 40)) + 5.0  # rank 3 after centring (offset removed)
    assert numerical_rank(f) == 3
    f2 = f + 1e-6 * rng.normal(size=f.shape)  # tiny noise stays below rtol
    assert numerical_rank(f2) == 3
    assert numerical_rank(rng.normal(size=(300, 40))) == 40


def test_effective_rank_equal_singular_values():
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(50, 50)))
    f = 3.0 * q[:, :7]  # 7 equal singular values
    assert effective_rank(f) == pytest.approx(7.0, rel=1e-6)
    # unequal spectrum lies strictly between 1 and the rank
    g = q[:, :4] * np.array([10.0, 1.0, 1.0, 1.0])
    assert 1.0 < effective_rank(g) < 4.0


def test_nc1_known_value_and_collapse():
    # 1-D, two classes with means -1 and +1, each point at mean +- s: Sigma_W = s^2,
    # Sigma_B = 1 (global mean 0), so NC1 = s^2 / 2.
    s = 0.5
    h = np.array([-1 - s, -1 + s, 1 - s, 1 + s])[:, None]
    y = np.array([0, 0, 1, 1])
    assert nc1(h, y) == pytest.approx(s**2 / 2)
    # embed in 5-D with an orthonormal map: unchanged
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(5, 5)))
    assert nc1(h @ q[:1], y) == pytest.approx(s**2 / 2)
    # collapsed features -> 0; more within-class noise -> larger NC1
    rng = np.random.default_rng(0)
    means = rng.normal(size=(4, 16)) * 3
    lab = np.repeat(np.arange(4), 50)
    assert nc1(means[lab], lab) == pytest.approx(0.0, abs=1e-12)
    small = nc1(means[lab] + 0.1 * rng.normal(size=(200, 16)), lab)
    big = nc1(means[lab] + 1.0 * rng.normal(size=(200, 16)), lab)
    assert 0 < small < big


def test_bad_curves():
    with pytest.raises(DataError):
        ood_retained([])
    with pytest.raises(DataError):
        tunnel_start([0.1, float("nan")])
    with pytest.raises(DataError):
        nc1(np.ones((4, 2)), np.zeros(4))
