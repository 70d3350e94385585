"""Example-level paired statistics in the reports (``result["examples"]``, from
:func:`ablab.analysis.examples.example_tests`): per logged NAME one row per variant."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ablab.report._fmt import DASH, interval, num, pval, signed

HEADERS = [
    "Variant",
    "Examples",
    "Seeds",
    "Baseline mean",
    "Mean",
    "Δ",
    "Δ 95% CI",
    "Test",
    "b / c",
    "p (adj.)",
    "Verdict",
]


def example_cells(block: Mapping[str, Any]) -> list[list[str]]:
    out = []
    for r in block.get("rows", []):
        if "note" in r:
            out.append(
                [r["variant"], DASH, DASH, DASH, DASH, DASH, DASH, r["note"], DASH, DASH, DASH]
            )
            continue
        bc = f"{r['b']} / {r['c']}" if "b" in r else DASH
        out.append(
            [
                r["variant"],
                str(r["n_examples"]),
                str(r.get("seeds", DASH)),
                num(r["baseline_mean"]),
                num(r["mean"]),
                signed(r["delta"]),
                interval(r.get("ci_low"), r.get("ci_high")),
                r["test"],
                bc,
                pval(r.get("p_adjusted")),
                r.get("verdict") or DASH,
            ]
        )
    return out


def caption(name: str, block: Mapping[str, Any]) -> str:
    if "method" not in block:
        return block.get("note", "")
    return (
        f"Example-level comparison of '{name}' with the baseline, paired by example index: "
        f"{block['method']}; {block['interval']}; p adjusted: {block['adjustment']}, "
        f"alpha = {block['alpha']}. b / c: examples right in the baseline only / in the variant only."
    )


def md_examples(result: Mapping[str, Any], escape=str) -> list[str]:
    ex = result.get("examples")
    if not ex:
        return []
    from ablab.report.text import _md_table

    lines: list[str] = []
    for name, block in ex.items():
        lines += ["", f"## Example-level: {escape(name)}", ""]
        if block.get("rows"):
            body = [[escape(c) for c in row] for row in example_cells(block)]
            lines += _md_table(HEADERS, body, "lrrrrrllrrl") + [""]
        lines.append(escape(caption(name, block)))
    return lines


def rich_examples(result: Mapping[str, Any]) -> list[Any]:
    ex = result.get("examples") or {}
    from rich.table import Table
    from rich.text import Text

    out = []
    for name, block in ex.items():
        t = Table(title=Text(f"example-level: {name}"), title_justify="left", header_style="bold")
        for h in HEADERS:
            t.add_column(h, justify="left" if h in ("Variant", "Test", "Verdict") else "right")
        for row in example_cells(block):
            t.add_row(*(Text(c) for c in row))
        t.caption = Text(caption(name, block))
        out.append(t)
    return out


def html_examples(result: Mapping[str, Any]) -> str:
    ex = result.get("examples")
    if not ex:
        return ""
    from ablab.report.html_parts import esc, table

    return "".join(
        f"<h3>{esc(name)}</h3>"
        + (table(HEADERS, example_cells(block), sortable=True) if block.get("rows") else "")
        + f'<p class="muted">{esc(caption(name, block))}</p>'
        for name, block in ex.items()
    )
