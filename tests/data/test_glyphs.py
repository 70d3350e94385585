import numpy as np
import pytest

from ablab import data
from ablab.data.glyphs import DIGITS, ID_FONTS, Jitter, render_glyphs
from ablab.errors import DataError

SMALL = {"n_train_per_class": 6, "n_test_per_class": 3, "resolution": 16}


def test_same_seed_same_bits_and_hash():
    a = data.load("glyphs-digits", seed=3, **SMALL)
    b = data.load("glyphs-digits", seed=3, **SMALL)
    c = data.load("glyphs-digits", seed=4, **SMALL)
    assert np.array_equal(a.x_train, b.x_train) and a.hash == b.hash
    assert not np.array_equal(a.x_train, c.x_train) and a.hash != c.hash


def test_shapes_labels_and_range():
    d = data.load("glyphs-letters", seed=0, **SMALL)
    assert d.x_train.shape == (26 * 6, 1, 16, 16) and d.x_test.shape == (26 * 3, 1, 16, 16)
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.classes[0] == "A" and d.n_classes == 26
    assert np.bincount(d.y_train).tolist() == [6] * 26
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0
    assert d.x_train.reshape(len(d.x_train), -1).max(1).min() > 0.3  # every image has ink


def test_resolution_and_class_count_controls():
    d = data.load("glyphs", seed=0, classes=20, resolution=24, n_train=100, n_test_per_class=2)
    assert d.n_classes == 20 and d.x_train.shape == (100, 1, 24, 24)
    assert "".join(d.classes) == "0123456789ABCDEFGHIJ"


def test_glyphs_are_class_specific():
    """Nearest-class-mean on rendered pixels beats chance by far: the images carry the class."""
    d = data.load("glyphs-digits", seed=0, n_train_per_class=40, n_test_per_class=20, resolution=16)
    xtr, xte = d.x_train.reshape(len(d.x_train), -1), d.x_test.reshape(len(d.x_test), -1)
    means = np.stack([xtr[d.y_train == c].mean(0) for c in range(10)])
    pred = ((xte[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == d.y_test).mean() > 0.4  # chance is 0.1


def test_jitter_none_gives_identical_copies_per_font():
    rng = np.random.default_rng(0)
    labels = np.zeros(4, dtype=np.int64)
    x, _ = render_glyphs(DIGITS, labels, [ID_FONTS[0]], 16, rng, Jitter.none())
    assert np.allclose(x[0], x[1]) and np.allclose(x[0], x[3])
    xj, _ = render_glyphs(DIGITS, labels, [ID_FONTS[0]], 16, rng, Jitter())
    assert not np.allclose(xj[0], xj[1])


def test_heldout_fonts_differ_from_id_fonts():
    a = data.load("glyphs-digits", seed=0, **SMALL)
    b = data.load("glyphs-heldout-fonts", seed=0, **SMALL)
    assert set(a.meta["fonts"]).isdisjoint(b.meta["fonts"])


def test_bad_inputs_raise_data_errors():
    with pytest.raises(DataError, match="glyphs-digits"):
        data.load("glyphs-digit")
    with pytest.raises(DataError, match="unknown font 'NoSuchFont'"):
        data.load("glyphs", fonts=["NoSuchFont"], **SMALL)
    with pytest.raises(DataError, match="does not take option"):
        data.load("digits", colour=True)
    with pytest.raises(DataError, match="classes"):
        data.load("glyphs", classes="0", **SMALL)
