"""What a model costs: parameters, FLOPs per forward pass, latency and peak memory.

- ``params`` / ``trainable_params``: ``sum(p.numel())`` over ``model.parameters()`` (shared
  parameters once; buffers not counted).
- ``flops``: :class:`torch.utils.flop_counter.FlopCounterMode` over one forward pass of
  ``example_input`` (a multiply-add counts 2: ``Linear(i, o)`` on a batch of ``B`` is
  ``2·B·i·o``; ``Conv2d`` is ``2·B·C_out·H_out·W_out·(C_in/groups)·k_h·k_w``; biases,
  activations and normalisation are not counted, as in torch's counter).
- ``latency_ms``: the median of ``repeats`` timed forward passes after ``warmup`` untimed ones,
  in eval mode without gradients; ``latency_iqr_ms`` their interquartile range. On a GPU each
  pass is bracketed by ``torch.cuda.synchronize``. ``threads`` records ``torch.get_num_threads()``.
- ``peak_memory_mb``: on a GPU the CUDA peak allocated during one forward pass
  (``torch.cuda.max_memory_allocated`` after a reset; weights included); on the CPU the growth of
  the process's resident memory over the first forward pass (an estimate: allocators reuse memory,
  so it can read 0 for small models).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ablab.components.edits import ComponentError


def _call(model: nn.Module, example_input: Any) -> Any:
    if isinstance(example_input, Mapping):
        return model(**example_input)
    if isinstance(example_input, (tuple, list)):
        return model(*example_input)
    return model(example_input)


def _device(example_input: Any) -> torch.device:
    items = (
        example_input.values()
        if isinstance(example_input, Mapping)
        else example_input
        if isinstance(example_input, (tuple, list))
        else [example_input]
    )
    for x in items:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def count_flops(model: nn.Module, example_input: Any) -> int:
    """FLOPs of one forward pass, by :class:`torch.utils.flop_counter.FlopCounterMode`."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _call(model, example_input)
    return int(counter.get_total_flops())


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def measure(
    model: nn.Module, example_input: Any, *, warmup: int = 3, repeats: int = 20
) -> dict[str, float]:
    """Measure ``model`` on ``example_input`` (a tensor, a tuple of positional inputs or a dict of
    keyword inputs, on the device to measure on). Returns ``params``, ``trainable_params``,
    ``flops``, ``latency_ms``, ``latency_iqr_ms``, ``peak_memory_mb``, ``threads``."""
    if not isinstance(model, nn.Module):
        raise ComponentError(f"run.measure expects a torch.nn.Module, got {type(model).__name__}")
    for name, v, lo in (("warmup", warmup, 0), ("repeats", repeats, 1)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ComponentError(f"run.measure: {name} = {v!r}: expected an integer >= {lo}")
    device = _device(example_input)
    cuda = device.type == "cuda"
    params, trainable = count_params(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                _call(model, example_input)
                torch.cuda.synchronize(device)
                peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
            else:
                before = _rss()
                out = _call(model, example_input)
                peak_mb = max(0, _rss() - before) / 2**20
                del out
        flops = count_flops(model, example_input)
        times = []
        with torch.no_grad():
            for i in range(warmup + repeats):
                if cuda:
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                _call(model, example_input)
                if cuda:
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1e3)
    finally:
        model.train(was_training)
    if len(times) >= 2:
        q = statistics.quantiles(times, n=4, method="inclusive")
        iqr = q[2] - q[0]
    else:
        iqr = 0.0
    return {
        "params": float(params),
        "trainable_params": float(trainable),
        "flops": float(flops),
        "latency_ms": float(statistics.median(times)),
        "latency_iqr_ms": float(iqr),
        "peak_memory_mb": float(peak_mb),
        "threads": float(torch.get_num_threads()),
    }
