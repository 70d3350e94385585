"""Experimental designs as pure functions: full factorial, two-level fractional factorial
(generators and alias structure), and the step of the Fawcett-Hoos ablation path.

The run engine turns the configurations these return into runs (one per seed).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ablab.errors import PlanError
from ablab.spec.model import flatten as _flat

ROMAN = {"III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8}
MAX_FRACTIONAL_FACTORS = 20


def _check_factors(factors: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
    if not isinstance(factors, Mapping) or not factors:
        raise PlanError(
            "design: 'factors' must be a non-empty table of name = [level, ...]",
            hint='e.g. factors = { augment = [true, false], loss = ["ce", "focal"] }',
        )
    out = {}
    for name, levels in factors.items():
        if isinstance(levels, str | bytes) or not isinstance(levels, Sequence) or len(levels) < 2:
            raise PlanError(
                f"design: factor '{name}' needs a list of at least two levels, found {levels!r}"
            )
        keys = [json.dumps(x, sort_keys=True, default=str) for x in levels]
        if len(set(keys)) != len(keys):
            raise PlanError(f"design: factor '{name}' lists a level twice: {list(levels)!r}")
        out[str(name)] = list(levels)
    return out


def full_factorial(factors: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the factors' levels, the last factor varying fastest.

    ``full_factorial({"a": [0, 1], "b": ["x", "y"]})`` ->
    ``[{"a": 0, "b": "x"}, {"a": 0, "b": "y"}, {"a": 1, "b": "x"}, {"a": 1, "b": "y"}]``.
    """
    f = _check_factors(factors)
    return [dict(zip(f, combo, strict=True)) for combo in itertools.product(*f.values())]


@dataclass(frozen=True)
class FractionalDesign:
    """A two-level fractional factorial design ``2^(k-p)``.

    ``rows``: the configurations (factor -> level); ``base``: the ``k - p`` factors of the full
    factorial in the base; ``generators``: added factor -> the base factors whose product
    defines it (``E = ABCD``); ``defining_relation``: the words of the defining relation
    (each a tuple of factor names, identity ``I = word``); ``resolution``: the shortest word's
    length; ``aliases``: each main effect and two-factor interaction (``"a"``, ``"a:b"``) -> the
    effects of order <= ``max_order`` it is confounded with; ``requested_resolution``: what the
    study asked for; ``full``: True when no fraction of that resolution exists for these factors
    and the full factorial ``2^k`` is run instead (its resolution is then "full": no defining
    relation, nothing aliased).
    """

    factors: dict[str, list[Any]]
    rows: list[dict[str, Any]]
    base: list[str]
    generators: dict[str, list[str]]
    defining_relation: list[tuple[str, ...]]
    resolution: int
    aliases: dict[str, list[str]] = field(default_factory=dict)
    requested_resolution: int | None = None
    full: bool = False

    @property
    def runs(self) -> int:
        return len(self.rows)

    def generator_strings(self) -> list[str]:
        return [f"{f} = {'*'.join(word)}" for f, word in self.generators.items()]

    def alias_chains(self) -> list[list[str]]:
        """The effects of order <= ``max_order`` that share one contrast, as chains of term
        names (``[["a:b", "c:e", "d:f"], ...]``); only chains with at least two members."""
        seen: set[str] = set()
        chains = []
        for term, others in self.aliases.items():
            if term in seen or not others:
                continue
            chain = [term, *others]
            seen.update(chain)
            chains.append(chain)
        return chains

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what the report's ``effects.design`` carries)."""
        k, p = len(self.factors), len(self.generators)
        out = {
            "type": "full factorial" if self.full else "fractional factorial",
            "runs": self.runs,
            "notation": f"2^{k}" if self.full else f"2^({k}-{p})",
            "resolution": None if self.full else self.resolution,
            "resolution_roman": "full" if self.full else roman(self.resolution),
            "requested_resolution": self.requested_resolution,
            "base_factors": self.base,
            "generators": self.generator_strings(),
            "defining_relation": ["I = " + "*".join(w) for w in self.defining_relation],
            "alias_chains": self.alias_chains(),
            "aliases": self.aliases,
        }
        if self.full:
            out["note"] = (
                f"no 2^({k}-p) fraction of resolution {roman(self.requested_resolution or 0)} "
                f"exists for {k} factors: the full factorial 2^{k} was run (nothing aliased)"
            )
        return out


