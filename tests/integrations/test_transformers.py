"""AblabCallback: everything a Hugging Face Trainer logs lands in the run's series, checked
against the Trainer's own log history, on a tiny GPT-2 built from a config (no download)."""

from __future__ import annotations

import math

import pytest
import torch

from ablab.runtime.run import Run

pytest.importorskip("transformers")

from ablab.integrations.transformers import AblabCallback  # noqa: E402


def test_callback_matches_the_trainers_log_history(tmp_path):
    # transformers' Trainer needs accelerate (transformers[torch]); the hf extra must bring it
    pytest.importorskip("accelerate", reason="Trainer needs accelerate (transformers[torch])")
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=32,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        bos_token_id=0,
        eos_token_id=0,
    )
    model = GPT2LMHeadModel(cfg)
    tokens = torch.randint(0, 32, (24, 16))
    data = [{"input_ids": t, "labels": t} for t in tokens]
    run = Run(key="k", variant="baseline", seed=0, config={}, run_dir=tmp_path)
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data,
        eval_dataset=data[:8],
        callbacks=[AblabCallback(run)],
    )
    trainer.train()
    expected = [
        (k, entry["step"], float(v))
        for entry in trainer.state.log_history
        for k, v in entry.items()
        if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
    ]
    assert [(n, s) for n, s, _ in run.series] == [(n, s) for n, s, _ in expected]
    for (_, _, got), (k, s, want) in zip(run.series, expected, strict=True):
        assert math.isclose(got, want, rel_tol=1e-9), (k, s)
    got = {(n, s) for n, s, _ in run.series}
    assert sorted(s for n, s in got if n == "loss") == [1, 2, 3, 4, 5, 6]
    assert sorted(s for n, s in got if n == "eval_loss") == [3, 6]
    assert {"learning_rate", "grad_norm", "train_loss", "train_runtime"} <= {n for n, _ in got}


def test_callback_checks_its_argument(tmp_path):
    with pytest.raises(TypeError, match="ablab Run handle"):
        AblabCallback({"not": "a run"})


def test_on_log_with_the_trainers_state_objects(tmp_path):
    """The callback's contract with transformers' own TrainerState/TrainerControl (no Trainer,
    so this runs without accelerate): numbers pass, text and vectors do not, other ranks skip."""
    from transformers import TrainerControl, TrainerState

    run = Run(key="k", variant="v", seed=0, config={}, run_dir=tmp_path)
    cb = AblabCallback(run, prefix="hf/")
    state = TrainerState(global_step=7)
    logs = {"loss": torch.tensor(0.5), "lr": 1e-3, "note": "x", "vec": torch.ones(2), "ok": True}
    cb.on_log(None, state, TrainerControl(), logs=logs)
    assert run.series == [("hf/loss", 7, 0.5), ("hf/lr", 7, 1e-3)]
    state.is_world_process_zero = False
    cb.on_log(None, state, TrainerControl(), logs={"loss": 1.0})
    cb.on_log(None, TrainerState(global_step=8), TrainerControl(), logs=None)
    assert len(run.series) == 2
