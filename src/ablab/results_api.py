"""Results in Python: ``ablab.load(study)`` -> tables and a report object for a notebook.

    res = ablab.load("examples/digits/study.toml")
    res.runs()              # one row per run: key, variant, seed, status, ..., metrics, config
    res.series(key)         # the logged series of a run (or of every run)
    rep = res.report()      # the same analysis as `ablab report`
    rep.to_dict()           # == json.loads(`ablab report --format json`)
    rep                     # renders as an HTML table in Jupyter

Everything is read through :mod:`ablab.results` and the store; nothing here writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablab.errors import AblabError, StoreError

if TYPE_CHECKING:
    from ablab.api import Study
    from ablab.spec.model import StudySpec

_RUN_COLUMNS = ("key", "variant", "seed", "split_seed", "sensitivity", "status", "attempts")


class Report:
    """The analysis of a study, as ``ablab report`` computes it.

    ``to_dict()`` is exactly the data of ``ablab report --format json``; ``to_markdown()``,
    ``to_latex()`` and ``to_csv()`` are the CLI's renderings; in a notebook the object shows
    one results table per metric (``_repr_html_``)."""

    def __init__(self, result: Mapping[str, Any]) -> None:
        self._result = result

    def to_dict(self) -> dict[str, Any]:
        """A fresh JSON-ready dict (a copy: changing it does not change the report)."""
        from ablab.report import render

        return json.loads(render(self._result, "json"))

    def to_json(self) -> str:
        from ablab.report import render

        return render(self._result, "json")

    def to_markdown(self) -> str:
        from ablab.report import render

        return render(self._result, "md")

    def to_latex(self) -> str:
        from ablab.report import render

        return render(self._result, "latex")

    def to_csv(self) -> str:
        from ablab.report import render

        return render(self._result, "csv")

    def __str__(self) -> str:
        from ablab.report import render

        return render(self._result, "table")

    def __repr__(self) -> str:
        n = len(self._result.get("variants", []))
        return f"<ablab.Report study={self._result.get('study')!r} variants={n}>"

    def _repr_html_(self) -> str:
        from ablab.report.html import results_table
        from ablab.report.html_parts import esc
        from ablab.report.text import verdict_sentences

        r = self._result
        out = [f"<div class='ablab-report'><h4>{esc(r.get('study', ''))}</h4>"]
        for i, m in enumerate(r.get("metrics", {})):
            out.append(f"<p><b>{esc(m)}</b></p>")
            out.append(results_table(r, m, f"ablab-{i}"))
        sentences = [
            re.sub(r"\*\*(\w+)\*\*", r"<b>\1</b>", s) for s in verdict_sentences(r, escape=esc)
        ]
        if sentences:
            out.append("<ul>" + "".join(f"<li>{s}</li>" for s in sentences) + "</ul>")
        if r.get("verification"):
            out.append(f"<p>reproducibility: {esc(r['verification'])}</p>")
        out.append("</div>")
        return "".join(out)


class Results:
    """The recorded results of one study (its newest revision unless ``revision`` is given).

    Data are read when a method is called, so a ``Results`` kept in a notebook sees runs added
    since it was made."""

    def __init__(
        self, spec: StudySpec, store: str | Path | None = None, revision: str | None = None
    ) -> None:
        from ablab.api import default_store_dir

        self.spec = spec
        self.store_dir = Path(store) if store is not None else default_store_dir(spec)
        self.revision = revision

    def __repr__(self) -> str:
        return f"<ablab.Results study={self.spec.name!r} store={str(self.store_dir)!r}>"

    def _load(self):
        from ablab.results import load_results
        from ablab.store.db import Store

        self._check_store()
        with Store(self.store_dir) as st:
            return load_results(self.spec, st, self.revision)

    def _check_store(self) -> None:
        if not (self.store_dir / "ablab.db").exists():
            raise StoreError(
                f"{self.spec.label}: no store at {self.store_dir}",
                hint=f"run the study first (ablab.run(...) or ablab run {self.spec.source or 'STUDY_FILE'})",
            )

    def runs(self) -> Any:
        """A pandas DataFrame, one row per run of the current plan: key, variant, seed,
        split_seed, sensitivity, status, attempts, wall_seconds, cpu_seconds, peak_rss_mb, error,
        one column per declared metric (NaN where a run has none), then one column per
        configuration key (dotted for nested keys; prefixed ``config.`` where the name is
        already a column)."""
        import pandas as pd

        from ablab.spec.model import flatten

        res = self._load()
        df = res.runs.copy()
        flat = [flatten(res.run_configs.get(k, {})) for k in df["key"]]
        keys: list[str] = []
        for f in flat:
            keys += [k for k in f if k not in keys]
        taken = set(df.columns)
        cols = {k: (f"config.{k}" if k in taken else k) for k in keys}
        cfg = pd.DataFrame(
            [{cols[k]: _cell(v) for k, v in f.items()} for f in flat],
            columns=list(cols.values()),
            index=df.index,
        )
        return pd.concat([df, cfg], axis=1)

    def series(self, key: str | None = None) -> Any:
        """The logged series as a long DataFrame (key, variant, seed, name, step, value): of the
        run whose key is (or uniquely starts with) ``key``, or of every run."""
        res = self._load()
        df = res.series
        if key is None:
            return df.reset_index(drop=True)
        keys = set(res.runs["key"])
        match = [k for k in keys if k == key] or sorted(k for k in keys if k.startswith(key))
        if not match:
            raise AblabError(
                f"{self.spec.label}: no run with key '{key}'",
                hint="see the keys with .runs()['key'] or `ablab runs STUDY_FILE`",
            )
        if len(match) > 1:
            raise AblabError(
                f"run key prefix '{key}' is ambiguous: it matches {', '.join(match[:5])}",
                hint="give more characters of the key",
            )
        return df[df["key"] == match[0]].reset_index(drop=True)

    def report(self, alpha: float = 0.05) -> Report:
        """The analysis against the baseline (means, intervals, Holm-adjusted tests, effect
        sizes, verdicts), as ``ablab report`` computes it at level ``alpha``."""
        from ablab.results import build_report
        from ablab.store.db import Store

        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
            raise AblabError(f"alpha = {alpha!r}: expected a number between 0 and 1")
        self._check_store()
        with Store(self.store_dir) as st:
            result, _, _ = build_report(self.spec, st, self.revision, alpha=float(alpha))
        return Report(result)


def _cell(v: Any) -> Any:
    """Lists and empty tables become their JSON text so that every cell is a scalar."""
    if isinstance(v, list | dict):
        return json.dumps(v, sort_keys=True)
    return v


def load(
    study: Study | StudySpec | str | Path,
    *,
    store: str | Path | None = None,
    revision: str | None = None,
) -> Results:
    """The results of ``study`` (a study file, a :class:`ablab.Study` or a spec), read from its
    store (``.ablab`` beside the study file unless ``store`` or ``$ABLAB_STORE`` says otherwise).
    """
    from ablab.api import _as_spec

    return Results(_as_spec(study), store=store, revision=revision)
