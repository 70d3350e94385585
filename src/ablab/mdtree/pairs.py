"""Pair features of a zoo that was run as an ablab study (``ablab mdtree pairs STUDY_FILE``).

Each run of a zoo study (entry :func:`ablab.mdtree.zoo.zoo_entry`) trains one member at one
seed and saves its checkpoint with ``run.save_model``. Mode connectivity (``mc_peak``, ``mu``)
and CKA need two seeds of the same configuration, so they are computed afterwards, here: for
every configuration whose first two seeds are done, load both checkpoints
(``torch.load(..., weights_only=True)``), call :func:`ablab.mdtree.zoo.pair_features`, and
attach the numbers as extra metrics to both runs in the store. ``ablab mdtree fit|eval
STUDY_FILE`` then read them like any other run metric.

Idempotent and resumable: a configuration whose two runs already carry ``mc_peak`` and ``mu``
is skipped unless ``force``; each configuration is recorded in its own transaction as soon as
it is computed, so an interrupted pass keeps what it finished.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablab.errors import DataError

PAIR_METRICS = ("mc_peak", "mu", "cka")
CHECKPOINT = "model"  # the artifact name run.save_model(model) records
REBUILD = (
    "the entry must save each member with run.save_model(model) (ablab.mdtree.zoo:zoo_entry "
    "does); to train lost checkpoints again, run the study as a new revision: "
    "ablab run STUDY_FILE --revision NAME"
)


@dataclass
class PairGroup:
    """The runs of one configuration: ``name`` (its variant), ``config``, done runs by seed."""

    name: str
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pair(self) -> list[dict[str, Any]]:
        """The two lowest finished seeds (the pair :func:`build_zoo` uses too)."""
        return sorted(self.runs, key=lambda r: r["seed"])[:2]

    def has_pair_features(self) -> bool:
        return all(all(m in r.get("metrics", {}) for m in ("mc_peak", "mu")) for r in self.pair)


@dataclass
class PairsResult:
    """What a pass did: configuration names ``computed``, ``already_done`` (skipped),
    ``incomplete`` (fewer than 2 finished seeds: skipped) and ``undefined_cka`` (CKA left out
    because a model's outputs are constant)."""

    computed: list[str] = field(default_factory=list)
    already_done: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    undefined_cka: list[str] = field(default_factory=list)


def group_runs(runs: Iterable[Mapping[str, Any]]) -> list[PairGroup]:
    """Group a study's runs by configuration (seeds of the same config together), keeping
    only finished runs in each group; groups with no finished run are kept (empty) so that
    they can be named as incomplete. Pure: no I/O."""
    groups: dict[str, PairGroup] = {}
    for r in runs:
        cfg = dict(r.get("config") or {})
        key = json.dumps(
            [cfg, r.get("split_seed"), r.get("sensitivity")], sort_keys=True, default=str
        )
        g = groups.setdefault(key, PairGroup(str(r.get("variant", key)), cfg))
        if r.get("status") == "done":
            g.runs.append(dict(r))
    return list(groups.values())


def _load_member(path: str | Path, config: Mapping[str, Any]) -> Any:
    import torch

    from ablab.mdtree.zoo import DEFAULTS, load_task, make_model

    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"checkpoint {str(p)!r} does not exist (was the store moved or cleaned?)", hint=REBUILD
        )
    cfg = DEFAULTS | dict(config)
    model = make_model(load_task(cfg["task"])[0].shape[1], int(cfg["width"]))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # unpickling error, wrong keys or shapes: a bad checkpoint
        raise DataError(
            f"checkpoint {str(p)!r} does not load into the zoo model for {dict(config)}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        ) from None
    return model.eval()


def _check_zoo(groups: list[PairGroup], source: str) -> None:
    for g in groups:
        missing = [k for k in ("width", "batch_size") if k not in g.config]
        if missing:
            raise DataError(
                f"{source}: configuration {g.name!r} has no {missing} key: its runs are not "
                f"zoo members (config keys are {sorted(g.config)})",
                hint="pair features need a study whose entry is ablab.mdtree.zoo:zoo_entry",
            )


def compute_pairs(
    runs: list[dict[str, Any]],
    artifacts: Mapping[int, Mapping[str, str]],
    record: Callable[[dict[int, dict[str, float]]], None],
    *,
    force: bool = False,
    mc_epochs: int = 5,
    source: str = "the zoo",
    progress: Callable[[int, int, str], None] | None = None,
) -> PairsResult:
    """The engine of :func:`zoo_pairs`, without the store: ``runs`` are store run dicts (with
    ``id``, ``config``, ``seed``, ``status``, ``metrics``), ``artifacts`` run id -> {name: path},
    ``record`` attaches {run id: {metric: value}}; ``progress(done, total, name)``."""
    import torch

    from ablab.mdtree.zoo import pair_features

    if not runs:
        raise DataError(
            f"{source}: the study has no runs", hint="run it first: ablab run STUDY_FILE"
        )
    groups = group_runs(runs)
    _check_zoo(groups, source)
    result = PairsResult()
    todo = []
    for g in groups:
        if len(g.runs) < 2:
            result.incomplete.append(g.name)
        elif g.has_pair_features() and not force:
            result.already_done.append(g.name)
        else:
            todo.append(g)
    if not todo and not result.already_done:
        raise DataError(
            f"{source}: no configuration has 2 finished seeds yet ({len(result.incomplete)} "
            "incomplete)",
            hint="finish the runs first: ablab run STUDY_FILE",
        )
    missing = []  # check every checkpoint before spending time on any pair
    for g in todo:
        for r in g.pair:
            path = artifacts.get(r["id"], {}).get(CHECKPOINT)
            if path is None or not Path(path).is_file():
                missing.append(f"{g.name} seed {r['seed']} ({path or 'no checkpoint recorded'})")
    if missing:
        raise DataError(
            f"{source}: {len(missing)} run(s) have no saved checkpoint: {'; '.join(missing[:4])}"
            + (" ..." if len(missing) > 4 else ""),
            hint=REBUILD,
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the pair features' low bits depend on the thread count
    try:
        for i, g in enumerate(todo):
            if progress is not None:
                progress(i, len(todo), g.name)
            a, b = g.pair
            ma = _load_member(artifacts[a["id"]][CHECKPOINT], g.config)
            mb = _load_member(artifacts[b["id"]][CHECKPOINT], g.config)
            feats = pair_features(ma, mb, g.config, epochs=mc_epochs, seed=0)
            values = {k: v for k, v in feats.items() if math.isfinite(v)}
            if "cka" not in values:
                result.undefined_cka.append(g.name)
            record({a["id"]: values, b["id"]: values})
            result.computed.append(g.name)
    finally:
        torch.set_num_threads(threads)
    if progress is not None:
        progress(len(todo), len(todo), "")
    return result


def zoo_pairs(
    study: str | Path,
    *,
    store: str | Path | None = None,
    force: bool = False,
    mc_epochs: int = 5,
    progress: Callable[[int, int, str], None] | None = None,
) -> PairsResult:
    """Compute and record the pair features of a zoo study (see the module docstring).

    ``study``: the study file; ``store``: its store directory (default: ``.ablab`` beside the
    study file). Only the runs of the study's current plan (newest revision) are used.

    Example::

        from ablab.mdtree import zoo_pairs
        res = zoo_pairs("examples/mdtree_zoo/digits.toml")
        print(len(res.computed), "configurations done; incomplete:", res.incomplete)
    """
    from ablab.api import current_plan, default_store_dir
    from ablab.spec.load import load_study
    from ablab.store.db import Store
    from ablab.store.records import attach_metrics, run_artifacts

    spec = load_study(study)
    with Store(store if store is not None else default_store_dir(spec)) as st:
        row = st.study(spec.name)
        if row is None:
            raise DataError(
                f"{study}: study {spec.name!r} has no runs in the store {st.dir}",
                hint=f"run it first: ablab run {study}",
            )
        plan = current_plan(spec, st, row["id"]).runs
        runs = st.runs(row["id"], [r.key for r in plan])
        if not runs:
            raise DataError(
                f"{study}: study {spec.name!r} has no runs of its current plan in "
                f"the store {st.dir}",
                hint=f"run it first: ablab run {study}",
            )
        recorded = {r["key"] for r in runs}
        # planned runs not started yet count towards their configuration being incomplete
        runs += [{"key": r.key, "variant": r.variant, "config": r.config, "seed": r.seed,
                  "split_seed": r.split_seed, "sensitivity": r.sensitivity, "status": "not run"}
                 for r in plan if r.key not in recorded]  # fmt: skip
        artifacts = run_artifacts(st, row["id"])
        for r in runs:  # a store moved to another folder: its checkpoints moved with it
            path = artifacts.get(r.get("id", -1), {}).get(CHECKPOINT)
            local = st.run_dir(r["key"], row["revision"]) / f"{CHECKPOINT}.pt"
            if "id" in r and (path is None or not Path(path).is_file()) and local.is_file():
                artifacts.setdefault(r["id"], {})[CHECKPOINT] = str(local)
        return compute_pairs(
            runs, artifacts, lambda values: attach_metrics(st, values), force=force,
            mc_epochs=mc_epochs, source=str(study), progress=progress,
        )  # fmt: skip
