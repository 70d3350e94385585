"""K models of one architecture with stacked parameters, evaluated with ``vmap``.

:class:`BatchedModels` builds model k under ``torch.manual_seed(seeds[k])`` (exactly what
``ablab.seed_everything(seeds[k])`` does to torch's global generator before a solo run calls the
entry), stacks the K parameter/buffer sets along a new leading axis and runs them with
``torch.func.functional_call`` under ``torch.func.vmap``. ``nn.Dropout`` layers are replaced by
layers that multiply by a mask passed in with the call; :meth:`BatchedModels.dropout_masks` draws
each model's masks from a per-model generator that continues the global RNG stream right after
that model's construction, i.e. the stream a solo run's ``nn.Dropout`` would draw from.
Chains of ``nn.Linear``/``nn.ReLU``/``nn.Dropout`` skip ``vmap`` for speed: batched products
(``baddbmm``/``bmm``) and a written-out backward with the kernels autograd runs for one model.
With ``device="cuda"`` the models are still built on the CPU (same initialisation), then their
stacked tensors live on the GPU and the masks come from per-model CUDA generators
(:mod:`ablab.batched.device`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from ablab.batched.checks import check_makers, check_same_architecture, check_seeds
from ablab.batched.device import CudaDropout, resolve_device
from ablab.batched.errors import BatchedError
from ablab.batched.optim import _grouped, _groups


class _MaskDropout(nn.Module):
    """Stands in for ``nn.Dropout``: returns ``x * mask`` when a mask buffer is supplied through
    ``functional_call`` (the mask already holds ``bernoulli(1 - p) / (1 - p)``), else ``x``.
    With an empty mask it records the input's shape, so a shape probe can size the masks."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.empty(0), persistent=False)
        self.seen_shape: tuple[int, ...] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.mask.numel() == 0:
            self.seen_shape = tuple(x.shape)
            return x
        return x * self.mask