def roman(r: int) -> str:
    """Resolution as a Roman numeral (``4 -> "IV"``); other numbers as digits."""
    return next((name for name, v in ROMAN.items() if v == r), str(r))


def _resolution(value: int | str) -> int:
    if isinstance(value, str):
        r = ROMAN.get(value.strip().upper())
        if r is None and value.strip().isdigit():
            r = int(value.strip())
    else:
        r = int(value)
    if r is None or not 3 <= r <= 8:
        raise PlanError(
            f"fractional design: resolution must be III, IV or V (or 3..8), found {value!r}"
        )
    return r


def _search_generators(k: int, m: int, r: int) -> list[int] | None:
    """Columns (bit masks over ``m`` base factors) for the ``p = k - m`` added factors such
    that every word of the defining relation has length >= ``r``; depth-first, columns of
    higher weight first (which gives the textbook generators, e.g. E = ABCD for 2^(5-1) V)."""
    p = k - m
    cands = sorted(
        (c for c in range(1, 2**m) if bin(c).count("1") >= r - 1),
        key=lambda c: (-bin(c).count("1"), c),
    )
    chosen: list[int] = []
    # words[i] = (xor of base columns, number of added factors) for each non-empty subset
    words: list[tuple[int, int]] = []

    def ok(col: int) -> list[tuple[int, int]] | None:
        new = [(col, 1)] + [(w ^ col, n + 1) for w, n in words]
        for w, n in new:
            if bin(w).count("1") + n < r:
                return None
        return new

    def dfs(start: int) -> bool:
        if len(chosen) == p:
            return True
        for i in range(start, len(cands)):
            new = ok(cands[i])
            if new is None:
                continue
            chosen.append(cands[i])
            words.extend(new)
            if dfs(i + 1):
                return True
            chosen.pop()
            del words[len(words) - len(new) :]
        return False

    return list(chosen) if dfs(0) else None


def fractional_factorial(
    factors: Mapping[str, Sequence[Any]], resolution: int | str = "IV", *, max_order: int = 2
) -> FractionalDesign:
    """The smallest two-level ``2^(k-p)`` design of at least the requested resolution.

    The first ``m`` factors form a full factorial (coded -1/+1, first level = -1); each other
    factor is the product of a set of base columns (its generator). The defining relation is
    every product of generator words; its shortest word's length is the resolution
    (Box & Hunter 1961; Montgomery, *Design and Analysis of Experiments*, ch. 8). ``m`` is
    increased from ``ceil(log2(k + 1))`` until generators of the resolution exist. Two-level
    factors only.
    """
    f = _check_factors(factors)
    bad = {n: lv for n, lv in f.items() if len(lv) != 2}
    if bad:
        raise PlanError(
            "fractional design: every factor needs exactly two levels; "
            + ", ".join(f"'{n}' has {len(lv)}" for n, lv in bad.items()),
            hint='use design = "factorial" for factors with more than two levels',
        )
    r = _resolution(resolution)
    names = list(f)
    k = len(names)
    if k > MAX_FRACTIONAL_FACTORS:
        raise PlanError(f"fractional design: at most {MAX_FRACTIONAL_FACTORS} factors, found {k}")
    m = max(1, (k).bit_length())
    cols = None
    while m < k:
        cols = _search_generators(k, m, r)
        if cols is not None:
            break
        m += 1
    base = names[:m]
    added = names[m:]
    gens = {
        a: [base[i] for i in range(m) if c >> i & 1]
        for a, c in zip(added, cols or [], strict=False)
    }
    # defining relation over full factor bit masks (bit i = factor names[i])
    gen_masks = [(c | (1 << (m + j))) for j, c in enumerate(cols or [])]
    relation = []
    for size in range(1, len(gen_masks) + 1):
        for combo in itertools.combinations(gen_masks, size):
            w = 0
            for g in combo:
                w ^= g
            relation.append(w)
    relation.sort(key=lambda w: (bin(w).count("1"), w))

    def word(mask: int) -> tuple[str, ...]:
        return tuple(names[i] for i in range(k) if mask >> i & 1)

    achieved = min((bin(w).count("1") for w in relation), default=k)
    aliases: dict[str, list[str]] = {}
    effects = [1 << i for i in range(k)] + [
        (1 << i) | (1 << j) for i, j in itertools.combinations(range(k), 2)
    ]
    for e in effects:
        al = sorted(
            {e ^ w for w in relation if bin(e ^ w).count("1") <= max_order},
            key=lambda x: (bin(x).count("1"), x),
        )
        aliases[":".join(word(e))] = [":".join(word(a)) for a in al]
    rows = []
    for bits in itertools.product((-1, 1), repeat=m):
        signs = list(bits)
        for c in cols or []:
            s = 1
            for i in range(m):
                if c >> i & 1:
                    s *= signs[i]
            signs.append(s)
        rows.append({n: f[n][0 if s < 0 else 1] for n, s in zip(names, signs, strict=True)})
    return FractionalDesign(
        factors=f,
        rows=rows,
        base=base,
        generators=gens,
        defining_relation=[word(w) for w in relation],
        resolution=achieved,
        aliases=aliases,
        requested_resolution=r,
        full=not cols,
    )


