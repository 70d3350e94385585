"""The digits example study at reduced size: every run done, sensible accuracy."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"


@pytest.mark.slow
def test_digits_example_reduced(tmp_path, tools):
    d = tmp_path / "digits"
    shutil.copytree(EXAMPLE, d, ignore=shutil.ignore_patterns(".ablab", "__pycache__"))
    text = (d / "study.toml").read_text()
    text = re.sub(r"(?m)^seeds = \d+", "seeds = 2", text)
    text = re.sub(r"(?m)^epochs = \d+", "epochs = 6", text)
    # keep two of the ablations
    text = re.sub(
        r"(?ms)^\[ablations\]\n.*?\n\n",
        "[ablations]\nno-normalize = { normalize = false }\nsmall = { hidden = 16 }\n\n",
        text,
    )
    (d / "study.toml").write_text(text)
    res = tools.cli("run", d / "study.toml", "-j", "2", "--quiet", cwd=d, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = json.loads(tools.cli("runs", d / "study.toml", "--format", "json").stdout)
    assert len(rows) == 6 and all(r["status"] == "done" for r in rows)
    assert {r["variant"] for r in rows} == {"baseline", "no-normalize", "small"}
    base = [r["metrics"] for r in rows if r["variant"] == "baseline"]
    assert all(m["accuracy"] > 0.8 for m in base), base
    assert all(0.5 < m["val_acc"] <= 1.0 for m in base)  # best epoch on the validation split
    assert all(0 < m["test_loss"] < 2.5 for m in base)
    assert (
        base[0]["accuracy"] != base[1]["accuracy"] or base[0]["test_loss"] != base[1]["test_loss"]
    )
    report = tools.cli("report", d / "study.toml")
    assert report.returncode == 0 and "small" in report.stdout

    # issue 16: the demo's own reproducibility checks pass (train_seconds varies by nature)
    res = tools.cli("check-determinism", d / "study.toml", cwd=d, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "varies by nature" in res.stdout and "train_seconds" in res.stdout
    res = tools.cli("reproduce", d / "study.toml", "--sample", "3", cwd=d, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 of 3 run(s) reproduced" in res.stdout
    report = tools.cli("report", d / "study.toml", "-f", "md").stdout
    assert "0 of 3" not in report


def test_digits_example_selects_on_a_validation_split_of_the_training_data():
    """issue 16: val_acc (reduce = "best", a selection signal) never looks at the test split."""
    import importlib.util

    import numpy as np

    spec = importlib.util.spec_from_file_location("_digits_train_split", EXAMPLE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x_tr, _, x_te, _, x_val, _ = mod.load_data(0, normalize=False)
    assert len(x_tr) + len(x_te) + len(x_val) == 1797 and len(x_val) > 200
    rows = lambda t: {r.tobytes() for r in np.ascontiguousarray(t.numpy())}  # noqa: E731
    assert not rows(x_val) & rows(x_te) and not rows(x_val) & rows(x_tr)
    src = (EXAMPLE / "train.py").read_text()  # the test split is evaluated once, at the end
    assert "model(x_val)" in src and src.count("model(x_te)") == 1
