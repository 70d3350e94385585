"""A Lightning logger that records every logged scalar into an ablab run.

    from ablab.integrations.lightning import AblabLogger

    def train(config, run):
        trainer = L.Trainer(max_epochs=config["epochs"], logger=AblabLogger(run))
        trainer.fit(model, train_loader, val_loader)
        return {"val_loss": trainer.callback_metrics["val_loss"].item()}

Each ``self.log("val_loss", ...)`` in a LightningModule becomes a point of the run's series
``val_loss`` at the trainer's global step (so ``[metrics] val_loss = { direction = "min",
reduce = "last" }`` needs no return value). Works with ``lightning`` (``lightning.pytorch``) or
the older ``pytorch_lightning`` package, whichever is installed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:
    try:
        from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
        from pytorch_lightning.utilities import rank_zero_only
    except ImportError:
        raise ImportError(
            "ablab.integrations.lightning needs Lightning: pip install 'ablab-toolkit[lightning]' "
            "(or lightning / pytorch-lightning)"
        ) from None

from ablab.integrations._scalars import scalars


class AblabLogger(Logger):
    """Send every scalar Lightning logs to ``run.log`` with the trainer's global step.

    Hyperparameters are not recorded (the run's config already is); ``experiment`` is the run.
    Only rank zero logs."""

    def __init__(self, run: Any, prefix: str = "") -> None:
        super().__init__()
        if not callable(getattr(run, "log", None)):
            raise TypeError(f"AblabLogger(run): expected the ablab Run handle, got {run!r}")
        self._run = run
        self._prefix = prefix

    @property
    def name(self) -> str:
        return "ablab"

    @property
    def version(self) -> str:
        return str(getattr(self._run, "key", "0"))

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        return None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        values = scalars(metrics)
        if values:
            self._run.log(step=step, **{self._prefix + k: v for k, v in values.items()})
