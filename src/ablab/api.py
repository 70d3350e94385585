"""The Python API: ``ablab.Study``, ``ablab.run`` and ``ablab.open_store``."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ablab.errors import AblabError
from ablab.execute.engine import Progress, RunSummary
from ablab.plan.expand import Plan
from ablab.spec.load import load_study, parse_study
from ablab.spec.model import StudySpec
from ablab.store.db import Store


class Study:
    """A study: a baseline, its variants, the seeds and the metrics.

    Build one from a file with ``Study.load("study.toml")`` or in code::

        study = ablab.Study(name="digits", entry="train.py:train", seeds=5,
                            metrics={"accuracy": "max"}, baseline={"hidden": 128},
                            ablations={"small": {"hidden": 32}}, root="examples/digits")

    ``entry`` may also be a Python function, including one defined in a notebook cell or the
    running script (sent to the workers by value with cloudpickle), or a command table
    ``{"command": "python train.py --lr {lr} --seed {seed}"}``. ``root`` is where a file entry,
    a command's working folder and the default store (``ROOT/.ablab``) live.
    """

    def __init__(
        self,
        *,
        name: str,
        entry: str | dict[str, Any] | Callable[..., Any],
        metrics: dict[str, Any],
        baseline: dict[str, Any] | None = None,
        ablations: dict[str, dict[str, Any]] | None = None,
        seeds: int | list[int] = 5,
        run: dict[str, Any] | None = None,
        design: dict[str, Any] | None = None,
        sensitivity: dict[str, list[Any]] | None = None,
        split_seeds: int | None = None,
        root: str | Path | None = None,
    ) -> None:
        if callable(entry):  # a notebook/__main__ function travels to the workers by value
            from ablab.runtime.entry_pickled import function_entry

            entry = function_entry(entry)
        raw: dict[str, Any] = {
            "name": name,
            "entry": entry,
            "seeds": seeds,
            "metrics": metrics,
            "baseline": baseline or {},
            "ablations": ablations or {},
        }
        for k, v in (
            ("run", run),
            ("design", design),
            ("sensitivity", sensitivity),
            ("split_seeds", split_seeds),
        ):
            if v is not None:
                raw[k] = v
        # a synthetic source path inside root makes relative entries and the store resolve there
        source = (Path(root).resolve() / f"{name}.study") if root is not None else None
        self.spec: StudySpec = parse_study(raw, source=source)

    @classmethod
    def load(cls, path: str | Path) -> Study:
        obj = cls.__new__(cls)
        obj.spec = load_study(path)
        return obj

    @classmethod
    def from_spec(cls, spec: StudySpec) -> Study:
        obj = cls.__new__(cls)
        obj.spec = spec
        return obj

    def save(self, path: str | Path) -> Path:
        """Write this study as a study file (``.toml``, ``.yaml`` or ``.yml``) that the CLI reads.

        File entries and ``[run] code`` paths are rewritten relative to the new file. The CLI
        uses the store beside the file (``DIR/.ablab``): save into the study's ``root`` (for a
        study built without ``root``, the current directory) to report runs already made from
        Python. Returns the path written; the file is read back and checked to describe the
        same study."""
        from ablab.spec.save import save_study

        return save_study(self.spec, path)

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"Study({self.spec.name!r}, variants={list(self.spec.variants)}, seeds={list(self.spec.seeds)})"


def default_store_dir(spec: StudySpec) -> Path:
    """``.ablab`` beside the study file (or ``$ABLAB_STORE`` when set)."""
    env = os.environ.get("ABLAB_STORE")
    return Path(env) if env else spec.root / ".ablab"


def open_store(study_or_dir: Study | StudySpec | str | Path) -> Store:
    """Open the store of a study (or a store directory)."""
    if isinstance(study_or_dir, Study):
        return Store(default_store_dir(study_or_dir.spec))
    if isinstance(study_or_dir, StudySpec):
        return Store(default_store_dir(study_or_dir))
    return Store(study_or_dir)


def _as_spec(study: Study | StudySpec | str | Path) -> StudySpec:
    if isinstance(study, Study):
        return study.spec
    if isinstance(study, StudySpec):
        return study
    return load_study(study)


def run(
    study: Study | StudySpec | str | Path,
    *,
    jobs: int | None = None,
    store: str | Path | None = None,
    revision: str | None = None,
    allow_code_change: bool = False,
    executor: str = "local",
    address: str | None = None,
    race: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> RunSummary:
    """Run every variant of ``study`` over its seeds; runs already done are skipped.

    ``variants`` / ``seeds`` run only that subset of the plan (``ablab run --variant/--seed``);
    an unknown name or seed is an error listing the study's own.

    With ``seeds = "auto"`` in the study (or ``race=True``) seeds are allocated adaptively,
    round by round (see ``docs/adaptive.md``). Returns a :class:`RunSummary` (``.exit_code`` is
    0 when every run is done, 1 otherwise).
    """
    from ablab.execute.engine import execute, prepare_study
    from ablab.execute.factory import make_executor
    from ablab.plan.designs_bridge import path_plan, plan_for
    from ablab.runtime.entry_check import check_entry

    spec = _as_spec(study)
    subset = variants is not None or seeds is not None
    if subset and (spec.adaptive or race or spec.design.type == "path"):
        raise AblabError(
            f"{spec.label}: --variant/--seed cannot be combined with "
            + ('seeds = "auto"' if spec.adaptive else "--race" if race else "a path design")
            + ", which decide(s) the runs as results arrive",
            hint="run the whole study, or reproduce single runs with `ablab reproduce`",
        )
    plan = select_runs(plan_for(spec), variants, seeds, spec) if subset else None
    # the static check of file/module entries (command and by-value entries check themselves)
    check_entry(spec.entry if spec.entry_spec is None else spec.entry_spec, spec.root)
    if revision is not None:
        from ablab.spec.checks import check_revision

        check_revision(revision, "--revision")
    with Store(store if store is not None else default_store_dir(spec)) as st:
        record = prepare_study(spec, st, revision=revision, allow_code_change=allow_code_change)
        if spec.adaptive or race:
            from ablab.execute.adaptive import run_adaptive

            return run_adaptive(
                spec,
                st,
                record,
                lambda: make_executor(executor, spec, jobs=jobs, address=address),
                race=race,
                on_progress=on_progress,
            )
        if spec.design.type != "path":
            ex = make_executor(executor, spec, jobs=jobs, address=address)
            return execute(spec, plan or plan_for(spec), st, record, ex, on_progress=on_progress)
        # adaptive: the ablation path grows as results arrive
        known: list[tuple[dict[str, Any], float]] = []
        ex = make_executor(executor, spec, jobs=jobs, address=address)
        try:
            while True:
                summary = execute(
                    spec,
                    plan_for(spec, known),
                    st,
                    record,
                    ex,
                    on_progress=on_progress,
                    close=False,
                )
                if summary.interrupted or summary.failed:
                    return summary
                known = path_results(spec, st, record["id"])
                configs, done = path_plan(spec, known)
                if done or len(configs) == len(known):
                    return summary
        finally:
            ex.shutdown()


def select_runs(
    plan: Plan, variants: Sequence[str] | None, seeds: Sequence[int] | None, spec: StudySpec
) -> Plan:
    """The runs of ``plan`` of the given variants and seeds (None: all of them)."""
    from ablab.errors import did_you_mean

    names = plan.variants()
    for v in variants or ():
        if v not in names:
            raise AblabError(
                f"{spec.label}: no variant named '{v}'",
                hint="; ".join(
                    filter(None, [did_you_mean(v, names), f"variants: {', '.join(names)}"])
                ),
            )
    known = sorted({r.seed for r in plan.runs})
    for s in seeds or ():
        if s not in known:
            raise AblabError(
                f"{spec.label}: seed {s} is not one of the study's seeds",
                hint=f"seeds: {', '.join(map(str, known))}",
            )
    keep = [
        r
        for r in plan.runs
        if (variants is None or r.variant in variants) and (seeds is None or r.seed in seeds)
    ]
    return Plan(tuple(keep))


def path_results(spec: StudySpec, st: Store, study_id: int) -> list[tuple[dict[str, Any], float]]:
    """(configuration, mean primary metric over its done runs) for every configuration run so far."""
    import json
    import math
    import statistics

    from ablab.results import derived_metrics

    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    primary = spec.primary_metric.name
    rows = st.runs(study_id)
    derived = derived_metrics(spec, st, study_id, rows)
    for r in rows:
        v = derived.get(r["key"], {}).get(primary, math.nan)
        if r["status"] == "done" and r["sensitivity"] is None and not math.isnan(v):
            k = json.dumps(r["config"], sort_keys=True)
            groups.setdefault(k, (r["config"], []))[1].append(v)
    return [(c, statistics.fmean(v)) for c, v in groups.values()]


def current_plan(spec: StudySpec, st: Store, study_id: int | None):
    """The plan as it stands: for a path design, grown as far as the recorded results allow."""
    from ablab.plan.designs_bridge import plan_for

    if study_id is None:
        return plan_for(spec)
    seeds_for = None
    if spec.adaptive:
        from ablab.execute.adaptive import recorded_seed_counts

        seeds_for = recorded_seed_counts(spec, st, study_id)
    known = path_results(spec, st, study_id) if spec.design.type == "path" else None
    return plan_for(spec, known, seeds_for)
