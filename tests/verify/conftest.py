import textwrap
from pathlib import Path

import pytest

ENTRY = """
import numpy as np
import torch


def train(config, run):
    data = np.loadtxt(run.config["data"]) if False else None
    x = torch.randn(64, 5)
    y = (x.sum(1) > 0).long()
    run.track_data("data_file", __import__("pathlib").Path(__file__).parent / "data.txt")
    model = torch.nn.Linear(5, 2)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    for step in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log(step=step, loss=loss.item())
    score = (model(x).argmax(1) == y).float().mean().item()
    if config["unseeded"]:
        score += float(np.random.default_rng().normal())  # planted non-determinism
    return {"score": score, "loss": loss.item()}
"""


@pytest.fixture
def vstudy(tmp_path: Path) -> Path:
    return write_study(tmp_path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    """The verify study run once and exported once per test module (workers are slow to start)."""
    from ablab.cli.main import main

    root = tmp_path_factory.mktemp("bundle")
    study = write_study(root)
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    out = root / "out" / "study.zip"
    assert main(["export", str(study), "-o", str(out)]) == 0
    return study, out


def write_study(root: Path) -> Path:
    d = root / "study"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "data.txt").write_text("1 2 3\n")
    (d / "study.toml").write_text(
        textwrap.dedent("""
        name = "verify"
        entry = "entry.py:train"
        seeds = 2
        [metrics]
        score = "max"
        loss = "min"
        [baseline]
        lr = 0.1
        unseeded = false
        [ablations]
        noisy = { unseeded = true }
    """)
    )
    return d / "study.toml"
