"""Provenance: the environment a study ran in, and the fingerprint of its code."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

from ablab.runtime.provenance import code_fingerprint, describe_code_change, environment, git_state


def head(repo):
    return subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_environment_contents(tmp_path, tools):
    tools.write_study(tmp_path)
    tools.git(tmp_path, "init", "-q", "-b", "trunk")
    tools.git(tmp_path, "add", ".")
    tools.git(tmp_path, "commit", "-q", "-m", "x")
    env = environment(tmp_path)
    assert env["python"] == platform.python_version()
    assert env["platform"] == platform.platform() and env["machine"] == platform.machine()
    assert env["cpu"] and isinstance(env["cpu"], str)
    assert env["cores"] == os.cpu_count()
    assert env["gpus"] == [] or all("name" in g for g in env["gpus"])
    for dist in ("torch", "numpy", "ablab-toolkit", "PyYAML"):
        assert env["packages"][dist] == metadata.version(dist), dist
    assert env["torch"] == metadata.version("torch")
    from ablab import __version__

    assert env["ablab"] == __version__
    assert env["command"] == sys.argv
    assert env["git"] == {
        "commit": head(tmp_path),
        "branch": "trunk",
        "dirty": False,
        "diff_sha256": env["git"]["diff_sha256"],
    }


def test_git_state_dirty_flag_and_diff_hash(tmp_path, tools):
    tools.write_study(tmp_path)
    tools.git(tmp_path, "init", "-q", "-b", "main")
    tools.git(tmp_path, "add", ".")
    tools.git(tmp_path, "commit", "-q", "-m", "x")
    clean = git_state(tmp_path)
    (tmp_path / "untracked.py").write_text("x = 1\n")  # untracked files do not make it dirty
    assert git_state(tmp_path) == clean
    with open(tmp_path / "entry.py", "a") as f:
        f.write("# edit\n")
    dirty = git_state(tmp_path)
    assert dirty["dirty"] is True and dirty["commit"] == clean["commit"]
    assert dirty["diff_sha256"] != clean["diff_sha256"]
    with open(tmp_path / "entry.py", "a") as f:
        f.write("# another edit\n")
    assert git_state(tmp_path)["diff_sha256"] != dirty["diff_sha256"]


def test_outside_git_there_is_no_git_state(tmp_path):
    assert git_state(tmp_path) is None
    assert environment(tmp_path)["git"] is None


def test_environment_records_relevant_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("ABLAB_SOMETHING", "x")
    monkeypatch.setenv("UNRELATED_SECRET", "nope")
    env = environment(tmp_path)["env"]
    assert env["OMP_NUM_THREADS"] == "3" and env["ABLAB_SOMETHING"] == "x"
    assert "UNRELATED_SECRET" not in env


def test_code_fingerprint_explains_changes(tmp_path, tools):
    tools.write_study(tmp_path)
    (tmp_path / ".ablab").mkdir()
    (tmp_path / ".ablab" / "ignored.py").write_text("x = 1\n")
    fp = code_fingerprint(tmp_path, entry_file=tmp_path / "entry.py")
    assert set(fp["files"]) == {"entry.py"}
    assert code_fingerprint(tmp_path, entry_file=tmp_path / "entry.py") == fp
    with open(tmp_path / "entry.py", "a") as f:
        f.write("# edit\n")
    fp2 = code_fingerprint(tmp_path, entry_file=tmp_path / "entry.py")
    assert fp2["digest"] != fp["digest"]
    assert describe_code_change(fp, fp2) == "modified: entry.py"
    # a file beside the study that no run imports is not the study's code (issue 16): runs add
    # the files they imported to their own fingerprint (see tests/cli/test_records.py)
    (tmp_path / "model.py").write_text("y = 2\n")
    fp3 = code_fingerprint(tmp_path, entry_file=tmp_path / "entry.py")
    assert fp3 == fp2
    more = {"digest": "x", "files": {**fp2["files"], "model.py": "ab"}}
    assert describe_code_change(fp2, more) == "added: model.py"
    assert describe_code_change(more, fp2) == "removed: model.py"


def test_code_fingerprint_includes_extra_code_paths(tmp_path, tools):
    study = tmp_path / "study"
    tools.write_study(study)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helpers.py").write_text("z = 1\n")
    fp = code_fingerprint(study, ("../lib",), study / "entry.py")
    assert any(k.endswith("lib/helpers.py") for k in fp["files"])
    (lib / "helpers.py").write_text("z = 2\n")
    fp2 = code_fingerprint(study, ("../lib",), study / "entry.py")
    assert "modified:" in describe_code_change(fp, fp2) and "helpers.py" in describe_code_change(
        fp, fp2
    )


def test_provenance_recorded_with_a_real_run(ok_study):
    """The environment of the `ablab run` invocation is stored and referenced by every run."""
    from ablab.store.db import Store

    with Store(ok_study["dir"] / ".ablab") as st:
        r = st.find_run(ok_study["runs"][0]["key"])
        env = r["environment"]
        assert env is not None
        assert env["python"] == platform.python_version()
        assert env["packages"]["torch"] == metadata.version("torch")
        assert env["cpu"] and env["cores"] == os.cpu_count()
        assert env["git"]["commit"] == head(ok_study["dir"]) and env["git"]["branch"] == "main"
        assert env["git"]["dirty"] is False
        assert env["command"][1:] == ["run", str(ok_study["path"]), "-j", "2"]
        assert env["command"][0].endswith("ablab")
        assert r["study"]["fingerprint"]["files"].keys() == {"entry.py"}
        assert r["code_digest"] == r["study"]["code_digest"]
        assert all(run["environment_id"] == r["environment_id"] for run in st.runs(r["study_id"]))
