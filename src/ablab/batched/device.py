"""Where batched models live: checking a ``device=`` argument, and dropout masks on a CUDA device.

On the CPU, :class:`~ablab.batched.BatchedModels` draws model k's masks with ``bernoulli_`` from a
CPU generator that continues the global stream after model k's construction (what ``nn.Dropout``
does in a solo CPU run). On a CUDA device a solo run's ``nn.Dropout`` draws from the default CUDA
generator instead, which ``torch.manual_seed(seed)`` (and so ``ablab.seed_everything``) seeds with
``seed``, and building the model on the CPU does not touch it. :class:`CudaDropout` therefore gives
model k a ``torch.Generator(device="cuda")`` seeded with ``seeds[k]`` and draws each mask with the
kernel ``nn.Dropout`` runs on CUDA (the fused dropout kernel: Philox counters, one call per layer
and step, on a tensor of the solo run's shape): the same shape per call and the same call order
give the same masks. This holds only while nothing else in the solo run draws from the CUDA
generator (random tensors created on the GPU, ``torch.randperm(..., device="cuda")``, a second
dropout consumer): each such draw moves the solo run's Philox offset and its later masks differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ablab.batched.errors import BatchedError


def resolve_device(device: Any) -> torch.device:
    """``device`` (``None``, a string such as ``"cpu"``/``"cuda"``/``"cuda:1"``, or a
    ``torch.device``) as a ``torch.device``; ``None`` is the CPU. Raises :class:`BatchedError`
    naming the problem for a malformed string, a device type batched training does not support,
    or a CUDA device that this machine does not have."""
    if device is None:
        return torch.device("cpu")
    if not isinstance(device, (str, torch.device)):
        raise BatchedError(
            f"device must be a string such as 'cpu' or 'cuda', a torch.device or None, "
            f"got {type(device).__name__}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise BatchedError(
            f"unknown device {str(device)!r} ({e})", hint="use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise BatchedError(
            f"device {str(device)!r} is not supported by batched training; it runs on "
            "'cpu' or a CUDA device ('cuda', 'cuda:N')"
        )
    if not torch.cuda.is_available():
        raise BatchedError(
            f"device {str(device)!r} was asked for, but CUDA is not available on this "
            f"machine (torch {torch.__version__}, built for CUDA {torch.version.cuda})",
            hint="use device='cpu' (or leave it out)",
        )
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise BatchedError(
            f"device {str(device)!r} does not exist: this machine has "
            f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )
    return torch.device("cuda", index)


class CudaDropout:
    """Dropout masks for K models on a CUDA device, equal to the ones a solo CUDA run draws.

    ``generators[k]`` is a ``torch.Generator`` on ``device`` seeded with ``seeds[k]``: the state of
    the default CUDA generator after ``torch.manual_seed(seeds[k])``. :meth:`masks` draws, for
    each layer j (forward order) and each model k with ``0 < p < 1``, the mask of
    ``torch._fused_dropout(ones(shape), 1 - p, generators[k])``: the kernel, arithmetic and
    Philox offsets of ``nn.Dropout`` on a tensor of that shape (its output on ones is
    ``keep / (1 - p)`` in the kernel's own float arithmetic, so ``x * mask`` equals the solo
    ``nn.Dropout(x)`` bit for bit). Models with ``p = 0`` (ones) or ``p = 1`` (zeros) draw
    nothing, as ``nn.Dropout`` draws nothing for them. The [K, ...] mask tensors are reused.
    """

    def __init__(
        self, seeds: Sequence[int], dropout_p: list[list[float]], device: torch.device
    ) -> None:
        self.device = device
        self.dropout_p = dropout_p
        self.generators: list[torch.Generator] = []
        for seed in seeds:
            g = torch.Generator(device=device)
            g.manual_seed(seed)
            self.generators.append(g)
        k = len(seeds)
        layers = len(dropout_p[0]) if dropout_p else 0
        # per layer: (model, p) of the models that draw, and their rows when not all of them draw
        self._draws = [
            [(i, dropout_p[i][j]) for i in range(k) if 0 < dropout_p[i][j] < 1]
            for j in range(layers)
        ]
        self._rows = [
            None if len(d) == k else torch.tensor([i for i, _ in d], device=device)
            for d in self._draws
        ]
        self._buffers: dict[tuple[Any, ...], Tensor] = {}
        self._ones: dict[tuple[Any, ...], Tensor] = {}

    def masks(self, shapes: list[tuple[int, ...]], dtype: torch.dtype) -> list[Tensor]:
        """One [K, *shape] mask per dropout layer (``shapes[j]``: that layer's input shape for one
        model), drawn layer by layer, model by model: each generator sees its model's layers in
        forward order, as in the solo run."""
        out = []
        for j, shape in enumerate(shapes):
            key = (j, shape, dtype)
            m = self._buffers.get(key)
            if m is None:  # rows that never draw hold their constant mask from the start
                m = torch.ones((len(self.generators), *shape), dtype=dtype, device=self.device)
                for i, ps in enumerate(self.dropout_p):
                    if ps[j] >= 1:
                        m[i].zero_()
                self._buffers[key] = m
                self._ones.setdefault(
                    (shape, dtype), torch.ones(shape, dtype=dtype, device=self.device)
                )
            draws = self._draws[j]
            if draws:
                ones = self._ones[(shape, dtype)]
                drawn = [torch._fused_dropout(ones, 1 - p, self.generators[i])[0] for i, p in draws]
                rows = self._rows[j]
                if rows is None:
                    torch.stack(drawn, out=m)
                else:
                    m.index_copy_(0, rows, torch.stack(drawn))
            out.append(m)
        return out
