"""Shared fixtures of the foundation tests: a tiny study whose entry's behaviour is chosen by a
config key, helpers that run the real ``ablab`` command (or the CLI in this process), and
studies already run once per test session (running a study costs a few seconds of worker
start-up, so tests share them)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ABLAB = Path(sys.executable).with_name("ablab")

# The entry of every tiny study. ``mode`` chooses what a run does; every call appends
# "start KEY ATTEMPT PID" (and "end KEY" when it returns) to calls.log beside the entry, with
# O_APPEND writes, so tests can count executions across workers and drivers.
ENTRY = """\
import os
import random
import signal
import time
from pathlib import Path

LOG = Path(__file__).with_name("calls.log")


def _log(line):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)


def train(config, run):
    mode = config["mode"]
    _log(f"start {run.key} {run.attempt} {os.getpid()}")
    if mode == "raise":
        raise ValueError(f"boom in {run.variant}")
    if mode == "exit":
        os._exit(3)
    if mode == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "hang":
        time.sleep(600)
    if mode == "flaky" and run.attempt == 1:
        raise RuntimeError("flaky: fails on its first attempt")
    if mode == "sleep":
        time.sleep(config["sleep"])
    if mode == "gate":  # block until the test creates the file "open" beside the entry
        while not LOG.with_name("open").exists():
            time.sleep(0.02)
    if mode == "nometric":
        _log(f"end {run.key}")
        return {"other": 1.0}
    if mode == "nan":
        _log(f"end {run.key}")
        return {"score": float("nan")}
    import numpy as np
    import torch

    # draws from global generators the entry never seeds: ablab seeds them from run.seed
    draws = {"py": random.random(), "np": float(np.random.rand()), "torch": float(torch.rand(1))}
    x = torch.randn(64, 8)
    y = x @ torch.randn(8, 1) + 0.1 * torch.randn(64, 1)
    model = torch.nn.Sequential(torch.nn.Linear(8, config["hidden"]), torch.nn.Tanh(),
                                torch.nn.Linear(config["hidden"], 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(config["steps"]):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log(step=step, loss=loss.item())
    run.track_data("x", x)
    run.save_model(model)
    _log(f"end {run.key}")
    return {"score": -loss.item(), **draws}
"""

BASELINE = {"mode": "ok", "hidden": 4, "steps": 10, "sleep": 0.0}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def write_study(
    directory: Path,
    *,
    name: str = "tiny",
    variants: dict[str, dict] | None = None,
    seeds: int | list[int] = 2,
    run: dict | None = None,
    metrics: dict[str, str] | None = None,
    baseline: dict | None = None,
) -> Path:
    """Write ``study.toml`` and ``entry.py`` into ``directory``; return the study file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "entry.py").write_text(ENTRY)
    lines = [
        f"name = {_toml_value(name)}",
        'entry = "entry.py:train"',
        f"seeds = {_toml_value(seeds)}",
        "[metrics]",
    ]
    lines += [f"{k} = {_toml_value(v)}" for k, v in (metrics or {"score": "max"}).items()]
    lines.append("[baseline]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in (baseline or BASELINE).items()]
    lines.append("[ablations]")
    lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in (variants or {}).items()]
    if run:
        lines.append("[run]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in run.items()]
    path = directory / "study.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def calls(directory: Path) -> list[list[str]]:
    """calls.log of a tiny study, split into fields."""
    log = directory / "calls.log"
    return [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []


def starts(directory: Path) -> list[str]:
    return [c[1] for c in calls(directory) if c[0] == "start"]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ABLAB_STORE"}
    env["COLUMNS"] = "200"
    return env


def ablab_cli(
    *args: Any, cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run the installed ``ablab`` console script; returns the completed process (text output)."""
    return subprocess.run(
        [str(ABLAB), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=cli_env(),
        timeout=timeout,
    )


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the ``ablab`` CLI in this process (faster than ``tools.cli``, which starts the console
    script): ``cli(*args) -> (exit code, stdout, stderr)``, stderr with its whitespace collapsed
    (rich wraps long lines). ABLAB_STORE is unset and the terminal 200 columns wide."""
    from ablab.cli.main import main

    monkeypatch.delenv("ABLAB_STORE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: Any) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, " ".join(out.err.split())

    return run


class Drivers:
    """``ablab`` processes started in the background, each in its own process group, so that
    teardown can kill every one (with its workers) that a test left behind."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: Any, cwd: Path | None = None) -> subprocess.Popen:
        p = subprocess.Popen(
            [str(ABLAB), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=cli_env(),
            start_new_session=True,
        )
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def drivers():
    d = Drivers()
    yield d
    d.cleanup()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def gone(pids):
    """A predicate for ``wait_for``: every process in ``pids`` has exited (zombies count)."""
    import psutil

    def check():
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    return False
            except psutil.NoSuchProcess:
                pass
        return True

    return check


def store_runs(study_dir: Path, name: str = "tiny", revision: str | None = None) -> list[dict]:
    """The run rows (with metrics) of a study's default store."""
    from ablab.store.db import Store

    with Store(study_dir / ".ablab") as st:
        study = st.study(name, revision)
        return st.runs(study["id"]) if study else []


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    return tmp_path / "study"


@pytest.fixture(scope="session")
def ok_study(tmp_path_factory) -> dict[str, Any]:
    """A finished study in a git repository: 'baseline' and 'wide' (torch model, global RNG
    draws) and 'flaky' (fails on its first attempt; retries = 1), two seeds each, run once with
    ``ablab run -j 2``. Tests must not modify its directory (copy it first)."""
    root = tmp_path_factory.mktemp("ok") / "study"
    path = write_study(
        root,
        variants={"wide": {"hidden": 8}, "flaky": {"mode": "flaky"}},
        run={"retries": 1, "timeout": "2m"},
    )
    (root / ".gitignore").write_text(".ablab/\ncalls.log\n__pycache__/\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "tiny study")
    res = ablab_cli("run", path, "-j", "2", cwd=root)
    assert res.returncode == 0, res.stdout + res.stderr
    return {
        "dir": root,
        "path": path,
        "result": res,
        "runs": store_runs(root),
        "calls": calls(root),
    }


@pytest.fixture(scope="session")
def failure_study(tmp_path_factory) -> dict[str, Any]:
    """A study whose runs raise, exit, SIGKILL themselves, hang past the 3 s timeout, return no
    declared metric or a NaN, with ok runs before and after them; run once with -j 2."""
    root = tmp_path_factory.mktemp("fail") / "study"
    variants = {
        "raise": {"mode": "raise"},
        "exit": {"mode": "exit"},
        "sigkill": {"mode": "sigkill"},
        "hang": {"mode": "hang"},
        "nometric": {"mode": "nometric"},
        "nan": {"mode": "nan"},
        "late-ok": {"hidden": 3},
    }
    # order = "variant": ok runs before and after the failing ones, as the tests rely on
    run = {"timeout": "3s", "order": "variant"}
    path = write_study(root, name="failing", variants=variants, seeds=[0], run=run)
    res = ablab_cli("run", path, "-j", "2", "--quiet", cwd=root)
    return {
        "dir": root,
        "path": path,
        "result": res,
        "runs": {r["variant"]: r for r in store_runs(root, "failing")},
        "calls": calls(root),
    }


def copy_study(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def tools():
    """The helpers above, for test modules (conftest cannot be imported under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        write_study=write_study,
        calls=calls,
        starts=starts,
        cli=ablab_cli,
        wait_for=wait_for,
        gone=gone,
        store_runs=store_runs,
        copy_study=copy_study,
        git=_git,
        ENTRY=ENTRY,
        BASELINE=BASELINE,
        ABLAB=ABLAB,
    )


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through Playwright (the report's and the dashboard's browser
    tests). Never silently skipped in CI: without /usr/bin/chromium the tests fail when ``CI``
    is set (`make test` installs the package with apt-get when run as root)."""
    if not Path(CHROMIUM).exists():
        msg = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` (or `make browser`)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
