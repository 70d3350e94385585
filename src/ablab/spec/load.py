"""Parse and validate study files (TOML or YAML) and study dicts into a :class:`StudySpec`.

Validation happens here, at the boundary: every error names the file, the key, what was
expected and what was found, and suggests a fix where it can.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ablab.errors import SpecError, did_you_mean
from ablab.spec import checks
from ablab.spec.entry import check_entry_spec, compile_pattern, parse_entry
from ablab.spec.model import (
    BASELINE,
    DesignSpec,
    MetricSpec,
    RunOptions,
    StudySpec,
    flatten,
)
from ablab.spec.read import check_structure, parse_text, read_text

TOP_KEYS = (
    "name",
    "entry",
    "seeds",
    "metrics",
    "baseline",
    "ablations",
    "run",
    "design",
    "sensitivity",
    "split_seeds",
    "min_seeds",
    "max_seeds",
)
RUN_KEYS = (
    "timeout",
    "retries",
    "threads",
    "cpus",
    "gpus",
    "batch",
    "batch_by",
    "deterministic",
    "code",
    "order",
)
DESIGN_TYPES = ("one-at-a-time", "factorial", "fractional", "path")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+\-]*$")
_DURATION_RE = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


def load_study(path: str | Path) -> StudySpec:
    """Read a study file (``.toml``, ``.yaml`` or ``.yml``) and validate it."""
    p = Path(path)
    if not p.is_file():
        hint = "check the path; study files end in .toml, .yaml or .yml"
        raise SpecError(f"{p}: study file not found", hint=hint)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SpecError(f"{p}: unknown study file type '{suffix}'", hint="use .toml, .yaml or .yml")
    raw = parse_text(p, read_text(p), suffix)
    return parse_study(raw, source=p.resolve())


def parse_study(raw: Any, *, source: Path | None = None) -> StudySpec:
    """Validate a study given as a plain dict (the parsed file, or the Python API's arguments)."""
    where = str(source) if source is not None else "study"
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where}: expected a table of keys (name, entry, seeds, ...), found {_kind(raw)}"
        )
    check_structure(raw, where)
    for k in raw:
        if k not in TOP_KEYS:
            raise SpecError(
                f"{where}: unknown top-level key '{k}'",
                hint=did_you_mean(k, TOP_KEYS) or f"allowed keys: {', '.join(TOP_KEYS)}",
            )
    if isinstance(raw.get("baseline"), dict) and "hydra" in raw["baseline"]:
        from ablab.integrations.hydra import resolve_study, uses_hydra

        raw = resolve_study(raw, source=source, where=where) if uses_hydra(raw) else raw
    name = _require(raw, "name", str, where)
    if not _NAME_RE.match(name):
        raise SpecError(
            f"{where}: name = {name!r} is not a valid study name",
            hint="use letters, digits, '_', '-', '.'",
        )
    entry, entry_spec = parse_entry(raw.get("entry"), where)
    adaptive = raw.get("seeds") == "auto"
    min_seeds, max_seeds = _seed_bounds(raw, adaptive, where)
    seeds = tuple(range(max_seeds)) if adaptive else _seeds(raw.get("seeds", 5), where)
    metrics = _metrics(raw.get("metrics"), where)
    baseline = raw.get("baseline", {})
    if not isinstance(baseline, dict):
        raise SpecError(
            f"{where}: [baseline] must be a table of configuration keys, found {_kind(baseline)}"
        )
    checks.check_setting_names(baseline, where)
    design = _design(raw.get("design", {}), baseline, where)
    variants = _ablations(raw.get("ablations", {}), baseline, where)
    if design.type != "one-at-a-time" and len(variants) > 1:
        raise SpecError(
            f"{where}: [ablations] ({', '.join(n for n in variants if n != BASELINE)}) "
            f'cannot be combined with [design] type = "{design.type}": the design '
            "alone decides which configurations run",
            hint="add the variable to the design's factors, or put the ablations in a "
            "separate study file",
        )
    run = _run(raw.get("run", {}), where)
    sensitivity = _sensitivity(raw.get("sensitivity", {}), baseline, where)
    split_seeds = raw.get("split_seeds")
    if split_seeds is not None and (
        not isinstance(split_seeds, int) or isinstance(split_seeds, bool) or split_seeds < 1
    ):
        raise SpecError(f"{where}: split_seeds = {split_seeds!r}: expected a positive integer")
    if split_seeds is not None:
        checks.check_seeds(split_seeds, where, "split_seeds")
    spec = StudySpec(
        name=name,
        entry=entry,
        seeds=seeds,
        metrics=metrics,
        baseline=baseline,
        variants=variants,
        run=run,
        design=design,
        sensitivity=sensitivity,
        split_seeds=split_seeds,
        source=source,
        adaptive=adaptive,
        min_seeds=min_seeds,
        entry_spec=entry_spec,
    )
    _check_distinct(spec, where)
    checks.check_plan_size(spec, where)
    checks.check_sensitivity(spec, where)
    check_entry_spec(spec, where)
    return spec


