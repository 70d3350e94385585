"""Read a study bundle as untrusted input: validate, stream-hash, and only then extract.

What is checked, following pip's wheel/sdist handling (``is_within_directory``), CPython's
``zipfile`` notes on untrusted archives and the ``data`` extraction filter of PEP 706:

- every member name: relative, normalised (no empty, ``.`` or ``..`` parts, so
  ``study//ABS/PATH`` is refused), no absolute path, drive letter, backslash or control
  character, no duplicate (also after case folding: macOS and Windows would merge them), no
  member that is also another's folder; members are regular files only (no directory entries,
  symlinks or devices), not encrypted, stored or deflated;
- sizes from the central directory: at most :data:`MAX_MEMBERS` members,
  :data:`MAX_TOTAL_BYTES` in all, :data:`MAX_MEMBER_BYTES` per member, and a compression ratio
  of at most :data:`MAX_RATIO` for members over 1 MiB (a deflate bomb expands ~1000x);
  ``zipfile`` never returns more than a member's declared size, and the bytes read are counted;
- every member's SHA-256 against ``MANIFEST.json``, computed while streaming in 1 MiB chunks
  (a member is never read whole into memory, except the JSON documents, bounded by
  :data:`MAX_JSON_BYTES`); a corrupt deflate stream or CRC is reported, not raised;
- ``records.json``: every run key and revision name has the form ablab writes, since they
  become folder names (``runs/REVISION/KEY``), and every field has its type.

Extraction writes into a fresh temporary folder beside the destination and moves it into place
only after every member verified; on any error the folder is removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablab.errors import BundleError, SpecError

FORMAT = "ablab-bundle"
VERSION = 1
MAX_MEMBERS = 100_000
MAX_TOTAL_BYTES = 2 * 2**30
MAX_MEMBER_BYTES = 1 * 2**30
MAX_JSON_BYTES = 256 * 2**20
MAX_RATIO = 200
CHUNK = 2**20
RUN_KEY_RE = re.compile(r"^[0-9a-f]{16}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    NotImplementedError,
    RuntimeError,
)
_REFUSE = "do not use this bundle: it was not written by ablab export (or was altered)"


def check_member_name(name: str, where: str) -> None:
    """Refuse any member name that is not a plain, normalised, relative POSIX path."""
    why = None
    if not name or len(name) > 1024:
        why = "an empty or overlong name"
    elif any(ord(c) < 32 or ord(c) == 127 or 0x80 <= ord(c) < 0xA0 for c in name):
        why = "a control character in the name"
    elif "\\" in name:
        why = "a backslash (a Windows path)"
    elif name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        why = "an absolute path"
    elif name.endswith("/"):
        why = "a directory entry (a bundle holds files only)"
    elif any(p in ("", ".", "..") for p in name.split("/")) or posixpath.normpath(name) != name:
        why = "a path that is not normalised (empty, '.' or '..' parts)"
    if why:
        raise BundleError(f"{where}: unsafe member {name!r} in the bundle: {why}", hint=_REFUSE)


def check_infos(infos: list[zipfile.ZipInfo], where: str) -> None:
    """Names, kinds and sizes of every member, from the central directory (nothing is read)."""
    if len(infos) > MAX_MEMBERS:
        raise BundleError(f"{where}: {len(infos):,} members; a bundle has at most {MAX_MEMBERS:,}")
    seen: dict[str, str] = {}
    total = 0
    for i in infos:
        n = i.filename
        check_member_name(n, where)
        folded = n.casefold()
        if folded in seen:
            what = "twice" if seen[folded] == n else f"as '{seen[folded]}' and '{n}'"
            raise BundleError(
                f"{where}: the member '{n}' is in the bundle {what}: tools disagree which copy "
                "counts (the hash check would read one, unzip may keep the other)",
                hint=_REFUSE,
            )
        seen[folded] = n
        mode = i.external_attr >> 16
        if i.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):
            raise BundleError(
                f"{where}: the member '{n}' is not a regular file (a directory, symlink or device)",
                hint=_REFUSE,
            )
        if i.flag_bits & 0x1:
            raise BundleError(f"{where}: the member '{n}' is encrypted", hint=_REFUSE)
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BundleError(
                f"{where}: the member '{n}' uses compression method {i.compress_type}; "
                "ablab bundles are stored or deflated",
                hint=_REFUSE,
            )
        if i.file_size > MAX_MEMBER_BYTES:
            raise BundleError(
                f"{where}: the member '{n}' unpacks to {i.file_size / 2**20:,.0f} MiB; "
                f"a bundle member is at most {MAX_MEMBER_BYTES // 2**20:,} MiB",
                hint=_REFUSE,
            )
        if i.file_size > CHUNK and i.file_size > MAX_RATIO * max(i.compress_size, 1):
            raise BundleError(
                f"{where}: the member '{n}' expands {i.file_size / max(i.compress_size, 1):,.0f}"
                f"-fold ({i.compress_size:,} -> {i.file_size:,} bytes): a zip bomb",
                hint=_REFUSE,
            )
        total += i.file_size
    if total > MAX_TOTAL_BYTES:
        raise BundleError(
            f"{where}: the bundle unpacks to {total / 2**30:.1f} GiB; at most "
            f"{MAX_TOTAL_BYTES // 2**30} GiB",
            hint=_REFUSE,
        )
    for folded, n in seen.items():  # 'study/a' and 'study/a/b' cannot both be files
        parts = folded.split("/")
        for k in range(1, len(parts)):
            if "/".join(parts[:k]) in seen:
                raise BundleError(
                    f"{where}: the member '{seen['/'.join(parts[:k])]}' is also the folder of "
                    f"'{n}'",
                    hint=_REFUSE,
                )


@contextmanager
def open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    if not path.is_file():
        raise BundleError(f"{path}: bundle not found")
    try:
        z = zipfile.ZipFile(path)
    except _ZIP_ERRORS as e:
        raise BundleError(
            f"{path}: not a readable zip bundle ({type(e).__name__}: {e}); the file may be "
            "truncated or corrupt",
            hint="export it again with: ablab export STUDY_FILE -o FILE.zip",
        ) from None
    with z:
        yield z


def stream_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, out: Any, where: str) -> str:
    """Copy one member to ``out`` (a binary file or None) in chunks; return its SHA-256."""
    h = hashlib.sha256()
    n = 0
    try:
        with z.open(info) as f:
            while chunk := f.read(CHUNK):
                n += len(chunk)
                if n > info.file_size:
                    raise BundleError(
                        f"{where}: the member '{info.filename}' is longer than declared"
                    )
                h.update(chunk)
                if out is not None:
                    out.write(chunk)
    except _ZIP_ERRORS as e:
        raise BundleError(
            f"{where}: the member '{info.filename}' is corrupt ({type(e).__name__}: {e})",
            hint="the file was damaged in transfer; export or download it again",
        ) from None
    if n != info.file_size:
        raise BundleError(f"{where}: the member '{info.filename}' is truncated")
    return h.hexdigest()


def read_json_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Any:
    if info.file_size > MAX_JSON_BYTES:
        raise BundleError(
            f"{where}: '{info.filename}' is {info.file_size / 2**20:,.0f} MiB; at most "
            f"{MAX_JSON_BYTES // 2**20} MiB"
        )
    import io

    buf = io.BytesIO()
    stream_member(z, info, buf, where)
    try:
        return json.loads(buf.getvalue())
    except (ValueError, RecursionError) as e:
        raise BundleError(f"{where}: {info.filename} is not valid JSON ({e})") from None


def check_manifest(manifest: Any, names: set[str], where: str) -> dict[str, str]:
    """The manifest's file table, which must list exactly the other members."""
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT
        or not isinstance(manifest.get("files"), dict)
    ):
        raise BundleError(f"{where}: MANIFEST.json does not describe an ablab bundle")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{where}: MANIFEST.json has no valid version ({version!r})")
    if version > VERSION:
        raise BundleError(
            f"{where}: bundle version {version} is newer than this ablab reads",
            hint="upgrade ablab",
        )
    files = manifest["files"]
    for name, digest in files.items():
        if not isinstance(digest, str) or not _SHA_RE.match(digest):
            raise BundleError(f"{where}: MANIFEST.json: '{name}' has no SHA-256 ({digest!r})")
        if name not in names:
            raise BundleError(
                f"{where}: '{name}' is listed in the manifest but missing from the bundle"
            )
    extra = names - set(files) - {"MANIFEST.json"}
    if extra:
        raise BundleError(
            f"{where}: files not listed in the manifest: {', '.join(sorted(extra)[:5])}",
            hint=_REFUSE,
        )
    for required in ("records.json", "plan.json"):
        if required not in files:
            raise BundleError(f"{where}: the bundle has no {required}")
    sf = manifest.get("study_file")
    if sf is not None and (
        not isinstance(sf, str) or not sf.startswith("study/") or sf not in files
    ):
        raise BundleError(f"{where}: the study file {sf!r} is missing from the bundle")
    return files


