import numpy as np
import pytest

from ablab.errors import DataError
from ablab.probe.lda_logistic import lda_logistic_details, lda_logistic_probes
from ablab.probe.linear import lda_probe, ridge_probe


def blobs(n_per, d, k, sep, seed, noise_seed=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * sep
    y = np.repeat(np.arange(k), n_per)
    noise = np.random.default_rng(noise_seed if noise_seed is not None else seed + 100)
    return (centres[y] + noise.normal(size=(len(y), d))).astype(np.float32), y


def one(x, y, xt, yt, **kw):
    return lda_logistic_probes({"a": x}, y, {"a": xt}, yt, **kw)["a"]


def test_separable_layer_near_perfect_and_noise_layer_near_chance():
    x, y = blobs(60, 20, 5, 3.0, 0, noise_seed=1)
    xt, yt = blobs(40, 20, 5, 3.0, 0, noise_seed=2)  # same centres, fresh noise
    rng = np.random.default_rng(3)
    noise, noise_t = rng.normal(size=(len(y), 30)), rng.normal(size=(len(yt), 30))
    res = lda_logistic_probes({"sep": x, "noise": noise}, y, {"sep": xt, "noise": noise_t}, yt)
    assert res["sep"].accuracy > 0.97
    assert res["noise"].accuracy < 0.4  # chance is 0.2
    shuffled = np.random.default_rng(4).permutation(y)
    assert one(x, shuffled, xt, yt).accuracy < 0.4


def test_no_masking_on_a_line():
    """Three classes on a line (ESL fig. 4.2): ridge masks the middle class, this does not."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 100)
    x = np.c_[(y - 1) * 4.0 + rng.normal(size=300), rng.normal(size=300)]
    yt = np.repeat(np.arange(3), 50)
    xt = np.c_[(yt - 1) * 4.0 + rng.normal(size=150), rng.normal(size=150)]
    assert ridge_probe(x, y, xt, yt).accuracy < 0.8
    assert one(x, y, xt, yt).accuracy > 0.95


def test_logistic_step_fixes_lda_where_its_gaussian_model_is_wrong():
    """Class 0 is a tight cluster at 0 plus a far cluster at -30 (easy points). LDA puts the
    boundary between the class means (about -8 and 3), so most of the cluster at 0 is called
    class 1; the logistic step in the same 1-D subspace moves the boundary to the gap."""
    rng = np.random.default_rng(0)

    def sample(n):
        y = np.repeat([0, 1], n)
        far = rng.random(2 * n) < 0.3
        x1 = np.where(y == 1, 3.0, np.where(far, -30.0, 0.0)) + rng.normal(size=2 * n) * 0.7
        return np.c_[x1, rng.normal(size=2 * n)], y

    x, y = sample(300)
    xt, yt = sample(200)
    lda = lda_probe(x, y, xt, yt).accuracy
    assert lda < 0.8
    assert one(x, y, xt, yt).accuracy > max(0.95, lda + 0.15)  # Bayes rate about 0.986


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_logistic_regression(seed):
    """Overlapping classes, C=1 multinomial LogisticRegression on standardised features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = blobs(80, 12, 4, 0.6, seed, noise_seed=10 + seed)
    xt, yt = blobs(150, 12, 4, 0.6, seed, noise_seed=20 + seed)
    sc = StandardScaler().fit(x)
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(sc.transform(x), y)
    ref_acc = (ref.predict(sc.transform(xt)) == yt).mean()
    assert 0.5 < ref_acc < 0.95  # neither trivial nor hopeless
    assert one(x, y, xt, yt).accuracy == pytest.approx(ref_acc, abs=0.03)


def test_deterministic():
    x, y = blobs(40, 16, 6, 0.8, 5)
    xt, yt = blobs(30, 16, 6, 0.8, 5, noise_seed=6)
    feats, feats_t = {"a": x, "b": x[:, :7]}, {"a": xt, "b": xt[:, :7]}
    a = lda_logistic_details(feats, y, feats_t, yt)
    b = lda_logistic_details(feats, y, feats_t, yt)
    assert a == b
    c = lda_logistic_details(feats, y, feats_t, yt, seed=1)  # another validation split
    assert all(0 <= r.accuracy <= 1 for r in c[0].values())


def test_strengths_chosen_without_test_labels():
    x, y = blobs(50, 30, 4, 0.7, 5)
    xt, yt = blobs(50, 30, 4, 0.7, 5, noise_seed=7)
    a, alpha_a = lda_logistic_details({"l": x}, y, {"l": xt}, yt)
    perm = np.random.default_rng(0).permutation(yt)
    b, alpha_b = lda_logistic_details({"l": x}, y, {"l": xt}, perm)
    assert alpha_a == alpha_b
    assert a["l"].alpha == b["l"].alpha and a["l"].val_accuracy == b["l"].val_accuracy
    # the test features do not matter either: only the training split chooses
    c, alpha_c = lda_logistic_details({"l": x}, y, {"l": xt[::-1].copy()}, yt)
    assert alpha_c == alpha_a and c["l"].alpha == a["l"].alpha


def test_wide_features_more_dims_than_rows():
    x, y = blobs(10, 200, 4, 1.0, 11)
    xt, yt = blobs(30, 200, 4, 1.0, 11, noise_seed=12)
    assert one(x, y, xt, yt).accuracy > 0.9
    assert one(x, np.random.default_rng(2).permutation(y), xt, yt).accuracy < 0.6


def test_constant_and_duplicate_features_and_missing_test_class():
    x, y = blobs(40, 6, 3, 3.0, 1)
    xt, yt = blobs(20, 6, 3, 3.0, 1, noise_seed=2)
    x = np.c_[x, np.zeros(len(x)), x[:, :2]]  # dead unit, duplicated units
    xt = np.c_[xt, np.zeros(len(xt)), xt[:, :2]]
    keep = yt != 2
    assert one(x, y, xt[keep], yt[keep]).accuracy > 0.95


def test_bad_labels_raise():
    x, y = blobs(10, 4, 2, 1.0, 0)
    with pytest.raises(DataError, match="at least 2"):
        one(x, np.zeros_like(y), x, y)
    with pytest.raises(DataError, match="test split is empty"):
        one(x, y, x[:0], y[:0])


def test_wide_projection_is_exact():
    """Projecting onto the span of the fitting rows changes nothing but the cost."""
    from ablab.probe.lda_logistic import _lda_directions

    x, y = blobs(12, 90, 3, 0.5, 4)
    X = x.astype(np.float64)
    for shrinkage in ("auto", 0.05):
        w, s = _lda_directions(X, y, 3, shrinkage, project=False)
        wp, sp = _lda_directions(X, y, 3, shrinkage, project=True)
        assert s == pytest.approx(sp, rel=1e-9)
        np.testing.assert_allclose(w, wp, rtol=1e-6, atol=1e-9 * float(np.abs(w).max()))


def test_fitting_rows_select_the_same_directions():
    """``rows=`` gives what the gathered rows give, whatever their order."""
    from ablab.probe.lda_logistic import _lda_directions

    x, y = blobs(40, 16, 4, 0.8, 3)
    X = x.astype(np.float64)
    rows = np.random.default_rng(0).permutation(len(y))[:100]
    w, s = _lda_directions(X, y[rows], 4, rows=rows)
    w2, s2 = _lda_directions(X[rows], y[rows], 4)
    assert s == pytest.approx(s2, rel=1e-12)
    np.testing.assert_allclose(w, w2, rtol=1e-9, atol=1e-12)


def test_constant_units_are_left_out_exactly():
    """Dead (all-zero) and constant units are dropped before the Gram matrix; the directions
    and the shrinkage equal the textbook computation on the whole matrix."""
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_lw

    from ablab.probe.lda_logistic import _lda_directions

    x, y = blobs(50, 12, 4, 0.8, 7)
    n = len(y)
    X = np.c_[x[:, :5], np.zeros(n), x[:, 5:], np.full(n, 3.0), np.zeros(n)].astype(np.float64)
    w, s = _lda_directions(X, y, 4)
    counts = np.bincount(y)
    means = np.stack([X[y == c].mean(0) for c in range(4)])
    D = X - means[y]
    mean = counts / n @ means
    sd = np.maximum(np.sqrt((D * D).mean(0) + counts / n @ (means - mean) ** 2), 1e-6)
    Ds = D / sd
    ref_s = sk_lw(Ds, assume_centered=True)
    G = Ds.T @ Ds / n
    S = (1 - ref_s) * G + ref_s * np.trace(G) / X.shape[1] * np.eye(X.shape[1])
    ref_w = np.linalg.solve(S, ((means - mean) / sd).T) / sd[:, None]
    assert s == pytest.approx(ref_s, rel=1e-9)
    np.testing.assert_allclose(w, ref_w, rtol=1e-7, atol=1e-10)
    assert not w[[5, 14]].any()  # all-zero units: left out, exact zeros
    assert np.abs(w[13]).max() < 1e-9 * np.abs(w).max()  # constant 3.0: its mean rounds


@pytest.mark.parametrize("n, p", [(200, 10), (50, 80)])
def test_ledoit_wolf_shrinkage_matches_sklearn(n, p):
    import torch
    from sklearn.covariance import ledoit_wolf_shrinkage as sk_lw

    from ablab.probe.lda_logistic import ledoit_wolf_shrinkage

    rng = np.random.default_rng(p)
    d = rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) + rng.normal(size=p)
    d = d - d.mean(0)
    D = torch.from_numpy(d)
    ours = ledoit_wolf_shrinkage(D.T @ D / n, float(D.pow(2).sum(1).pow(2).sum()), n, p)
    assert ours == pytest.approx(sk_lw(d, assume_centered=True), rel=1e-9)
    assert 0 < ours < 1


