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
