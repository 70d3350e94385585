"""Apply module edits to a ``torch.nn.Module``: match paths, then zero / identity / mean / replace.

Matching: a pattern is a dotted path from ``model.named_modules()``; each segment is matched with
:func:`fnmatch.fnmatchcase` (``*`` = any one segment, so ``layers.*.attn`` matches
``layers.0.attn`` but not ``layers.0.sub.attn``). A pattern that matches nothing is an error
naming the closest existing paths (``difflib``).

Edits (applied in declaration order; each pattern is matched against the model as edited so far):

- ``zero``: a forward hook replaces the module's output by zeros of the same shape. The module
  still computes (its FLOPs and latency remain); use ``identity`` or ``replace`` to remove work.
- ``identity``: the module is swapped for a pass-through of its (first) input. On the first call
  the original module runs once to check that its output has the input's shape; a module whose
  output shape differs fails with both shapes. The original's parameters no longer count.
- ``mean``: the module is swapped for a constant: its output averaged over the batch dimension of
  a reference batch (``reference=``), broadcast to each call's batch size. The reference pass runs
  after the other edits, in eval mode, without gradients.
- ``replace``: the module is swapped for ``factory(module, **args)`` (or ``factory(**args)`` when
  the factory takes no positional parameter), imported from ``file.py:function``.

With a ``reference`` batch and an ``identity`` edit, the edited model runs once on it, so a shape
mismatch fails at ``run.ablate`` rather than in the middle of an evaluation.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import torch
from torch import nn

from ablab.components.edits import EDIT_KINDS, ComponentError, check_path, is_edit_key


@dataclass
class EditRecord:
    """What one ``@`` edit did: its pattern, kind and the module paths it matched."""

    pattern: str
    edit: Any
    matched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "edit": self.edit, "matched": list(self.matched)}


def match_modules(model: nn.Module, pattern: str) -> list[str]:
    """Paths of ``model``'s modules matching ``pattern`` (segment-wise ``fnmatch``), in order."""
    want = pattern.split(".")
    out = []
    for name, _ in model.named_modules():
        if not name:
            continue
        parts = name.split(".")
        if len(parts) == len(want) and all(
            fnmatchcase(p, w) for p, w in zip(parts, want, strict=True)
        ):
            out.append(name)
    return out


def closest_paths(model: nn.Module, pattern: str, n: int = 5) -> list[str]:
    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(pattern, names, n=n, cutoff=0.4)
    if not close:  # a glob: compare with the '*' replaced by each existing segment shape
        depth = len(pattern.split("."))
        close = [x for x in names if len(x.split(".")) == depth][:n]
    return close


def _no_match(model: nn.Module, key: str, pattern: str) -> ComponentError:
    near = closest_paths(model, pattern)
    return ComponentError(
        f"module edit '{key}' matched no module of {type(model).__name__}",
        hint=(f"closest module paths: {', '.join(near)}" if near else "the model has no submodules")
        + "; list them with [n for n, _ in model.named_modules()]",
    )


def _set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, leaf, new)


