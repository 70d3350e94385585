"""What the dashboard shows, read from one or more stores (read-only) through ``results``.

A study revision is addressed as ``<store index>-<study id>`` (``0-3``): both parts are small
integers, validated before any lookup, so no request names a file. Each request opens its own
read-only connection (cheap; no connection is shared between threads). Analyses are cached per
study and recomputed when the study's change marker moves (a run finished, a verification
was added), so pages stay current while a driver works without re-analysing on every poll.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablab.errors import AblabError, StoreError

SID = re.compile(r"^(\d{1,4})-(\d{1,9})$")
KEY = re.compile(r"^[0-9a-f]{4,64}$")
STATUSES = ("pending", "running", "done", "failed", "interrupted")


class NotFound(AblabError):
    """A page or API path names nothing that exists (HTTP 404)."""


@dataclass
class Loaded:
    sid: str
    study: dict[str, Any]
    spec: Any
    results: Any  # ablab.results.StudyResults
    analysis: dict[str, Any] | None
    counts: dict[str, int]
    verifications: list[dict[str, Any]]
    store_dir: Path


class Catalog:
    def __init__(self, stores: list[Path]) -> None:
        self.stores = [Path(s) for s in stores]
        self._cache: dict[str, tuple[tuple, Loaded]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def open(self, index: int) -> Iterator[Any]:
        from ablab.store.readonly import ReadOnlyStore

        if not 0 <= index < len(self.stores):
            raise NotFound(f"no store number {index}")
        st = ReadOnlyStore(self.stores[index])
        try:
            yield st
        finally:
            st.close()

    def studies(self) -> list[dict[str, Any]]:
        """Every study revision of every store, with counts by status and primary verdicts."""
        out = []
        for i, directory in enumerate(self.stores):
            try:
                with self.open(i) as st:
                    counts = st.status_counts()
                    rows = st.studies()
            except StoreError as e:
                out.append({"store": str(directory), "error": e.message})
                continue
            for row in rows:
                c = {s: int(counts.get(row["id"], {}).get(s, 0)) for s in STATUSES}
                sid = f"{i}-{row['id']}"
                entry = {
                    "id": sid,
                    "name": row["name"],
                    "revision": row["revision"],
                    "store": str(directory),
                    "created_at": row["created_at"],
                    "counts": c,
                    "total": sum(c.values()),
                }
                cached = self._cache.get(sid)
                if cached and cached[1].analysis:
                    entry["verdicts"] = primary_verdicts(cached[1].analysis)
                out.append(entry)
        return out

    def load(self, sid: str, *, analyse: bool = True) -> Loaded:
        m = SID.match(sid or "")
        if not m:
            raise NotFound(f"'{sid}' is not a study id (expected STORE-STUDY, e.g. 0-1)")
        index, study_id = int(m.group(1)), int(m.group(2))
        with self.open(index) as st:
            row = next((r for r in st.studies() if r["id"] == study_id), None)
            if row is None:
                raise NotFound(f"no study {study_id} in store {index}")
            marker = st.change_marker(study_id)
            with self._lock:
                cached = self._cache.get(sid)
            if cached and cached[0] == marker and (cached[1].analysis or not analyse):
                return cached[1]
            loaded = self._load(st, sid, row, analyse)
        with self._lock:
            self._cache[sid] = (marker, loaded)
        return loaded

    def _load(self, st, sid: str, row: dict[str, Any], analyse: bool) -> Loaded:
        from ablab.results import analyze_results, load_results
        from ablab.store.records import verifications

        spec = spec_of(row)
        res = load_results(spec, st, row["revision"])
        status = res.runs["status"].astype(str) if len(res.runs) else []
        counts = {s: int((status == s).sum()) if len(res.runs) else 0 for s in STATUSES}
        analysis = None
        if analyse and counts["done"]:
            try:
                analysis = analyze_results(res)
            except AblabError as e:  # e.g. the baseline has no finished run yet
                analysis = {"error": e.message}
        return Loaded(
            sid=sid,
            study=row,
            spec=spec,
            results=res,
            analysis=analysis,
            counts=counts,
            verifications=verifications(st, study_id=row["id"]),
            store_dir=Path(st.dir),
        )

    def run(self, sid: str, key: str) -> tuple[Loaded, dict[str, Any]]:
        if not KEY.match(key or ""):
            raise NotFound(f"'{key}' is not a run key")
        loaded = self.load(sid, analyse=False)
        index = int(SID.match(sid).group(1))
        with self.open(index) as st:
            rows = [r for r in st.runs(loaded.study["id"]) if r["key"] == key]
            if not rows:
                raise NotFound(f"no run {key} in study {sid}")
            full = st.find_run(key, study_id=loaded.study["id"])
            logs = read_logs(st.run_dir(key, loaded.study["revision"]), st.dir)
        run = {**rows[0], "logs": logs}
        # the declared metrics as the report derives them (last/best from the series)
        derived = loaded.results.runs
        match = derived[derived["key"] == key]
        if len(match):
            rec = match.iloc[0].to_dict()
            names = [m.name for m in loaded.spec.metrics]
            run["metrics"] = {
                **(run.get("metrics") or {}),
                **{m: rec[m] for m in names if m in rec and rec[m] == rec[m]},
            }
        if full is not None and full.get("study_id") == loaded.study["id"]:
            run = {**full, **run}
        return loaded, run


def spec_of(row: dict[str, Any]):
    """The study's spec as recorded (the store keeps it in study-file shape)."""
    from ablab.spec.load import parse_study

    source = row.get("source")
    return parse_study(row["spec"], source=Path(source) if source else None)


def primary_verdicts(analysis: dict[str, Any]) -> dict[str, int]:
    """Counts of the primary metric's verdicts over the variants."""
    prim = analysis.get("primary_metric")
    counts: dict[str, int] = {}
    for v in analysis.get("variants", [])[1:]:
        verdict = (v.get("vs_baseline") or {}).get(prim, {}).get("verdict")
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def read_logs(folder: Path, root: Path, limit: int = 200_000) -> dict[str, str]:
    """A run's captured output (``stdout.log``/``stderr.log`` in its run folder), the last
    ``limit`` bytes of each; nothing outside the store folder ``root`` is read."""
    out: dict[str, str] = {}
    for name in ("stdout.log", "stderr.log"):
        p = Path(folder) / name
        try:
            if not p.resolve().is_relative_to(Path(root).resolve()) or not p.is_file():
                continue
            size = p.stat().st_size
            with p.open("rb") as f:
                if size > limit:
                    f.seek(size - limit)
                out[name] = f.read().decode("utf-8", "replace")
        except OSError:
            continue
    return out