# --- the ablation path of Fawcett & Hoos -------------------------------------------------

_MISSING = object()


def config_key(config: Mapping[str, Any]) -> str:
    """Canonical key of a configuration (sorted-key JSON), used to look up its result."""
    return json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))


def _unflat(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in flat.items():
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


@dataclass(frozen=True)
class PathStep:
    """Where an ablation path stands. ``to_run``: configurations whose results are needed
    before the path can advance (empty when ``done``); ``path``: the steps taken so far, each
    ``{"step", "changed", "config", "value"}`` (step 0 = the baseline, ``changed`` = None);
    ``remaining``: parameters still differing from the target."""

    to_run: list[dict[str, Any]]
    path: list[dict[str, Any]]
    remaining: list[str]
    done: bool


def ablation_path_step(
    baseline: Mapping[str, Any],
    target: Mapping[str, Any],
    results: Mapping[str, float],
    direction: str = "max",
) -> PathStep:
    """Advance the ablation path from ``baseline`` to ``target`` as far as ``results`` allow.

    Fawcett & Hoos, *Analysing differences between algorithm configurations through ablation*
    (J. Heuristics 2016): starting at the baseline, try changing each parameter that still
    differs from the target to its target value (one at a time), keep the change with the best
    result, and repeat until the configuration equals the target. ``results`` maps
    :func:`config_key` of a configuration to its (seed-averaged) primary metric; a missing or
    NaN result counts as worst among the candidates when present, and a config absent from
    ``results`` is returned in ``to_run``. Ties go to the parameter listed first (target's
    key order). Nested configs are compared by dotted keys. Pure: call it again with more
    results to advance.
    """
    if direction not in ("max", "min"):
        raise PlanError(f"ablation path: direction must be 'max' or 'min', found {direction!r}")
    fb, ft = _flat(baseline), _flat(target)
    params = [k for k in ft if fb.get(k, _MISSING) != ft[k]]
    params += [k for k in fb if k not in ft]
    if not params:
        raise PlanError(
            "ablation path: the target configuration equals the baseline; nothing to ablate",
            hint="set [design] target to a different config",
        )

    def with_value(flat: dict[str, Any], p: str) -> dict[str, Any]:
        new = dict(flat)
        if p in ft:
            new[p] = ft[p]
        else:
            new.pop(p, None)
        return new

    def score(cfg: dict[str, Any]) -> float:
        v = results.get(config_key(cfg))
        try:
            v = float(v)
        except (TypeError, ValueError):
            return float("-inf")
        if v != v:
            return float("-inf")
        return v if direction == "max" else -v

    current = dict(fb)
    start = _unflat(current)
    if config_key(start) not in results:
        return PathStep(to_run=[start], path=[], remaining=params, done=False)
    path = [{"step": 0, "changed": None, "config": start, "value": results[config_key(start)]}]
    remaining = list(params)
    while remaining:
        cands = [(p, _unflat(with_value(current, p))) for p in remaining]
        missing = [cfg for _, cfg in cands if config_key(cfg) not in results]
        if missing:
            return PathStep(to_run=missing, path=path, remaining=remaining, done=False)
        best_i = max(range(len(cands)), key=lambda i: (score(cands[i][1]), -i))
        p, cfg = cands[best_i]
        current = with_value(current, p)
        remaining.remove(p)
        path.append(
            {"step": len(path), "changed": p, "config": cfg, "value": results[config_key(cfg)]}
        )
    return PathStep(to_run=[], path=path, remaining=[], done=True)