def parse_duration(value: Any, where: str) -> float:
    """'90s', '10m', '1h30m' or a number of seconds -> seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m and any(m.groups()):
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            total = h * 3600 + mi * 60 + s
            if total > 0:
                return total
    raise SpecError(
        f"{where}: timeout = {value!r} is not a duration",
        hint="write e.g. '90s', '10m', '1h30m' or a number of seconds",
    )


def _kind(v: Any) -> str:
    return f"{type(v).__name__} {v!r}" if not isinstance(v, (dict, list)) else type(v).__name__


def _require(raw: dict, key: str, typ: type, where: str) -> Any:
    if key not in raw:
        raise SpecError(f"{where}: missing required key '{key}'")
    v = raw[key]
    if not isinstance(v, typ):
        raise SpecError(f"{where}: {key} must be a {typ.__name__}, found {_kind(v)}")
    return v


def _seeds(v: Any, where: str) -> tuple[int, ...]:
    checks.check_seeds(v, where)
    if isinstance(v, int) and not isinstance(v, bool):
        if v < 1:
            raise SpecError(f"{where}: seeds = {v}: expected at least 1 seed")
        return tuple(range(v))
    if (
        isinstance(v, list)
        and v
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)
    ):
        if len(set(v)) != len(v):
            raise SpecError(f"{where}: seeds = {v} repeats a seed", hint="list each seed once")
        return tuple(v)
    raise SpecError(
        f"{where}: seeds = {v!r}: expected a count (e.g. 5), a list of non-negative integers "
        f'(e.g. [0, 1, 2]) or "auto" (with min_seeds, max_seeds)'
    )


def _seed_bounds(raw: dict, adaptive: bool, where: str) -> tuple[int, int]:
    lo, hi = raw.get("min_seeds", 3), raw.get("max_seeds", 10)
    if not adaptive and ("min_seeds" in raw or "max_seeds" in raw):
        raise SpecError(
            f'{where}: min_seeds/max_seeds only apply to seeds = "auto"',
            hint='write seeds = "auto" to let ablab add seeds where verdicts are undecided',
        )
    for k, v in (("min_seeds", lo), ("max_seeds", hi)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 2:
            raise SpecError(f"{where}: {k} = {v!r}: expected an integer >= 2")
    if hi < lo:
        raise SpecError(f"{where}: max_seeds = {hi} is below min_seeds = {lo}")
    checks.check_seeds(hi, where, "max_seeds")
    return lo, hi


METRIC_KEYS = ("direction", "reduce", "margin", "deterministic", "tolerance", "series", "pattern")


def _margin(v: Any, name: str, where: str) -> float | None:
    """``margin``: a positive finite number in the metric's units, or absent."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise SpecError(
            f"{where}: [metrics.{name}] margin = {v!r}: expected a positive finite number "
            "(the smallest difference that matters, in the metric's units)",
            hint=f'e.g. {name} = {{ direction = "max", margin = 0.005 }}',
        )
    return float(v)


