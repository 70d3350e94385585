"""Functions defined in ``__main__`` (``python -`` on stdin) and in a Jupyter notebook run as study
entries: sent to the workers by value, fingerprinted by their code (a changed helper is caught)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

STUDY_CODE = """
import ablab

def helper(x):
    return x * {factor}

def train(config, run):
    run.log(step=0, loss=1.0)
    return {{"score": helper(config["x"]) + run.seed}}

study = ablab.Study(name="main", entry=train, seeds=2, metrics={{"score": "max"}},
                    baseline={{"x": 1}}, ablations={{"big": {{"x": 2}}}}, root={root!r})
"""

RUN = """
try:
    s = ablab.run(study, jobs=1)
    print("RESULT", s.done, s.failed, [f["error"] for f in s.failures])
except ablab.AblabError as e:
    print("ERROR", type(e).__name__, e.message.splitlines()[0])
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ABLAB_STORE"}
    env["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _stdin(code: str, cwd: Path) -> str:
    p = subprocess.run(
        [sys.executable, "-"],
        input=code,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(),
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def _scores(root: Path) -> dict[tuple[str, int], float]:
    from ablab.store.db import Store

    with Store(root / ".ablab") as st:
        study = st.study("main")
        return {(r["variant"], r["seed"]): r["metrics"]["score"] for r in st.runs(study["id"])}


def _fingerprint(root: Path) -> dict[str, str]:
    from ablab.store.db import Store

    with Store(root / ".ablab") as st:
        return st.study("main")["fingerprint"]["files"]


@pytest.mark.slow
def test_main_function_from_stdin(tmp_path):
    code = STUDY_CODE.format(factor=3.0, root=str(tmp_path)) + RUN
    assert "RESULT 4 0 []" in _stdin(code, tmp_path)
    assert _scores(tmp_path) == {
        ("baseline", 0): 3.0,
        ("baseline", 1): 4.0,
        ("big", 0): 6.0,
        ("big", 1): 7.0,
    }
    files = _fingerprint(tmp_path)
    # no source is kept for stdin: the compiled code of train and of the helper it calls
    assert {"entry code __main__:train", "entry code __main__:helper"} <= set(files)
    # the same code again: nothing to do; a changed helper: the code-change guard stops it
    assert "RESULT 4 0 []" in _stdin(code, tmp_path)
    changed = STUDY_CODE.format(factor=5.0, root=str(tmp_path)) + RUN
    assert "ERROR CodeChangedError" in _stdin(changed, tmp_path)


@pytest.mark.slow
def test_function_defined_in_a_jupyter_notebook(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # a kernelspec for this interpreter (with this checkout's ablab), in a private JUPYTER_PATH
    kdir = tmp_path / "jupyter" / "kernels" / "ablab-test"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "ablab test",
                "language": "python",
                "env": {"PYTHONPATH": _env()["PYTHONPATH"]},
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("ABLAB_STORE", raising=False)
    work = tmp_path / "nb"
    work.mkdir()
    helper_cell, train_cell = STUDY_CODE.format(factor=3.0, root=str(work)).split("def train")
    cells = [
        helper_cell,
        "def train" + train_cell,
        RUN,
        # the notebook's author edits the helper's cell and runs again
        "def helper(x):\n    return x * 10.0\n",
        "study = ablab.Study(name='main', entry=train, seeds=2, metrics={'score': 'max'},\n"
        f"    baseline={{'x': 1}}, ablations={{'big': {{'x': 2}}}}, root={str(work)!r})\n" + RUN,
    ]
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    )
    client = nbclient.NotebookClient(
        nb, kernel_name="ablab-test", timeout=600, resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    texts = [
        "".join(o.get("text", "") for o in c.outputs if o.get("output_type") == "stream")
        for c in nb.cells
    ]
    assert "RESULT 4 0 []" in texts[2], texts
    assert _scores(work)[("big", 1)] == 7.0
    files = _fingerprint(work)
    assert "entry source __main__:train" in files and "entry cell of train" in files
    assert "entry cell of helper" in files
    assert "ERROR CodeChangedError" in texts[4], texts


def test_a_closure_travels_by_value_and_back_from_the_store_form(tmp_path):
    """A function defined inside another function (no importable name) is pickled; the spec's
    store form (JSON) rebuilds the same entry, whose task runs in a worker-like call."""
    import ablab
    from ablab.execute.engine import build_task
    from ablab.runtime.execute_one import execute_task
    from ablab.spec.load import parse_study
    from ablab.spec.serialize import spec_to_dict

    offset = 0.25

    def train(config, run):
        return {"score": config["x"] + offset + run.seed}

    study = ablab.Study(
        name="closure", entry=train, seeds=[3], metrics={"score": "max"}, baseline={"x": 1}
    )
    spec = study.spec
    assert spec.entry.endswith("<locals>.train")
    again = parse_study(json.loads(json.dumps(spec_to_dict(spec))))
    assert again.entry == spec.entry and again.entry_spec == spec.entry_spec
    assert any(k.startswith("entry source") for k in again.entry_spec.sources)
    run = {"key": "k", "variant": "baseline", "seed": 3, "split_seed": None, "attempts": 1}
    out = execute_task(build_task(again, {**run, "config": {"x": 1}}, tmp_path / "k"))
    assert out["status"] == "done", out["error"]
    assert out["metrics"]["score"] == 4.25


def test_an_unpicklable_global_is_a_clear_error():
    import threading

    import ablab
    from ablab.errors import EntryError

    lock = threading.Lock()

    def train(config, run):
        with lock:
            return {"score": 1.0}

    with pytest.raises(EntryError, match="cannot be sent to the workers"):
        ablab.Study(name="x", entry=train, seeds=1, metrics={"score": "max"})
