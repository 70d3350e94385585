"""t-based tests, intervals and equivalence tests: the methods behind every verdict.

One function per formula. Each test returns its p-value *and* the interval from the same
``(estimate, standard error, degrees of freedom)``, so the ``1 - alpha`` interval excludes 0
exactly when the two-sided p-value is below ``alpha`` (the interval inverts the test). The
intervals have exact nominal coverage for normal data at every ``n >= 2`` (Student 1908;
Welch 1947 approximately), unlike bootstrap percentile/BCa intervals, which at ``n = 3``
cannot leave the sample's range (coverage measured in ``benchmarks/results/coverage.md``).

The p-values and intervals are computed by scipy (``ttest_rel``, ``ttest_ind(equal_var=False)``
and their ``confidence_interval``); the equivalence test (TOST, Schuirmann 1987) is the two
one-sided tests on the same statistic, checked against statsmodels' ``ttost_paired`` and
``ttost_ind``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

ArrayLike = Sequence[float] | np.ndarray


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float).ravel()


def t_interval(x: ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Student t-interval of the mean: ``mean ± t_{(1+confidence)/2, n-1} s / sqrt(n)``.

    Exact coverage for normal data at every ``n >= 2``. A constant sample gives the
    zero-width interval ``(c, c)``; fewer than two values give ``(nan, nan)``.
    """
    a = _arr(x)
    if a.size < 2:
        return (math.nan, math.nan)
    m = float(a.mean())
    sd = float(a.std(ddof=1))
    if sd == 0:
        return (m, m)
    half = float(_st.t.ppf(0.5 + confidence / 2.0, a.size - 1)) * sd / math.sqrt(a.size)
    return (m - half, m + half)


@dataclass(frozen=True)
class TTest:
    """A two-sided t-test of ``delta = 0`` and the interval from the same statistic.

    ``test`` is ``"paired-t"`` or ``"welch-t"``; ``delta`` the estimate (variant - baseline),
    ``se`` its standard error, ``df`` the degrees of freedom, ``p`` the two-sided p-value,
    ``ci`` the two-sided ``confidence`` interval of ``delta``. ``untestable`` names why no
    test exists (then ``p``, ``se``, ``df`` and ``ci`` are NaN).
    """

    test: str
    delta: float
    se: float
    df: float
    p: float
    ci: tuple[float, float]
    confidence: float
    untestable: str | None = None


def _nan_test(test: str, delta: float, confidence: float, why: str) -> TTest:
    nan = math.nan
    return TTest(test, delta, nan, nan, nan, (nan, nan), confidence, why)


def paired_t(v: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> TTest:
    """Paired t-test of ``v_i - b_i`` (``scipy.stats.ttest_rel``) and its t-interval.

    ``se = sd(d)/sqrt(n)``, ``df = n - 1``. Untestable with fewer than two pairs or when all
    differences are equal (zero variance: the t statistic is 0/0 or ±inf, no p-value exists).
    """
    x, y = _arr(v), _arr(b)
    d = x - y
    delta = float(d.mean()) if d.size else math.nan
    if d.size < 2:
        return _nan_test("paired-t", delta, confidence, f"only {d.size} pair(s); a test needs 2")
    if np.ptp(d) == 0:
        return _nan_test(
            "paired-t", delta, confidence, "every paired difference is equal (zero variance)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _st.ttest_rel(x, y)
        ci = r.confidence_interval(confidence)
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    return TTest(
        "paired-t", delta, se, float(r.df), float(r.pvalue), (float(ci.low), float(ci.high)),
        confidence,
    )  # fmt: skip


def welch_t(v: ArrayLike, b: ArrayLike, confidence: float = 0.95) -> TTest:
    """Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) and its interval.

    ``se = sqrt(s_v^2/n_v + s_b^2/n_b)``, Welch-Satterthwaite ``df``. Untestable with fewer
    than two values on a side or zero variance on both sides.
    """
    x, y = _arr(v), _arr(b)
    delta = float(x.mean() - y.mean()) if x.size and y.size else math.nan
    if x.size < 2 or y.size < 2:
        return _nan_test(
            "welch-t",
            delta,
            confidence,
            f"{x.size} value(s) against {y.size}; a test needs 2 on each side",
        )
    if np.ptp(x) == 0 and np.ptp(y) == 0:
        return _nan_test(
            "welch-t", delta, confidence, "both sides are constant (zero variance on both sides)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _st.ttest_ind(x, y, equal_var=False)
        ci = r.confidence_interval(confidence)
    se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    return TTest(
        "welch-t", delta, se, float(r.df), float(r.pvalue), (float(ci.low), float(ci.high)),
        confidence,
    )  # fmt: skip


def tost_p(delta: float, se: float, df: float, margin: float) -> float:
    """p-value of the equivalence test ``H0: |true delta| >= margin`` (TOST, Schuirmann 1987).

    The larger of the two one-sided p-values ``P(T_df >= (delta + margin)/se)`` (against
    ``delta <= -margin``) and ``P(T_df <= (delta - margin)/se)`` (against ``delta >= margin``).
    Rejecting at ``alpha`` is the same as the ``1 - 2 alpha`` interval lying inside
    ``(-margin, margin)``. NaN when the test is undefined.
    """
    if not all(math.isfinite(x) for x in (delta, se, df, margin)) or se <= 0 or margin <= 0:
        return math.nan
    lower = float(_st.t.sf((delta + margin) / se, df))
    upper = float(_st.t.cdf((delta - margin) / se, df))
    return max(lower, upper)


def pooled_sd(groups: Sequence[ArrayLike]) -> float:
    """Pooled within-group standard deviation ``sqrt(sum (n_g - 1) s_g^2 / sum (n_g - 1))``
    over the groups with at least two values; NaN when none has."""
    num = den = 0.0
    for g in groups:
        a = _arr(g)
        if a.size >= 2:
            num += (a.size - 1) * float(a.var(ddof=1))
            den += a.size - 1
    return math.sqrt(num / den) if den > 0 else math.nan
