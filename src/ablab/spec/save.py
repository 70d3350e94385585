"""``Study.save``: a :class:`StudySpec` written back as a study file the CLI reads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ablab.errors import SpecError
from ablab.spec.model import StudySpec


def _relocate(p: str, old_root: Path, new_root: Path) -> str:
    """A path relative to ``old_root`` made relative to ``new_root`` (absolute ones stay)."""
    if Path(p).is_absolute():
        return p
    return Path(os.path.relpath((old_root / p).resolve(), new_root)).as_posix()


def study_dict(spec: StudySpec, new_root: Path) -> dict[str, Any]:
    """The study-file dict of ``spec`` with its relative paths re-based on ``new_root``."""
    from ablab.spec.serialize import spec_to_dict

    d = spec_to_dict(spec)
    target, _, func = spec.entry.rpartition(":")
    if target.split(".")[0] == "__main__":
        raise SpecError(
            f"study '{spec.name}': entry '{spec.entry}' is a function of the running script or "
            "notebook, which a study file cannot name",
            hint="move the function into a file (e.g. train.py) and use entry='train.py:train'",
        )
    if target.endswith(".py"):
        d["entry"] = f"{_relocate(target, spec.root, new_root)}:{func}"
    if d.get("run", {}).get("code"):
        d["run"]["code"] = [_relocate(c, spec.root, new_root) for c in d["run"]["code"]]
    if not d.get("run"):
        d.pop("run", None)
    return d


def save_study(spec: StudySpec, path: str | Path) -> Path:
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SpecError(
            f"{p}: a study file must end in .toml, .yaml or .yml",
            hint="e.g. study.save('study.toml')",
        )
    d = study_dict(spec, p.parent.resolve())
    if suffix == ".toml":
        from ablab.spec.tomlw import dumps

        text = dumps(d)
    else:
        import yaml

        text = yaml.safe_dump(d, sort_keys=False, allow_unicode=True)
    header = f"# study '{spec.name}' saved by ablab: run it with  ablab run {p.name}\n"
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.saving{suffix}")
    tmp.write_text(header + text, encoding="utf-8")
    # read it back before it replaces anything: the file must describe the same study
    from ablab.spec.load import load_study

    try:
        back = study_dict(load_study(tmp), p.parent.resolve())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if back != d:
        tmp.unlink(missing_ok=True)
        raise SpecError(f"{p}: the saved study does not read back as the same study")
    os.replace(tmp, p)
    return p
