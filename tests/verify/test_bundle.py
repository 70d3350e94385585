import json
import zipfile
from pathlib import Path

import pytest

from ablab.cli.main import main


@pytest.fixture
def bundle(exported) -> Path:
    return exported[1]


def test_bundle_contents(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MANIFEST.json"))
        lock = z.read("requirements.lock").decode()
        records = json.loads(z.read("records.json"))
    assert {
        "study/study.toml",
        "study/entry.py",
        "plan.json",
        "records.json",
        "runs.csv",
        "requirements.lock",
        "environment.json",
        "data_hashes.json",
        "README.md",
        "report.html",
    } <= names
    assert set(manifest["files"]) == names - {"MANIFEST.json"}
    assert "torch==" in lock and "numpy==" in lock
    assert len(records["runs"]) == 4 and all(r["metrics"] for r in records["runs"])


def test_export_import_reproduce_round_trip(bundle, tmp_path, capsys):
    store = tmp_path / "imported"
    assert main(["import", str(bundle), "--store", str(store)]) == 0
    capsys.readouterr()
    rec = json.loads(zipfile.ZipFile(bundle).read("records.json"))
    key = rec["runs"][0]["key"]
    assert main(["show", key, "--store", str(store), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"] == rec["runs"][0]["metrics"]
    assert (
        main(
            [
                "reproduce",
                "--bundle",
                str(bundle),
                "--variant",
                "baseline",
                "--sample",
                "1",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res[0]["verdict"] == "reproduced (bit-identical)"
    # importing the same bundle again is idempotent
    assert main(["import", str(bundle), "--store", str(store)]) == 0


def _rewrite(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as z:
        items = {n: z.read(n) for n in z.namelist()}
    items = edit(items)
    with zipfile.ZipFile(dst, "w") as z:
        for n, data in items.items():
            z.writestr(n, data)
    return dst


@pytest.mark.parametrize(
    "case", ["truncated", "escape", "missing_entry", "hash_mismatch", "not_zip"]
)
def test_bad_bundles_are_refused_and_write_nothing(bundle, tmp_path, capsys, case):
    bad = tmp_path / f"{case}.zip"
    if case == "truncated":
        bad.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    elif case == "not_zip":
        bad.write_text("hello")
    elif case == "escape":

        def edit(items):
            items["../evil.py"] = b"print('x')"
            m = json.loads(items["MANIFEST.json"])
            import hashlib

            m["files"]["../evil.py"] = hashlib.sha256(b"print('x')").hexdigest()
            items["MANIFEST.json"] = json.dumps(m).encode()
            return items

        _rewrite(bundle, bad, edit)
    elif case == "missing_entry":
        _rewrite(
            bundle, bad, lambda items: {k: v for k, v in items.items() if k != "study/entry.py"}
        )
    elif case == "hash_mismatch":

        def edit(items):
            items["records.json"] = items["records.json"].replace(b'"score"', b'"sc0re"', 1)
            return items

        _rewrite(bundle, bad, edit)
    store = tmp_path / "target"
    capsys.readouterr()
    assert main(["import", str(bad), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert str(bad.name) in err
    assert not store.exists()
    assert main(["reproduce", "--bundle", str(bad), "--sample", "1"]) == 2
    assert not (tmp_path / "evil.py").exists()


def test_import_into_the_source_store_changes_nothing(exported, capsys):
    study, bundle = exported
    capsys.readouterr()
    main(["runs", str(study), "--format", "json"])
    before = capsys.readouterr().out
    assert main(["import", str(bundle), "--store", str(study.parent / ".ablab")]) == 0
    capsys.readouterr()
    main(["runs", str(study), "--format", "json"])
    assert capsys.readouterr().out == before


# --- hostile bundles: each is refused with exit 2 by import and reproduce, writing nothing ---


def _craft(src: Path, dst: Path, edit, rehash: bool = True) -> Path:
    """Rewrite ``src`` as ``dst``: ``edit`` gets and returns a list of (name, data) pairs (data
    may be a ZipInfo-ready (bytes, external_attr) tuple); the manifest is re-hashed so that
    only the hostile part can be refused."""
    import hashlib
    import warnings

    with zipfile.ZipFile(src) as z:
        items = [(n, z.read(n)) for n in z.namelist() if n != "MANIFEST.json"]
        manifest = json.loads(z.read("MANIFEST.json"))
    items = edit(items)
    if rehash:
        manifest["files"] = {
            n: hashlib.sha256(d[0] if isinstance(d, tuple) else d).hexdigest() for n, d in items
        }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write
        with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("MANIFEST.json", json.dumps(manifest))
            for n, d in items:
                if isinstance(d, tuple):
                    info = zipfile.ZipInfo(n)
                    info.external_attr = d[1]
                    z.writestr(info, d[0])
                else:
                    z.writestr(n, d)
    return dst


def _records(edit):
    def f(items):
        out = []
        for n, d in items:
            if n == "records.json":
                rec = json.loads(d)
                edit(rec)
                d = json.dumps(rec).encode()
            out.append((n, d))
        return out

    return f


def _assert_refused(bad: Path, tmp_path: Path, capsys, *words: str) -> None:
    store = tmp_path / "target"
    capsys.readouterr()
    assert main(["import", str(bad), "--store", str(store)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err and bad.name in err, err
    for w in words:
        assert w in err, (w, err)
    assert not store.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".target")]
    assert main(["reproduce", "--bundle", str(bad), "--sample", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_absolute_path_hidden_behind_a_double_slash_is_refused(bundle, tmp_path, capsys):
    target = tmp_path / "outside" / "evil.py"
    bad = _craft(bundle, tmp_path / "abs.zip", lambda it: [*it, (f"study/{target}", b"x = 1")])
    _assert_refused(bad, tmp_path, capsys, "unsafe member", "not normalised")
    assert not target.exists()


@pytest.mark.parametrize(
    "name, words",
    [
        ("../evil.py", ["not normalised"]),
        ("/tmp/evil.py", ["absolute path"]),
        ("C:/evil.py", ["absolute path"]),
        ("study\\..\\evil.py", ["backslash"]),
        ("study/./x.py", ["not normalised"]),
        ("study/a\x1b[31m.py", ["control character"]),
    ],
)
def test_unsafe_member_names_are_refused(bundle, tmp_path, capsys, name, words):
    bad = _craft(bundle, tmp_path / "names.zip", lambda it: [*it, (name, b"x = 1")])
    _assert_refused(bad, tmp_path, capsys, *words)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("key", "../../x", ["is not a run key"]),
        ("revision", "../../x", ["not a revision name"]),
        ("seed", "0", ["wrong type"]),
        ("runs", 7, ["malformed"]),
    ],
)
def test_run_keys_and_revisions_that_would_be_paths_are_refused(
    bundle, tmp_path, capsys, field, value, words
):
    def edit(rec):
        if field == "revision":
            rec["study"]["revision"] = value
        elif field == "runs":
            rec["runs"] = value
        else:
            rec["runs"][0][field] = value

    bad = _craft(bundle, tmp_path / "rec.zip", _records(edit))
    _assert_refused(bad, tmp_path, capsys, *words)
    assert not (tmp_path / "x").exists()


def test_duplicate_members_are_refused(bundle, tmp_path, capsys):
    def edit(items):
        return [*items, ("study/entry.py", b"import os; os.system('echo pwned')\n")]

    bad = _craft(bundle, tmp_path / "dup.zip", edit, rehash=False)
    _assert_refused(bad, tmp_path, capsys, "twice")


def test_case_folded_duplicates_are_refused(bundle, tmp_path, capsys):
    bad = _craft(bundle, tmp_path / "case.zip", lambda it: [*it, ("study/ENTRY.py", b"x = 1")])
    _assert_refused(bad, tmp_path, capsys, "study/ENTRY.py")


def test_directory_and_symlink_members_are_refused(bundle, tmp_path, capsys):
    import stat

    bad = _craft(bundle, tmp_path / "dir.zip", lambda it: [*it, ("study/sub/", b"")])
    _assert_refused(bad, tmp_path, capsys, "directory entry")
    link = (b"/etc/passwd", (stat.S_IFLNK | 0o777) << 16)
    bad = _craft(bundle, tmp_path / "link.zip", lambda it: [*it, ("study/passwd", link)])
    _assert_refused(bad, tmp_path, capsys, "not a regular file")


def test_corrupt_deflate_stream_is_refused(bundle, tmp_path, capsys):
    bad = tmp_path / "corrupt.zip"
    data = bytearray(bundle.read_bytes())
    with zipfile.ZipFile(bundle) as z:
        info = z.getinfo("records.json")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for i in range(start + 20, start + min(info.compress_size, 400), 7):
        data[i] ^= 0x5A
    bad.write_bytes(bytes(data))
    _assert_refused(bad, tmp_path, capsys, "records.json", "corrupt")


def test_zip_bomb_is_refused_before_it_expands(bundle, tmp_path, capsys):
    """256 MiB of zeros in ~250 KB, listed in the manifest with its true hash: the old code read
    it whole into memory and accepted it."""
    import hashlib

    bad = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle) as z:
        items = [(n, z.read(n)) for n in z.namelist() if n != "MANIFEST.json"]
        manifest = json.loads(z.read("MANIFEST.json"))
    zeros, h = bytes(2**20), hashlib.sha256()
    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for n, d in items:
            z.writestr(n, d)
        with z.open("study/zeros.bin", "w") as f:
            for _ in range(256):
                f.write(zeros)
                h.update(zeros)
        manifest["files"]["study/zeros.bin"] = h.hexdigest()
        z.writestr("MANIFEST.json", json.dumps(manifest))
    assert bad.stat().st_size < 2 * 2**20
    _assert_refused(bad, tmp_path, capsys, "zip bomb")


def test_size_limits_apply_to_the_declared_sizes(bundle, tmp_path, capsys, monkeypatch):
    from ablab.verify import bundle_check

    monkeypatch.setattr(bundle_check, "MAX_TOTAL_BYTES", 1000)
    _assert_refused(bundle, tmp_path, capsys, "unpacks to")
    monkeypatch.undo()
    monkeypatch.setattr(bundle_check, "MAX_MEMBER_BYTES", 1000)
    _assert_refused(bundle, tmp_path, capsys, "a bundle member is at most")


def test_refused_import_leaves_an_existing_store_unchanged(exported, tmp_path, capsys):
    study, bundle = exported
    bad = _craft(bundle, tmp_path / "k.zip", _records(lambda r: r["runs"][0].update(key="zz")))
    db = study.parent / ".ablab" / "ablab.db"
    before = db.stat().st_mtime_ns, db.stat().st_size
    assert main(["import", str(bad), "--store", str(db.parent)]) == 2
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before


def test_importing_another_revision_says_which_revision_ablab_run_continues(
    exported, tmp_path, capsys
):
    import shutil

    study, bundle = exported
    store = tmp_path / "store"
    shutil.copytree(study.parent / ".ablab", store)
    other = _craft(
        bundle, tmp_path / "other.zip", _records(lambda r: r["study"].update(revision="theirs"))
    )
    capsys.readouterr()
    assert main(["import", str(other), "--store", str(store)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "keeps continuing the revision recorded from it" in err
    assert "--revision theirs" in err
