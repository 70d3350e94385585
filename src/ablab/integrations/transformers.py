"""A Hugging Face ``TrainerCallback`` that records every logged scalar into an ablab run.

    from ablab.integrations.transformers import AblabCallback

    def train(config, run):
        args = TrainingArguments(output_dir=run.run_dir, report_to=[], seed=run.seed, ...)
        trainer = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=ev,
                          callbacks=[AblabCallback(run)])
        trainer.train()
        return {"eval_loss": trainer.evaluate()["eval_loss"]}

Everything the Trainer logs (``loss``, ``learning_rate``, ``grad_norm``, ``eval_*``, the final
``train_*`` figures) becomes a point of the run's series of that name at ``state.global_step``.
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError:
    raise ImportError(
        "ablab.integrations.transformers needs Hugging Face transformers: "
        "pip install 'ablab-toolkit[hf]' (or transformers)"
    ) from None

from ablab.integrations._scalars import scalars


class AblabCallback(TrainerCallback):
    """Send every scalar in the Trainer's logs to ``run.log`` with ``state.global_step``
    (on the main process only)."""

    def __init__(self, run: Any, prefix: str = "") -> None:
        if not callable(getattr(run, "log", None)):
            raise TypeError(f"AblabCallback(run): expected the ablab Run handle, got {run!r}")
        self._run = run
        self._prefix = prefix

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if not logs or not state.is_world_process_zero:
            return
        values = scalars(logs)
        if values:
            self._run.log(
                step=state.global_step, **{self._prefix + k: v for k, v in values.items()}
            )
