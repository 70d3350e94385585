"""run.measure's counts against hand-counted parameters and FLOPs of small known models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablab.components.costs import measure
from ablab.components.edits import ComponentError
from ablab.components.kinds import COST_KINDS, is_nondeterministic


def test_linear_params_and_flops_by_hand():
    m = nn.Linear(10, 5)
    c = measure(m, torch.zeros(3, 10), warmup=1, repeats=3)
    assert c["params"] == 10 * 5 + 5
    assert c["trainable_params"] == 55
    assert c["flops"] == 2 * 3 * 10 * 5  # one multiply-add = 2 FLOPs; bias not counted
    assert c["latency_ms"] > 0 and c["latency_iqr_ms"] >= 0
    assert c["threads"] == torch.get_num_threads()
    assert c["peak_memory_mb"] >= 0


def test_conv_stack_by_hand_and_frozen_params():
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 8*3*9 + 8 = 224 params
        nn.ReLU(),
        nn.Conv2d(8, 4, 1, bias=False),  # 32 params
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 2),  # 512 + 2
    )
    m[0].requires_grad_(False)
    c = measure(m, (torch.zeros(2, 3, 8, 8),), warmup=0, repeats=2)
    assert c["params"] == 224 + 32 + 514
    assert c["trainable_params"] == 32 + 514
    conv1 = 2 * 2 * 8 * 8 * 8 * 3 * 3 * 3  # 2*B*Cout*H*W*Cin*kh*kw
    conv2 = 2 * 2 * 4 * 8 * 8 * 8
    lin = 2 * 2 * 256 * 2
    assert c["flops"] == conv1 + conv2 + lin


def test_measure_restores_training_mode_and_validates():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    m.train()
    measure(m, {"input": torch.zeros(1, 2)}, warmup=0, repeats=1)
    assert m.training
    with pytest.raises(ComponentError, match="repeats = 0"):
        measure(m, torch.zeros(1, 2), repeats=0)


def test_cost_kinds():
    assert is_nondeterministic("cost.latency_ms") and is_nondeterministic("cost.peak_memory_mb")
    assert not is_nondeterministic("cost.params") and not is_nondeterministic("accuracy")
    assert all(k["direction"] == "none" for k in COST_KINDS.values())