def _zeros_like(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return torch.zeros_like(out)
    if isinstance(out, tuple):
        return tuple(_zeros_like(o) for o in out)
    if isinstance(out, list):
        return [_zeros_like(o) for o in out]
    return out


def _zero_hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
    return _zeros_like(output)


class Identity(nn.Module):
    """Pass the first input through; checks once that the removed module kept its input's shape."""

    def __init__(self, path: str, original: nn.Module) -> None:
        super().__init__()
        self.path = path
        self._original = [original]  # a list: not registered, its parameters do not count
        self._checked: set[tuple[int, ...]] = set()

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
        if shape is not None and shape not in self._checked and self._original:
            with torch.no_grad():
                out = self._original[0](x, *args, **kwargs)
            out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
            if out_shape != shape:
                got = (
                    f"output shape {list(out_shape)}"
                    if out_shape is not None
                    else f"a {type(out).__name__}"
                )
                raise ComponentError(
                    f"'@{self.path}' = \"identity\": the module maps input shape {list(shape)} "
                    f"to {got}, so it cannot be removed by passing its input through",
                    hint='use "zero", "mean" or { replace = "file.py:factory" } for this module',
                )
            self._checked.add(shape)
        return x

    def extra_repr(self) -> str:
        return f"removed '{self.path}'"


class Constant(nn.Module):
    """Return a fixed per-example output (a reference batch's mean), broadcast over the batch."""

    def __init__(self, path: str, value: torch.Tensor) -> None:
        super().__init__()
        self.path = path
        self.register_buffer("value", value.detach().clone())

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        batch = x.shape[0] if isinstance(x, torch.Tensor) and x.dim() > 0 else 1
        return self.value.unsqueeze(0).expand(batch, *self.value.shape).clone()

    def extra_repr(self) -> str:
        return f"mean of '{self.path}', shape {list(self.value.shape)}"


def _call_factory(factory: Callable[..., Any], original: nn.Module, args: Mapping[str, Any]) -> Any:
    try:
        params = [
            p
            for p in inspect.signature(factory).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in args
        ]
    except (TypeError, ValueError):
        params = []
    return factory(original, **args) if params else factory(**args)


def apply_edits(
    model: nn.Module,
    edits: Mapping[str, Any],
    *,
    reference: Any = None,
    load_factory: Callable[[str], Callable[..., Any]] | None = None,
) -> tuple[nn.Module, list[EditRecord]]:
    """Apply ``edits`` (``{"@path": edit}``) to ``model`` in place; returns it and what matched.

    ``reference``: a batch (tensor, or tuple of positional inputs) for ``mean`` edits.
    ``load_factory``: resolves ``"file.py:function"`` for ``replace`` edits.
    """
    if not isinstance(model, nn.Module):
        raise ComponentError(
            f"run.ablate expects a torch.nn.Module, got {type(model).__name__}",
            hint="pass the model object itself (e.g. the nn.Module your entry built or loaded)",
        )
    records: list[EditRecord] = []
    means: list[EditRecord] = []
    for key, edit in edits.items():
        if not is_edit_key(key):
            continue
        pattern = check_path(key, "run.ablate")
        matched = match_modules(model, pattern)
        if not matched:
            raise _no_match(model, key, pattern)
        rec = EditRecord(pattern, edit, matched)
        records.append(rec)
        if edit == "zero":
            for path in matched:
                model.get_submodule(path).register_forward_hook(_zero_hook)
        elif edit == "identity":
            for path in matched:
                _set_module(model, path, Identity(path, model.get_submodule(path)))
        elif edit == "mean":
            means.append(rec)
        elif isinstance(edit, Mapping) and "replace" in edit:
            if load_factory is None:
                raise ComponentError(f"'{key}': no way to import {edit['replace']!r} here")
            factory = load_factory(str(edit["replace"]))
            for path in matched:
                new = _call_factory(factory, model.get_submodule(path), edit.get("args") or {})
                if not isinstance(new, nn.Module):
                    raise ComponentError(
                        f"'{key}': factory {edit['replace']} returned {type(new).__name__}, "
                        "expected a torch.nn.Module"
                    )
                _set_module(model, path, new)
        else:
            raise ComponentError(
                f"'{key}' = {edit!r} is not a module edit",
                hint=f'use one of {", ".join(EDIT_KINDS)} or {{ replace = "file.py:factory" }}',
            )
    if means:
        _apply_means(model, means, reference)
    if reference is not None and any(r.edit == "identity" for r in records):
        _forward(model, reference)  # check the removed modules' shapes now, not mid-evaluation
    return model, records


def _forward(model: nn.Module, reference: Any) -> None:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*reference) if isinstance(reference, tuple) else model(reference)
    finally:
        model.train(was_training)


def _apply_means(model: nn.Module, recs: list[EditRecord], reference: Any) -> None:
    if reference is None:
        pats = ", ".join(f"'@{r.pattern}'" for r in recs)
        raise ComponentError(
            f'{pats} = "mean" needs a reference batch to average the outputs over',
            hint="call model = run.ablate(model, reference=x) with a batch of inputs",
        )
    paths = [p for r in recs for p in r.matched]
    captured: dict[str, torch.Tensor] = {}

    def hook(path: str) -> Callable[..., None]:
        def fn(_m: nn.Module, _i: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or out.dim() == 0:
                raise ComponentError(
                    f"'@{path}' = \"mean\": the module returned {type(out).__name__}, "
                    "expected a tensor with a batch dimension"
                )
            captured[path] = out.detach().float().mean(dim=0).to(out.dtype)

        return fn

    handles = [model.get_submodule(p).register_forward_hook(hook(p)) for p in paths]
    try:
        _forward(model, reference)
    finally:
        for h in handles:
            h.remove()
    for p in paths:
        if p not in captured:
            raise ComponentError(
                f"'@{p}' = \"mean\": the module was not called on the reference batch",
                hint="pass a reference batch that goes through this module",
            )
        _set_module(model, p, Constant(p, captured[p]))
