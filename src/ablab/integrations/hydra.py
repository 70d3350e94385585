"""Hydra configs in study files: a baseline composed from a Hydra config tree, ablations given as
Hydra override lists.

    baseline = { hydra = { config_path = "conf", config_name = "train" } }

    [ablations]
    no-aug = ["data.augment=false", "+trainer.fast=true"]   # Hydra overrides
    small = { "model.hidden" = 16 }                         # plain ablab overrides still work

Each configuration is composed with Hydra's compose API and resolved (interpolations filled in)
to the plain nested dict that ablab hashes, so run keys are those of the same plain study
file. A variant is stored as the difference between its composed config and the baseline's
(a subtree from which keys disappear, e.g. after a config-group change, is replaced whole).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablab.errors import SpecError
from ablab.spec.model import flatten

HYDRA_KEYS = ("config_path", "config_name", "overrides")


def uses_hydra(raw: Any) -> bool:
    """True when a study dict's baseline is ``{ hydra = { ... } }``."""
    if not isinstance(raw, dict):
        return False
    base = raw.get("baseline")
    return isinstance(base, dict) and list(base) == ["hydra"] and isinstance(base["hydra"], dict)


def resolve_study(raw: dict[str, Any], *, source: Path | None, where: str) -> dict[str, Any]:
    """The study dict with its Hydra baseline composed and its override lists turned into plain
    ablab overrides (every other key unchanged)."""
    h = raw["baseline"]["hydra"]
    for k in h:
        if k not in HYDRA_KEYS:
            from ablab.errors import did_you_mean

            raise SpecError(
                f"{where}: baseline.hydra has unknown key '{k}'",
                hint=did_you_mean(k, HYDRA_KEYS) or f"allowed: {', '.join(HYDRA_KEYS)}",
            )
    name = h.get("config_name")
    if not isinstance(name, str) or not name:
        raise SpecError(
            f"{where}: baseline.hydra.config_name = {name!r}: expected the name of the primary "
            'config (e.g. "train" for conf/train.yaml)'
        )
    rel = h.get("config_path", ".")
    if not isinstance(rel, str):
        raise SpecError(f"{where}: baseline.hydra.config_path = {rel!r}: expected a folder path")
    root = source.parent if source is not None else Path.cwd()
    conf = (root / rel).resolve()
    if not conf.is_dir():
        raise SpecError(
            f"{where}: baseline.hydra.config_path = {rel!r}: folder {conf} not found",
            hint="config_path is relative to the study file",
        )
    base_over = _override_list(h.get("overrides", []), f"{where}: baseline.hydra.overrides")
    try:
        from hydra import compose, initialize_config_dir
        from omegaconf import OmegaConf
    except ImportError:
        raise SpecError(
            f"{where}: the baseline is a Hydra config, but hydra-core is not installed",
            hint="pip install 'ablab-toolkit[hydra]' (or hydra-core)",
        ) from None

    def compose_plain(overrides: list[str], what: str) -> dict[str, Any]:
        try:
            with initialize_config_dir(config_dir=str(conf), version_base=None):
                cfg = compose(config_name=name, overrides=overrides)
                out = OmegaConf.to_container(cfg, resolve=True)
        except Exception as e:  # Hydra/OmegaConf raise many types; all are spec errors here
            msg = " ".join(str(e).split())
            cause = e.__cause__ or e.__context__
            if cause is not None and str(cause).split("\n")[0] not in msg:
                msg += f" ({str(cause).splitlines()[0]})"
            raise SpecError(
                f"{where}: {what}: Hydra cannot compose config '{name}' from {conf} "
                f"with overrides {overrides}: {msg}",
                hint=_suggest(overrides, known),
            ) from None
        if not isinstance(out, dict):
            raise SpecError(f"{where}: {what}: Hydra config '{name}' is not a mapping")
        return out

    known: list[str] = []
    baseline = compose_plain(base_over, "baseline")
    known += list(flatten(baseline))
    ablations = raw.get("ablations", {})
    if isinstance(ablations, dict):
        resolved: dict[str, Any] = {}
        for vname, over in ablations.items():
            if isinstance(over, list):
                what = f"[ablations] {vname}"
                lst = _override_list(over, f"{where}: {what}")
                if not lst:
                    raise SpecError(f"{where}: {what} is an empty override list")
                cfg = compose_plain(base_over + lst, what)
                over = diff(baseline, cfg, f"{where}: {what}")
                if not over:
                    raise SpecError(
                        f"{where}: {what}: the overrides {lst} leave the baseline unchanged",
                        hint="an ablation must change at least one value of the baseline",
                    )
            resolved[vname] = over
        ablations = resolved
    return {**raw, "baseline": baseline, "ablations": ablations}


def _suggest(overrides: list[str], known: list[str]) -> str | None:
    """A "did you mean" for the first override whose key the baseline lacks."""
    from ablab.errors import did_you_mean

    for o in overrides:
        k = o.split("=", 1)[0].lstrip("+~")
        if known and k not in known and not any(x.startswith(k + ".") for x in known):
            return did_you_mean(k, known)
    return None


def _override_list(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise SpecError(
            f"{where} = {v!r}: expected a list of Hydra overrides",
            hint='e.g. ["data.augment=false", "+trainer.fast=true"]',
        )
    return list(v)


def diff(base: dict[str, Any], cfg: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """Dotted ablab overrides that turn ``base`` into ``cfg``: changed leaves by their key, new
    keys with a ``+`` prefix. A table that lost keys (e.g. after a config-group change) is
    replaced whole: set to an empty table, then its new keys added (``{ model = {},
    "+model.kind" = "linear" }``), which is how ablab's overrides express removal."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        dotted = prefix + k
        old = base.get(k)
        if k not in base:
            out["+" + dotted] = v
        elif isinstance(v, dict) and isinstance(old, dict) and v and old and not set(old) - set(v):
            out.update(diff(old, v, where, dotted + "."))
        elif isinstance(v, dict) and v and v != old:
            out[dotted] = {}
            out.update({f"+{dotted}.{kk}": vv for kk, vv in flatten(v).items()})
        elif v != old or type(v) is not type(old):
            out[dotted] = v
    gone = [k for k in base if k not in cfg]
    if gone and not prefix:
        raise SpecError(
            f"{where}: the overrides delete top-level key(s) {', '.join(gone)} of the baseline, "
            "which an ablab variant cannot express",
            hint="set the key to a value (e.g. null or false) instead of deleting it",
        )
    return out
