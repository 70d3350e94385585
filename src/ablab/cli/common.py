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


def default_store_here() -> Path:
    """The store of a study file in the current folder: ``$ABLAB_STORE`` or ``./.ablab``."""
    import os

    return Path(os.environ.get("ABLAB_STORE") or Path.cwd() / ".ablab")


def find_store(store: Path | None, study: Path | None) -> Path:
    """The store for commands that take a run key: ``--store``, the ``--study`` file's store, or
    the current folder's (``$ABLAB_STORE`` or ``./.ablab``). Never a search of the folders below:
    which store a key is read from must not depend on what else lies around."""
    if store is not None:
        return store
    if study is not None:
        from ablab.api import default_store_dir
        from ablab.spec.load import load_study

        return default_store_dir(load_study(study))
    here = default_store_here()
    if (here / "ablab.db").exists():
        return here
    raise StoreError(
        f"no ablab store in the current folder (looked for {here / 'ablab.db'})",
        hint="give --study STUDY_FILE (its store) or --store DIR",
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
