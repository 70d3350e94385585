"""Module edits declared in a study file: ``"@path" = "zero" | "identity" | "mean" | {replace = ...}``.

This module parses and validates the edits (no torch import): a study's ``[ablations]`` table may
hold keys starting with ``@`` that name modules of the model by their path in
``model.named_modules()`` (``*`` matches one path segment, ``?``/``[..]`` as in :mod:`fnmatch`)::

    [ablations]
    no-attn  = { "@encoder.layers.*.attn" = "zero" }       # outputs replaced by zeros
    skip-mlp = { "@encoder.layers.3.mlp" = "identity" }     # module removed (input passed through)
    mean-head = { "@head" = "mean" }                        # output replaced by its reference mean
    small-bb = { "@backbone" = { replace = "models.py:small_backbone" } }  # factory, relative
                                                                           # to the study file

The edits travel in the run's resolved configuration under their ``@`` keys (so they are part of
the run key and of "what was varied"); the entry applies them with ``model = run.ablate(model)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ablab.errors import AblabError, SpecError, did_you_mean

EDIT_KINDS = ("zero", "identity", "mean")
REPLACE_KEYS = ("replace", "args")
PREFIX = "@"
_SEGMENT = re.compile(r"^[A-Za-z0-9_*?\[\]!\-]+$")


class ComponentError(AblabError):
    """A module edit cannot be applied to this model (no match, shape mismatch, bad factory)."""


def is_edit_key(key: str) -> bool:
    return isinstance(key, str) and key.startswith(PREFIX)


def check_path(key: str, where: str) -> str:
    """Validate ``@a.b.*.c`` and return the path without the ``@``."""
    path = key[len(PREFIX) :]
    parts = path.split(".")
    if not path or not all(p and _SEGMENT.match(p) for p in parts):
        raise SpecError(
            f"{where}: '{key}' is not a module path",
            hint="write '@' followed by a dotted module path from model.named_modules(), "
            "with '*' for any one segment, e.g. \"@encoder.layers.*.attn\"",
        )
    return path


def check_edit(key: str, value: Any, where: str) -> Any:
    """Validate one edit's value; returns it unchanged (plain data, JSON-serialisable)."""
    check_path(key, where)
    if isinstance(value, str):
        if value in EDIT_KINDS:
            return value
        hint = did_you_mean(value, EDIT_KINDS)
        raise SpecError(
            f"{where}: '{key}' = {value!r} is not a module edit",
            hint=(hint + " " if hint else "")
            + f'use one of {", ".join(EDIT_KINDS)} or {{ replace = "file.py:factory" }}',
        )
    if isinstance(value, Mapping):
        for k in value:
            if k not in REPLACE_KEYS:
                raise SpecError(
                    f"{where}: '{key}' has unknown key '{k}'",
                    hint=did_you_mean(str(k), REPLACE_KEYS)
                    or 'write { replace = "file.py:factory", args = { ... } }',
                )
        ref = value.get("replace")
        if not isinstance(ref, str) or ":" not in ref or not ref.split(":")[-1]:
            raise SpecError(
                f"{where}: '{key}' replace = {ref!r} is not a factory reference",
                hint="write 'file.py:function' (relative to the study file) or "
                "'package.module:function'; it is called with the module it replaces",
            )
        args = value.get("args", {})
        if not isinstance(args, Mapping) or not all(isinstance(a, str) for a in args):
            raise SpecError(f"{where}: '{key}' args = {args!r}: expected a table of keyword args")
        return dict(value)
    raise SpecError(
        f"{where}: '{key}' = {value!r}: expected a string or a table",
        hint=f'use one of {", ".join(EDIT_KINDS)} or {{ replace = "file.py:factory" }}',
    )


def split_edits(override: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``override`` -> (ordinary keys, validated ``@`` edits) for the spec loader."""
    plain = {k: v for k, v in override.items() if not is_edit_key(k)}
    edits = {k: check_edit(k, v, where) for k, v in override.items() if is_edit_key(k)}
    return plain, edits


def edits_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``@`` edits of a resolved run configuration, in declaration order."""
    return {k: v for k, v in config.items() if is_edit_key(k)}


def describe(value: Any) -> str:
    """Short text of an edit for reports: ``zero`` or ``replace by models.py:small``."""
    if isinstance(value, Mapping):
        args = value.get("args") or {}
        extra = f"({', '.join(f'{k}={v!r}' for k, v in args.items())})" if args else ""
        return f"replace by {value.get('replace')}{extra}"
    return str(value)
