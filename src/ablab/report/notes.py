"""The result's record warnings and notes (mixed code versions, changed metric declarations,
run order; see ``ablab.results_notes``) in each format, placed before the tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def items(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(kind, text)`` with kind ``warning`` or ``note``, warnings first."""
    return [("warning", w) for w in result.get("warnings") or []] + [
        ("note", n) for n in result.get("notes") or []
    ]


def markdown(result: Mapping[str, Any]) -> list[str]:
    from ablab.report.text import md_escape

    out = []
    for kind, text in items(result):
        out += [f"> **{'Warning' if kind == 'warning' else 'Note'}:** {md_escape(text)}", ""]
    return out


def html(result: Mapping[str, Any]) -> str:
    from ablab.report.html_parts import esc

    return "".join(
        f'<div class="record-{kind}" style="border-left:4px solid '
        f'{"#cf222e" if kind == "warning" else "#9a6700"};padding:.4em .8em;margin:.6em 0">'
        f"<b>{'Warning' if kind == 'warning' else 'Note'}:</b> {esc(text)}</div>"
        for kind, text in items(result)
    )


def latex(result: Mapping[str, Any]) -> list[str]:
    return [f"% {kind}: {text}" for kind, text in items(result)]


def plain(result: Mapping[str, Any]) -> list[str]:
    return [f"{kind}: {text}" for kind, text in items(result)]
