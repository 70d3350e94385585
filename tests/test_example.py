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
    assert all(m["val_acc"] >= m["accuracy"] - 1e-9 for m in base)  # best of the logged series
    assert all(0 < m["test_loss"] < 2.5 for m in base)
    assert (
        base[0]["accuracy"] != base[1]["accuracy"] or base[0]["test_loss"] != base[1]["test_loss"]
    )
    report = tools.cli("report", d / "study.toml")
    assert report.returncode == 0 and "small" in report.stdout