def verify_and_extract(path: Path, dest: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate the whole bundle; with ``dest``, extract its ``study/`` folder there.

    Returns (manifest, {"records.json": ..., "plan.json": ...} parsed). ``dest`` must not exist:
    files are written into a temporary folder beside it, renamed to ``dest`` only when every
    member verified, and removed on any error.
    """
    where = str(path)
    with open_zip(path) as z:
        infos = z.infolist()
        check_infos(infos, where)
        by_name = {i.filename: i for i in infos}
        if "MANIFEST.json" not in by_name:
            raise BundleError(f"{where}: no MANIFEST.json; not an ablab bundle")
        manifest = read_json_member(z, by_name["MANIFEST.json"], where)
        files = check_manifest(manifest, set(by_name), where)
        docs: dict[str, Any] = {}
        tmp = None
        if dest is not None:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
        try:
            for name, digest in files.items():
                info = by_name[name]
                if name in ("records.json", "plan.json"):
                    import io

                    if info.file_size > MAX_JSON_BYTES:
                        read_json_member(z, info, where)  # raises with the size
                    buf = io.BytesIO()
                    got = stream_member(z, info, buf, where)
                elif tmp is not None and name.startswith("study/"):
                    target = tmp / name[len("study/") :]
                    if not _within(tmp, target):
                        raise BundleError(f"{where}: unsafe member '{name}'", hint=_REFUSE)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "xb") as out:
                        got = stream_member(z, info, out, where)
                else:
                    got = stream_member(z, info, None, where)
                if got != digest:
                    raise BundleError(
                        f"{where}: hash mismatch for '{name}': the bundle was modified after "
                        "export",
                        hint=_REFUSE,
                    )
                if name in ("records.json", "plan.json"):
                    try:
                        docs[name] = json.loads(buf.getvalue())
                    except (ValueError, RecursionError) as e:
                        raise BundleError(f"{where}: {name} is not valid JSON ({e})") from None
            check_records(docs["records.json"], where)
            if tmp is not None:
                os.rename(tmp, dest)
                tmp = None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return manifest, docs


def _within(root: Path, target: Path) -> bool:
    """pip's ``is_within_directory``: the target's absolute path starts with the root's."""
    r, t = os.path.abspath(root), os.path.abspath(target)
    return os.path.commonpath([r, t]) == r and t != r


_STATUSES = ("pending", "running", "done", "failed", "interrupted")


def check_records(rec: Any, where: str) -> None:
    """records.json: the shape :func:`ablab.store.records.import_study` stores, every run key and
    revision in the form ablab writes (they become folder names)."""
    from ablab.spec.checks import check_revision
    from ablab.spec.load import parse_study

    w = f"{where}: records.json"
    if not isinstance(rec, dict) or not all(
        isinstance(rec.get(k), t)
        for k, t in (("study", dict), ("environments", dict), ("runs", list))
    ):
        raise BundleError(f"{w} is malformed: expected study, environments and runs")
    s = rec["study"]
    _typed(
        s, w + " study", name=str, revision=str, spec=dict, code_digest=str, created_at=(int, float)
    )
    try:
        check_revision(s["revision"], f"{w} study revision")
        spec = parse_study(s["spec"])
    except SpecError as e:
        raise BundleError(e.message, hint=_REFUSE) from None
    if spec.name != s["name"]:
        raise BundleError(f"{w}: the study is named {s['name']!r} but its spec {spec.name!r}")
    for h, env in rec["environments"].items():
        if not isinstance(env, dict):
            raise BundleError(f"{w}: environment {h!r} is not a table")
    keys: set[str] = set()
    for i, r in enumerate(rec["runs"]):
        at = f"{w} run {i}"
        if not isinstance(r, dict):
            raise BundleError(f"{at} is not a table")
        _typed(r, at, key=str, variant=str, seed=int, config=dict, status=str)
        if not RUN_KEY_RE.match(r["key"]):
            raise BundleError(
                f"{at}: key {r['key']!r} is not a run key (16 hex digits)", hint=_REFUSE
            )
        if r["key"] in keys:
            raise BundleError(f"{at}: run key {r['key']} appears twice", hint=_REFUSE)
        keys.add(r["key"])
        if r["status"] not in _STATUSES or not 0 <= r["seed"] < 2**63:
            raise BundleError(f"{at}: status {r['status']!r} / seed {r['seed']!r} not valid")
        _typed(
            r, at, optional=True, split_seed=int, sensitivity=str, attempts=int, host=str,
            error=str, traceback=str, code_digest=str, environment_hash=str, metrics=dict,
            series=list, data=dict, threads=int,
            **dict.fromkeys(
                ("started_at", "ended_at", "wall_seconds", "cpu_seconds", "peak_rss_mb",
                 "peak_gpu_mb", "created_at"),
                (int, float),
            ),
        )  # fmt: skip
        for k, v in (r.get("metrics") or {}).items():
            if v is not None and not _num(v):
                raise BundleError(f"{at}: metric {k!r} = {v!r} is not a number")
        for pt in r.get("series") or []:
            if not (
                isinstance(pt, list)
                and len(pt) == 3
                and isinstance(pt[0], str)
                and isinstance(pt[1], int)
                and (pt[2] is None or _num(pt[2]))
            ):
                raise BundleError(f"{at}: series point {pt!r} is not [name, step, value]")
        for k, v in (r.get("data") or {}).items():
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)):
                raise BundleError(f"{at}: data hash {k!r} = {v!r} is not [kind, sha256]")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _typed(d: dict, at: str, optional: bool = False, **types: Any) -> None:
    for k, t in types.items():
        if k not in d or (optional and d[k] is None):
            if optional:
                continue
            raise BundleError(f"{at}: missing '{k}'")
        v = d[k]
        if isinstance(v, bool) and t is not bool or not isinstance(v, t):
            raise BundleError(f"{at}: '{k}' = {str(v)[:80]!r} has the wrong type", hint=_REFUSE)
