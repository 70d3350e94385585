"""Shapley values of the factors of a factorial study, defined only where the runs support
them: a coalition's value is its cell's observed mean; a cell that never ran is predicted
only when that is interpolation under a stated model, never an extrapolation."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ablab.analysis.effects import MAX_SHAPLEY_FACTORS, config_level, level_label, shapley_values
from ablab.analysis.effects_model import TermSelection, _formula


def _endpoints(fl, labels, cell_mean, configs, baseline, direction):
    empty = {f: labels[f][0] for f in fl}
    if baseline is not None and baseline in configs:
        for f in fl:
            try:
                lab = level_label(config_level(configs[baseline], f))
            except KeyError:
                continue
            if lab in labels[f]:
                empty[f] = lab
    if all(len(labels[f]) == 2 for f in fl):
        full = {f: labels[f][1] if empty[f] == labels[f][0] else labels[f][0] for f in fl}
        return empty, full, "all factors flipped"
    sign = 1.0 if direction == "max" else -1.0
    best = max(cell_mean, key=lambda key: sign * cell_mean[key])
    return empty, dict(zip(fl, best, strict=True)), "best observed cell"


def shapley(
    data: pd.DataFrame,
    fl: list[str],
    names: Mapping[str, str],
    labels: Mapping[str, list[str]],
    nlev: list[int],
    cell_mean: Mapping[tuple, float],
    configs: Mapping[str, Mapping[str, Any]],
    baseline: str | None,
    direction: str,
    sel: TermSelection,
) -> dict[str, Any] | None:
    """Players = factors; ``v(S)`` = mean of the cell with the factors in ``S`` at their *full*
    level and the others at the baseline's level; *full* = the other level when every factor
    has two levels, else the best observed cell. ``phi`` by :func:`shapley_values`
    (``sum phi = v(full) - v(baseline)``).

    A cell that never ran is valued by the OLS prediction of the main-effects + two-way model
    (assuming no interaction of order >= 3) only when every level it uses ran somewhere and
    that model is fully estimable from the runs (no two-way term aliased or confounded);
    otherwise the values are undefined: ``values = None`` with the ``reason`` (a level that
    never ran needs an extrapolation; an aliased design cannot tell which term to credit).
    """
    if len(fl) > MAX_SHAPLEY_FACTORS:
        return None
    empty, full, target = _endpoints(fl, labels, cell_mean, configs, baseline, direction)
    keys = [tuple(full[f] if f in s else empty[f] for f in fl) for s in _coalitions(fl)]
    missing = [k for k in dict.fromkeys(keys) if k not in cell_mean]
    out = {"from": empty, "to": full, "target": target, "values": None, "total": None}
    if not missing:
        phi = shapley_values(fl, lambda s: cell_mean[_key(fl, s, full, empty)])
        total = cell_mean[tuple(full.values())] - cell_mean[tuple(empty.values())]
        return {**out, "values": phi, "total": total, "value_function": "observed cell means"}
    ran = {f: set(data[names[f]].astype(str)) for f in fl}
    for k in missing:
        for f, lab in zip(fl, k, strict=True):
            if lab not in ran[f]:
                return {
                    **out,
                    "value_function": None,
                    "reason": (
                        f"level {lab!r} of factor '{f}' never ran (no finished run): the cell "
                        f"{_show(fl, k)} would need an extrapolation, so the Shapley values "
                        "are undefined"
                    ),
                }
    low = [
        t
        for t in itertools.chain.from_iterable(
            itertools.combinations(range(len(fl)), r) for r in (1, 2)
        )
    ]
    blocked = [t for t in low if t not in sel.kept]
    if blocked:
        what = ", ".join(":".join(fl[i] for i in t) for t in blocked[:4])
        return {
            **out,
            "value_function": None,
            "reason": (
                f"{len(missing)} cell(s) the Shapley values need never ran (e.g. "
                f"{_show(fl, missing[0])}) and the runs cannot separate {what} from other "
                "terms, so a model prediction would depend on which aliased term is credited"
            ),
        }
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.ols(_formula(low, nlev), data).fit()
    pred = {}
    for k in missing:
        row = pd.DataFrame([{names[f]: lab for f, lab in zip(fl, k, strict=True)}])
        for i, f in enumerate(fl):
            row[names[f]] = pd.Categorical(row[names[f]], categories=labels[f])
            row[f"x{i}"] = 1.0 if k[i] == labels[f][1] else -1.0
        pred[k] = float(np.asarray(fit.predict(row))[0])
    value = {**cell_mean, **pred}
    phi = shapley_values(fl, lambda s: value[_key(fl, s, full, empty)])
    return {
        **out,
        "values": phi,
        "total": value[tuple(full.values())] - value[tuple(empty.values())],
        "value_function": (
            "observed cell means; OLS predictions of the main-effects + two-way model "
            "(assumes no interaction of order >= 3) for the cells that never ran"
        ),
        "predicted_cells": [dict(zip(fl, k, strict=True)) for k in missing],
    }


def _coalitions(fl):
    return [frozenset(c) for r in range(len(fl) + 1) for c in itertools.combinations(fl, r)]


def _key(fl, s, full, empty):
    return tuple(full[f] if f in s else empty[f] for f in fl)


def _show(fl, k) -> str:
    return "(" + ", ".join(f"{f} = {lab}" for f, lab in zip(fl, k, strict=True)) + ")"
