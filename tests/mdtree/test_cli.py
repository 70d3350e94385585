"""`ablab mdtree fit/eval` on a CSV zoo and `ablab diagnose ENTRY` (via the command function)."""

from __future__ import annotations

import itertools
import json
import textwrap

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from ablab.cli.mdtree import app, diagnose_command
from ablab.mdtree import MDTree

runner = CliRunner()


def _zoo_csv(path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = []
    for b, w, d, s in itertools.product((16, 64, 256), (8, 32, 128), (0.25, 1.0), (0, 1)):
        acc = (
            0.6 + 0.1 * np.log2(w) / 7 + 0.1 * d - 0.04 * abs(np.log2(b) - 6) + rng.normal(0, 0.01)
        )
        rows.append(dict(batch_size=b, width=w, data_size=d, seed=s, test_accuracy=acc,
                         train_error=rng.uniform(0, 20) * (b / 64), mc_peak=-rng.uniform(0, 40),
                         hessian_trace=float(np.exp(rng.uniform(1, 6)))))  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)


def test_fit_and_eval(tmp_path):
    zoo, other = tmp_path / "zoo.csv", tmp_path / "other.csv"
    _zoo_csv(zoo, 0)
    _zoo_csv(other, 1)
    out = tmp_path / "tree.json"
    res = runner.invoke(app, ["fit", str(zoo), "--question", "q1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "training accuracy" in res.output
    tree = MDTree.load(out)
    assert tree.question == "q1" and tree.provenance["configurations"] == 18
    res = runner.invoke(app, ["eval", str(out), str(other)])
    assert res.exit_code == 0, res.output
    assert "MD tree accuracy" in res.output and "majority class" in res.output
    res = runner.invoke(app, ["fit", str(zoo), "--temperature", "batchsize"])
    assert res.exit_code != 0 and "did you mean 'batch_size'" in str(res.exception)


def test_diagnose_entry(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text(
        textwrap.dedent("""
        import torch
        from torch import nn
        from sklearn.datasets import load_digits

        def digits_small():
            x, y = load_digits(return_X_y=True)
            x, y = torch.tensor(x[:300] / 16.0, dtype=torch.float32), torch.tensor(y[:300])
            torch.manual_seed(0)
            m = nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10)).eval()
            return {"model": m, "data": (x, y), "loss_fn": nn.CrossEntropyLoss()}

        def bad():
            return 3
    """)
    )
    tree = MDTree.from_dict({"format": "ablab.mdtree/1", "question": "q1",
                             "features": ["train_error", "mc_peak", "hessian_trace"],
                             "thresholds": {"t1": 1.0, "t2": -10.0, "t3": 1.0}})  # fmt: skip
    tree.save(tmp_path / "q1.json")
    monkeypatch.chdir(tmp_path)
    cli = typer.Typer()
    cli.command()(diagnose_command)
    res = runner.invoke(cli, ["models.py:digits_small", "--tree", "q1.json", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["answers"] == {"q1": None}  # an untrained net does not interpolate: needs mc_peak
    assert set(out["missing"]) == {"mc_peak", "mu", "cka"}
    assert out["metrics"]["train_error"] > 1.0
    res = runner.invoke(cli, ["models.py:bad"])
    assert res.exit_code != 0 and "returned a int" in str(res.exception)
