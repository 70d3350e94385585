"""AblabLogger: every scalar a LightningModule logs lands in the run's series at the global step."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ablab.runtime.run import Run

pytest.importorskip("pytorch_lightning")

from ablab.integrations.lightning import AblabLogger  # noqa: E402

try:
    import lightning.pytorch as L
except ImportError:
    import pytorch_lightning as L


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
        self.seen: list[tuple[int, float]] = []  # (global step, loss) as the module logged it

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=False)
        self.seen.append((self.global_step, loss.item()))
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(logger, epochs: int = 2) -> Tiny:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    y = x.sum(1, keepdim=True)
    ds = torch.utils.data.TensorDataset(x, y)
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    model = Tiny()
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, dl, dl)
    return model


def test_logger_records_every_scalar_with_the_global_step(tmp_path):
    run = Run(key="k", variant="baseline", seed=0, config={}, run_dir=tmp_path)
    model = fit(AblabLogger(run))
    series: dict[str, list[tuple[int, float]]] = {}
    for name, step, value in run.series:
        series.setdefault(name, []).append((step, value))
    # 4 batches x 2 epochs; the steps Lightning gives loggers are 0-based global steps
    # (the module's self.global_step inside training_step, before the optimizer steps)
    assert len(series["train_loss"]) == 8
    assert [s for s, _ in series["train_loss"]] == [s for s, _ in model.seen]
    for (_, logged), (_, seen) in zip(series["train_loss"], model.seen, strict=True):
        assert math.isclose(logged, seen, rel_tol=1e-6)
    assert [s for s, _ in series["val_loss"]] == [3, 7]  # end of each epoch
    assert series["val_loss"][1][1] < series["val_loss"][0][1]  # it learned
    assert "epoch" in series  # Lightning's own scalar is passed on too


def test_logger_checks_its_argument_and_is_rank_zero_safe(tmp_path):
    with pytest.raises(TypeError, match="ablab Run handle"):
        AblabLogger(object())
    run = Run(key="k", variant="v", seed=0, config={}, run_dir=tmp_path)
    lg = AblabLogger(run, prefix="pl/")
    lg.log_metrics({"a": torch.tensor(2.0), "vec": torch.ones(3), "s": "text", "n": 3}, step=5)
    lg.log_hyperparams({"lr": 0.1})
    assert run.series == [("pl/a", 5, 2.0), ("pl/n", 5, 3.0)]
    assert lg.experiment is run and lg.version == "k" and lg.name == "ablab"


@pytest.mark.slow
def test_lightning_entry_in_a_study(tmp_path, cli):
    """A study whose entry trains with Lightning: the logged val_loss is the metric
    (reduce = "last"), recorded by the real run machinery in a worker."""
    (tmp_path / "entry.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from pl_model import fit\n"
        "from ablab.integrations.lightning import AblabLogger\n\n"
        "def train(config, run):\n"
        "    fit(AblabLogger(run), epochs=config['epochs'])\n"
        "    return {}\n"
    )
    (tmp_path / "pl_model.py").write_text(open(__file__).read())
    (tmp_path / "study.toml").write_text(
        'name = "pl"\nentry = "entry.py:train"\nseeds = 1\n'
        '[metrics]\nval_loss = { direction = "min", reduce = "last" }\n'
        "[baseline]\nepochs = 2\n"
    )
    code, out, err = cli("run", tmp_path / "study.toml", "--quiet")
    assert code == 0, out + err
    code, out, _ = cli("runs", tmp_path / "study.toml", "--format", "json")
    (row,) = json.loads(out)
    assert row["status"] == "done" and 0 < row["metrics"]["val_loss"] < 10
