"""``--race``: successive rounds that drop variants clearly worse than the current best.

The rule (:func:`race_round`). Among the variants still alive, the current best ``b`` is the
one with the best mean on the seeds all alive variants share. Every other alive variant ``i``
is compared with ``b`` on their paired differences ``d_s = x_{i,s} - x_{b,s}`` (shared seeds, in
seed order) by the anytime-valid p-value of the mixture e-process of the paired t-test,
``p_i = min(1, 1 / max_k E_k)`` (:func:`ablab.analysis.adaptive_seq.anytime_p`; Pérez-Ortiz,
Lardy, de Heide & Grünwald, Ann. Stat. 2024). ``i`` is dropped when ``p_i <= alpha / (M - 1)``
and its mean is worse than ``b``'s, ``M`` being the number of variants that entered the race.

The guarantee. Take a variant ``i*`` whose mean equals the best mean. It can only be dropped
against some other variant ``j``; for each of the ``M - 1`` pairs ``(i*, j)`` the anytime
p-value is valid over all rounds at once (Ville's inequality), whatever the best of the round
and the schedule, so by the union bound (Bonferroni over the ``M - 1`` possible opponents,
which also covers the data-driven choice of ``b``) P(a best variant is ever dropped) <=
``alpha``, for normal paired differences. Runs saved on dropped variants go to the others:
each round, alive variants get ``batch`` more seeds while the budget (default: the fixed plan,
``M * max_seeds`` runs) lasts, up to ``max_seeds_per_variant``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ablab.analysis.adaptive import Results, check_results, paired_diffs
from ablab.errors import DataError, SpecError, did_you_mean


@dataclass(frozen=True)
class RaceDecision:
    """After a race round: ``alive`` variants (best first); ``dropped`` this round (name -> the
    best it lost to, with ``p_values[name]``); ``eliminated`` every variant no longer alive;
    ``add``/``target`` seeds for the next round; ``done`` when the race is over."""

    best: str
    alive: tuple[str, ...]
    dropped: dict[str, str]
    p_values: dict[str, float]
    add: dict[str, int]
    target: dict[str, int]
    done: bool
    level: float
    eliminated: tuple[str, ...] = ()


def race_round(
    results: Results,
    *,
    direction: str = "max",
    alpha: float = 0.05,
    alive: Collection[str] | None = None,
    keep: Collection[str] = (),
    min_seeds: int = 3,
    max_seeds: int = 10,
    batch: int = 2,
    budget: int | None = None,
    max_seeds_per_variant: int | None = None,
    prior_scale: float = 2.0,
) -> RaceDecision:
    """One round of the race (rule and guarantee in the module docstring).

    ``results`` maps every variant that entered the race (dropped ones included, so that
    ``M = len(results)``) to ``{seed: value}``; ``alive`` the variants still racing (default:
    all; pass the previous decision's ``alive``); ``keep`` variants never dropped (e.g. the
    baseline); ``prior_scale``: the e-process prior ``delta/sigma ~ N(0, prior_scale^2)`` (2:
    tuned to clearly worse variants). Variants with fewer than ``min_seeds`` shared seeds are not tested yet.
    """
    from ablab.analysis.adaptive_seq import anytime_p

    if direction not in ("max", "min"):
        raise SpecError(f"direction must be 'max' or 'min', got {direction!r}")
    if not 0.0 < alpha < 1.0:
        raise SpecError(f"alpha must be in (0, 1), got {alpha!r}")
    for key, val in (("min_seeds", min_seeds), ("max_seeds", max_seeds), ("batch", batch)):
        if isinstance(val, bool) or not isinstance(val, int) or val < (1 if key == "batch" else 3):
            raise SpecError(
                f"race {key} must be an integer >= {1 if key == 'batch' else 3}, got {val!r}"
            )
    check_results(results)
    if len(results) < 2:
        raise DataError("a race needs at least two variants")
    live = list(results) if alive is None else list(alive)
    for name in [*live, *keep]:
        if name not in results:
            raise DataError(
                f"variant {name!r} has no results", hint=did_you_mean(name, map(str, results))
            )
    cap = max_seeds_per_variant if max_seeds_per_variant is not None else 10**9
    budget = len(results) * max_seeds if budget is None else budget
    level = alpha / (len(results) - 1)

    shared = set.intersection(*(set(results[k]) for k in live))
    sign = 1.0 if direction == "max" else -1.0
    means = {k: (np.mean([results[k][s] for s in shared]) if shared else np.nan) for k in live}
    best = max(live, key=lambda k: sign * means[k] if math.isfinite(means[k]) else -math.inf)

    dropped: dict[str, str] = {}
    p_values: dict[str, float] = {}
    for name in live:
        if name == best:
            continue
        d = paired_diffs(results[name], results[best])
        if d.size < min_seeds:
            continue
        p, _ = anytime_p(d, prior_scale**2)
        p_values[name] = p
        worse = sign * float(d.mean()) < 0
        if p <= level and worse and name not in keep:
            dropped[name] = best
    still = sorted((k for k in live if k not in dropped), key=lambda k: -sign * means[k])

    used = sum(len(v) for v in results.values())
    n_now = {k: len(results[k]) for k in results}
    if len(still) < 2:
        step = 0
    else:
        step = min(batch, (budget - used) // len(still))
        step = max(0, min(step, min(cap - n_now[k] for k in still)))
    target = {k: n_now[k] + (step if k in still else 0) for k in results}
    # bring late or short variants up to the common count first
    top = max(n_now[k] for k in still)
    if step > 0:
        for k in still:
            target[k] = max(target[k], min(top + step, cap))
    add = {k: target[k] - n_now[k] for k in results}
    done = step == 0 or sum(add.values()) == 0
    out = tuple(k for k in results if k not in still)
    return RaceDecision(best, tuple(still), dropped, p_values, add, target, done, level, out)
