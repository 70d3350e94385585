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
