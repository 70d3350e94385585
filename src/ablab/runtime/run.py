"""The :class:`Run` handle passed to a study's entry: ``train(config, run) -> dict``."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablab.errors import MetricError


@dataclass
class Run:
    """What an entry knows about, and records into, the run it executes.

    Attributes: ``key`` (stable run key), ``variant``, ``seed``, ``split_seed`` (a separate
    source of randomness for data splits; equals ``seed`` unless the study crosses split
    seeds), ``config`` (resolved), ``run_dir`` (a private artifact folder), ``device``.
    """

    key: str
    variant: str
    seed: int
    config: dict[str, Any]
    run_dir: Path
    split_seed: int = 0
    device: str = "cpu"
    attempt: int = 1
    series: list[tuple[str, int, float]] = field(default_factory=list)
    data: dict[str, tuple[str, str]] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    root: Path | None = None  # the study file's folder: `replace` factories are relative to it
    measured: dict[str, float] = field(default_factory=dict)  # cost.* metrics from run.measure
    edits: list[dict[str, Any]] = field(default_factory=list)  # what run.ablate matched
    _t0: float = field(default_factory=time.monotonic, repr=False)

    def log(self, step: int | None = None, **metrics: float) -> None:
        """Record a point of one or more time series, e.g. ``run.log(step=epoch, val_acc=0.9)``.

        Without ``step`` the next step of each series is used (0, 1, 2, ...).
        """
        for name, value in metrics.items():
            v = _as_float(value, f"run.log({name}=...)")
            s = step if step is not None else sum(1 for n, _, _ in self.series if n == name)
            self.series.append((name, int(s), v))

    def track_data(self, name: str, obj: Any) -> str:
        """Record the SHA-256 of data the run used (array, tensor, file or directory); returns it."""
        from ablab.runtime.hashing import hash_data

        kind, digest = hash_data(obj)
        self.data[name] = (kind, digest)
        return digest

    def save_model(self, model: Any, name: str = "model") -> Path:
        """Save ``model.state_dict()`` (or a state dict) to ``run_dir/NAME.pt``; load it back with
        ``torch.load(path, weights_only=True)``."""
        import torch

        state = model.state_dict() if hasattr(model, "state_dict") else model
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"{name}.pt"
        torch.save(
            {k: v.detach().cpu() if hasattr(v, "detach") else v for k, v in state.items()}, path
        )
        self.artifacts[name] = str(path)
        return path

    def generator(self, salt: str = "") -> Any:
        """A ``torch.Generator`` seeded from the run's seed (and ``salt``), for DataLoaders and
        random ops: ``DataLoader(..., generator=run.generator())``."""
        import torch

        from ablab.runtime.seeding import derive_seed

        g = torch.Generator()
        g.manual_seed(derive_seed(self.seed, "generator", salt) if salt else self.seed)
        return g

    def rng(self, salt: str = "") -> Any:
        """A NumPy ``Generator`` seeded from the run's seed (and ``salt``)."""
        import numpy as np

        from ablab.runtime.seeding import derive_seed

        return np.random.default_rng(derive_seed(self.seed, "numpy", salt))

    def landscape(
        self,
        model: Any,
        data: Any,
        loss_fn: Any,
        second_model: Any = None,
        *,
        hessian_samples: int | None = None,
        mc_epochs: int = 10,
    ) -> dict[str, float]:
        """Loss-landscape metrics of a trained model (``ablab.landscape``: train error, Hessian top
        eigenvalue and log trace, and with ``second_model`` mode connectivity and CKA), seeded from
        the run, returned as a dict to merge into the entry's metrics. Sample counts are recorded
        as ``<metric>_samples``."""
        from ablab.mdtree.diagnose import landscape_metrics

        metrics, n_samples, _ = landscape_metrics(
            model,
            data,
            loss_fn,
            second_model,
            hessian_samples=hessian_samples,
            mc_epochs=mc_epochs,
            seed=self.seed,
        )
        out = {k: float(v) for k, v in metrics.items()}
        out.update({f"{k}_samples": float(n) for k, n in n_samples.items()})
        return out

    def probe(
        self, model: Any, id_data: Any, ood_data: Any, layers: Any = None, **kwargs: Any
    ) -> dict[str, float]:
        """Layer-wise OOD probing (``ablab.probe.probe_model``) as study metrics: % OOD retained
        (r), ID/OOD correlation (rho), alignment (A), tunnel start, ... The full report is saved
        as ``run_dir/probe.json``."""
        from ablab.probe import probe_model

        report = probe_model(model, id_data, ood_data, layers=layers, seed=self.seed, **kwargs)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        report.to_json(self.run_dir / "probe.json")
        self.artifacts["probe"] = str(self.run_dir / "probe.json")
        return {
            k: float(v)
            for k, v in report.summary().items()
            if isinstance(v, (int, float)) and v is not None
        }

    def ablate(self, model: Any, *, reference: Any = None) -> Any:
        """Apply this variant's module edits (its ``"@path" = ...`` keys) to ``model`` and return it.

        Call it where the edits belong: after loading a trained checkpoint (post hoc, no
        retraining) or right after building the model (the variant trains without the part).
        ``reference``: a batch of inputs for ``"mean"`` edits. What matched is recorded in
        ``run_dir/ablation.json``; a path that matches nothing fails the run with the closest
        module paths. Without ``@`` keys (e.g. the baseline) the model is returned unchanged.
        See :mod:`ablab.components.apply`.
        """
        from ablab.components.edits import edits_of

        edits = edits_of(self.config)
        if not edits:
            return model
        from ablab.components.apply import apply_edits
        from ablab.runtime.entry import load_entry

        root = self.root if self.root is not None else Path.cwd()
        model, records = apply_edits(
            model, edits, reference=reference, load_factory=lambda ref: load_entry(ref, root)
        )
        self.edits += [r.to_dict() for r in records]
        self._write_json("ablation", {"edits": self.edits})
        return model

    def measure(
        self, model: Any, example_input: Any, *, warmup: int = 3, repeats: int = 20
    ) -> dict[str, float]:
        """Measure ``model``'s costs on ``example_input`` and record them as run metrics
        ``cost.params``, ``cost.trainable_params``, ``cost.flops``, ``cost.latency_ms`` (median
        of ``repeats`` passes after ``warmup``), ``cost.latency_iqr_ms``, ``cost.peak_memory_mb``
        and ``cost.threads``. Costs are informational (no verdicts); latency and memory are
        nondeterministic (left out of bit-identity checks). Returns the plain numbers
        (``params``, ``flops``, ``latency_ms``, ...). See :mod:`ablab.components.costs`.
        """
        from ablab.components.costs import measure

        out = measure(model, example_input, warmup=warmup, repeats=repeats)
        self.measured.update({f"cost.{k}": v for k, v in out.items()})
        return out

    def log_examples(self, name: str, values: Any) -> None:
        """Record one number per test example (e.g. ``"correct"`` as 0/1, or a per-example
        loss), in a fixed example order shared by every variant: the report then compares each
        variant with the baseline example by example (McNemar's exact test for 0/1 values, a
        paired t-test and bootstrap interval otherwise), beside the seed-level statistics.

        Stored as the series ``example:NAME`` with the example index as its step.
        """
        import numpy as np

        from ablab.analysis.examples import EXAMPLE_PREFIX

        if not isinstance(name, str) or not name or ":" in name:
            raise MetricError(f"run.log_examples: name {name!r}: expected a non-empty name")
        if hasattr(values, "detach"):
            values = values.detach().cpu().numpy()
        try:
            arr = np.asarray(values, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise MetricError(
                f"run.log_examples({name!r}, ...): expected a sequence of numbers, "
                f"got {type(values).__name__}"
            ) from None
        if arr.size == 0 or not np.isfinite(arr).all():
            raise MetricError(
                f"run.log_examples({name!r}, ...): expected a non-empty sequence of finite "
                f"numbers ({arr.size} values, {int((~np.isfinite(arr)).sum())} not finite)"
            )
        series = EXAMPLE_PREFIX + name
        if any(n == series for n, _, _ in self.series):
            raise MetricError(f"run.log_examples({name!r}, ...) was called twice in this run")
        self.series += [(series, i, float(v)) for i, v in enumerate(arr)]

    def _write_json(self, name: str, obj: Any) -> None:
        import json

        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / f"{name}.json"
        path.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
        self.artifacts[name] = str(path)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0


def _as_float(value: Any, what: str) -> float:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MetricError(f"{what}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def check_metrics(result: Any, declared: list[str], reduced: set[str]) -> dict[str, float]:
    """Validate an entry's return value: a dict holding every declared metric as a finite number.

    Metrics reduced from a logged series (``reduce = last|best``) need not be returned.
    Extra returned numbers are kept as well.
    """
    if not isinstance(result, dict):
        raise MetricError(
            f"the entry returned {type(result).__name__}, expected a dict of metrics",
            hint=f"return e.g. {{{', '.join(repr(m) + ': ...' for m in declared)}}}",
        )
    out: dict[str, float] = {}
    for k, v in result.items():
        try:
            out[str(k)] = _as_float(v, f"metric '{k}'")
        except MetricError:
            if k in declared:
                raise
    missing = [m for m in declared if m not in out and m not in reduced]
    if missing:
        raise MetricError(
            f"the entry did not return declared metric(s) {', '.join(missing)}; "
            f"it returned {sorted(out) or 'nothing'}",
            hint="return every metric declared in [metrics], or remove it from [metrics]",
        )
    bad = [f"{m}={out[m]}" for m in declared if m in out and not math.isfinite(out[m])]
    if bad:
        raise MetricError(
            f"the entry returned non-finite metric(s): {', '.join(bad)}",
            hint="a NaN/inf metric usually means training diverged",
        )
    return out
