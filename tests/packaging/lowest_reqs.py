"""Print pip requirements pinning ablab's analysis stack to the lowest versions that
pyproject.toml allows (``name>=X`` -> ``name==X``), for ``tests/packaging/lowest.sh``.

Only the packages ``tests/analysis`` needs are pinned (torch and the CLI stack are not
imported there), so the check stays small; the floors come from pyproject.toml itself, so
raising one there changes what the check installs."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ANALYSIS = ("numpy", "scipy", "pandas", "statsmodels", "patsy")


def lowest(pyproject: Path, names: tuple[str, ...] = ANALYSIS) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = []
    for name in names:
        for d in deps:
            m = re.match(rf"^\s*{re.escape(name)}\s*>=\s*([0-9][0-9.]*)\s*(?:,.*)?$", d, re.I)
            if m:
                out.append(f"{name}=={m.group(1)}")
                break
        else:
            raise SystemExit(f"pyproject.toml declares no lower bound 'name>=X' for {name}")
    return out


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    print("\n".join(lowest(root / "pyproject.toml")))