def test_fixed_shrinkage_and_its_report():
    x, y = blobs(40, 16, 4, 0.8, 3)
    xt, yt = blobs(30, 16, 4, 0.8, 3, noise_seed=4)
    res, shrink = lda_logistic_details({"a": x}, y, {"a": xt}, yt, shrinkage=0.3)
    assert shrink == {"a": 0.3}
    _, auto = lda_logistic_details({"a": x}, y, {"a": xt}, yt)
    assert 0 < auto["a"] < 1 and auto["a"] != 0.3
    assert res["a"].accuracy > 0.6


def test_runs_on_one_thread_whatever_the_size(monkeypatch):
    """Small products on several BLAS threads slowed the probe 3-100x on a busy machine, and
    its largest products are too small to win them back: it always runs on one thread."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    import ablab.probe.lda_logistic as mod

    seen = []
    inner = mod._fit_logistic

    def spy(*args, **kwargs):
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        seen.append((max(blas), torch.get_num_threads()))
        return inner(*args, **kwargs)

    monkeypatch.setattr(mod, "_fit_logistic", spy)
    x, y = blobs(200, 500, 4, 0.5, 8)  # n d^2 = 2e8: large enough for threads before
    xt, yt = blobs(20, 500, 4, 0.5, 8, noise_seed=9)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2, user_api="blas"):
            lda_logistic_details({"a": x}, y, {"a": xt}, yt)
            assert (
                max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
                == 2
            )
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert seen and all(s == (1, 1) for s in seen)


def test_large_gram_matrices_get_torch_threads(monkeypatch):
    """Above GRAM_THREADED_WORK the Gram matrix and Cholesky factorisation run on torch's
    intra-op thread count; smaller layers and the L-BFGS steps stay on one thread."""
    import os

    import scipy.linalg
    import torch
    from threadpoolctl import threadpool_info

    import ablab.probe.lda_logistic as mod

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    seen = {}
    inner = scipy.linalg.cho_factor

    def spy(S, *args, **kwargs):
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        seen[S.shape[0]] = max(blas)
        return inner(S, *args, **kwargs)

    monkeypatch.setattr(mod.sl, "cho_factor", spy)
    monkeypatch.setattr(mod, "GRAM_THREADED_WORK", 1e5)
    x, y = blobs(100, 50, 4, 0.5, 8)  # 320 fitting rows: 320 * 50^2 = 8e5 multiply-adds
    xt, yt = blobs(20, 50, 4, 0.5, 8, noise_seed=9)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lda_logistic_details({"big": x, "small": x[:, :5]}, y, {"big": xt, "small": xt[:, :5]}, yt)
    finally:
        torch.set_num_threads(before)
    assert seen == {50: 2, 5: 1}


def test_torch_path_for_gram_and_cholesky_matches_numpy():
    """The GPU path (torch products and Cholesky), run here on a CPU torch device: CI has no
    GPU, but it is the same code, so the two paths must agree."""
    from contextlib import nullcontext

    import torch

    from ablab.probe.lda_logistic import _gram, _solve_spd

    rng = np.random.default_rng(0)
    D = rng.normal(size=(300, 40)).astype(np.float32)
    cpu = torch.device("cpu")
    G = _gram(D, None, nullcontext)
    np.testing.assert_allclose(_gram(D, cpu, nullcontext), G, rtol=1e-5, atol=1e-3)
    S = G / 300 + 0.1 * np.eye(40, dtype=np.float32)
    B = rng.normal(size=(40, 3)).astype(np.float32)
    ref = np.linalg.solve(S.astype(np.float64), B)
    for dev in (None, cpu):
        got = _solve_spd(S, B, dev, nullcontext)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    bad = np.diag(np.r_[1.0, -1.0, 1.0]).astype(np.float32)
    for dev in (None, cpu):
        with pytest.raises(np.linalg.LinAlgError):
            _solve_spd(bad, np.ones((3, 1), np.float32), dev, nullcontext)
