"""Probe points and feature extraction by forward hooks.

A *probe point* is a named module whose output is an embedding. By default they are

* every convolution / linear block: the conv or linear module, extended over the norm and
  activation modules that directly follow it in the same container (so the probed output is
  ``relu(bn(conv(x)))`` in a ``Sequential`` VGG block), and
* every transformer block (``nn.TransformerEncoderLayer``/``DecoderLayer``, or a module whose
  class name ends in ``Block``/``Layer`` and that owns an attention module); linear layers
  inside a transformer block are not probed separately.

The module whose output *is* the model's output (the classifier head) is dropped, since its
features are the logits of the ID task. Selection by name, regular expression or module type
is available through ``layers=``. No FX tracing, so torchvision and timm models work.

Reduction (Harun et al., NeurIPS 2024, section 3): convolutional maps are adaptive-average
pooled to ``pool x pool`` (2x2 by default) and flattened; transformer tokens are mean-pooled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ablab.errors import AblabError, DataError, did_you_mean

_NORM_ACT = (
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
    "InstanceNorm2d", "LocalResponseNorm", "ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "ELU",
    "Tanh", "Sigmoid", "Mish", "Hardswish", "PReLU", "Softplus", "Dropout", "Dropout1d",
    "Dropout2d",
)  # fmt: skip


@dataclass(frozen=True)
class ProbePoint:
    """A probed module: ``name`` (the conv/linear/block that starts it), ``hooked`` (the module
    whose output is captured: ``name`` itself or the last norm/activation following it) and
    ``kind`` (``conv``, ``linear``, ``block`` or ``module``)."""

    name: str
    hooked: str
    kind: str


def _is_conv(m: Any) -> bool:
    import torch.nn as nn

    return isinstance(m, nn.modules.conv._ConvNd)


def _is_transformer_block(m: Any) -> bool:
    import torch.nn as nn

    if isinstance(m, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer):
        return True
    cls = type(m).__name__
    if not re.search(r"(Block|Layer)$", cls) or isinstance(m, nn.MultiheadAttention):
        return False
    return any(
        isinstance(c, nn.MultiheadAttention) or "attn" in n.lower() or "attention" in n.lower()
        for n, c in m.named_children()
    )


def _default_points(model: Any) -> list[ProbePoint]:
    import torch.nn as nn

    blocks = [n for n, m in model.named_modules() if n and _is_transformer_block(m)]
    inside = tuple(b + "." for b in blocks)
    points: list[ProbePoint] = [ProbePoint(b, b, "block") for b in blocks]
    for parent_name, parent in model.named_modules():
        children = list(parent.named_children())
        for i, (cname, child) in enumerate(children):
            full = f"{parent_name}.{cname}" if parent_name else cname
            if full.startswith(inside) or full in blocks:
                continue
            if not (_is_conv(child) or isinstance(child, nn.Linear)):
                continue
            hooked = full
            if isinstance(parent, nn.Sequential):  # extend over following norm/activation
                for nname, nxt in children[i + 1 :]:
                    if type(nxt).__name__ not in _NORM_ACT:
                        break
                    hooked = f"{parent_name}.{nname}" if parent_name else nname
            points.append(ProbePoint(full, hooked, "conv" if _is_conv(child) else "linear"))
    return points


def available_points(model: Any) -> list[str]:
    """Names of every module that can be probed (all named submodules)."""
    return [n for n, _ in model.named_modules() if n]


def select_points(model: Any, layers: str | Sequence[str | type] | None = None) -> list[ProbePoint]:
    """Probe points of ``model``, in module-registration order.

    ``layers`` may be None (the defaults above), ``"all"`` (defaults including the output
    head), a regular expression string (``"features\\.\\d+$"``; matched with ``re.fullmatch``
    against every module name), or a list of module names, regexes and ``nn.Module``
    subclasses. An exact name that is not in the model raises :class:`AblabError` listing the
    available names.
    """
    defaults = _default_points(model)
    modules = dict(model.named_modules())
    if layers is None or layers == "all":
        return defaults
    items: list[str | type] = [layers] if isinstance(layers, str) else list(layers)
    by_name = {p.name: p for p in defaults}
    chosen: dict[str, ProbePoint] = {}
    for item in items:
        if isinstance(item, type):
            hits = [n for n, m in modules.items() if n and isinstance(m, item)]
        elif item in modules and item:
            hits = [item]
        else:
            try:
                rx = re.compile(item)
            except re.error:
                rx = None
            hits = [n for n in modules if n and rx is not None and rx.fullmatch(n)]
            if not hits:
                names = available_points(model)
                hint = did_you_mean(item, names) or ""
                raise AblabError(
                    f"layer '{item}' matches no module of {type(model).__name__}",
                    hint=(hint + " " if hint else "") + f"available: {', '.join(names)}",
                )
        for n in hits:
            kind = "conv" if _is_conv(modules[n]) else "module"
            chosen.setdefault(n, by_name.get(n, ProbePoint(n, n, kind)))
    order = {n: i for i, n in enumerate(modules)}
    return sorted(chosen.values(), key=lambda p: order[p.name])


def reduce_output(out: Any, kind: str, pool: int, module: Any = None) -> Any:
    """Reduce one captured output to a ``(N, D)`` tensor (see module docstring)."""
    import torch
    import torch.nn.functional as F

    if isinstance(out, tuple | list):
        out = next((o for o in out if isinstance(o, torch.Tensor)), None)
    if not isinstance(out, torch.Tensor):
        raise AblabError(f"probe point output is {type(out).__name__}, not a tensor")
    out = out.detach()
    if out.ndim == 4:
        out = F.adaptive_avg_pool2d(out, pool)
    elif out.ndim == 5:
        out = F.adaptive_avg_pool3d(out, pool)
    elif out.ndim == 3:
        if kind == "conv":
            out = F.adaptive_avg_pool1d(out, pool)
        else:  # tokens: (N, T, D), or (T, N, D) for a batch_first=False transformer layer
            attn = getattr(module, "self_attn", None)
            seq_first = attn is not None and not getattr(attn, "batch_first", True)
            out = out.mean(dim=0 if seq_first else 1)
    return out.reshape(out.shape[0], -1).float()


def extract(
    model: Any,
    x: np.ndarray | Any,
    points: Iterable[ProbePoint],
    *,
    batch_size: int = 256,
    pool: int = 2,
    device: str = "cpu",
    drop_output: bool = False,
) -> dict[str, np.ndarray]:
    """Features of ``x`` at every probe point, in one forward pass per batch.

    Returns ``{point name: float32 array (N, D)}``. With ``drop_output`` the points whose
    captured tensor is the model's own output are left out. The model is put in eval mode for
    the pass and restored afterwards. An input the model cannot take raises
    :class:`DataError` naming the input shape.
    """
    import torch

    points = list(points)
    modules = dict(model.named_modules())
    feats: dict[str, list[np.ndarray]] = {p.name: [] for p in points}
    captured: dict[str, Any] = {}
    handles = []
    for p in points:

        def hook(_m: Any, _i: Any, out: Any, p: ProbePoint = p) -> None:
            captured[p.name] = (out, reduce_output(out, p.kind, pool, modules[p.name]))

        handles.append(modules[p.hooked].register_forward_hook(hook))
    was_training = model.training
    model.eval()
    output_points: set[str] = set()
    x_t = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    try:
        with torch.inference_mode():
            for s in range(0, len(x_t), batch_size):
                captured.clear()
                batch = x_t[s : s + batch_size].to(device)
                try:
                    y = model(batch)
                except (RuntimeError, ValueError, TypeError) as exc:
                    raise DataError(
                        f"the model cannot take inputs of shape {tuple(x_t.shape[1:])} "
                        f"(batch {tuple(batch.shape)}): {str(exc).splitlines()[0]}",
                        hint="check the dataset resolution/channels against the model",
                    ) from exc
                if s == 0 and drop_output:
                    outs = y if isinstance(y, tuple | list) else (y,)
                    output_points = {
                        n for n, (raw, _) in captured.items() if any(raw is o for o in outs)
                    }
                for p in points:
                    if p.name not in captured:
                        raise AblabError(f"probe point '{p.name}' was not called in forward")
                    feats[p.name].append(captured[p.name][1].cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: np.concatenate(v) for n, v in feats.items() if n not in output_points}
