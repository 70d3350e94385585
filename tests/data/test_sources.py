import numpy as np
import pytest

from ablab import data
from ablab.data.corrupt import contrast, elastic, gaussian_blur, gaussian_noise
from ablab.errors import DataError


def test_sklearn_digits_resized_and_split():
    d = data.load("digits", seed=0, resolution=16, n_test_per_class=20)
    assert d.x_train.shape[1:] == (1, 16, 16) and len(d.x_test) == 200
    assert len(d.x_train) + len(d.x_test) == 1797
    assert np.bincount(d.y_test).tolist() == [20] * 10
    assert d.hash == data.load("digits", seed=0, resolution=16, n_test_per_class=20).hash


def test_corruptions_change_images_as_documented():
    rng = np.random.default_rng(0)
    x = data.load(
        "glyphs-digits", seed=0, n_train_per_class=2, n_test_per_class=1, resolution=16
    ).x_train
    xn = gaussian_noise(x, 3, rng)
    assert 0.1 < np.std(xn - x) < 0.2  # std 0.18 minus clipping
    xb = gaussian_blur(x, 5, rng)
    assert np.abs(np.diff(xb, axis=-1)).mean() < np.abs(np.diff(x, axis=-1)).mean()
    assert np.allclose(xb.mean(), x.mean(), atol=0.02)
    xc = contrast(x, 5, rng)
    assert np.allclose(xc.std(axis=(1, 2, 3)), 0.1 * x.std(axis=(1, 2, 3)), rtol=1e-4)
    xe = elastic(x, 3, rng)
    assert xe.shape == x.shape and not np.allclose(xe, x)
    assert abs(xe.mean() - x.mean()) < 0.05  # warps, does not erase ink
    with pytest.raises(DataError, match="severity"):
        gaussian_noise(x, 6, rng)


def test_corrupt_datasets_are_registered_and_differ():
    opts = {"n_train_per_class": 3, "n_test_per_class": 2, "resolution": 16}
    clean = data.load("glyphs-digits", seed=0, **opts)
    for kind in ("noise", "blur", "contrast", "elastic"):
        d = data.load(f"corrupt-{kind}", seed=0, **opts)
        assert d.meta["corruption"] == kind and d.shape == clean.shape
        assert d.hash != clean.hash


@pytest.mark.slow
def test_mnist1d_shift_changes_the_distribution():
    a = data.load("mnist1d", seed=0, num_samples=500)
    b = data.load("mnist1d-shifted", seed=0, num_samples=500)
    assert a.x_train.shape == (400, 1, 40) and b.x_train.shape == (400, 1, 40)
    state = np.random.get_state()[1][:5].copy()
    a2 = data.load("mnist1d", seed=0, num_samples=500)
    assert np.array_equal(a.x_train, a2.x_train)
    assert np.array_equal(np.random.get_state()[1][:5], state)  # global state untouched
    # shifted generation -> mean per-class template differs
    ma = np.stack([a.x_train[a.y_train == c, 0].mean(0) for c in range(10)])
    mb = np.stack([b.x_train[b.y_train == c, 0].mean(0) for c in range(10)])
    assert np.abs(ma - mb).mean() > 0.05
