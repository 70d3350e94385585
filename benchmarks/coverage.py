"""Coverage of the report's intervals at the sample sizes ablation studies use (issue 15 §1).

For each distribution (normal, lognormal, Student t with 3 df) and n in 2, 3, 4, 5, 10, 30,
simulated studies give the share of intervals that cover the true value:

* the mean of one variant: ablab's Student t-interval (``ablab.analysis.ttest.t_interval``,
  what reports print) against the BCa bootstrap at the small-sample expanded level
  (``ablab.analysis.stats.bootstrap_ci``, what reports printed before; scipy.stats.bootstrap);
* the paired delta (variant - baseline on shared seeds, with a seed effect shared by both and
  a true delta of 0): ablab's paired t-interval (``ablab.analysis.ttest.paired_t``) against the
  same bootstrap of the differences; for the bootstrap also the share of studies in which its
  interval and the paired t-test disagree (interval excludes 0 while p >= alpha or the reverse:
  what a reader saw as "CI excludes 0, verdict no-difference"). For the t-interval that share
  is 0 by construction (it inverts the test).

    PYTHONPATH=src .venv/bin/python benchmarks/coverage.py [--reps 20000] [--boot-reps 300]

Writes ``benchmarks/results/coverage.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from ablab.analysis.stats import bootstrap_ci
from ablab.analysis.ttest import paired_t, t_interval

NS = (2, 3, 4, 5, 10, 30)
DISTS = ("normal", "lognormal", "t3")


def draw(rng: np.random.Generator, dist: str, shape) -> tuple[np.ndarray, float]:
    """Samples and their true mean."""
    if dist == "normal":
        return rng.normal(0.0, 1.0, shape), 0.0
    if dist == "lognormal":
        return rng.lognormal(0.0, 1.0, shape), math.exp(0.5)
    return rng.standard_t(3, shape), 0.0


def t_rows(x: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-wise Student t-interval and two-sided p-value of mean 0 (vectorised; the same
    formula as ``t_interval``/``paired_t``, checked against them on the first rows)."""
    n = x.shape[1]
    m = x.mean(axis=1)
    se = x.std(axis=1, ddof=1) / math.sqrt(n)
    half = stats.t.ppf(1 - alpha / 2, n - 1) * se
    p = 2 * stats.t.sf(np.abs(m / se), n - 1)
    return m - half, m + half, p


def coverage(rng, dist: str, n: int, reps: int, boot_reps: int, alpha: float) -> dict:
    x, mu = draw(rng, dist, (reps, n))
    lo, hi, _ = t_rows(x, alpha)
    for i in range(50):  # the vectorised rows are ablab's t-interval
        assert np.allclose(t_interval(x[i], 1 - alpha), (lo[i], hi[i]))
    t_mean = np.mean((lo <= mu) & (mu <= hi))
    b_mean = np.mean(
        [
            lo <= mu <= hi
            for lo, hi in (
                bootstrap_ci(r, confidence=1 - alpha, n_resamples=1000, seed=i)
                for i, r in enumerate(x[:boot_reps])
            )
        ]
    )
    seed_effect = rng.normal(0.0, 1.0, (reps, n))
    e1, m1 = draw(rng, dist, (reps, n))
    e2, m2 = draw(rng, dist, (reps, n))
    base = seed_effect + e1 - m1
    var = seed_effect + e2 - m2  # true delta 0
    lo, hi, p = t_rows(var - base, alpha)
    for i in range(50):  # ... and ablab's paired t-test and interval
        r = paired_t(var[i], base[i], 1 - alpha)
        assert np.allclose((*r.ci, r.p), (lo[i], hi[i], p[i]))
    t_cov = np.mean((lo <= 0) & (0 <= hi))
    b_cov = disagree = 0
    for i in range(boot_reps):
        blo, bhi = bootstrap_ci(var[i] - base[i], confidence=1 - alpha, n_resamples=1000, seed=i)
        covered = blo <= 0.0 <= bhi
        b_cov += covered
        disagree += (not covered) != (p[i] < alpha)
    return {
        "t_mean": t_mean,
        "boot_mean": b_mean,
        "t_delta": t_cov,
        "boot_delta": b_cov / boot_reps,
        "boot_disagree": disagree / boot_reps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20000, help="studies per cell (t-intervals)")
    ap.add_argument("--boot-reps", type=int, default=300, help="studies per cell (bootstrap)")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "coverage.md"))
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from _machine import describe

    rng = np.random.default_rng(20261202)
    t0 = time.perf_counter()
    rows = []
    for dist in DISTS:
        for n in NS:
            r = coverage(rng, dist, n, args.reps, args.boot_reps, args.alpha)
            rows.append((dist, n, r))
            print(
                f"{dist:9s} n={n:2d}  mean: t {100 * r['t_mean']:.1f}%  boot "
                f"{100 * r['boot_mean']:.1f}%   delta: t {100 * r['t_delta']:.1f}%  boot "
                f"{100 * r['boot_delta']:.1f}% (disagrees with p: {100 * r['boot_disagree']:.1f}%)",
                flush=True,
            )
    wall = time.perf_counter() - t0
    level = f"{100 * (1 - args.alpha):g}%"
    se_t = 100 * math.sqrt(0.05 * 0.95 / args.reps)
    se_b = 100 * math.sqrt(0.05 * 0.95 / args.boot_reps)
    lines = [
        f"# Coverage of {level} intervals at small n (simulation)",
        "",
        f"Generated by `benchmarks/coverage.py` ({args.reps} studies per cell for the "
        f"t-intervals, {args.boot_reps} for the bootstrap, alpha = {args.alpha}, {wall:.0f} s).",
        "",
        f"Machine: {describe()}",
        "",
        "Share of simulated studies whose interval covers the true value. *Mean*: one sample of "
        "n runs. *Paired delta*: n seeds, variant and baseline share a per-seed effect "
        "(N(0, 1)) plus independent noise from the distribution; true delta 0. "
        "*t* = ablab's reports (Student t-interval; paired t-interval, the interval of the "
        "test that decides the verdict). *BCa* = the bootstrap the reports used before "
        "(scipy.stats.bootstrap BCa at Hesterberg's expanded level, 1000 resamples). "
        "*BCa ≠ p*: share of null studies in which the BCa interval of the delta and the "
        "paired t-test disagree about the delta being 0 (t-interval: 0 by construction). "
        f"Monte Carlo standard error of a 95% coverage: {se_t:.2f} points (t), {se_b:.1f} "
        "(BCa).",
        "",
        "| data | n | mean: t | mean: BCa | paired Δ: t | paired Δ: BCa | BCa ≠ p |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dist, n, r in rows:
        lines.append(
            f"| {dist} | {n} | {100 * r['t_mean']:.1f}% | {100 * r['boot_mean']:.1f}% | "
            f"{100 * r['t_delta']:.1f}% | {100 * r['boot_delta']:.1f}% | "
            f"{100 * r['boot_disagree']:.1f}% |"
        )
    normal = [r for d, _, r in rows if d == "normal"]
    worst = min(min(r["t_mean"], r["t_delta"]) for r in normal)
    lines += [
        "",
        f"Normal data: the t-intervals cover at least {100 * worst:.1f}% at every n "
        f"(target >= 94%). Skewed (lognormal) data lower the t-interval's coverage of a "
        "mean at small n (its sampling distribution is skewed); paired differences of "
        "identically distributed noise are symmetric, so the paired interval keeps its level.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
