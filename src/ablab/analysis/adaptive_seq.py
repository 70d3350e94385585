"""Sequential tests behind adaptive seed allocation (pure functions, see ``docs/adaptive.md``).

Two families of *repeated* tests of ``H0: E[d] = 0`` for paired differences
``d_i = variant_i - baseline_i`` (seed ``i``), both usable at every look without inflating the
type-I error:

* **Group-sequential, error spending** (default): two-sided boundaries ``c_1..c_K`` for the
  looks at information fractions ``t_k = n_k / N`` (``N`` = ``max_seeds``), chosen so that the
  probability of crossing first at look ``k`` under ``H0`` is ``alpha(t_k) - alpha(t_{k-1})``
  (Lan & DeMets, *Discrete sequential boundaries for clinical trials*, Biometrika 1983), with
  the O'Brien-Fleming-type spending ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))`` (O'Brien &
  Fleming, Biometrics 1979) or the Pocock-type ``alpha(t) = alpha ln(1 + (e - 1) t)``. The
  crossing probabilities of the canonical joint distribution (``Z_k = S_k / sqrt(I_k)``, ``S``
  a Brownian motion in information time) are computed by recursive numerical integration
  (Armitage, McPherson & Rowe, JRSS A 1969; Jennison & Turnbull, *Group Sequential Methods
  with Applications to Clinical Trials*, 2000, Ch. 19). The variance is unknown, so the paired
  t statistic at each look is mapped to the normal scale by its p-value,
  ``z_k = sign(t_k) Phi^{-1}(1 - F_{t, n_k - 1}(-|t_k|))`` (the "significance level approach"
  of Jennison & Turnbull 2000): exact marginally, approximate jointly.
* **Anytime-valid mixture e-process**: the Bayes factor of the scale-invariant paired t-test
  with a ``N(0, g)`` prior on the standardised effect ``delta / sigma``,
  ``E_n = (1 + n g)^{-1/2} [(1 + t^2/nu) / (1 + t^2 / (nu (1 + n g)))]^{(nu + 1)/2}``,
  ``nu = n - 1`` (Rouder et al., Psychon. Bull. Rev. 2009, eq. 1 with fixed ``g``), is a test
  martingale under ``H0`` for the filtration of the scale-invariant data (Pérez-Ortiz, Lardy,
  de Heide & Grünwald, *E-statistics, group invariance and anytime-valid testing*, Ann. Stat.
  2024), so by Ville's inequality ``P(sup_n E_n >= 1/alpha) <= alpha``: exact for normal
  differences, at any number of looks and any data-dependent schedule, at a cost in power.

Both assume (approximately) normal paired differences, as the paired t-test does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

SPENDING = ("obf", "pocock")
METHODS = (*SPENDING, "mixture")
_GRID = 301


def spend(t: float, alpha: float, kind: str = "obf") -> float:
    """Cumulative type-I error spent by information fraction ``t`` (Lan & DeMets 1983).

    ``obf``: ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``; ``pocock``:
    ``alpha(t) = alpha ln(1 + (e - 1) t)``; both give ``alpha(0) = 0``, ``alpha(1) = alpha``.
    """
    from scipy.stats import norm

    t = min(max(float(t), 0.0), 1.0)
    if t <= 0.0:
        return 0.0
    if kind == "obf":
        return float(2.0 * norm.sf(norm.isf(alpha / 2.0) / math.sqrt(t)))
    if kind == "pocock":
        return float(alpha * math.log1p((math.e - 1.0) * t))
    raise ValueError(f"unknown spending function {kind!r}")


@lru_cache(maxsize=8192)
def gs_boundaries(
    fractions: tuple[float, ...], alpha: float, kind: str = "obf"
) -> tuple[float, ...]:
    """Two-sided critical values ``|Z_k| >= c_k`` of an error-spending group-sequential test.

    ``fractions`` are the strictly increasing information fractions ``t_k`` of the looks so far
    (``t_K = 1`` at the planned maximum). ``c_k`` solves
    ``P_0(|Z_j| < c_j, j < k; |Z_k| >= c_k) = alpha(t_k) - alpha(t_{k-1})`` under the canonical
    joint distribution, by recursive integration of the sub-density of ``S_k = sqrt(t_k) Z_k``
    on a grid of the continuation region (trapezoid rule, 301 points). A boundary that can
    spend nothing is ``inf``. Boundaries depend only on the looks up to ``k`` (memoised).
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    out: list[float] = []
    spent = 0.0
    nodes = dens = None
    prev_t = 0.0
    for t in fractions:
        target = spend(t, alpha, kind) - spent
        spent += max(target, 0.0)
        sd = math.sqrt(t)
        if nodes is None:

            def cross(c: float) -> float:
                return float(2.0 * norm.sf(c))
        else:
            step = math.sqrt(t - prev_t)
            mass = dens * _trapezoid(nodes)

            def cross(c: float, mass=mass, nodes=nodes, step=step, sd=sd) -> float:
                hi = c * sd
                tail = norm.sf((hi - nodes) / step) + norm.cdf((-hi - nodes) / step)
                return float(mass @ tail)

        if target <= 1e-14:
            c = math.inf
        elif cross(0.0) <= target:
            c = 0.0
        else:
            c = float(brentq(lambda x, tg=target: cross(x) - tg, 0.0, 40.0, xtol=1e-10))
        out.append(c)
        half = min(c, 9.0) * sd
        new_nodes = np.linspace(-half, half, _GRID)
        if nodes is None:
            dens = norm.pdf(new_nodes / sd) / sd
        else:
            kern = norm.pdf((new_nodes[:, None] - nodes[None, :]) / step) / step
            dens = kern @ (dens * _trapezoid(nodes))
        nodes, prev_t = new_nodes, t
    return tuple(out)


