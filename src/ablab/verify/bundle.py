"""Study bundles: a self-contained zip for a paper's artifact (``ablab export`` / ``import``).

Layout of the zip::

    MANIFEST.json        format, version, study, revision and the SHA-256 of every other file
    README.md            how to re-run and verify
    study/...            the study directory: study file, code and small data files
    plan.json            the resolved plan (key, variant, seed, config)
    records.json         the study revision, environments and every run record
    runs.csv             one row per run (metrics as columns)
    logs/KEY/...         what each run printed (stdout.log, stderr.log)
    requirements.lock    exact package versions from provenance
    environment.json     the environment summary; data_hashes.json: tracked data hashes
    report.html          the HTML report (when the study has done runs)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ablab.errors import BundleError
from ablab.spec.model import StudySpec
from ablab.store.db import Store
from ablab.verify.bundle_check import FORMAT, VERSION, verify_and_extract

MAX_DATA_FILE_BYTES = 50 * 2**20  # files of the study directory larger than this stay out
MAX_DATA_BYTES = 200 * 2**20


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def export_bundle(
    spec: StudySpec,
    store: Store,
    out: Path,
    revision: str | None = None,
    *,
    with_artifacts: bool = False,
) -> dict[str, Any]:
    """Write the bundle of ``spec``'s recorded study to ``out``; returns the manifest."""
    from ablab.api import current_plan
    from ablab.runtime.entry import entry_file
    from ablab.runtime.provenance import _py_files, study_files
    from ablab.store.records import environment_hash_of

    study = store.study(spec.name, revision)
    if study is None:
        raise BundleError(
            f"{spec.label}: nothing recorded for study '{spec.name}' in {store.dir}",
            hint=f"run it first: ablab run {spec.source}",
        )
    files: dict[str, bytes] = {}
    root = spec.root
    if spec.source is not None:
        files[f"study/{spec.source.name}"] = spec.source.read_bytes()
    code, skipped = study_files(root, MAX_DATA_FILE_BYTES, MAX_DATA_BYTES)
    code = set(code)
    ef = entry_file(spec.entry, root)
    if ef is not None:
        code.add(ef)
    for extra in spec.run.code:
        p = (root / extra).resolve()
        code |= set(_py_files(p)) if p.is_dir() else ({p} if p.is_file() else set())
    for f in sorted(code):
        try:
            rel = f.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue  # code outside the study directory is recorded by hash only
        files[f"study/{rel}"] = f.read_bytes()
    plan = current_plan(spec, store, study["id"])
    files["plan.json"] = _json(
        [
            {
                "key": r.key,
                "variant": r.variant,
                "seed": r.seed,
                "split_seed": r.split_seed,
                "sensitivity": r.sensitivity,
                "config": r.config,
            }
            for r in plan.runs
        ]
    )
    keys = {r.key for r in plan.runs}
    runs, envs = [], {}
    for row in store.runs(study["id"]):
        if row["key"] not in keys:
            continue
        full = (
            store.find_run(row["key"])
            if row["status"] == "done"
            else {**row, "series": [], "data": {}}
        )
        h = environment_hash_of(store, row["environment_id"])
        if h and h not in envs:
            envs[h] = store.environment(row["environment_id"])
        runs.append(
            {
                k: full.get(k)
                for k in (
                    "key",
                    "variant",
                    "seed",
                    "split_seed",
                    "sensitivity",
                    "config",
                    "status",
                    "attempts",
                    "host",
                    "started_at",
                    "ended_at",
                    "wall_seconds",
                    "cpu_seconds",
                    "peak_rss_mb",
                    "peak_gpu_mb",
                    "threads",
                    "code_digest",
                    "code_files",
                    "run_order",
                    "error",
                    "traceback",
                    "created_at",
                    "metrics",
                    "series",
                    "data",
                )
            }
            | {"environment_hash": h}
        )
    files.update(_run_logs(store, study["revision"], [r["key"] for r in runs]))
    study_env_hash = environment_hash_of(store, study["environment_id"])
    if study_env_hash and study_env_hash not in envs:
        envs[study_env_hash] = store.environment(study["environment_id"])
    study_rec = {
        k: study[k]
        for k in ("name", "revision", "spec", "code_digest", "fingerprint", "created_at")
    }
    study_rec["environment_hash"] = study_env_hash
    study_rec["source_name"] = spec.source.name if spec.source else None
    files["records.json"] = _json({"study": study_rec, "environments": envs, "runs": runs})
    env = envs.get(study_env_hash or "", {}) or {}
    from ablab.verify.export import environment_files, finish  # lock, Dockerfile, RO-Crate

    env_files, env_readme = environment_files(
        spec, store, study, env, files, with_artifacts=with_artifacts
    )
    files.update(env_files)
    files["environment.json"] = _json({k: v for k, v in env.items() if k != "packages"})
    files["data_hashes.json"] = _json({r["key"]: r["data"] for r in runs if r.get("data")})
    files["runs.csv"] = _runs_csv(spec, runs)
    html = _report_html(spec, store)
    if html is not None:
        files["report.html"] = html.encode()
    files["README.md"] = (_readme(spec, study, runs, skipped) + env_readme).encode()
    files["ro-crate-metadata.json"] = finish(spec, study, files)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "study": spec.name,
        "revision": study["revision"],
        "study_file": f"study/{spec.source.name}" if spec.source else None,
        "files": {name: _sha(data) for name, data in sorted(files.items())},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("MANIFEST.json", _json(manifest))
        for name, data in sorted(files.items()):
            z.writestr(name, data)
    tmp.replace(out)
    return manifest


