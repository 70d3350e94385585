"""The study's ``entry`` in its three forms, parsed and validated at the boundary.

- ``"file.py:function"`` / ``"package.module:function"``: a function imported by name (a plain
  string; :class:`StudySpec.entry_spec` is ``None``).
- ``{ command = "python train.py --lr {lr} --seed {seed}", args = "flags" }``: any program,
  run once per run (:class:`CommandEntry`).
- a Python function passed to ``ablab.Study(entry=train)`` that a fresh worker cannot import by
  name (defined in ``__main__``, a notebook cell or a function body): serialised by value with
  cloudpickle (:class:`FunctionEntry`). In the store it is written as
  ``{ function = "__main__:train", cloudpickle = "<base64>", sources = {...} }``.

``StudySpec.entry`` stays a string in every case: the identity that run keys are hashed from.
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from ablab.errors import SpecError, did_you_mean

#: names every command may use besides the configuration keys
COMMAND_PLACEHOLDERS = ("seed", "run_dir", "variant")
_FIELD_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_ARGS = ("none", "flags")


@dataclass(frozen=True)
class CommandEntry:
    """A program run once per run: ``command`` is split like a shell would (without running one),
    then each token's ``{placeholders}`` are filled in; ``args = "flags"`` appends every
    configuration key as ``--key value``."""

    command: str
    args: Literal["none", "flags"] = "none"
    tokens: tuple[str, ...] = field(default=(), compare=False)

    @property
    def identity(self) -> str:
        return f"command:{self.command}" + (" [args=flags]" if self.args == "flags" else "")

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, **({"args": self.args} if self.args != "none" else {})}


@dataclass(frozen=True)
class FunctionEntry:
    """A function serialised by value. ``sources`` maps a stable label (the function's qualified
    name, the script file or notebook cell it came from) to the SHA-256 of that text; the code
    fingerprint includes them."""

    name: str  # module:qualname, for messages and run keys
    payload: bytes = field(repr=False)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def identity(self) -> str:
        return self.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.name,
            "cloudpickle": base64.b64encode(self.payload).decode("ascii"),
            "sources": dict(self.sources),
        }


EntrySpec = CommandEntry | FunctionEntry


def parse_entry(raw: Any, where: str) -> tuple[str, EntrySpec | None]:
    """``entry`` as written (string, table, or a Python callable) -> (identity, entry spec)."""
    if isinstance(raw, FunctionEntry):  # built by ablab.Study(entry=fn) (runtime/entry_pickled)
        return raw.identity, raw
    if callable(raw):
        module, qual = getattr(raw, "__module__", None), getattr(raw, "__qualname__", "")
        if not module or module == "__main__" or "<" in qual:
            raise SpecError(
                f"{where}: entry {qual or raw!r} cannot be imported by name in a worker",
                hint="pass it as ablab.Study(entry=fn), which sends it to the workers by value",
            )
        return f"{module}:{qual}", None
    if isinstance(raw, dict):
        if "command" in raw:
            ce = _command(raw, where)
            return ce.identity, ce
        if "function" in raw and "cloudpickle" in raw:
            fe = _function(raw, where)
            return fe.identity, fe
        raise SpecError(
            f"{where}: entry = {raw!r} is not an entry",
            hint='write entry = "file.py:function" or entry = { command = "python train.py ..." }',
        )
    if not isinstance(raw, str) or ":" not in raw:
        raise SpecError(
            f"{where}: entry = {raw!r} is not an entry point",
            hint="write 'file.py:function' (relative to the study file), 'package.module:function' "
            'or { command = "python train.py --lr {lr}" }',
        )
    return raw, None


def _command(raw: dict[str, Any], where: str) -> CommandEntry:
    for k in raw:
        if k not in ("command", "args"):
            raise SpecError(
                f"{where}: entry table: unknown key '{k}'",
                hint=did_you_mean(k, ("command", "args")) or "allowed keys: command, args",
            )
    cmd = raw["command"]
    if not isinstance(cmd, str) or not cmd.strip():
        raise SpecError(
            f"{where}: entry.command = {cmd!r}: expected the command line as a non-empty string",
            hint='e.g. entry = { command = "python train.py --lr {lr} --seed {seed}" }',
        )
    args = raw.get("args", "none")
    if args not in _ARGS:
        raise SpecError(
            f'{where}: entry.args = {args!r}: expected "flags" (append every configuration key '
            'as --key value) or "none"'
        )
    try:
        tokens = tuple(shlex.split(cmd))
    except ValueError as e:
        raise SpecError(f"{where}: entry.command {cmd!r} cannot be split into words: {e}") from None
    for tok in tokens:
        for m in _FIELD_RE.finditer(tok):
            if m.group(0) in ("{{", "}}"):
                continue
            name = m.group(1)
            if not name or not re.fullmatch(r"[A-Za-z_][\w\-]*(\.[A-Za-z_][\w\-]*)*", name):
                raise SpecError(
                    f"{where}: entry.command: '{m.group(0)}' is not a placeholder",
                    hint="write {key} for a configuration key ({model.layers} for a nested one), "
                    "{seed}, {run_dir} or {variant}; a literal brace is {{ or }}",
                )
    return CommandEntry(cmd, args, tokens)


def command_fields(entry: CommandEntry) -> list[str]:
    """The placeholder names a command uses, in order."""
    out = []
    for tok in entry.tokens:
        out += [m.group(1) for m in _FIELD_RE.finditer(tok) if m.group(1)]
    return out


def check_command_fields(
    entry: CommandEntry, configs: dict[str, dict[str, Any]], where: str
) -> None:
    """Every placeholder must be ``seed``/``run_dir``/``variant`` or a key of every variant's
    resolved configuration (``configs``: variant -> flattened configuration)."""
    for name in command_fields(entry):
        if name in COMMAND_PLACEHOLDERS:
            continue
        for variant, flat in configs.items():
            if name not in flat:
                raise SpecError(
                    f"{where}: entry.command uses {{{name}}}, which the configuration of variant "
                    f"'{variant}' does not have",
                    hint=did_you_mean(name, [*flat, *COMMAND_PLACEHOLDERS])
                    or f"known: {', '.join([*COMMAND_PLACEHOLDERS, *sorted(flat)][:20])}",
                )


def _function(raw: dict[str, Any], where: str) -> FunctionEntry:
    name, blob, sources = raw.get("function"), raw.get("cloudpickle"), raw.get("sources", {})
    if not isinstance(name, str) or not isinstance(blob, str) or not isinstance(sources, dict):
        raise SpecError(f"{where}: entry: a serialised function entry is malformed")
    try:
        payload = base64.b64decode(blob.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise SpecError(f"{where}: entry '{name}': the serialised function is not base64") from None
    return FunctionEntry(name, payload, {str(k): str(v) for k, v in sources.items()})


def compile_pattern(name: str, pattern: Any, where: str) -> str:
    """Validate a metric's ``pattern`` (a regular expression with at most one group)."""
    if not isinstance(pattern, str) or not pattern:
        raise SpecError(f"{where}: [metrics.{name}] pattern = {pattern!r}: expected a regex string")
    try:
        rx = re.compile(pattern, re.MULTILINE)
    except re.error as e:
        raise SpecError(
            f"{where}: [metrics.{name}] pattern = {pattern!r} is not a regular expression: {e}",
            hint="write it as a TOML literal string in single quotes, e.g. 'loss: ([-+0-9.eE]+)'",
        ) from None
    if rx.groups > 1:
        raise SpecError(
            f"{where}: [metrics.{name}] pattern = {pattern!r} has {rx.groups} groups",
            hint="capture the number with one group; make others non-capturing: (?:...)",
        )
    return pattern


def check_entry_spec(spec: Any, where: str) -> None:
    """Cross-checks once the whole study is known: metric patterns need a command entry, and a
    command's placeholders must name configuration keys every variant has."""
    from ablab.spec.model import flatten

    entry = spec.entry_spec
    with_pattern = [m.name for m in spec.metrics if m.pattern is not None]
    if with_pattern and not isinstance(entry, CommandEntry):
        raise SpecError(
            f"{where}: [metrics] {', '.join(with_pattern)} declare(s) a pattern, which only "
            'applies to a command entry (entry = { command = "..." })',
            hint="a function entry returns its metrics; remove the pattern",
        )
    if not isinstance(entry, CommandEntry):
        return
    keys = [*spec.design.factors, *spec.design.target, *spec.sensitivity]
    extra = {k.lstrip("+"): None for k in keys}
    configs = {v: {**flatten(spec.resolved(v)), **extra} for v in spec.variants}
    check_command_fields(entry, configs, where)