def _trapezoid(x: np.ndarray) -> np.ndarray:
    """Trapezoid-rule weights of an equally spaced grid."""
    w = np.full(x.size, x[1] - x[0] if x.size > 1 else 0.0)
    w[[0, -1]] *= 0.5
    return w


def paired_t(d: np.ndarray) -> float:
    """Paired t statistic ``mean(d) / (sd(d) / sqrt(n))`` (``sd`` with ddof 1); ``0`` or
    ``+-inf`` for constant differences."""
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else math.nan
    if not sd > 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / (sd / math.sqrt(d.size))


def t_to_z(t: float, df: int) -> float:
    """Normal score with the same one-sided p-value: ``sign(t) Phi^{-1}(1 - F_{t,df}(-|t|))``."""
    from scipy.stats import norm
    from scipy.stats import t as student

    if math.isinf(t):
        return t
    return math.copysign(float(norm.isf(student.sf(abs(t), df))), t)


def mixture_log_e(t: float, n: int, g: float = 1.0) -> float:
    """Log of the normal-mixture e-value of the paired t-test after ``n`` pairs (module doc):
    ``log E_n = -log(1 + n g)/2 + (nu + 1)/2 [log(1 + t^2/nu) - log(1 + t^2/(nu (1 + n g)))]``."""
    if n < 2:
        return 0.0
    if math.isinf(t):
        return math.inf
    nu = n - 1.0
    r = 1.0 + n * g
    return -0.5 * math.log(r) + 0.5 * (nu + 1.0) * (
        math.log1p(t * t / nu) - math.log1p(t * t / (nu * r))
    )


def anytime_p(d: np.ndarray, g: float = 1.0) -> tuple[float, int]:
    """Anytime-valid p-value ``min(1, 1 / max_{2<=k<=n} E_k)`` over every prefix of ``d`` (in
    seed order), and the sign of the mean difference at the prefix where ``E`` peaked.

    Valid at any data-dependent stopping time: ``P_0(p <= a) <= a`` by Ville's inequality.
    """
    n = d.size
    if n < 2:
        return 1.0, 0
    k = np.arange(1, n + 1, dtype=float)
    mean = np.cumsum(d) / k
    ss = np.cumsum(d * d) - k * mean * mean
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(np.maximum(ss, 0.0) / (k - 1))
        t = mean / (sd / np.sqrt(k))
    t = np.where(
        sd > 1e-12 * np.maximum(np.abs(mean), 1e-300),
        t,
        np.where(mean == 0, 0.0, np.sign(mean) * np.inf),
    )[1:]
    kk, nu = k[1:], k[1:] - 1.0
    r = 1.0 + kk * g
    with np.errstate(invalid="ignore", over="ignore"):
        le = -0.5 * np.log(r) + 0.5 * (nu + 1.0) * (
            np.log1p(t * t / nu) - np.log1p(t * t / (nu * r))
        )
    le = np.where(np.isinf(t), np.inf, le)
    i = int(np.argmax(le))
    best, sign = float(le[i]), int(np.sign(mean[i + 1]))
    return (min(1.0, math.exp(-best)) if best < 745 else 0.0), sign


def gs_crossing(
    d: np.ndarray, looks: Sequence[int], horizon: int, level: float, kind: str = "obf"
) -> tuple[int, float, float]:
    """Does the group-sequential test at ``level`` reject by the last of ``looks``?

    ``looks`` are the numbers of pairs at each look so far (increasing, each ``>= 2``); the
    statistic at look ``k`` is :func:`t_to_z` of the paired t of the first ``n_k`` pairs.
    Returns ``(sign, z, c)``: the sign of the first crossing (``0`` when none), and the
    current look's ``z`` and critical value ``c``.
    """
    fr: list[float] = []
    ns: list[int] = []
    for n in looks:
        f = min(n / horizon, 1.0)
        if not fr or f > fr[-1]:
            fr.append(f)
            ns.append(n)
        else:
            ns[-1] = n
    bounds = gs_boundaries(tuple(round(f, 12) for f in fr), float(level), kind)
    sign, z, c = 0, math.nan, math.nan
    for n, c in zip(ns, bounds, strict=True):
        z = t_to_z(paired_t(d[:n]), n - 1)
        if sign == 0 and abs(z) >= c:
            sign = 1 if z > 0 else -1
    return sign, z, c
