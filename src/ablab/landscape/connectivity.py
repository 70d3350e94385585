"""Mode connectivity between two trained models: a trained quadratic Bezier curve, or a line.

MD tree (Zhou et al., ICML 2024, §3.2) uses the mode-connectivity measure of Yang et al.
("Taxonomizing local versus global structure in neural network loss landscapes", NeurIPS
2021, §2.2), computed on the curve-finding method of Garipov et al. ("Loss Surfaces, Mode
Connectivity, and Fast Ensembling of DNNs", NeurIPS 2018, §3): the curve

    gamma_phi(t) = (1-t)^2 theta_A + 2 t (1-t) phi + t^2 theta_B,     t in [0, 1]

has its bend ``phi`` initialised at the midpoint and trained to minimise
``E_{t ~ U(0,1)} L(gamma_phi(t))`` (one ``t`` drawn per minibatch). The train error ``E(t)``
(percent) is then measured at a few points, with BatchNorm statistics recomputed for each
``t`` (the weights on the curve never saw their own statistics). From these

    mu      = (E(0) + E(1)) / 2 - E(t*),   t* = argmax_t |E(t) - (E(0) + E(1)) / 2|
    mc_peak = -max_{0 < t < 1} E(t)

where ``t`` ranges over the interior evaluation points. ``mu < 0`` means a barrier (poorly
connected), ``mu > 0`` a curve better than its ends; ``mc_peak`` near 0 means the whole
path interpolates the training data.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from ablab.errors import DataError
from ablab.landscape._data import LossFn, checked_loss, collect_batches, model_device
from ablab.landscape.basic import error_and_loss

DEFAULT_POINTS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ModeConnectivity:
    """Errors along a path between two models and the MD tree connectivity features."""

    ts: tuple[float, ...]
    errors: tuple[float, ...]
    losses: tuple[float, ...]
    mu: float
    mc_peak: float
    t_star: float
    n_samples: int
    path: str
    epochs: int

    @property
    def barrier(self) -> float:
        """``max_t [E(t) - ((1-t) E(0) + t E(1))]``: the error barrier above the chord (>= 0)."""
        e0, e1 = self.errors[0], self.errors[-1]
        return max(e - ((1 - t) * e0 + t * e1) for t, e in zip(self.ts, self.errors, strict=True))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"barrier": self.barrier}


def _check_points(points: Sequence[float]) -> tuple[float, ...]:
    ts = tuple(float(t) for t in points)
    if list(ts) != sorted(ts) or not ts or ts[0] != 0.0 or ts[-1] != 1.0:
        raise DataError(
            f"points={list(points)}; expected increasing values from 0 to 1 inclusive, "
            "e.g. (0, .25, .5, .75, 1)"
        )
    if not any(0.0 < t < 1.0 for t in ts):
        raise DataError(
            f"points={list(points)}; expected at least one point strictly inside (0, 1)"
        )
    return ts


def check_same_architecture(model_a: nn.Module, model_b: nn.Module) -> None:
    """Raise a DataError naming the first parameter/buffer that differs in name or shape."""
    sa, sb = model_a.state_dict(), model_b.state_dict()
    only_a = [k for k in sa if k not in sb]
    only_b = [k for k in sb if k not in sa]
    if only_a or only_b:
        raise DataError(
            f"model_a ({type(model_a).__name__}) and model_b ({type(model_b).__name__}) have "
            f"different architectures: {(only_a or only_b)[0]!r} exists only in "
            f"{'model_a' if only_a else 'model_b'}",
            hint="mode connectivity and CKA compare two models of the same architecture "
            "trained from different seeds",
        )
    for k, v in sa.items():
        if v.shape != sb[k].shape:
            raise DataError(
                f"model_a and model_b have different architectures: {k!r} has shape "
                f"{tuple(v.shape)} in model_a and {tuple(sb[k].shape)} in model_b",
                hint="mode connectivity compares two models of the same architecture "
                "trained from different seeds",
            )


def _pool(data: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    batches = collect_batches(data, device)
    try:
        return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
    except RuntimeError as exc:
        raise DataError(
            "mode_connectivity: the data batches have different shapes and cannot be pooled "
            f"({exc}); pass batches whose inputs share all but the first dimension"
        ) from exc


def _minibatches(n: int, size: int, gen: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(order.split(size))


def _bn_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def _recompute_bn(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Reset BatchNorm running statistics and re-estimate them by a pass over ``x``."""
    bns = _bn_modules(model)
    if not bns:
        return
    saved = [(m, m.momentum) for m in bns]
    modes = [(m, m.training) for m in model.modules()]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    try:
        for idx in _minibatches(x.shape[0], batch_size, None):
            model(x[idx])
    finally:
        for m, mom in saved:
            m.momentum = mom
        for m, tr in modes:
            m.training = tr


def _rng_scope(device: torch.device, seed: int) -> contextlib.AbstractContextManager[Any]:
    devices = [device] if device.type == "cuda" else []
    stack = contextlib.ExitStack()
    stack.enter_context(torch.random.fork_rng(devices=devices))
    torch.manual_seed(seed)
    return stack


