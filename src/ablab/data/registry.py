"""Named datasets: ``load("glyphs-digits", seed=0, resolution=32)``.

Each name maps to a builder and preset options; options passed to :func:`load` override the
presets. ``names()`` lists what is registered, :func:`register` adds a name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ablab.data._dataset import Dataset
from ablab.errors import DataError, did_you_mean


@dataclass(frozen=True)
class Entry:
    builder: Callable[..., Dataset]
    preset: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, Entry] = {}
_BUILTINS_LOADED = False


def register(
    name: str, builder: Callable[..., Dataset], description: str = "", **preset: Any
) -> None:
    """Register ``name``: ``load(name, seed, **opts)`` calls ``builder(seed, name=name,
    **preset, **opts)``."""
    _REGISTRY[name] = Entry(builder, dict(preset), description)


def _builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from ablab.data import sources as s

    register("glyphs", s.glyphs, "glyphs; choose classes=, fonts=, resolution=, ...")
    register("glyphs-digits", s.glyphs, "digits 0-9 in the DejaVu fonts (ID)", classes="digits")
    register("glyphs-letters", s.glyphs, "letters A-Z, DejaVu fonts (new classes)",
             classes="upper")  # fmt: skip
    register("glyphs-upper", s.glyphs, "letters A-Z, DejaVu fonts", classes="upper")
    register("glyphs-lower", s.glyphs, "letters a-z, DejaVu fonts", classes="lower")
    register("glyphs-all", s.glyphs, "all 62 characters, DejaVu fonts", classes="all")
    register("glyphs-heldout-fonts", s.glyphs, "digits 0-9 in STIX and Computer Modern fonts "
             "(style shift)", classes="digits", fonts="heldout")  # fmt: skip
    register("glyphs-heldout-letters", s.glyphs, "letters A-Z in held-out fonts",
             classes="upper", fonts="heldout")  # fmt: skip
    for kind, text in [("noise", "Gaussian noise"), ("blur", "Gaussian blur"),
                       ("contrast", "low contrast"), ("elastic", "elastic warp")]:  # fmt: skip
        register(f"corrupt-{kind}", s.glyphs, f"digits 0-9, DejaVu fonts, {text} (severity 3)",
                 classes="digits", corruption=kind)  # fmt: skip
    register("digits", s.digits, "scikit-learn 8x8 handwritten digits (resolution= resizes)")
    register("mnist1d", s.mnist1d, "MNIST-1D sequences of length 40")
    register("mnist1d-shifted", s.mnist1d, "MNIST-1D with shifted generation parameters",
             shift=True)  # fmt: skip


def names() -> list[str]:
    """All registered dataset names."""
    _builtins()
    return sorted(_REGISTRY)


def describe() -> dict[str, str]:
    """Name -> one-line description."""
    _builtins()
    return {k: _REGISTRY[k].description for k in sorted(_REGISTRY)}


def load(name: str, seed: int = 0, **options: Any) -> Dataset:
    """Build the dataset registered as ``name``, deterministically for ``seed``.

    Options not accepted by the builder raise :class:`DataError` listing the accepted ones.
    Options set to ``None`` are ignored (so callers can pass optional settings through).
    """
    _builtins()
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY) or f"known datasets: {', '.join(names())}"
        raise DataError(f"unknown dataset '{name}'", hint=hint)
    entry = _REGISTRY[name]
    opts = {**entry.preset, **{k: v for k, v in options.items() if v is not None}}
    params = inspect.signature(entry.builder).parameters
    accepted = [p for p in params if p not in ("seed", "name")]
    bad = [k for k in opts if k not in accepted]
    if bad:
        raise DataError(
            f"dataset '{name}' does not take option(s) {', '.join(map(repr, bad))}",
            hint=f"accepted options: {', '.join(accepted)}",
        )
    return entry.builder(seed, name=name, **opts)


def options(name: str) -> list[str]:
    """Options the builder of ``name`` accepts (besides ``seed``)."""
    _builtins()
    if name not in _REGISTRY:
        return []
    params = inspect.signature(_REGISTRY[name].builder).parameters
    return [p for p in params if p not in ("seed", "name")]
