import math

import numpy as np
import pytest

from ablab.analysis.adaptive import allocate_seeds, runs_saved, schedule
from ablab.analysis.adaptive_race import race_round
from ablab.analysis.adaptive_seq import (
    anytime_p,
    gs_boundaries,
    mixture_log_e,
    spend,
    t_to_z,
)
from ablab.errors import DataError, SpecError


def study(rng, effects, n, noise=1.0):
    """Potential outcomes of a baseline and variants over seeds 0..n-1 (paired by seed)."""
    seed_effect = rng.normal(0, 1, n)
    out = {"base": seed_effect + rng.normal(0, noise, n)}
    for j, e in enumerate(effects):
        out[f"v{j}"] = e + seed_effect + rng.normal(0, noise, n)
    return out


def run(pot, lo, hi, **kw):
    """Drive allocate_seeds round by round as the engine would; return (decision, results)."""
    have = dict.fromkeys(pot, lo)
    for _ in range(100):
        res = {k: {s: float(pot[k][s]) for s in range(have[k])} for k in pot}
        dec = allocate_seeds(res, baseline="base", min_seeds=lo, max_seeds=hi, **kw)
        if dec.done:
            return dec, res
        assert dec.add["base"] >= 0 and all(v >= 0 for v in dec.add.values())
        for k, a in dec.add.items():
            have[k] += a
        assert max(have.values()) <= hi
    raise AssertionError("allocation did not finish")


def test_boundaries_spend_alpha_exactly():
    fr = (0.25, 0.5, 0.75, 1.0)
    for kind in ("obf", "pocock"):
        b = np.array(gs_boundaries(fr, 0.05, kind))
        rng = np.random.default_rng(0)
        inc = np.diff(np.r_[0.0, fr])
        z = np.cumsum(rng.normal(size=(100_000, 4)) * np.sqrt(inc), 1) / np.sqrt(fr)
        assert np.mean((np.abs(z) >= b).any(1)) == pytest.approx(0.05, abs=0.003)
    obf = gs_boundaries(fr, 0.05, "obf")
    assert obf[0] > obf[1] > obf[2] > obf[3] > 1.96  # O'Brien-Fleming shape
    assert gs_boundaries((1.0,), 0.05, "obf")[0] == pytest.approx(1.959964, abs=1e-5)
    assert spend(1.0, 0.05, "pocock") == pytest.approx(0.05)
    assert spend(0.0, 0.05) == 0.0


def test_t_to_z_and_mixture_formula():
    from scipy import stats

    assert t_to_z(2.0, 5) == pytest.approx(stats.norm.isf(stats.t.sf(2.0, 5)))
    assert t_to_z(-math.inf, 3) == -math.inf
    # E_n equals the ratio of the scaled-t density (prior-mixed noncentral t) to the central t
    t, n, g = 1.7, 8, 0.5
    r = 1 + n * g
    ratio = stats.t.pdf(t / math.sqrt(r), n - 1) / math.sqrt(r) / stats.t.pdf(t, n - 1)
    assert math.exp(mixture_log_e(t, n, g)) == pytest.approx(ratio)


def test_clear_effect_stops_early_with_right_verdict():
    rng = np.random.default_rng(1)
    pot = study(rng, [3.0, -3.0, 0.0], 20)
    dec, res = run(pot, 3, 20)
    assert dec.verdicts["v0"] == "better" and dec.variants["v0"].status == "settled-better"
    assert dec.verdicts["v1"] == "worse"
    assert dec.variants["v0"].n < 20 and dec.variants["v1"].n < 20
    saved = runs_saved(res, fixed_seeds=20)
    assert saved.used < saved.fixed and saved.saved == saved.fixed - saved.used
    assert "saved" in str(saved)


def test_direction_min_flips_verdict():
    rng = np.random.default_rng(2)
    pot = study(rng, [3.0], 12)
    dec, _ = run(pot, 3, 12, direction="min")
    assert dec.verdicts["v0"] == "worse"


def test_null_runs_to_max_or_stops_for_futility():
    rng = np.random.default_rng(3)
    statuses = []
    for _ in range(20):
        dec, _ = run(study(rng, [0.0, 0.0], 12), 3, 12)
        for v in dec.variants.values():
            statuses.append(v.status)
            if v.status == "futile":  # documented rule: optimistic effect needs > max_seeds
                assert v.seeds_needed is None or v.seeds_needed > 12
            if v.status == "settled-inconclusive":
                assert v.n == 12
    assert set(statuses) <= {"futile", "settled-inconclusive", "settled-better", "settled-worse"}
    assert statuses.count("futile") > 0
    assert sum(s.startswith("settled-b") or s.startswith("settled-w") for s in statuses) <= 3


def test_first_round_asks_for_min_seeds_and_baseline_follows():
    res = {"base": {0: 1.0}, "v0": {0: 1.1}, "v1": {}}
    dec = allocate_seeds(res, baseline="base", min_seeds=3, max_seeds=9)
    assert dec.target == {"base": 3, "v0": 3, "v1": 3} and not dec.done
    assert dec.add == {"base": 2, "v0": 2, "v1": 3}
    assert schedule(3, 9, 2) == (3, 5, 7, 9)
    assert dec.schedule == schedule(3, 9, 2)
    rng = np.random.default_rng(4)
    pot = study(rng, [0.3], 9)
    res = {k: {s: float(v[s]) for s in range(3)} for k, v in pot.items()}
    dec = allocate_seeds(res, baseline="base", min_seeds=3, max_seeds=9, futility_from=9)
    assert dec.variants["v0"].status == "continue" and dec.target == {"base": 5, "v0": 5}