class BatchedModels:
    """K models of one architecture as stacked tensors.

    ``make_model``: a zero-argument callable returning an ``nn.Module``, or a sequence of K such
    callables (one per model; they must build the same parameter names and shapes, and may
    differ only in ``nn.Dropout(p)``). ``seeds``: K integers; model k is built under
    ``torch.manual_seed(seeds[k])``, so its initialisation equals that of a solo run with that
    seed. The caller's global RNG state is left unchanged.

    ``device``: where the stacked tensors live and the computation runs: ``None`` or ``"cpu"``
    (the same thing), or a CUDA device (``"cuda"``, ``"cuda:1"``, a ``torch.device``). The
    models are always built on the CPU (so the initialisation is the solo run's), then the
    stacked parameters (``flat`` and its views ``params``), ``buffers`` and the dropout masks
    are on ``device``; inputs passed to the methods must be on it too. Dropout on the CPU: model
    k's masks continue the global CPU stream after its construction (``bernoulli_``, as
    ``nn.Dropout`` in a solo CPU run). On CUDA: model k's masks come from a CUDA generator
    seeded with ``seeds[k]``, drawn with the kernel ``nn.Dropout`` runs on CUDA, so they equal
    the masks of a solo GPU run (model built on the CPU after ``torch.manual_seed(seed)``, moved
    to the GPU) as long as nothing else in that solo run draws from the CUDA generator. An unknown
    device, or CUDA on a machine without it, raises :class:`BatchedError`.

    Attributes: ``k`` (number of models), ``seeds``, ``params`` and ``buffers`` (dicts of stacked
    tensors, leading axis K; ``params`` is what an optimiser updates), ``flat`` (one [K, P]
    tensor that holds every parameter: ``params[name]`` are views into it, so the optimisers
    update all parameters of all models with a few whole-tensor operations), ``dropout_p``
    ([K][layers] dropout probabilities), ``dropout_generators`` (K ``torch.Generator``: CPU
    generators on the CPU, generators on ``device`` on CUDA), ``device``, ``training``.
    Models with running statistics (BatchNorm) are not supported.
    """

    def __init__(
        self,
        make_model: Callable[[], nn.Module] | Sequence[Callable[[], nn.Module]],
        seeds: Sequence[int],
        device: Any = None,
    ) -> None:
        seeds = check_seeds(seeds)
        k = len(seeds)
        makers = check_makers(make_model, k)
        self.device = resolve_device(device)
        on_cpu = self.device.type == "cpu"
        models: list[nn.Module] = []
        self.dropout_generators: list[torch.Generator] = []
        with torch.random.fork_rng(devices=[]):
            for make, seed in zip(makers, seeds, strict=True):
                torch.manual_seed(seed)
                m = make()
                if not isinstance(m, nn.Module):
                    raise BatchedError(
                        f"make_model returned {type(m).__name__}, expected a torch.nn.Module"
                    )
                if on_cpu:  # the solo run's nn.Dropout continues the global CPU stream
                    g = torch.Generator()
                    g.set_state(torch.get_rng_state())
                    self.dropout_generators.append(g)
                models.append(m)
        check_same_architecture(models)
        self.k = k
        self.seeds = seeds
        self.dropout_p: list[list[float]] = [
            [float(mod.p) for mod in m.modules() if isinstance(mod, nn.Dropout)] for m in models
        ]
        self.training = True
        self._template = copy.deepcopy(models[0])  # an ordinary module, for unstack()
        base = copy.deepcopy(models[0])
        self._drop_names = _replace_dropout(base)
        self._mask_buffers: dict[tuple[Any, ...], Tensor] = {}
        self._mask_groups = [
            _groups([ps[j] for ps in self.dropout_p]) for j in range(len(self._drop_names))
        ]
        self._cuda_dropout = None if on_cpu else CudaDropout(seeds, self.dropout_p, self.device)
        if self._cuda_dropout is not None:
            self.dropout_generators = self._cuda_dropout.generators
        self._base = base.to("meta")
        with torch.no_grad():
            params, buffers = stack_module_state(models)
        self.flat, self.params = _flatten(params, k, self.device)
        self.buffers: dict[str, Tensor] = (
            dict(buffers) if on_cpu else {n: b.to(self.device) for n, b in buffers.items()}
        )
        self._shapes: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
        self._fns: dict[Any, Callable[..., Any]] = {}
        # a chain of Linear/ReLU/Dropout runs as batched products with a written-out backward
        self._chain = None if self.buffers else _linear_chain(base, list(self.params))

    # -- modes -------------------------------------------------------------------------------
    def train(self) -> BatchedModels:
        """Switch to training mode (dropout active when masks are passed); returns self."""
        self.training = True
        return self

    def eval(self) -> BatchedModels:
        """Switch to evaluation mode (no dropout); returns self."""
        self.training = False
        return self

    # -- dropout -----------------------------------------------------------------------------
    def dropout_masks(self, x: Tensor) -> dict[str, Tensor]:
        """Dropout masks for one training step on the per-model input batch ``x`` ([K, B, ...]).

        For each model k and dropout layer (in forward order) with ``p = dropout_p[k][j]``:
        ``mask = empty(shape).bernoulli_(1 - p, generator=dropout_generators[k]) / (1 - p)``,
        the same draws and arithmetic as ``nn.Dropout`` in a solo run (which skips drawing when
        ``p == 0``: mask of ones, and zeros when ``p == 1``). Returns ``{}`` in eval mode or
        when no model has dropout; pass the result as ``masks=`` to :meth:`__call__` or
        :meth:`loss_and_grad`. The mask tensors are reused: the next call overwrites them, so
        clone them to keep a step's masks.

        On a CUDA device the masks are on that device and come from ``dropout_generators[k]``
        (a CUDA generator seeded with ``seeds[k]``) through the kernel ``nn.Dropout`` runs there,
        already scaled by the kernel (``keep / (1 - p)``): see :class:`~ablab.batched.device.CudaDropout`.
        """
        if not self.training or not any(p > 0 for ps in self.dropout_p for p in ps):
            return {}
        shapes = self._mask_shapes(tuple(x.shape[1:]), x.dtype)
        if self._cuda_dropout is not None:
            masks = self._cuda_dropout.masks(shapes, x.dtype)
            return {f"{name}.mask": m for name, m in zip(self._drop_names, masks, strict=True)}
        masks = []
        for j, shape in enumerate(shapes):  # reused across steps (fresh tensors cost page faults)
            key = (j, shape, x.dtype)
            if key not in self._mask_buffers:
                self._mask_buffers[key] = torch.empty(
                    (self.k, *shape), dtype=x.dtype, device=self.device
                )
            masks.append(self._mask_buffers[key])
        for k in range(self.k):  # model k's draws in its solo order: layer by layer
            g = self.dropout_generators[k]
            for j, m in enumerate(masks):
                p = self.dropout_p[k][j]
                if 0 < p < 1:
                    m[k].bernoulli_(1 - p, generator=g)  # model k's slice is contiguous
        for m, groups in zip(masks, self._mask_groups, strict=True):  # one division per distinct p
            _grouped(m, groups, _scale_mask)
        return {f"{name}.mask": m for name, m in zip(self._drop_names, masks, strict=True)}

    def _mask_shapes(
        self, sample_shape: tuple[int, ...], dtype: torch.dtype
    ) -> list[tuple[int, ...]]:
        """Input shapes of the dropout layers for one model's batch shape (a meta-device probe)."""
        if sample_shape not in self._shapes:
            meta = {
                n: torch.empty(t.shape[1:], dtype=t.dtype, device="meta")
                for n, t in {**self.params, **self.buffers}.items()
            }
            functional_call(
                self._base, meta, (torch.empty(sample_shape, dtype=dtype, device="meta"),)
            )
            mods = dict(self._base.named_modules())
            self._shapes[sample_shape] = [mods[n].seen_shape for n in self._drop_names]
        return self._shapes[sample_shape]

    # -- computation -------------------------------------------------------------------------
    def __call__(
        self, x: Tensor, *, masks: dict[str, Tensor] | None = None, shared_input: bool = False
    ) -> Tensor:
        """Outputs of all K models: ``out[k] = model_k(x[k])`` ([K, B, ...]); with
        ``shared_input=True`` every model gets the same ``x`` ([B, ...])."""
        if self._chain is not None and not shared_input and x.dim() == 3:
            return self._chain_forward(self.params, x, masks or {})
        fn = self._fn("forward", shared_input, bool(masks))
        return fn(self.params, self.buffers, masks or {}, x)

    def loss_and_grad(
        self,
        loss_fn: Callable[..., Tensor],
        x: Tensor,
        y: Tensor,
        *args: Tensor,
        masks: dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-model loss and gradient: ``loss[k] = loss_fn(model_k(x[k]), y[k], *(a[k] for a in
        args))`` and ``grads[name][k] = d loss[k] / d params[name][k]``, via
        ``vmap(grad_and_value(...))``. ``x``, ``y`` and each of ``args`` carry the model axis
        first. Returns ``(loss [K], grads)``.

        Models that are a chain of ``nn.Linear``, ``nn.ReLU``, ``nn.Dropout`` and ``nn.Identity``
        (``nn.Sequential``, possibly nested) fed one matrix per model take a faster path with the
        same kernels, model by model: the layers run as batched operations (one ``baddbmm`` per
        linear layer) and their backward is written out as the operations autograd runs for a
        solo model; only ``loss_fn`` goes through autograd (and ``vmap``, unless it has a
        ``batched`` attribute: the same loss for [K, ...] inputs, returning [K], as
        :func:`~ablab.batched.cross_entropy` has)."""
        if self._chain is not None and x.dim() == 3:
            return self._chain_loss_and_grad(loss_fn, x, y, args, masks or {})
        fn = self._fn(("grad", loss_fn, len(args)), False, bool(masks))
        grads, loss = fn(self.params, self.buffers, masks or {}, x, y, *args)
        return loss, grads

    def _chain_loss_and_grad(
        self,
        loss_fn: Callable[..., Tensor],
        x: Tensor,
        y: Tensor,
        args: tuple[Tensor, ...],
        masks: dict[str, Tensor],
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward without autograd, keeping what the backward needs; autograd for the loss only;
        then the backward of every layer by hand, with the kernels autograd runs for a solo
        model: ``g * mask`` (dropout), ``threshold_backward(g, relu(h), 0)`` (ReLU), and for a
        linear layer ``bmm(g^T, h)`` (weight: torch's ``mm_mat2_backward`` for the transposed
        weight, which computes ``(g^T h)``, not ``h^T g``, whose rounding differs), ``g.sum(1)``
        (bias) and ``bmm(g, weight)`` (input, not for the first linear layer: the data needs no
        gradient)."""
        saved: list[tuple[str, str, Tensor]] = []
        with torch.no_grad():
            h = self._chain_forward(self.params, x, masks, saved)
        logits = h.requires_grad_()
        with torch.enable_grad():
            batched = getattr(loss_fn, "batched", None)  # the same loss for [K, ...] inputs
            if batched is None:
                key = ("vloss", loss_fn, len(args))
                if key not in self._fns:
                    self._fns[key] = vmap(loss_fn)
                batched = self._fns[key]
            loss = batched(logits, y, *args)
            (g,) = torch.autograd.grad(loss.sum(), [logits])
        grads: dict[str, Tensor] = {}
        first = next(i for i, (kind, _, _) in enumerate(saved) if kind == "linear")
        with torch.no_grad():
            for i in range(len(saved) - 1, first - 1, -1):
                kind, name, t = saved[i]
                if kind == "dropout":
                    g = g * t
                elif kind == "relu":
                    g = torch.ops.aten.threshold_backward(g, t, 0)
                else:
                    grads[name + ".weight"] = torch.bmm(g.transpose(1, 2), t)
                    if name + ".bias" in self.params:
                        grads[name + ".bias"] = g.sum(1)
                    if i > first:
                        g = torch.bmm(g, self.params[name + ".weight"])
        return loss.detach(), {n: grads[n] for n in self.params}

    def _chain_forward(
        self,
        params: dict[str, Tensor],
        x: Tensor,
        masks: dict[str, Tensor],
        saved: list[tuple[str, str, Tensor]] | None = None,
    ) -> Tensor:
        """The chain on [K, B, in] inputs: each linear layer one ``baddbmm(bias, h, weight^T)``
        (model k's ``addmm``, the solo ``F.linear``), ``relu``, and ``h * mask`` for dropout
        (``nn.Dropout``'s product). ``saved`` collects what the backward needs: each linear
        layer's input, each ReLU's output, each mask."""
        h = x
        for kind, name in self._chain or ():
            if kind == "linear":
                if saved is not None:
                    saved.append((kind, name, h))
                w, b = params[name + ".weight"], params.get(name + ".bias")
                h = (
                    torch.bmm(h, w.transpose(1, 2))
                    if b is None
                    else torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
                )
            elif kind == "relu":
                h = torch.relu(h)
                if saved is not None:
                    saved.append((kind, name, h))
            elif f"{name}.mask" in masks:  # dropout: nn.Dropout's ``x * mask``
                h = h * masks[f"{name}.mask"]
                if saved is not None:
                    saved.append((kind, name, masks[f"{name}.mask"]))
        return h

    def _fn(self, kind: Any, shared_input: bool, with_masks: bool) -> Callable[..., Any]:
        key = (kind, shared_input, with_masks)
        if key not in self._fns:
            base = self._base
            if kind == "forward":

                def single(p: dict, b: dict, m: dict, x: Tensor) -> Tensor:
                    return functional_call(base, (p, {**b, **m}), (x,))

                self._fns[key] = vmap(single, in_dims=(0, 0, 0, None if shared_input else 0))
            else:
                _, loss_fn, n_args = kind

                def lossf(p: dict, b: dict, m: dict, x: Tensor, y: Tensor, *a: Tensor) -> Tensor:
                    return loss_fn(functional_call(base, (p, {**b, **m}), (x,)), y, *a)

                self._fns[key] = vmap(
                    grad_and_value(lossf), in_dims=(0, 0, 0, 0, 0) + (0,) * n_args
                )
        return self._fns[key]

    # -- back to ordinary modules ------------------------------------------------------------
    def state_dicts(self) -> list[dict[str, Tensor]]:
        """K state dicts (parameters and persistent buffers), each like a solo model's
        ``state_dict()``; tensors are copies, on ``device``."""
        keys = self._template.state_dict().keys()
        full = {**self.params, **self.buffers}
        return [{n: full[n][k].detach().clone() for n in keys} for k in range(self.k)]

    def unstack(self) -> list[nn.Module]:
        """K ordinary ``nn.Module`` copies holding the current weights (model k's dropout p kept),
        on ``device`` (the CPU for ``device=None``/``"cpu"``; ``.cpu()`` them to keep them off the
        GPU; ``Run.save_model`` stores CPU copies either way)."""
        out = []
        for k, sd in enumerate(self.state_dicts()):
            m = copy.deepcopy(self._template)
            if self.device.type != "cpu":
                m.to(self.device)
            m.load_state_dict(sd)
            for mod, p in zip(
                (d for d in m.modules() if isinstance(d, nn.Dropout)),
                self.dropout_p[k],
                strict=True,
            ):
                mod.p = p
            m.train(self.training)
            out.append(m)
        return out


def _linear_chain(module: nn.Module, param_names: list[str]) -> list[tuple[str, str]] | None:
    """``module`` (dropout already replaced) as a list of ``(kind, name)`` steps when it is an
    ``nn.Sequential`` (possibly nested) of ``nn.Linear``, ``nn.ReLU``, dropout and ``nn.Identity``
    only, holding no parameters but the linear layers'; else ``None``."""
    if type(module) is not nn.Sequential:
        return None
    steps: list[tuple[str, str]] = []

    def walk(mod: nn.Module, prefix: str) -> bool:
        for name, child in mod.named_children():
            full = f"{prefix}{name}"
            if type(child) is nn.Sequential:
                if not walk(child, full + "."):
                    return False
            elif type(child) is nn.Linear:
                steps.append(("linear", full))
            elif type(child) is nn.ReLU:
                steps.append(("relu", full))
            elif type(child) is _MaskDropout:
                steps.append(("dropout", full))
            elif type(child) is not nn.Identity:
                return False
        return True

    if not walk(module, "") or not any(kind == "linear" for kind, _ in steps):
        return None
    names = [f"{n}.{w}" for kind, n in steps if kind == "linear" for w in ("weight", "bias")]
    if sorted(param_names) != sorted(n for n in names if n in param_names):
        return None
    return steps


def _scale_mask(m: Tensor, p: float, _sel: object) -> Tensor:
    """Bernoulli draws -> ``nn.Dropout``'s mask for probability ``p``: ``m / (1 - p)``, all ones
    for ``p = 0`` (no draw) and zeros for ``p = 1``; in place."""
    if p == 0:
        return m.fill_(1)
    if p == 1:
        return m.zero_()
    return m.div_(1 - p)


def _flatten(
    params: dict[str, Tensor], k: int, device: torch.device
) -> tuple[Tensor, dict[str, Tensor]]:
    """Copy stacked parameters into one ``[K, P]`` tensor on ``device``; return it and ``name -> view``
    (each view is ``flat[:, offset:offset + numel]`` reshaped to the parameter's stacked shape,
    so model k's slice of every parameter is contiguous, as in a solo module)."""
    total = sum(p[0].numel() for p in params.values())
    dtypes = {p.dtype for p in params.values()}
    if len(dtypes) > 1:
        raise BatchedError(
            f"parameters have mixed dtypes {sorted(map(str, dtypes))}; batched "
            "training needs one dtype"
        )
    flat = torch.empty(k, total, dtype=dtypes.pop(), device=device)
    views: dict[str, Tensor] = {}
    offset = 0
    for name, p in params.items():
        n = p[0].numel()
        view = flat[:, offset : offset + n].view(p.shape)
        view.copy_(p.detach())
        views[name] = view
        offset += n
    return flat, views


def _replace_dropout(module: nn.Module) -> list[str]:
    """Replace every ``nn.Dropout`` in ``module`` by :class:`_MaskDropout`; returns their names
    in forward-registration order."""
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Dropout)]
    for name in names:
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, _MaskDropout())
    return names
