"""Small, pure statistics over 1-D arrays (rliable style: one function, one formula).

Every function takes plain sequences/arrays of floats, ignores nothing silently (callers drop
NaN before calling) and returns plain Python floats (``nan`` where a statistic is undefined;
:func:`ablab.analysis.core.analyze` turns those into JSON ``null``).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as _st

ArrayLike = Sequence[float] | np.ndarray

DEFAULT_RESAMPLES = 2000


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float).ravel()


def iqm(x: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50 % of the values.

    ``IQM(x) = mean{x_(i) : i = k, ..., n - k - 1}`` on the sorted sample ``x_(0) <= ... <=
    x_(n-1)`` with ``k = floor(n/4)`` values cut from each end, which is
    ``scipy.stats.trim_mean(x, 0.25)`` (Agarwal et al., *Deep RL at the Edge of the Statistical
    Precipice*, NeurIPS 2021, Sec. 4). For ``n < 4`` nothing is cut (the mean).
    """
    a = _arr(x)
    if a.size == 0:
        return math.nan
    return float(_st.trim_mean(a, 0.25))


def describe(x: ArrayLike) -> dict[str, float]:
    """n, mean, std (ddof=1), sem = std/sqrt(n), median, IQM, min and max of a sample."""
    a = _arr(x)
    n = int(a.size)
    if n == 0:
        nan = math.nan
        return {
            "n": 0,
            "mean": nan,
            "std": nan,
            "sem": nan,
            "median": nan,
            "iqm": nan,
            "min": nan,
            "max": nan,
        }
    std = float(a.std(ddof=1)) if n > 1 else math.nan
    return {
        "n": n,
        "mean": float(a.mean()),
        "std": std,
        "sem": std / math.sqrt(n) if n > 1 else math.nan,
        "median": float(np.median(a)),
        "iqm": iqm(a),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def expanded_level(n: int, confidence: float = 0.95) -> float:
    """Nominal level that corrects bootstrap intervals for small samples (Hesterberg 2015).

    Percentile-type bootstrap intervals are too narrow for small ``n`` (they use ``z`` where a
    t-interval uses ``t_{n-1}``, and the plug-in variance is biased by ``(n-1)/n``). The
    *expanded* interval asks the bootstrap for the level ``1 - alpha'`` with
    ``alpha' = 2 * Phi(-sqrt(n/(n-1)) * t_{1-alpha/2, n-1})``
    (T. Hesterberg, *What Teachers Should Know About the Bootstrap*, Am. Stat. 2015, Sec. 5.3).
    The correction vanishes as ``n`` grows.
    """
    if n < 2:
        return confidence
    alpha = 1.0 - confidence
    z = math.sqrt(n / (n - 1)) * float(_st.t.ppf(1 - alpha / 2, n - 1))
    return float(1.0 - 2.0 * _st.norm.cdf(-z))


@functools.cache
def _bootstrap_rng_name() -> str:
    """scipy >= 1.15 names the generator argument of ``bootstrap`` ``rng``; older releases (the
    floor is 1.11) call it ``random_state``. A Generator passed under either name draws the same
    resamples (checked by ``tests/packaging/lowest.sh``, which runs the analysis tests there)."""
    import inspect

    return "rng" if "rng" in inspect.signature(_st.bootstrap).parameters else "random_state"


def bootstrap_ci(
    *samples: ArrayLike,
    statistic=None,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic`` (default: mean; with two samples the
    difference of means ``mean(a) - mean(b)``, resampled independently).

    Method: BCa (Efron 1987) via :func:`scipy.stats.bootstrap`, at the small-sample expanded
    level of :func:`expanded_level` (``n`` = the smallest sample), with a fixed RNG
    ``numpy.random.default_rng(seed)`` so a report is reproducible. Where BCa is undefined
    (e.g. a degenerate jackknife) the percentile interval is used; a constant sample gives the
    zero-width interval ``(c, c)``; fewer than two values give ``(nan, nan)``.

    Not used by the reports: at small ``n`` its coverage stays below nominal even at the
    expanded level (normal data, 95 %: 49 % at n = 2, 75 % at n = 3, 88 % at n = 5; see
    ``benchmarks/results/coverage.md``), where the t-interval
    (:func:`ablab.analysis.ttest.t_interval`) is exact.
    """
    arrs = [_arr(s) for s in samples]
    if not arrs or any(a.size < 2 for a in arrs):
        return (math.nan, math.nan)
    if statistic is None:
        if len(arrs) == 1:

            def statistic(a, axis=-1):
                return np.mean(a, axis=axis)
        elif len(arrs) == 2:

            def statistic(a, b, axis=-1):
                return np.mean(a, axis=axis) - np.mean(b, axis=axis)
        else:
            raise ValueError("default statistic takes one or two samples")
    if all(np.ptp(a) == 0 for a in arrs):
        v = float(statistic(*[a[None, :] for a in arrs], axis=-1)[0])
        return (v, v)
    level = expanded_level(min(a.size for a in arrs), confidence)
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                res = _st.bootstrap(
                    tuple(arrs),
                    statistic,
                    method=method,
                    n_resamples=n_resamples,
                    confidence_level=level,
                    vectorized=True,
                    paired=False,
                    **{_bootstrap_rng_name(): np.random.default_rng(seed)},
                )
            except (ValueError, FloatingPointError):
                continue
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return (lo, hi)
    return (math.nan, math.nan)


def hedges_g(a: ArrayLike, b: ArrayLike) -> float:
    """Hedges' g of ``a`` against ``b``: bias-corrected standardised mean difference.

    ``d = (mean(a) - mean(b)) / s_p`` with the pooled standard deviation
    ``s_p = sqrt(((n_a-1) s_a^2 + (n_b-1) s_b^2) / (n_a + n_b - 2))`` and
    ``g = J * d``, ``J = 1 - 3 / (4 (n_a + n_b) - 9)`` (Hedges 1981).
    """
    x, y = _arr(a), _arr(b)
    na, nb = x.size, y.size
    if na < 2 or nb < 2:
        return math.nan
    sp2 = ((na - 1) * x.var(ddof=1) + (nb - 1) * y.var(ddof=1)) / (na + nb - 2)
    diff = float(x.mean() - y.mean())
    if sp2 <= 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return float((1.0 - 3.0 / (4.0 * (na + nb) - 9.0)) * diff / math.sqrt(sp2))


def _dominance(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(P(A > B), P(A < B)) over all pairs, computed by sorting in O((n+m) log m)."""
    bs = np.sort(b)
    less = np.searchsorted(bs, a, side="left")  # number of b < a_i
    leq = np.searchsorted(bs, a, side="right")  # number of b <= a_i
    total = a.size * b.size
    gt = float(less.sum()) / total
    lt = float((b.size - leq).sum()) / total
    return gt, lt


def cliffs_delta(a: ArrayLike, b: ArrayLike) -> float:
    """Cliff's delta of ``a`` against ``b``: ``P(A > B) - P(A < B)`` over all pairs (Cliff 1993),
    in ``[-1, 1]``."""
    x, y = _arr(a), _arr(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    gt, lt = _dominance(x, y)
    return gt - lt


def prob_improvement(a: ArrayLike, b: ArrayLike, direction: str = "max") -> float:
    """Probability that a run of ``a`` is better than a run of ``b``.

    ``P(A > B) = U / (n_a n_b)`` with the Mann-Whitney statistic
    ``U = sum_ij [a_i > b_j] + 0.5 [a_i = b_j]`` (Agarwal et al. 2021, Sec. A.4); for a metric
    to minimise, "better" means smaller: ``P(A < B) + 0.5 P(A = B)``.
    """
    x, y = _arr(a), _arr(b)
    if x.size == 0 or y.size == 0:
        return math.nan
    gt, lt = _dominance(x, y)
    ties = 1.0 - gt - lt
    return (gt if direction == "max" else lt) + 0.5 * ties


def _t_power(df: float, nc: float, alpha: float) -> float:
    """Power of a two-sided t-test at level ``alpha``: ``P(|T| > t_{1-alpha/2, df})`` for ``T``
    noncentral t with ``df`` degrees of freedom and noncentrality ``nc`` (``scipy.stats.nct``).
    scipy returns NaN for a far tail at large ``nc``; that tail is 0 to double precision."""
    crit = float(_st.t.isf(alpha / 2.0, df))
    upper = float(_st.nct.sf(crit, df, abs(nc)))
    lower = float(_st.nct.cdf(-crit, df, abs(nc)))
    if not math.isfinite(upper):
        upper = 1.0 if abs(nc) > crit else 0.0
    if not math.isfinite(lower):
        lower = 0.0
    return min(1.0, upper + lower)


def _smallest_n(power_at, power: float, start: int = 2, cap: int = 10**7) -> int | None:
    """Smallest integer ``n >= start`` with ``power_at(n) >= power`` (power increases with
    ``n``): doubling, then bisection; None beyond ``cap``."""
    if power_at(start) >= power:
        return start
    lo, hi = start, start * 2
    while power_at(hi) < power:
        lo, hi = hi, hi * 2
        if hi > cap:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_at(mid) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def seeds_needed(
    delta: float, sd_diff: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Pairs a two-sided paired t-test needs to detect a true mean difference ``delta``.

    ``d_z = |delta| / sd_diff`` (standard deviation of the paired differences); the smallest
    integer ``n >= 2`` with ``P(|T| > t_{1-alpha/2, n-1}) >= power``, ``T`` noncentral t with
    ``n - 1`` df and noncentrality ``d_z sqrt(n)`` (Cohen 1988, Ch. 2; same as statsmodels
    ``TTestPower``, which returns NaN at large effects, hence the direct ``scipy.stats.nct``
    search). None when ``delta`` is 0 or undefined. Used by adaptive allocation's futility rule.
    """
    if not (math.isfinite(delta) and math.isfinite(sd_diff)) or delta == 0 or sd_diff <= 0:
        return None
    dz = abs(delta) / sd_diff
    return _smallest_n(lambda n: _t_power(n - 1, dz * math.sqrt(n), alpha), power)


def seeds_for_margin(
    margin: float, sd_within: float, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Seeds per variant for ``power`` to detect a true difference of ``margin`` (planning).

    Two-sample t-test with ``n`` runs per side, the within-variant standard deviation
    ``sd_within`` (pooled over the variants): the smallest integer ``n >= 2`` with
    ``P(|T| > t_{1-alpha/2, 2n-2}) >= power``, ``T`` noncentral t with ``2n - 2`` df and
    noncentrality ``(margin / sd_within) sqrt(n / 2)`` (Cohen 1988, Ch. 2; statsmodels
    ``TTestIndPower`` agrees where it is defined). A paired analysis with positively
    correlated seeds needs fewer, so this is an upper planning figure. Never computed from an
    observed effect (post-hoc power says nothing the p-value does not). None when undefined.
    """
    ok = math.isfinite(margin) and math.isfinite(sd_within) and margin > 0
    if not ok or sd_within < 0:
        return None
    if sd_within == 0:
        return 2
    es = margin / sd_within
    return _smallest_n(lambda n: _t_power(2 * n - 2, es * math.sqrt(n / 2.0), alpha), power)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm step-down adjustment (Holm 1979) of a family of p-values.

    With the ``m`` finite p-values sorted ascending, ``p_(i)^adj = max_{j<=i} min(1,
    (m - j + 1) p_(j))``, mapped back to the input order; NaN entries are left out of the
    family and stay NaN. Identical to statsmodels ``multipletests(method="holm")`` (checked in
    the tests), written out because that function runs ``gc.collect()`` on every call, which
    costs ~0.1 s in a process holding torch and dominated leave-one-seed-out analyses.
    """
    p = _arr(pvalues)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m:
        order = np.argsort(p[ok], kind="stable")
        scaled = np.minimum(1.0, (m - np.arange(m)) * p[ok][order])
        out[ok[order]] = np.maximum.accumulate(scaled)
    return out