@pytest.mark.parametrize("method", ["obf", "mixture"])
def test_null_family_error_rate_at_most_alpha(method):
    """300 all-null studies (3 variants sharing a baseline), repeated looks, no futility:
    the family-wise false-positive rate stays at alpha (+ 2.5 Monte Carlo SE)."""
    rng = np.random.default_rng(10)
    alpha, n_studies, hits = 0.1, 300, 0
    for _ in range(n_studies):
        dec, _ = run(
            study(rng, [0.0, 0.0, 0.0], 11), 3, 11, alpha=alpha, method=method, futility_from=99
        )
        hits += any(v in ("better", "worse") for v in dec.verdicts.values())
    se = math.sqrt(alpha * (1 - alpha) / n_studies)
    assert hits / n_studies <= alpha + 2.5 * se


def test_mixture_anytime_p_is_valid_over_all_prefixes():
    rng = np.random.default_rng(11)
    ps = np.array([anytime_p(rng.normal(0, 1, 30))[0] for _ in range(2000)])
    assert np.mean(ps <= 0.1) <= 0.1 + 0.02
    p, sign = anytime_p(rng.normal(2.0, 1, 15))
    assert p < 1e-3 and sign == 1
    d = rng.normal(0.3, 1, 12)  # the vectorised p equals the prefix-by-prefix definition
    best = max(
        mixture_log_e(float(d[:k].mean() / (d[:k].std(ddof=1) / math.sqrt(k))), k)
        for k in range(2, 13)
    )
    assert anytime_p(d)[0] == pytest.approx(min(1.0, math.exp(-best)))
    assert anytime_p(np.array([0.5, 0.5, 0.5])) == (0.0, 1)


def test_race_drops_clearly_worse_and_keeps_best():
    rng = np.random.default_rng(5)
    pot = study(rng, [0.0, 0.2, -4.0, -4.0, 1.0], 30)
    del pot["base"]
    have, alive = dict.fromkeys(pot, 3), None
    for _ in range(50):
        res = {k: {s: float(pot[k][s]) for s in range(have[k])} for k in pot}
        dec = race_round(
            res, alpha=0.05, max_seeds=10, alive=alive, batch=2, max_seeds_per_variant=30
        )
        if dec.done:
            break
        alive = dec.alive
        for k, a in dec.add.items():
            have[k] += a
    assert "v4" in dec.alive and dec.best == "v4"
    assert {"v2", "v3"} <= set(dec.eliminated)
    assert dec.level == pytest.approx(0.05 / 4)
    total = sum(len(v) for v in res.values())
    assert total <= 5 * 10 + 5  # budget of the fixed plan (+ one catch-up round)
    assert max(have[k] for k in dec.alive) > 10  # saved runs went to the contenders


def test_race_keep_and_validation():
    res = {"a": {0: 1.0, 1: 1.1, 2: 1.2, 3: 1.0}, "b": {0: 9.0, 1: 9.1, 2: 9.3, 3: 9.0}}
    dec = race_round(res, keep=["a"], max_seeds=4)
    assert "a" in dec.alive and dec.best == "b"
    with pytest.raises(DataError, match="'c' has no results"):
        race_round(res, alive=["c"])
    with pytest.raises(DataError, match="at least two"):
        race_round({"a": {0: 1.0}})
    with pytest.raises(SpecError, match="direction"):
        race_round(res, direction="up")


def test_bad_input_messages():
    res = {"base": {0: 1.0, 1: 2.0, 2: 3.0}, "v": {0: 1.0, 1: 2.0, 2: 3.5}}
    with pytest.raises(DataError, match="baseline 'bsae'.*") as e:
        allocate_seeds(res, baseline="bsae")
    assert "did you mean 'base'" in str(e.value)
    with pytest.raises(DataError, match="seed 1: metric value nan"):
        allocate_seeds({**res, "v": {0: 1.0, 1: float("nan")}}, baseline="base")
    with pytest.raises(DataError, match="nothing to compare"):
        allocate_seeds({"base": res["base"]}, baseline="base")
    with pytest.raises(SpecError, match="max_seeds .* smaller than min_seeds"):
        allocate_seeds(res, baseline="base", min_seeds=5, max_seeds=4)
    with pytest.raises(SpecError, match="min_seeds must be an integer >= 3"):
        allocate_seeds(res, baseline="base", min_seeds=2)
    with pytest.raises(SpecError, match="alpha"):
        allocate_seeds(res, baseline="base", alpha=1.5)
    with pytest.raises(SpecError, match="unknown sequential method 'obff'") as e:
        allocate_seeds(res, baseline="base", method="obff")
    assert "did you mean 'obf'" in str(e.value)
    with pytest.raises(SpecError, match="fixed_seeds"):
        runs_saved(res, fixed_seeds=0)
    with pytest.raises(DataError, match="non-empty"):
        runs_saved({}, fixed_seeds=3)
