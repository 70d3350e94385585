"""The tunnel-study entry trains a tiny model on glyphs and returns r, rho, A from probing."""

import math
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tunnel"


@pytest.mark.slow
def test_tunnel_entry_tiny_config(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for mod in ("train", "models"):
        sys.modules.pop(mod, None)
    import train  # examples/tunnel/train.py

    from ablab.runtime.run import Run

    cfg = {"arch": "vgg", "depth": 4, "width": 8, "resolution": 12, "n_train": 300,
           "n_test_per_class": 10, "epochs": 8, "batch_size": 32, "lr": 0.005, "probe_n": 15, "probe_test_n": 8,
           "ood": ["fonts", "lower", "noise", "digits"]}  # fmt: skip
    run = Run(key="k", variant="baseline", seed=0, config=cfg, run_dir=tmp_path)
    m = train.train(cfg, run)
    assert {"r", "rho", "A", "id_acc", "r_fonts", "r_lower", "r_noise", "r_digits"} <= set(m)
    assert 0 < m["r"] <= 100 and -1 <= m["rho"] <= 1 or math.isnan(m["rho"])
    assert m["id_acc"] > 0.3  # learns beyond chance (0.1) in 8 short epochs
    assert (tmp_path / "probe.json").exists() and (tmp_path / "model.pt").exists()
    sys.modules.pop("train", None)
    sys.modules.pop("models", None)


def _load_example(name):
    from ablab.plan.designs_bridge import plan_for
    from ablab.spec.load import load_study

    spec = load_study(EXAMPLE / name)
    return spec, plan_for(spec)


def test_tunnel_study_files_plan_the_documented_runs():
    spec, plan = _load_example("study.toml")
    assert (
        spec.design.type == "factorial"
    )  # the full 2^5: every cell, so each factor has paired runs
    assert set(spec.design.factors) == {"augment", "n_classes", "resolution", "depth", "reduction"}
    assert len(plan.runs) == 96 and spec.baseline["probe"] == "ridge"
    cells = {tuple(r.config[f] for f in spec.design.factors) for r in plan.runs}
    assert len(cells) == 32  # the baseline is the all-low cell, not a 33rd one
    spec, plan = _load_example("study_arch.toml")
    assert {r.config["arch"] for r in plan.runs} == {"vgg", "resnet", "mlp", "vit"}
    assert len(plan.runs) == 24
    spec, plan = _load_example("study_diversity.toml")
    assert {(r.config["n_classes"], r.config["epochs"]) for r in plan.runs} == {
        (10, 4),
        (10, 12),
        (36, 4),
        (36, 12),
    }
    spec, plan = _load_example("study_tiny.toml")  # stays tiny: a handful of runs on 300 images
    assert len(plan.runs) <= 6 and all(r.config["n_train"] <= 300 for r in plan.runs)


@pytest.mark.parametrize("arch", ["vgg", "resnet", "mlp", "vit"])
def test_tunnel_models_build_and_name_probe_points(arch, monkeypatch):
    import torch

    monkeypatch.syspath_prepend(str(EXAMPLE))
    sys.modules.pop("models", None)
    import models  # examples/tunnel/models.py

    model, layers = models.build({"arch": arch, "depth": 4, "width": 8}, 36, 16)
    assert model(torch.zeros(3, 1, 16, 16)).shape == (3, 36)
    names = dict(model.named_modules())
    assert layers is None or all(name in names for name in layers)
    sys.modules.pop("models", None)
