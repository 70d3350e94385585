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
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from ablab.errors import BundleError
from ablab.spec.model import StudySpec
from ablab.store.db import Store

FORMAT = "ablab-bundle"
VERSION = 1
MAX_BUNDLE_BYTES = 2 * 2**30
MAX_DATA_FILE_BYTES = 50 * 2**20  # files of the study directory larger than this stay out
MAX_DATA_BYTES = 200 * 2**20


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def export_bundle(
    spec: StudySpec, store: Store, out: Path, revision: str | None = None
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
    files["requirements.lock"] = "".join(
        f"{n}=={v}\n" for n, v in (env.get("packages") or {}).items()
    ).encode()
    files["environment.json"] = _json({k: v for k, v in env.items() if k != "packages"})
    files["data_hashes.json"] = _json({r["key"]: r["data"] for r in runs if r.get("data")})
    files["runs.csv"] = _runs_csv(spec, runs)
    html = _report_html(spec, store)
    if html is not None:
        files["report.html"] = html.encode()
    files["README.md"] = _readme(spec, study, runs, skipped).encode()
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


def read_bundle(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Open and fully validate a bundle: zip integrity, safe paths, manifest and hashes.

    Raises :class:`BundleError` naming the problem; nothing is extracted or written.
    """
    if not path.is_file():
        raise BundleError(f"{path}: bundle not found")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise BundleError(
            f"{path}: not a readable zip bundle ({e}); the file may be truncated or corrupt",
            hint="export it again with: ablab export STUDY_FILE -o FILE.zip",
        ) from None
    with z:
        names = z.namelist()
        for n in names:
            p = PurePosixPath(n)
            if (
                n.startswith("/")
                or "\\" in n
                or ".." in p.parts
                or (p.parts and p.parts[0].endswith(":"))
            ):
                raise BundleError(
                    f"{path}: unsafe path '{n}' in the bundle (it escapes the bundle's root)",
                    hint="do not use this bundle; it was not written by ablab export",
                )
        if sum(i.file_size for i in z.infolist()) > MAX_BUNDLE_BYTES:
            raise BundleError(
                f"{path}: the bundle unpacks to more than {MAX_BUNDLE_BYTES // 2**30} GiB"
            )
        try:
            bad = z.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise BundleError(f"{path}: corrupt bundle ({e})") from None
        if bad is not None:
            raise BundleError(f"{path}: corrupt member '{bad}' (CRC mismatch)")
        if "MANIFEST.json" not in names:
            raise BundleError(f"{path}: no MANIFEST.json; not an ablab bundle")
        try:
            manifest = json.loads(z.read("MANIFEST.json"))
        except ValueError as e:
            raise BundleError(f"{path}: MANIFEST.json is not valid JSON ({e})") from None
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") != FORMAT
            or not isinstance(manifest.get("files"), dict)
        ):
            raise BundleError(f"{path}: MANIFEST.json does not describe an ablab bundle")
        if manifest.get("version", 0) > VERSION:
            raise BundleError(
                f"{path}: bundle version {manifest.get('version')} is newer than this ablab reads",
                hint="upgrade ablab",
            )
        files: dict[str, bytes] = {}
        for name, digest in manifest["files"].items():
            if name not in names:
                raise BundleError(
                    f"{path}: '{name}' is listed in the manifest but missing from the bundle"
                )
            data = z.read(name)
            if _sha(data) != digest:
                raise BundleError(
                    f"{path}: hash mismatch for '{name}': the bundle was modified after export"
                )
            files[name] = data
        extra = set(names) - set(manifest["files"]) - {"MANIFEST.json"}
        if extra:
            raise BundleError(
                f"{path}: files not listed in the manifest: {', '.join(sorted(extra)[:5])}"
            )
    for required in ("records.json", "plan.json"):
        if required not in files:
            raise BundleError(f"{path}: the bundle has no {required}")
    if manifest.get("study_file") and manifest["study_file"] not in files:
        raise BundleError(
            f"{path}: the study file '{manifest['study_file']}' is missing from the bundle"
        )
    return manifest, files


def import_bundle(path: Path, store_dir: Path) -> dict[str, Any]:
    """Validate the bundle completely, then load its records into ``store_dir`` in one transaction."""
    from ablab.store.records import import_study

    manifest, files = read_bundle(path)
    try:
        rec = json.loads(files["records.json"])
        study, envs, runs = rec["study"], rec["environments"], rec["runs"]
    except (ValueError, KeyError, TypeError) as e:
        raise BundleError(f"{path}: records.json is malformed ({e})") from None
    with Store(store_dir) as st:
        row = import_study(st, {**study, "source": None}, envs, runs)
        keys = {r.get("key") for r in runs if isinstance(r, dict)}
        for name, data in files.items():  # logs/KEY/stdout.log -> the run's folder
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "logs" and parts[1] in keys and parts[2] in LOGS:
                d = st.run_dir(parts[1], row["revision"])
                d.mkdir(parents=True, exist_ok=True)
                (d / parts[2]).write_bytes(data)
        return row


def extract_study(files: dict[str, bytes], manifest: dict[str, Any], dest: Path) -> Path:
    """Write the bundle's study directory under ``dest``; returns the study file's path."""
    for name, data in files.items():
        if name.startswith("study/"):
            p = dest / name[len("study/") :]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    if not manifest.get("study_file"):
        raise BundleError("the bundle carries no study file, so its runs cannot be re-executed")
    return dest / manifest["study_file"][len("study/") :]


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
