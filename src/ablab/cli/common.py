"""Shared CLI plumbing: the console, loading a study and its store, JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console

from ablab.errors import StoreError
from ablab.jsonutil import clean_json
from ablab.termtext import clean, safe

__all__ = ["clean", "safe"]  # every CLI print of user-controlled text goes through these

console = Console()
err_console = Console(stderr=True)


def table_console(wide: bool = False) -> Console:
    """The console for tables: the terminal's own, or, when the output is piped or captured
    (``ablab runs | less``, CI logs) or ``wide`` is asked for, one wide enough that no table
    is cut or squeezed to 80 columns."""
    if console.is_terminal and not wide:
        return console
    return Console(width=max(console.width, 10_000 if wide else 200), soft_wrap=False)


STATE = {"debug": False}


def load(study_file: Path, store: Path | None = None):
    """(spec, Store) for a study file and an optional --store directory."""
    from ablab.api import default_store_dir
    from ablab.spec.load import load_study
    from ablab.store.db import Store

    spec = load_study(study_file)
    return spec, Store(store if store is not None else default_store_dir(spec))


def find_store(store: Path | None, study: Path | None) -> Path:
    """The store for commands that take a run key: --store, the study's, ./.ablab, or the one
    .ablab folder found below the current directory."""
    if store is not None:
        return store
    if study is not None:
        from ablab.api import default_store_dir
        from ablab.spec.load import load_study

        return default_store_dir(load_study(study))
    here = Path.cwd() / ".ablab"
    if (here / "ablab.db").exists():
        return here
    found = sorted(
        {p.parent for p in Path.cwd().glob("*/.ablab/ablab.db")}
        | {p.parent for p in Path.cwd().glob("*/*/.ablab/ablab.db")}
    )
    if len(found) == 1:
        return found[0]
    if not found:
        raise StoreError(
            "no ablab store found in the current directory",
            hint="give --store DIR, or --study STUDY_FILE",
        )
    raise StoreError(
        f"several stores found ({', '.join(str(f) for f in found[:4])})",
        hint="choose one with --store DIR or --study STUDY_FILE",
    )


def dumps(obj: Any) -> str:
    return json.dumps(clean_json(obj), indent=2, default=str)


def fmt_num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"  # counts: 205,000, never 2.05e+05
        if 1e4 <= abs(v) < 1e15:  # large measurements: separators, not an exponent
            return f"{v:,.{max(digits - len(str(int(abs(v)))), 0)}f}"
        return f"{v:.{digits}g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
