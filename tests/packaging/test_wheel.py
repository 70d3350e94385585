"""The wheel: `python -m build` makes one that installs into a fresh venv and runs the
quickstart (`ablab init`, `ablab run`, `ablab report`) from the installed copy, and the
distribution name can be published."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TAKEN = ("ab-lab",)  # existing projects on the package index that a name must not collide with


def ultranormalize(name: str) -> str:
    """How the package index compares names for confusion: case, '-', '_', '.' ignored and
    'o'/'0', 'l'/'i'/'1' folded (PEP 503 normalisation plus PyPI's confusable-name rule)."""
    n = re.sub(r"[-_.]+", "", name.lower())
    return n.replace("o", "0").replace("l", "1").replace("i", "1")


def test_distribution_name_is_publishable():
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    clash = [t for t in TAKEN if ultranormalize(t) == ultranormalize(name)]
    assert not clash, f"distribution name {name!r} collides with existing project(s) {clash}"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ABLAB_STORE")}
    env["COLUMNS"] = "200"
    return env


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs_the_quickstart(tmp_path):
    # build from a copy, so that build/ and *.egg-info never land in the work tree
    src = tmp_path / "src-copy"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    # --no-isolation: no network; setuptools >= 70.1 writes wheels itself, so the separate
    # `wheel` package listed in build-system.requires is not needed (-x skips that check)
    b = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "-x",
            "-o",
            str(dist),
            str(src),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(meta.replace("METADATA", "entry_points.txt")).decode()
    assert "ablab/__init__.py" in names and "ablab/py.typed" in names
    assert "ablab/cli/initcmd.py" in names and not any("tests/" in n for n in names)
    assert re.search(r"^ablab = ablab\.cli\.main:entry$", entry_points, re.M)

    # a fresh venv that sees the dependencies of this one (no downloads) but not its ablab
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=300,
    )
    assert inst.returncode == 0, inst.stdout + inst.stderr
    where = subprocess.run(
        [str(py), "-c", "import ablab; print(ablab.__file__)"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=tmp_path,
    )
    assert where.stdout.strip().startswith(site), where.stdout + where.stderr

    ablab = env_dir / "bin" / "ablab"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(ablab), *args],
            capture_output=True,
            text=True,
            env=_clean_env(),
            cwd=tmp_path,
            timeout=300,
        )

    r = cli("init", "quick")
    assert r.returncode == 0, r.stderr
    study = tmp_path / "quick" / "study.toml"
    # one seed per variant keeps it short (tests/cli/test_init.py runs the starter as written)
    study.write_text(study.read_text().replace("seeds = 5 ", "seeds = 1 "))
    r = cli("run", str(study), "-j", "1", "--quiet")
    assert r.returncode == 0 and "quick: 3/3 done, 0 failed" in r.stdout, r.stdout + r.stderr
    r = cli("report", str(study), "--format", "json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert [v["name"] for v in rep["variants"]] == ["baseline", "no-hidden", "tiny"]
