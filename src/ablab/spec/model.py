"""The validated, frozen description of a study (what a study file says)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Direction = Literal["max", "min", "none"]
Reduce = Literal["value", "last", "best", "post"]
BASELINE = "baseline"


@dataclass(frozen=True)
class MetricSpec:
    """A declared metric: its name, which direction is better and how a run's value is formed.

    ``reduce = "value"`` takes the number the entry returns; ``"last"``/``"best"`` reduce the
    series of that name logged with ``run.log``; ``"post"`` is filled in after the run by a
    post-run step (e.g. ``ablab mdtree pairs``), so the run need not return it and runs without
    it are left out of that metric's analysis. ``margin`` (metric units, optional) is the
    smallest difference that matters: it enables the ``equivalent`` verdict (TOST) and the
    ``seeds_needed`` planning figure.

    ``direction = "none"``: an informational metric (a cost such as a parameter count): summarised
    (mean, std, CI) but never tested and given no verdict. ``deterministic = False``: the metric
    varies by nature (wall-clock time), so ``reproduce`` and ``check-determinism`` leave it out of
    bit-identity. ``tolerance = (rtol, atol)``: how close a re-run must come in ``reproduce``.
    ``series``: the logged series a ``last``/``best`` metric reduces (default: its own name), so one
    series can give both a final and a best value.
    """

    name: str
    direction: Direction = "max"
    reduce: Reduce = "value"
    margin: float | None = None
    pattern: str | None = None  # command entries: regex on the program's output (spec/entry.py)
    deterministic: bool = True
    tolerance: tuple[float, float] | None = None  # (rtol, atol) for reproduce
    series: str | None = None

    @property
    def series_name(self) -> str:
        """The logged series this metric is reduced from (``last``/``best``)."""
        return self.series or self.name

    @property
    def tested(self) -> bool:
        """Whether variants are tested against the baseline on this metric."""
        return self.direction != "none"


@dataclass(frozen=True)
class RunOptions:
    """``[run]``: how each run executes."""

    timeout: float | None = None  # seconds
    retries: int = 0
    threads: int = 1  # torch intra-op threads per run; fixed so results do not depend on -j
    cpus: float = 1.0
    gpus: float = 0.0
    batch: int | Literal["auto"] | None = None  # "auto": ceil(compatible runs / workers) per batch
    batch_by: tuple[
        str, ...
    ] = ()  # config keys that must be equal within a batch (e.g. architecture)
    deterministic: bool | Literal["warn"] = True
    code: tuple[
        str, ...
    ] = ()  # extra paths (relative to the study file) whose code is fingerprinted
    order: Literal["interleave", "variant"] = "interleave"  # execution order of the runs


@dataclass(frozen=True)
class DesignSpec:
    """``[design]``: how variants are formed from the baseline."""

    type: Literal["one-at-a-time", "factorial", "fractional", "path"] = "one-at-a-time"
    factors: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    resolution: int | None = None
    target: dict[str, Any] = field(default_factory=dict)
    max_order: int | None = None  # ANOVA: pool interactions above this order into the residual


@dataclass(frozen=True)
class StudySpec:
    """A whole study: entry, seeds, metrics, baseline and variants, run options.

    ``variants`` maps each variant's name to its *override* (dotted key -> value); the baseline's
    override is empty. ``resolved(name)`` gives a variant's full configuration.
    """

    name: str
    entry: str
    seeds: tuple[int, ...]
    metrics: tuple[MetricSpec, ...]
    baseline: dict[str, Any]
    variants: dict[str, dict[str, Any]]
    run: RunOptions = field(default_factory=RunOptions)
    design: DesignSpec = field(default_factory=DesignSpec)
    sensitivity: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    split_seeds: int | None = None
    source: Path | None = None  # the study file, when loaded from one
    adaptive: bool = False  # seeds = "auto": seeds grow per variant between min_seeds and max_seeds
    min_seeds: int = 3
    # a command or by-value function entry (spec/entry.py); None for "file.py:function"
    entry_spec: Any = field(default=None, compare=False)

    @property
    def root(self) -> Path:
        """Directory that relative paths (entry file, store) are resolved against."""
        return self.source.parent if self.source is not None else Path.cwd()

    @property
    def primary_metric(self) -> MetricSpec:
        return self.metrics[0]

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def label(self) -> str:
        return str(self.source) if self.source is not None else f"study '{self.name}'"

    def resolved(self, variant: str) -> dict[str, Any]:
        """The full configuration of ``variant``: the baseline with its overrides applied."""
        return apply_overrides(self.baseline, self.variants[variant])


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return a deep copy of ``base`` with dotted-key ``overrides`` set.

    A dotted key names the setting of ``base`` whose dotted name it is (see
    :func:`resolve_path`), so ``"optim.lr"`` sets a literal key ``"optim.lr"`` when the base
    has one and the nested ``optim`` -> ``lr`` otherwise.
    """
    out = copy.deepcopy(base)
    for dotted, value in overrides.items():
        if dotted.startswith("@"):  # a module edit (ablab.components): kept whole, at the top
            out[dotted] = copy.deepcopy(value)
            continue
        parts = resolve_path(out, dotted.lstrip("+"))
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = copy.deepcopy(value)
    return out


def resolve_path(base: dict[str, Any], dotted: str) -> tuple[str, ...]:
    """The path of keys in ``base`` that the dotted name ``dotted`` refers to.

    ``flatten`` joins nested keys with '.', so the settings ``{"optim.lr": 1}`` and
    ``{"optim": {"lr": 1}}`` both have the dotted name ``optim.lr``. A dotted name therefore
    means the existing setting of that dotted name (the study loader refuses a baseline in which
    two settings share one). A new key follows the longest existing prefix, then nests the
    remaining parts: ``+optim.momentum`` over ``{"optim": {...}}`` adds ``momentum`` inside.
    Raises ValueError when two existing paths match (only possible in an unchecked base).
    """
    parts = dotted.split(".")
    found = _paths(base, parts)
    if len(found) > 1:
        raise ValueError(f"'{dotted}' names several settings: " + ", ".join(map(str, found)))
    if found:
        return found[0]
    node: Any = base
    path: list[str] = []
    i = 0
    while i < len(parts) and isinstance(node, dict):
        for j in range(len(parts), i, -1):  # the longest existing key first
            k = ".".join(parts[i:j])
            if k in node and isinstance(node[k], dict):
                path.append(k)
                node, i = node[k], j
                break
        else:
            break
    return (*path, *parts[i:])


def _paths(node: Any, parts: list[str]) -> list[tuple[str, ...]]:
    """Every path of existing keys whose dotted join is ``".".join(parts)``."""
    if not isinstance(node, dict):
        return []
    out: list[tuple[str, ...]] = []
    for i in range(1, len(parts) + 1):
        k = ".".join(parts[:i])
        if k in node:
            if i == len(parts):
                out.append((k,))
            else:
                out += [(k, *rest) for rest in _paths(node[k], parts[i:])]
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {dotted key: leaf value} (dicts are descended, everything else is a leaf)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