def import_bundle(path: Path, store_dir: Path) -> dict[str, Any]:
    """Validate the bundle completely, then load its records into ``store_dir`` in one transaction.

    A store that does not exist yet is built in a temporary folder beside ``store_dir`` and moved
    into place only when the import succeeded, so a refused bundle leaves nothing behind.
    """
    _, docs = verify_and_extract(path, None)
    rec = docs["records.json"]
    fresh = not (store_dir / "ablab.db").exists() and (
        not store_dir.exists() or (store_dir.is_dir() and not any(store_dir.iterdir()))
    )
    if not fresh:
        study = _import_records(path, store_dir, rec)
        _restore_logs(path, store_dir, study["revision"], rec)
        return study
    store_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{store_dir.name}.import-", dir=store_dir.parent))
    try:
        study = _import_records(path, tmp, rec)
        if store_dir.exists():
            store_dir.rmdir()  # empty (checked above)
        os.rename(tmp, store_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _restore_logs(path, store_dir, study["revision"], rec)
    return study


def _restore_logs(path: Path, store_dir: Path, revision: str, rec: Any) -> None:
    """Write the bundle's ``logs/KEY/{stdout,stderr}.log`` (verified by the manifest above) into
    the imported runs' folders, so ``ablab logs KEY`` works on imported records."""
    import zipfile

    runs = rec.get("runs") if isinstance(rec, dict) else None
    keys = {r.get("key") for r in runs or [] if isinstance(r, dict)}
    keys = {k for k in keys if isinstance(k, str) and re.fullmatch(r"[0-9a-f]{8,64}", k)}
    with Store(store_dir) as st, zipfile.ZipFile(path) as z:
        for info in z.infolist():
            parts = info.filename.split("/")
            if (
                len(parts) != 3
                or parts[0] != "logs"
                or parts[1] not in keys
                or parts[2] not in LOGS
            ):
                continue
            if info.file_size > MAX_LOG_BYTES:
                continue
            d = st.run_dir(parts[1], revision)
            d.mkdir(parents=True, exist_ok=True)
            (d / parts[2]).write_bytes(z.read(info))


def _import_records(path: Path, store_dir: Path, rec: dict[str, Any]) -> dict[str, Any]:
    import sqlite3

    from ablab.store.records import import_study

    try:
        with Store(store_dir) as st:
            return import_study(
                st, {**rec["study"], "source": None}, rec["environments"], rec["runs"]
            )
    except (sqlite3.Error, OverflowError, TypeError, ValueError) as e:
        raise BundleError(f"{path}: records.json cannot be stored ({e})") from None


def unpack_bundle(path: Path, workspace: Path) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """Verify the bundle, extract its study folder to ``workspace/study`` and import its records
    into ``workspace/store``; returns (manifest, study file, study row)."""
    manifest, _ = verify_and_extract(path, workspace / "study")
    if not manifest.get("study_file"):
        raise BundleError(
            f"{path}: the bundle carries no study file, so its runs cannot be re-executed"
        )
    study = import_bundle(path, workspace / "store")
    return manifest, workspace / "study" / manifest["study_file"][len("study/") :], study


LOGS = ("stdout.log", "stderr.log")
MAX_LOG_BYTES = 5 * 2**20  # the end of a longer log is kept


def _run_logs(store: Store, revision: str, keys: list[str]) -> dict[str, bytes]:
    """``logs/KEY/stdout.log`` and ``stderr.log`` of each run (what it printed, see ablab logs)."""
    out = {}
    for key in keys:
        for name in LOGS:
            p = store.run_dir(key, revision) / name
            if p.is_file():
                with open(p, "rb") as f:
                    f.seek(max(0, p.stat().st_size - MAX_LOG_BYTES))
                    out[f"logs/{key}/{name}"] = f.read()
    return out


def _json(obj: Any) -> bytes:
    from ablab.jsonutil import clean_json

    return json.dumps(clean_json(obj), indent=1, sort_keys=True, default=str).encode()


def _runs_csv(spec: StudySpec, runs: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    names = [m.name for m in spec.metrics]
    w = csv.writer(buf)
    w.writerow(["key", "variant", "seed", "status", *names, "wall_seconds"])
    for r in runs:
        w.writerow(
            [
                r["key"],
                r["variant"],
                r["seed"],
                r["status"],
                *((r.get("metrics") or {}).get(m, "") for m in names),
                r.get("wall_seconds") or "",
            ]
        )
    return buf.getvalue().encode()


def _report_html(spec: StudySpec, store: Store) -> str | None:
    try:
        from ablab.report import render
        from ablab.results import analyze_results, load_results

        res = load_results(spec, store)
        if not (res.runs["status"] == "done").any():
            return None
        return render(
            analyze_results(res),
            "html",
            runs=res.runs,
            series=res.series,
            provenance=res.provenance,
        )
    except (
        Exception
    ):  # the report is a convenience of the bundle, never a reason to fail the export
        return None


def _readme(
    spec: StudySpec, study: dict[str, Any], runs: list[dict[str, Any]], skipped: list[str]
) -> str:
    done = sum(r["status"] == "done" for r in runs)
    left_out = (
        (
            "\nFiles of the study directory left out (too large; their hashes are in `data_hashes.json` "
            "when the runs tracked them): " + ", ".join(skipped) + "\n"
        )
        if skipped
        else ""
    )
    name = spec.source.name if spec.source else "study.toml"
    return f"""# {spec.name}: an ablab study bundle

Revision `{study["revision"]}`, {done} of {len(runs)} runs done, exported by ablab.

## What is inside
- `study/` — the study file (`{name}`) and its code
- `records.json`, `runs.csv` — every run: configuration, seed, metrics, logged series, data hashes, resources
- `plan.json` — the resolved plan; `requirements.lock` — exact package versions; `environment.json`
- `report.html` — the statistical report (open it in any browser, offline)
{left_out}
## Re-run and verify
```bash
python -m venv .venv && . .venv/bin/activate
pip install -r requirements.lock          # the exact versions the runs used
ablab reproduce --bundle THIS.zip --sample 3   # re-runs 3 sampled runs and compares them bit for bit
```
Or load the records into a store and inspect them:
```bash
ablab import THIS.zip --store .ablab
```
To re-run everything: unzip, then `ablab run study/{name}`.
"""
