import numpy as np
import pytest

from ablab.errors import DataError
from ablab.probe.linear import logistic_probes, ridge_probe, stratified_split


def blobs(n_per, d, k, sep, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + rng.normal(size=(len(y), d))
    return x, y


def test_stratified_split_keeps_every_class():
    y = np.repeat(np.arange(5), 10)
    fit, val = stratified_split(y, 0.2, seed=0)
    assert len(np.intersect1d(fit, val)) == 0 and len(fit) + len(val) == 50
    assert np.bincount(y[val]).tolist() == [2] * 5


def test_ridge_probe_separable_vs_random_labels():
    x, y = blobs(60, 20, 5, 3.0, 0)
    xt, yt = blobs(40, 20, 5, 3.0, 0)  # same centres (same seed), new noise below
    xt = xt + np.random.default_rng(9).normal(size=xt.shape) * 0.3
    res = ridge_probe(x, y, xt, yt)
    assert res.accuracy > 0.95
    shuffled = np.random.default_rng(1).permutation(y)
    assert ridge_probe(x, shuffled, xt, yt).accuracy < 0.45  # chance is 0.2


def _sklearn_reference(x, y, xt, yt, alpha_rel):
    """RidgeClassifier on the same standardisation, with alpha scaled as ablab scales it."""
    from sklearn.linear_model import RidgeClassifier

    def std(f, ref):
        return (f - ref.mean(0)) / ref.std(0, ddof=1)

    fit_rows = stratified_split(y, 0.2, 0)[0]
    zf = std(x[fit_rows], x[fit_rows])
    gram = zf.T @ zf if zf.shape[1] <= zf.shape[0] else zf @ zf.T
    scale = np.linalg.eigvalsh(gram).clip(0).mean()
    ref = RidgeClassifier(alpha=alpha_rel * scale).fit(std(x, x), y)
    return (ref.predict(std(xt, x)) == yt).mean()


@pytest.mark.parametrize("n_per,d", [(40, 15), (8, 100)])  # primal form, then kernel (d > n)
def test_ridge_matches_sklearn_ridge_classifier_at_same_alpha(n_per, d):
    x, y = blobs(n_per, d, 3, 0.5, 7)
    xt, yt = blobs(40, d, 3, 0.5, 7)
    xt = xt + np.random.default_rng(3).normal(size=xt.shape)
    for a in (1e-3, 1.0):
        res = ridge_probe(x, y, xt, yt, alphas=(a,))
        assert res.accuracy == pytest.approx(_sklearn_reference(x, y, xt, yt, a))


def test_ridge_strength_chosen_without_test_labels():
    x, y = blobs(50, 30, 4, 1.0, 5)
    xt, yt = blobs(50, 30, 4, 1.0, 6)
    a = ridge_probe(x, y, xt, yt)
    b = ridge_probe(x, y, xt, np.random.default_rng(0).permutation(yt))
    assert a.alpha == b.alpha and a.val_accuracy == b.val_accuracy


def test_logistic_probes_batched_across_layers():
    x1, y = blobs(50, 10, 4, 3.0, 0)
    rng = np.random.default_rng(0)
    x2 = rng.normal(size=(len(y), 25))  # pure noise layer, different width
    xt1, yt = blobs(30, 10, 4, 3.0, 0)
    xt2 = rng.normal(size=(len(yt), 25))
    res = logistic_probes({"a": x1, "b": x2}, y, {"a": xt1, "b": xt2}, yt, max_iter=100)
    assert res["a"].accuracy > 0.9 and res["b"].accuracy < 0.5


def test_single_class_and_empty_test_raise():
    x, y = blobs(10, 4, 2, 1.0, 0)
    with pytest.raises(DataError, match="at least 2"):
        ridge_probe(x, np.zeros_like(y), x, y)
    with pytest.raises(DataError, match="test split is empty"):
        ridge_probe(x, y, x[:0], y[:0])


def test_lda_avoids_masking_where_ridge_fails():
    """Three classes on a line (ESL fig. 4.2): regression on indicators masks the middle class,
    the discriminant probe does not."""
    from ablab.probe.linear import lda_probe

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    x = np.c_[(y - 1) * 4.0 + rng.normal(size=300), rng.normal(size=300)]
    yt = np.repeat(np.arange(3), 50)
    xt = np.c_[(yt - 1) * 4.0 + rng.normal(size=150), rng.normal(size=150)]
    lda = lda_probe(x, y, xt, yt)
    ridge = ridge_probe(x, y, xt, yt)
    assert lda.accuracy > 0.95
    assert ridge.accuracy < 0.8  # middle class masked


def test_lda_wide_features_projection():
    from ablab.probe.linear import lda_probe

    x, y = blobs(10, 200, 4, 1.0, 11)
    xt, yt = blobs(30, 200, 4, 1.0, 11)
    xt = xt + np.random.default_rng(1).normal(size=xt.shape) * 0.5
    res = lda_probe(x, y, xt, yt)
    assert res.accuracy > 0.9
    shuffled = lda_probe(x, np.random.default_rng(2).permutation(y), xt, yt)
    assert shuffled.accuracy < 0.6
