"""Read a study file's text and parse it (TOML or YAML) as untrusted input.

Everything here runs before anything else looks at the file:

- the bytes must be UTF-8 text: NUL bytes (binary files), UTF-16/UTF-32 byte-order marks and
  undecodable bytes are refused with the offset; a UTF-8 byte-order mark is accepted;
- parsing is bounded: deep nesting (which makes ``tomllib`` and PyYAML recurse until
  ``RecursionError``) is refused, and :func:`check_structure` bounds the depth and the
  *expanded* size of the parsed value, which is what a YAML alias bomb ("billion laughs")
  inflates: PyYAML shares aliased nodes, so loading is cheap, but every later walk, copy or
  ``json.dumps`` of the configuration would expand them;
- YAML is read with :func:`study_yaml_loader`: ``SafeLoader`` plus duplicate keys refused and
  YAML 1.2 floats (``1e-3`` is the number 0.001, as in YAML 1.2 and TOML, where PyYAML's
  YAML 1.1 resolver would read the string ``"1e-3"``).

PyYAML has no option for the last two, hence the small loader subclass.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from ablab.errors import SpecError

MAX_DEPTH = 32  # nesting levels of tables/lists in a study file
MAX_NODES = 100_000  # values in a study file, counting every expansion of a YAML alias
MAX_FILE_BYTES = 8 * 2**20

_BOMS = {
    b"\xef\xbb\xbf": None,  # UTF-8: accepted
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def read_text(p: Path) -> str:
    """The study file's text, refusing anything that is not UTF-8 text."""
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError(
            f"{p}: the study file is {size / 2**20:.1f} MiB; a study file is at most "
            f"{MAX_FILE_BYTES // 2**20} MiB",
            hint="keep data in separate files and refer to them from the configuration",
        )
    data = p.read_bytes()
    for bom, enc in _BOMS.items():
        if data.startswith(bom):
            if enc is None:
                data = data[len(bom) :]
                break
            raise SpecError(
                f"{p}: the study file is {enc}-encoded text; ablab reads UTF-8",
                hint="save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8 FILE > NEW)",
            )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise SpecError(
            f"{p}: the study file contains a NUL byte at offset {nul}: it is a binary file "
            "(or UTF-16 text), not a study file",
            hint="give the .toml/.yaml study file, saved as UTF-8 text",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"{p}: the study file is not UTF-8 text (byte {data[e.start]:#04x} at offset "
            f"{e.start})",
            hint="save it as UTF-8",
        ) from None


def parse_text(p: Path, text: str, suffix: str) -> Any:
    """Parse TOML or YAML text; every parser failure becomes a SpecError naming the file."""
    try:
        if suffix == ".toml":
            import tomllib

            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise SpecError(f"{p}: not valid TOML: {e}") from None
        import yaml

        try:
            return yaml.load(text, Loader=study_yaml_loader())  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise SpecError(f"{p}: not valid YAML: {e}") from None
    except RecursionError:
        raise SpecError(
            f"{p}: the study file is nested too deeply to read",
            hint=f"a study file nests tables and lists at most {MAX_DEPTH} levels deep",
        ) from None


def check_structure(raw: Any, where: str) -> None:
    """Bound depth and expanded size of a parsed study; every table key must be a string.

    Walks the value as a tree (so a value shared by YAML aliases counts once per use), with an
    explicit stack (no recursion), and stops at the first violation.
    """
    stack: list[tuple[Any, int, str]] = [(raw, 0, "")]
    nodes = 0
    while stack:
        v, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise SpecError(
                f"{where}: the study expands to more than {MAX_NODES:,} values (YAML aliases "
                "count once per use)",
                hint="a study file describes configurations; keep data in separate files",
            )
        if isinstance(v, (dict, list, tuple)) and depth >= MAX_DEPTH:
            raise SpecError(
                f"{where}: '{path or '(top)'}' is nested more than {MAX_DEPTH} levels deep",
                hint="flatten the configuration (or a YAML alias refers to itself)",
            )
        if isinstance(v, dict):
            for k, x in v.items():
                if not isinstance(k, str):
                    at = f" under '{path}'" if path else ""
                    raise SpecError(
                        f"{where}: key {k!r}{at} is a {type(k).__name__}, not a name",
                        hint=f'quote it ("{k}": ...) so that it is a string key',
                    )
                stack.append((x, depth + 1, f"{path}.{k}" if path else k))
        elif isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1, f"{path}[{i}]") for i, x in enumerate(v))


@functools.cache
def study_yaml_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses duplicate keys and reads YAML 1.2 floats (``1e-3``)."""

        def construct_mapping(self, node, deep=False):  # type: ignore[override]
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:  # the keys as written: '<<' merges may override
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        first = seen.get(key)
                    except TypeError:  # an unhashable key; SafeLoader reports it below
                        continue
                    if first is not None:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"found duplicate key {key!r} (first at line {first.line + 1})",
                            key_node.start_mark,
                        )
                    seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"
            r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
        ),
        list("-+0123456789."),
    )
    return Loader
