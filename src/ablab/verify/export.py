"""The environment files of a study bundle: an installable ``requirements.lock``, a ``Dockerfile``,
``environment.yml`` (when the runs used conda), ``ro-crate-metadata.json`` (RO-Crate 1.1) and,
with ``--with-artifacts``, the runs' checkpoints.

**What the lock pins.** Not every package that happened to be installed (test runners, linters,
browsers): the closure of (a) ablab's own runtime requirements and (b) the distributions that the
study's code imports (its ``.py`` files, scanned with :mod:`ast`), following each distribution's
declared requirements (extras left out, environment markers evaluated here). Versions are the ones
recorded with the runs (falling back to the installed version for a package the record lacks).
The dependency graph is read from the installed metadata of the exporting machine.

**ablab itself.** Referenced by how it is installed (:pep:`610` ``direct_url.json``): from a VCS
as ``ablab @ git+URL@COMMIT``; from an index as ``ablab==VERSION``; from a local source tree
(editable or a folder, not installable elsewhere) as a wheel built at export time and shipped in
the bundle under ``wheels/``, referenced as ``./wheels/NAME.whl`` (install from the bundle's root).

**Local version labels** (``torch==2.13.0+cpu``) are not on PyPI: the index that serves them is
stated in a comment above the pin, and the Dockerfile passes it to pip.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

ABLAB_DIST = "ablab-toolkit"  # the distribution name ablab is installed (and published) under
LOCAL_LABEL_INDEX = {
    "cpu": "https://download.pytorch.org/whl/cpu",
    "cu118": "https://download.pytorch.org/whl/cu118",
    "cu121": "https://download.pytorch.org/whl/cu121",
    "cu124": "https://download.pytorch.org/whl/cu124",
    "cu126": "https://download.pytorch.org/whl/cu126",
    "cu128": "https://download.pytorch.org/whl/cu128",
    "rocm6.2": "https://download.pytorch.org/whl/rocm6.2",
}
_WHEELS: dict[str, tuple[str, bytes]] = {}  # source digest -> built wheel (one build per process)


def canon(name: str) -> str:
    """:pep:`503` normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(sources: dict[str, bytes]) -> set[str]:
    """Top-level module names imported by the given ``.py`` sources (absolute imports only)."""
    out: set[str] = set()
    for name, src in sources.items():
        if not name.endswith(".py"):
            continue
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
    local = {Path(n).stem for n in sources} | {Path(n).parts[0] for n in sources}
    return {m for m in out if m not in sys.stdlib_module_names and m not in local}


