"""run.ablate / run.measure / run.log_examples on the Run handle, and "@" keys in study specs."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ablab.components.edits import ComponentError
from ablab.errors import MetricError
from ablab.plan import expand
from ablab.runtime.run import Run
from ablab.spec.load import parse_study


def make_run(tmp_path, config):
    return Run(key="k", variant="v", seed=0, config=config, run_dir=tmp_path / "r", root=tmp_path)


def test_ablate_records_matches_and_loads_factories_relative_to_root(tmp_path):
    (tmp_path / "parts.py").write_text(
        "import torch\ndef tiny(old):\n    return torch.nn.Linear(old.in_features, 1)\n"
    )
    cfg = {"lr": 0.1, "@1": "identity", "@2": {"replace": "parts.py:tiny"}}
    run = make_run(tmp_path, cfg)
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))
    out = run.ablate(model)
    assert out is model and out[2].out_features == 1
    rec = json.loads((tmp_path / "r" / "ablation.json").read_text())
    assert [e["matched"] for e in rec["edits"]] == [["1"], ["2"]]
    assert run.artifacts["ablation"].endswith("ablation.json")
    base = make_run(tmp_path, {"lr": 0.1})
    m2 = nn.Linear(2, 2)
    assert base.ablate(m2) is m2  # no "@" keys: unchanged


def test_ablate_no_match_fails(tmp_path):
    run = make_run(tmp_path, {"@encoder": "zero"})
    with pytest.raises(ComponentError, match="matched no module"):
        run.ablate(nn.Sequential(nn.Linear(2, 2)))


def test_measure_records_cost_metrics(tmp_path):
    run = make_run(tmp_path, {})
    out = run.measure(nn.Linear(4, 2), torch.zeros(1, 4), warmup=0, repeats=2)
    assert out["params"] == 10 and run.measured["cost.params"] == 10
    assert run.measured["cost.flops"] == 16


def test_log_examples(tmp_path):
    run = make_run(tmp_path, {})
    run.log_examples("correct", torch.tensor([1.0, 0.0, 1.0]))
    assert run.series == [
        ("example:correct", 0, 1.0),
        ("example:correct", 1, 0.0),
        ("example:correct", 2, 1.0),
    ]
    with pytest.raises(MetricError, match="called twice"):
        run.log_examples("correct", [1, 0])
    with pytest.raises(MetricError, match="finite"):
        run.log_examples("loss", [1.0, float("nan")])
    with pytest.raises(MetricError, match="sequence of numbers"):
        run.log_examples("x", ["a"])


def test_at_keys_in_spec_need_no_baseline_and_change_the_run_key():
    spec = parse_study(
        {
            "name": "s",
            "entry": "e.py:f",
            "seeds": 1,
            "metrics": {"acc": "max"},
            "baseline": {"lr": 0.1},
            "ablations": {
                "a": {"@enc.layers.*.attn": "zero"},
                "b": {"@head": {"replace": "m.py:small"}, "lr": 0.2},
            },
        }
    )
    assert spec.resolved("a") == {"lr": 0.1, "@enc.layers.*.attn": "zero"}
    assert spec.resolved("b") == {"lr": 0.2, "@head": {"replace": "m.py:small"}}
    keys = {r.variant: r.key for r in expand(spec).runs}
    assert len(set(keys.values())) == 3