def _evaluate_path(
    work: nn.Module,
    names: list[str],
    weights_at: Any,
    ts: tuple[float, ...],
    loss_fn: LossFn,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
) -> tuple[list[float], list[float]]:
    errors, losses = [], []
    params = dict(work.named_parameters())
    for t in ts:
        with torch.no_grad():
            for name, w in zip(names, weights_at(t), strict=True):
                params[name].copy_(w)
        _recompute_bn(work, x, batch_size)
        batches = [(x[i], y[i]) for i in _minibatches(x.shape[0], max(batch_size, 1024), None)]
        err, loss, _ = error_and_loss(work, loss_fn, batches)
        errors.append(err)
        losses.append(loss)
    return errors, losses


def _summarise(
    ts: tuple[float, ...], errors: list[float], losses: list[float], n: int, path: str, epochs: int
) -> ModeConnectivity:
    avg = (errors[0] + errors[-1]) / 2
    inner = [(t, e) for t, e in zip(ts, errors, strict=True) if 0.0 < t < 1.0]
    t_star, e_star = max(inner, key=lambda te: abs(te[1] - avg))
    return ModeConnectivity(
        ts=ts,
        errors=tuple(errors),
        losses=tuple(losses),
        mu=avg - e_star,
        mc_peak=-max(e for _, e in inner),
        t_star=t_star,
        n_samples=n,
        path=path,
        epochs=epochs,
    )


def _endpoints(
    model_a: nn.Module, model_b: nn.Module
) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor]]:
    check_same_architecture(model_a, model_b)
    pa, pb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    names = list(pa)
    return names, [pa[n].detach().clone() for n in names], [pb[n].detach().clone() for n in names]


def mode_connectivity(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    epochs: int = 20,
    points: Sequence[float] = DEFAULT_POINTS,
    seed: int = 0,
    lr: float = 0.01,
    batch_size: int = 128,
) -> ModeConnectivity:
    """Train a quadratic Bezier curve between two models and measure the error along it.

    See the module docstring for the curve, ``mu`` and ``mc_peak`` (Garipov et al. 2018, §3;
    Yang et al. 2021, §2.2; MD tree, Zhou et al. 2024, §3.2). ``phi`` starts at
    ``(theta_A + theta_B) / 2`` and is trained for ``epochs`` passes over ``data`` with SGD
    (momentum 0.9, learning rate ``lr``, minibatches of ``batch_size`` drawn with ``seed``;
    dropout is active while training). The models themselves are not modified. Deterministic
    for a given ``seed`` on CPU.
    """
    ts = _check_points(points)
    if epochs < 0:
        raise DataError(f"epochs={epochs}; expected 0 or more passes of curve training")
    names, theta_a, theta_b = _endpoints(model_a, model_b)
    device = model_device(model_a)
    x, y = _pool(data, device)
    work = copy.deepcopy(model_a)
    for p in work.parameters():
        p.requires_grad_(False)
    phi = [nn.Parameter((a + b) / 2) for a, b in zip(theta_a, theta_b, strict=True)]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(phi, lr=lr, momentum=0.9)

    def curve(t: float | torch.Tensor, bend: list[torch.Tensor]) -> list[torch.Tensor]:
        c0, c1, c2 = (1 - t) ** 2, 2 * t * (1 - t), t**2
        return [c0 * a + c1 * f + c2 * b for a, f, b in zip(theta_a, bend, theta_b, strict=True)]

    with _rng_scope(device, seed):
        work.train()
        step = 0
        for _ in range(epochs):
            for idx in _minibatches(x.shape[0], batch_size, gen):
                t = float(torch.rand((), generator=gen))
                weights = dict(zip(names, curve(t, phi), strict=True))
                out = functional_call(work, weights, (x[idx],))
                loss = checked_loss(loss_fn, out, y[idx], step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        bend = [f.detach() for f in phi]
        errors, losses = _evaluate_path(
            work, names, lambda t: curve(t, bend), ts, loss_fn, x, y, batch_size
        )
    return _summarise(ts, errors, losses, int(x.shape[0]), "bezier", epochs)


def linear_barrier(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data: Any,
    *,
    points: Sequence[float] = DEFAULT_POINTS,
    batch_size: int = 128,
) -> ModeConnectivity:
    """The cheap alternative: errors along the straight line ``(1-t) theta_A + t theta_B``.

    No curve training (Frankle et al., "Linear Mode Connectivity and the Lottery Ticket
    Hypothesis", ICML 2020, §2); ``mu``, ``mc_peak`` and ``barrier`` are defined as for
    :func:`mode_connectivity`, BatchNorm statistics are recomputed at each ``t``.
    """
    ts = _check_points(points)
    names, theta_a, theta_b = _endpoints(model_a, model_b)
    x, y = _pool(data, model_device(model_a))
    work = copy.deepcopy(model_a)

    def line(t: float) -> list[torch.Tensor]:
        return [(1 - t) * a + t * b for a, b in zip(theta_a, theta_b, strict=True)]

    with _rng_scope(model_device(model_a), 0):
        errors, losses = _evaluate_path(work, names, line, ts, loss_fn, x, y, batch_size)
    return _summarise(ts, errors, losses, int(x.shape[0]), "linear", 0)