def _requires(dist: str) -> list[str]:
    """Names of the distributions ``dist`` requires here (no extras; markers evaluated)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        reqs = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return []
    out = []
    for text in reqs:
        try:
            r = Requirement(text)
        except InvalidRequirement:
            continue
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        out.append(r.name)
    return out


def closure(roots: set[str]) -> set[str]:
    """``roots`` and everything they require, transitively (canonical names)."""
    seen: set[str] = set()
    todo = [canon(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [canon(r) for r in _requires(name) if canon(r) not in seen]
    return seen


def lock_packages(recorded: dict[str, str], sources: dict[str, bytes]) -> dict[str, str]:
    """``{name: version}`` to pin: see the module docstring."""
    dists = metadata.packages_distributions()
    roots = {canon(r) for r in _requires(ABLAB_DIST)}
    for mod in imported_modules(sources):
        roots |= {canon(d) for d in dists.get(mod, [])}
    roots.discard(canon(ABLAB_DIST))
    wanted = closure(roots) - {canon(ABLAB_DIST)}
    by_canon = {canon(n): (n, v) for n, v in recorded.items()}
    out = {}
    for c in sorted(wanted):
        if c in by_canon:
            name, version = by_canon[c]
        else:
            try:
                name, version = c, metadata.version(c)
            except metadata.PackageNotFoundError:
                continue
        out[name] = version
    return out


def _source_tree() -> Path | None:
    """The local source folder ablab is installed from (editable or a directory), if any."""
    try:
        raw = metadata.distribution(ABLAB_DIST).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    info = json.loads(raw) if raw else {}
    url = info.get("url", "")
    if "vcs_info" in info or not url.startswith("file://"):
        return None
    path = Path(url[len("file://") :])
    return path if (path / "pyproject.toml").is_file() else None


def ablab_requirement() -> tuple[list[str], str, tuple[str, bytes] | None]:
    """(comment lines, requirement line, (wheel file name, bytes) or None) for ablab itself."""
    try:
        dist = metadata.distribution(ABLAB_DIST)
    except metadata.PackageNotFoundError:
        from ablab._version import __version__

        return (
            ["# ablab is not installed as a distribution here"],
            f"{ABLAB_DIST}=={__version__}",
            None,
        )
    info = json.loads(dist.read_text("direct_url.json") or "{}")
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        return ([], f"{ABLAB_DIST} @ {vcs['vcs']}+{info['url']}@{vcs['commit_id']}", None)
    src = _source_tree()
    if src is None:
        return ([], f"{ABLAB_DIST}=={dist.version}", None)
    wheel = build_wheel(src)
    if wheel is None:
        return (
            [
                f"# {ABLAB_DIST} {dist.version} was installed from a local source tree and could not",
                "# be built into a wheel at export time: install it from its source first.",
            ],
            f"# {ABLAB_DIST}=={dist.version}",
            None,
        )
    return (
        [
            f"# {ABLAB_DIST} {dist.version} was installed from a local source tree, not an index:",
            "# the bundle ships it as a wheel; run pip from the bundle's root folder.",
        ],
        f"./wheels/{wheel[0]}",
        wheel,
    )


def build_wheel(src: Path) -> tuple[str, bytes] | None:
    """A wheel of the source tree ``src`` (pip, no dependencies, no build isolation), or None."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted([src / "pyproject.toml", *(src / "src").rglob("*.py")]):
        h.update(str(f.relative_to(src)).encode() + f.read_bytes())
    key = h.hexdigest()
    if key in _WHEELS:
        return _WHEELS[key]
    import shutil

    with tempfile.TemporaryDirectory(prefix="ablab-wheel-") as tmp:
        copy = Path(tmp) / "src"  # build a copy: the source tree gets no build/ or egg-info
        skip = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.pyc")
        shutil.copytree(src / "src", copy / "src", ignore=skip)
        for f in src.iterdir():
            if f.is_file() and f.name.startswith(("pyproject", "README", "LICENSE", "setup")):
                shutil.copy2(f, copy / f.name)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        try:
            r = subprocess.run(
                [*cmd, "-w", str(Path(tmp) / "out"), str(copy)],
                capture_output=True,
                text=True,
                timeout=600,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        wheels = list((Path(tmp) / "out").glob("*.whl"))
        if r.returncode != 0 or len(wheels) != 1:
            return None
        _WHEELS[key] = (wheels[0].name, wheels[0].read_bytes())
    return _WHEELS[key]


def lock_file(
    recorded: dict[str, str], sources: dict[str, bytes]
) -> tuple[str, dict[str, bytes], list[str]]:
    """(``requirements.lock`` text, extra bundle files, index URLs the pins need)."""
    pins = lock_packages(recorded, sources)
    notes, ablab_line, wheel = ablab_requirement()
    indexes: list[str] = []
    lines = [
        "# Exact package versions of the recorded runs (written by ablab export).",
        "# Pinned: ablab's runtime requirements and the packages the study's code imports, with",
        "# their dependencies; development and test tools are left out.",
        "# Install from this folder:  pip install -r requirements.lock",
        "",
    ]
    for name, version in pins.items():
        label = version.split("+", 1)[1] if "+" in version else None
        if label is not None:
            url = LOCAL_LABEL_INDEX.get(label)
            if url and url not in indexes:
                indexes.append(url)
            lines.append(
                f"# {name} {version} carries a local label ('+{label}'): it is not on PyPI; "
                + (
                    f"add  --extra-index-url {url}"
                    if url
                    else "install it from the index that built it"
                )
            )
        lines.append(f"{name}=={version}")
    lines += ["", *notes, ablab_line, ""]
    extra = {f"wheels/{wheel[0]}": wheel[1]} if wheel else {}
    return "\n".join(lines), extra, indexes


def python_version(env: dict[str, Any]) -> str:
    v = str(env.get("python") or f"{sys.version_info.major}.{sys.version_info.minor}")
    return ".".join(v.split(".")[:2])


def dockerfile(env: dict[str, Any], study_file: str, indexes: list[str], wheels: list[str]) -> str:
    """A Dockerfile on the slim Python image of the recorded version: the lock installed, the
    study copied, ``ablab reproduce --bundle`` the default command."""
    pip_idx = "".join(f" --extra-index-url {u}" for u in indexes)
    copy_wheels = "COPY wheels/ ./wheels/\n" if wheels else ""
    return f"""# Rebuild the environment of this study's runs (written by ablab export).
#   unzip BUNDLE.zip -d bundle && cp BUNDLE.zip bundle/bundle.zip
#   docker build -t {_tag(study_file)} bundle && docker run --rm {_tag(study_file)}
FROM python:{python_version(env)}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /bundle
COPY requirements.lock ./
{copy_wheels}RUN pip install --no-cache-dir{pip_idx} -r requirements.lock
COPY study/ ./study/
COPY bundle.zip ./
CMD ["ablab", "reproduce", "--bundle", "/bundle/bundle.zip", "--sample", "3"]
"""


def _tag(study_file: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", Path(study_file).stem.lower()).strip("-.") or "study"


def used_conda(env: dict[str, Any]) -> bool:
    """True when the recorded environment ran inside conda (its recorded CONDA_* variables)."""
    return any(
        k.startswith("CONDA_PREFIX") or k == "CONDA_DEFAULT_ENV" for k in env.get("env") or {}
    )


def environment_yml(name: str, env: dict[str, Any]) -> str:
    return (
        f"# conda environment of the recorded runs (written by ablab export):\n"
        f"#   conda env create -f environment.yml && conda activate {_tag(name)}\n"
        f"name: {_tag(name)}\nchannels:\n  - conda-forge\ndependencies:\n"
        f"  - python={env.get('python') or python_version(env)}\n  - pip\n"
        f"  - pip:\n      - -r requirements.lock\n"
    )


_FORMATS = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".md": "text/markdown",
    ".html": "text/html",
    ".py": "text/x-python",
    ".toml": "application/toml",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".whl": "application/zip",
    ".lock": "text/plain",
    ".pt": "application/octet-stream",
}


def ro_crate(name: str, description: str, files: dict[str, bytes], date: str) -> bytes:
    """``ro-crate-metadata.json``: an RO-Crate 1.1 JSON-LD description of the bundle's files."""
    parts = []
    for path, data in sorted(files.items()):
        fmt = _FORMATS.get(Path(path).suffix) or ("text/plain" if path == "Dockerfile" else None)
        entity: dict[str, Any] = {
            "@id": path,
            "@type": "File",
            "name": Path(path).name,
            "contentSize": str(len(data)),
        }
        if fmt:
            entity["encodingFormat"] = fmt
        parts.append(entity)
    graph = [
        {
            "@id": "ro-crate-metadata.json",
            "@type": "CreativeWork",
            "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
            "about": {"@id": "./"},
        },
        {
            "@id": "./",
            "@type": "Dataset",
            "name": name,
            "description": description,
            "datePublished": date,
            "hasPart": [{"@id": p["@id"]} for p in parts],
        },
        *parts,
    ]
    doc = {"@context": "https://w3id.org/ro/crate/1.1/context", "@graph": graph}
    return json.dumps(doc, indent=1).encode()


def artifact_files(
    store: Any, study_id: int, keys: dict[int, str]
) -> tuple[dict[str, bytes], list[str]]:
    """``artifacts/KEY/FILE`` entries of the runs' recorded artifacts and README lines with sizes."""
    from ablab.store.records import run_artifacts

    files, lines = {}, []
    for run_id, arts in sorted(run_artifacts(store, study_id).items()):
        key = keys.get(run_id)
        if key is None:
            continue
        for art_name, path in sorted(arts.items()):
            p = Path(path)
            if not p.is_file():
                lines.append(f"- `{key}` {art_name}: missing at export ({p.name})")
                continue
            dest = f"artifacts/{key}/{p.name}"
            files[dest] = p.read_bytes()
            lines.append(f"- `{dest}` ({art_name}): {_size(len(files[dest]))}")
    return files, lines


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def environment_files(
    spec: Any,
    store: Any,
    study: dict[str, Any],
    env: dict[str, Any],
    files: dict[str, bytes],
    *,
    with_artifacts: bool = False,
) -> tuple[dict[str, bytes], str]:
    """The bundle's environment files (lock, wheels, Dockerfile, environment.yml, artifacts) and
    the README section on rebuilding; ``ro-crate-metadata.json`` is added by :func:`finish`."""
    sources = {n[len("study/") :]: b for n, b in files.items() if n.startswith("study/")}
    lock, extra, indexes = lock_file(env.get("packages") or {}, sources)
    out = {"requirements.lock": lock.encode(), **extra}
    study_file = spec.source.name if spec.source is not None else "study.toml"
    wheels = [n for n in extra if n.startswith("wheels/")]
    out["Dockerfile"] = dockerfile(env, study_file, indexes, wheels).encode()
    conda = used_conda(env)
    if conda:
        out["environment.yml"] = environment_yml(spec.name, env).encode()
    art_lines: list[str] = []
    if with_artifacts:
        keys = {r["id"]: r["key"] for r in store.runs(study["id"])}
        art, art_lines = artifact_files(store, study["id"], keys)
        out.update(art)
    idx = "".join(f" --extra-index-url {u}" for u in indexes)
    tag = _tag(study_file)
    readme = f"""
## Rebuild the environment
With pip (Python {python_version(env)}, from this folder):
```bash
python -m venv .venv && . .venv/bin/activate
pip install{idx} -r requirements.lock
ablab reproduce --bundle THIS.zip --sample 3
```
{"Or with conda: `conda env create -f environment.yml`." if conda else ""}
With Docker (no local Python needed; the image re-runs 3 sampled runs and compares them):
```bash
unzip THIS.zip -d bundle && cp THIS.zip bundle/bundle.zip
docker build -t {tag} bundle && docker run --rm {tag}
```
`requirements.lock` pins the packages the runs need (ablab's requirements and what the study's code
imports, with their dependencies), at the versions recorded with the runs; local version labels
(`+cpu`) name the index that serves them in a comment. `ro-crate-metadata.json` describes the
bundle for archives (RO-Crate 1.1).
"""
    if with_artifacts:
        readme += (
            "\n## Artifacts (checkpoints)\n" + ("\n".join(art_lines) or "none recorded") + "\n"
        )
    else:
        readme += "\nCheckpoints are not included (export with `--with-artifacts` to add them).\n"
    return out, readme


def finish(spec: Any, study: dict[str, Any], files: dict[str, bytes]) -> bytes:
    """``ro-crate-metadata.json`` over the bundle's other files."""
    import datetime

    date = datetime.datetime.fromtimestamp(study.get("created_at") or 0, datetime.UTC).date()
    desc = f"ablab study bundle of '{spec.name}', revision {study.get('revision')}"
    return ro_crate(spec.name, desc, files, date.isoformat())