def _metrics(v: Any, where: str) -> tuple[MetricSpec, ...]:
    if not isinstance(v, dict) or not v:
        raise SpecError(
            f"{where}: [metrics] is missing or empty",
            hint='declare at least one metric, e.g. [metrics] accuracy = "max"',
        )
    out = []
    for name, decl in v.items():
        if not _NAME_RE.match(name):
            raise SpecError(f"{where}: [metrics] '{name}' is not a valid metric name")
        out.append(_metric(name, decl, where))
    if out[0].reduce == "post":
        raise SpecError(
            f"{where}: [metrics] the primary (first) metric '{out[0].name}' is declared "
            'reduce = "post", but verdicts and adaptive seeds need it from every run',
            hint="list a metric the runs return first",
        )
    if out[0].direction == "none":
        raise SpecError(
            f"{where}: [metrics] the primary (first) metric '{out[0].name}' is declared "
            'direction = "none" (informational), but verdicts need a direction',
            hint="list a metric with direction max or min first",
        )
    return tuple(out)


def _metric(name: str, decl: Any, where: str) -> MetricSpec:
    """One ``[metrics]`` entry: ``"max"`` or a table of METRIC_KEYS."""
    sect = f"{where}: [metrics.{name}]"
    if not isinstance(decl, dict):
        decl = {"direction": decl}
    for k in decl:
        if k not in METRIC_KEYS:
            raise SpecError(
                f"{sect} unknown key '{k}'",
                hint=did_you_mean(k, METRIC_KEYS) or f"allowed: {', '.join(METRIC_KEYS)}",
            )
    direction = decl.get("direction", "max")
    reduce = decl.get("reduce", "value")
    if direction not in ("max", "min", "none"):
        raise SpecError(
            f'{where}: [metrics] {name} = {direction!r}: expected "max", "min" or "none" '
            "(informational: reported, never tested)"
        )
    if reduce not in ("value", "last", "best", "post"):
        raise SpecError(f'{sect} reduce = {reduce!r}: expected "value", "last", "best" or "post"')
    if reduce == "best" and direction == "none":
        raise SpecError(
            f'{sect} reduce = "best" needs a direction to know which value is best',
            hint='give direction = "max" or "min", or use reduce = "last"',
        )
    det = decl.get("deterministic", True)
    if not isinstance(det, bool):
        raise SpecError(f"{sect} deterministic = {det!r}: expected true or false")
    tol = decl.get("tolerance")
    tolerance = None
    if tol is not None:
        if not isinstance(tol, dict) or not tol or set(tol) - {"rtol", "atol"}:
            raise SpecError(
                f"{sect} tolerance = {tol!r}: expected a table with rtol and/or atol",
                hint="e.g. tolerance = { rtol = 1e-6, atol = 0.0 }",
            )
        vals = []
        for k in ("rtol", "atol"):
            x = tol.get(k, 0.0)
            if (
                not isinstance(x, (int, float))
                or isinstance(x, bool)
                or not math.isfinite(x)
                or x < 0
            ):
                raise SpecError(f"{sect} tolerance.{k} = {x!r}: expected a number >= 0")
            vals.append(float(x))
        tolerance = (vals[0], vals[1])
    series = decl.get("series")
    if series is not None:
        if not isinstance(series, str) or not _NAME_RE.match(series):
            raise SpecError(f"{sect} series = {series!r}: expected the name of a logged series")
        if reduce not in ("last", "best"):
            raise SpecError(
                f'{sect} series = "{series}" needs reduce = "last" or "best"',
                hint="a metric reduced from a series says how: last or best",
            )
    margin = _margin(decl.get("margin"), name, where)
    pattern = compile_pattern(name, decl["pattern"], where) if "pattern" in decl else None
    return MetricSpec(
        name,
        direction,
        reduce,
        margin,
        pattern=pattern,
        deterministic=det,
        tolerance=tolerance,
        series=series,
    )


