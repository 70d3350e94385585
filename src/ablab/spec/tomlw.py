"""Write a study dict as TOML (the standard library reads TOML but does not write it).

Written by hand because the only writer ablab could use (``tomli_w``) is not a dependency and
a study file needs very little: top-level keys, one table per section, inline tables and
arrays of JSON-like values. ``tests/spec/test_tomlw.py`` checks with Hypothesis that
``tomllib.loads(dumps(d)) == d``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ablab.errors import SpecError

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def key(k: Any) -> str:
    if not isinstance(k, str):
        raise SpecError(f"TOML keys must be strings, found {k!r}")
    return k if _BARE.fullmatch(k) else _string(k)  # fullmatch: "$" would pass "a\n"


def _string(s: str) -> str:
    # JSON's escapes (\" \\ \n \t \uXXXX for control characters) are TOML basic-string escapes;
    # DEL is the one character TOML forbids that JSON leaves as it is.
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def value(v: Any, where: str = "value") -> str:
    """One TOML value (inline tables for nested dicts)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        inner = ", ".join(f"{key(k)} = {value(x, f'{where}.{k}')}" for k, x in v.items())
        return "{ " + inner + " }"
    if v is None:
        raise SpecError(
            f"{where} is null, which TOML cannot write",
            hint="save the study as .yaml instead, or give the key a value",
        )
    raise SpecError(f"{where} = {v!r}: a {type(v).__name__} cannot be written to a study file")


def dumps(doc: Mapping[str, Any]) -> str:
    """Top-level scalars and arrays first, then one ``[table]`` per dict value."""
    lines = [f"{key(k)} = {value(v, k)}" for k, v in doc.items() if not isinstance(v, Mapping)]
    for k, v in doc.items():
        if isinstance(v, Mapping):
            lines += ["", f"[{key(k)}]"]
            lines += [f"{key(k2)} = {value(x, f'{k}.{k2}')}" for k2, x in v.items()]
    return "\n".join(lines) + "\n"