def _check_key(key: str, base_keys: dict[str, Any], where: str, section: str) -> None:
    """An override names an existing setting by its dotted name, or declares a new one ('+')."""
    if key.startswith("+"):
        name = key[1:]
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in base_keys and not isinstance(base_keys[prefix], dict):
                raise SpecError(
                    f"{where}: {section} declares '{key}', but '{prefix}' is "
                    f"{base_keys[prefix]!r} in the baseline, not a table, so it cannot hold "
                    f"'{'.'.join(parts[i:])}'",
                    hint=f"override '{prefix}' itself, or choose another name for the new key",
                )
        return
    if key in base_keys or any(b.startswith(key + ".") for b in base_keys):
        return
    hint = did_you_mean(key, base_keys)
    new = f"prefix it with '+' to declare a new key: \"+{key}\" = ..."
    raise SpecError(
        f"{where}: {section} overrides '{key}', which the baseline does not have",
        hint=f"{hint} (or {new})" if hint else new,
    )


def _ablations(v: Any, baseline: dict, where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(v, dict):
        raise SpecError(
            f"{where}: [ablations] must be a table of variant = {{ key = value }}, found {_kind(v)}"
        )
    base_keys = flatten(baseline)
    variants: dict[str, dict[str, Any]] = {BASELINE: {}}
    for name, override in v.items():
        section = f"[ablations] {name}"
        if name == BASELINE:
            raise SpecError(
                f"{where}: {section}: 'baseline' is reserved for the baseline itself",
                hint="choose another variant name",
            )
        if not _NAME_RE.match(name):
            raise SpecError(
                f"{where}: {section}: invalid variant name",
                hint="use letters, digits, '_', '-', '.'",
            )
        if not isinstance(override, dict) or not override:
            raise SpecError(
                f"{where}: {section} must be a non-empty table of overrides, found {_kind(override)}",
                hint=f"e.g. {name} = {{ dropout = 0.0 }}",
            )
        from ablab.components.edits import split_edits  # "@path" module edits

        plain, edits = split_edits(override, f"{where}: {section}")
        flat = flatten(plain)
        for key in flat:
            _check_key(key, base_keys, where, section)
        variants[name] = {**flat, **edits}
    return variants


def _design(v: Any, baseline: dict, where: str) -> DesignSpec:
    if not isinstance(v, dict):
        raise SpecError(f"{where}: [design] must be a table, found {_kind(v)}")
    allowed = ("type", "factors", "resolution", "target", "max_order")
    for k in v:
        if k not in allowed:
            raise SpecError(f"{where}: [design] unknown key '{k}'", hint=did_you_mean(k, allowed))
    typ = v.get("type", "one-at-a-time")
    if typ not in DESIGN_TYPES:
        raise SpecError(
            f"{where}: [design] type = {typ!r} is not a design",
            hint=did_you_mean(str(typ), DESIGN_TYPES) or f"choose one of {', '.join(DESIGN_TYPES)}",
        )
    base_keys = flatten(baseline)
    factors: dict[str, tuple[Any, ...]] = {}
    if typ in ("factorial", "fractional"):
        raw_f = v.get("factors")
        if not isinstance(raw_f, dict) or not raw_f:
            raise SpecError(
                f"{where}: [design] type = {typ!r} needs factors = {{ key = [level, ...], ... }}"
            )
        for key, levels in flatten(raw_f).items():
            _check_key(key, base_keys, where, "[design] factors")
            if not isinstance(levels, list) or len(levels) < 2:
                raise SpecError(
                    f"{where}: [design] factors.{key} = {levels!r}: expected a list of at least 2 levels"
                )
            factors[key.lstrip("+")] = tuple(levels)
    resolution = v.get("resolution")
    if typ == "fractional":
        roman = {"III": 3, "IV": 4, "V": 5, 3: 3, 4: 4, 5: 5}
        if resolution not in roman:
            raise SpecError(
                f'{where}: [design] resolution = {resolution!r}: expected "III", "IV" or "V"'
            )
        resolution = roman[resolution]
    target: dict[str, Any] = {}
    if typ == "path":
        raw_t = v.get("target")
        if not isinstance(raw_t, dict) or not raw_t:
            raise SpecError(
                f'{where}: [design] type = "path" needs target = {{ key = value, ... }}'
            )
        target = flatten(raw_t)
        for key in target:
            _check_key(key, base_keys, where, "[design] target")
    max_order = v.get("max_order")
    if max_order is not None and (
        typ not in ("factorial", "fractional")
        or isinstance(max_order, bool)
        or not isinstance(max_order, int)
        or max_order < 1
    ):
        raise SpecError(
            f"{where}: [design] max_order = {max_order!r}: expected an integer >= 1 for a "
            "factorial or fractional design (interactions above it are pooled into the "
            "ANOVA residual; leave it out to fit every interaction)"
        )
    return DesignSpec(
        type=typ, factors=factors, resolution=resolution, target=target, max_order=max_order
    )


def _run(v: Any, where: str) -> RunOptions:
    if not isinstance(v, dict):
        raise SpecError(f"{where}: [run] must be a table, found {_kind(v)}")
    for k in v:
        if k not in RUN_KEYS:
            raise SpecError(
                f"{where}: [run] unknown key '{k}'",
                hint=did_you_mean(k, RUN_KEYS) or f"allowed: {', '.join(RUN_KEYS)}",
            )
    kw: dict[str, Any] = {}
    if "timeout" in v:
        kw["timeout"] = parse_duration(v["timeout"], f"{where}: [run]")
    if v.get("batch") == "auto":
        kw["batch"] = "auto"
    for key, lo in (("retries", 0), ("threads", 1), ("batch", 1)):
        if key in v and key not in kw:
            x = v[key]
            if not isinstance(x, int) or isinstance(x, bool) or x < lo:
                also = (
                    ' or "auto" (split compatible runs evenly over the workers)'
                    if key == "batch"
                    else ""
                )
                raise SpecError(f"{where}: [run] {key} = {x!r}: expected an integer >= {lo}{also}")
            kw[key] = x
    for key in ("cpus", "gpus"):
        if key in v:
            x = v[key]
            if (
                not isinstance(x, (int, float))
                or isinstance(x, bool)
                or x < 0
                or not math.isfinite(x)
            ):
                raise SpecError(f"{where}: [run] {key} = {x!r}: expected a non-negative number")
            kw[key] = float(x)
    if "deterministic" in v:
        d = v["deterministic"]
        if not (isinstance(d, bool) or d == "warn"):  # `in (True, False)` would accept 1 and 0.0
            raise SpecError(f'{where}: [run] deterministic = {d!r}: expected true, false or "warn"')
        kw["deterministic"] = d
    if "batch_by" in v:
        b = v["batch_by"]
        if not isinstance(b, list) or not all(isinstance(x, str) for x in b):
            raise SpecError(
                f"{where}: [run] batch_by = {b!r}: expected a list of configuration keys"
            )
        kw["batch_by"] = tuple(b)
    if "code" in v:
        c = v["code"]
        if not isinstance(c, list) or not all(isinstance(x, str) for x in c):
            raise SpecError(f"{where}: [run] code = {c!r}: expected a list of paths")
        kw["code"] = tuple(c)
    if "order" in v:
        o = v["order"]
        if o not in ("interleave", "variant"):
            raise SpecError(
                f'{where}: [run] order = {o!r}: expected "interleave" (default: seed by seed, '
                'variants in a seeded random order) or "variant" (all runs of a variant together)'
            )
        kw["order"] = o
    return RunOptions(**kw)


def _sensitivity(v: Any, baseline: dict, where: str) -> dict[str, tuple[Any, ...]]:
    if not isinstance(v, dict):
        raise SpecError(
            f"{where}: [sensitivity] must be a table of key = [values], found {_kind(v)}"
        )
    base_keys = flatten(baseline)
    out = {}
    for key, values in flatten(v).items():
        _check_key(key, base_keys, where, "[sensitivity]")
        if not isinstance(values, list) or not values:
            raise SpecError(
                f"{where}: [sensitivity] {key} = {values!r}: expected a non-empty list of values"
            )
        out[key.lstrip("+")] = tuple(values)
    return out


def _check_distinct(spec: StudySpec, where: str) -> None:
    import json

    seen: dict[str, str] = {}
    for name in spec.variants:
        blob = json.dumps(spec.resolved(name), sort_keys=True, default=str)
        if blob in seen:
            raise SpecError(
                f"{where}: variant '{name}' has the same configuration as '{seen[blob]}'",
                hint="an ablation must change at least one value of the baseline",
            )
        seen[blob] = name
