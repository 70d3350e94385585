"""ablab.report: render an analysis result (``ablab.analysis.analyze``) as a terminal table,
Markdown, LaTeX, CSV, JSON or a self-contained offline HTML page.

    from ablab.report import render
    text = render(result, "md")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ablab.errors import AblabError, did_you_mean

FORMATS = ("table", "md", "latex", "csv", "json", "html")

__all__ = ["FORMATS", "render", "rich_table"]


def render(
    result: Mapping[str, Any],
    fmt: str,
    *,
    runs=None,
    series=None,
    provenance: Mapping[str, Any] | None = None,
    verifications: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """Render ``result`` in format ``fmt`` (one of :data:`FORMATS`).

    ``runs`` (the DataFrame given to ``analyze``), ``series`` (DataFrame with ``key``,
    ``variant``, ``seed``, ``name``, ``step``, ``value``), ``provenance`` and ``verifications``
    are only used by ``html`` (per-seed plots, learning curves, provenance, checklist).
    """
    if fmt == "json":
        from ablab.report.text import to_json

        return to_json(result)
    if fmt == "md":
        from ablab.report import notes
        from ablab.report.text import to_markdown

        title, _, rest = to_markdown(result).partition("\n\n")
        return title + "\n\n" + "".join(line + "\n" for line in notes.markdown(result)) + rest
    if fmt == "latex":
        from ablab.report import notes
        from ablab.report.text import to_latex

        return "".join(line + "\n" for line in notes.latex(result)) + to_latex(result)
    if fmt == "csv":
        from ablab.report.text import to_csv

        return to_csv(result)
    if fmt == "table":
        from ablab.report import notes
        from ablab.report.table import to_table

        return to_table(result) + "".join(line + "\n" for line in notes.plain(result))
    if fmt == "html":
        from ablab.report import notes
        from ablab.report.html import to_html

        page = to_html(
            result, runs=runs, series=series, provenance=provenance, verifications=verifications
        )
        return page.replace("<main>", "<main>" + notes.html(result), 1)
    raise AblabError(
        f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}",
        hint=did_you_mean(str(fmt), FORMATS),
    )


def rich_table(result: Mapping[str, Any], width: int | None = None):
    """The terminal table as a ``rich.table.Table`` (for the CLI to print with colour) that
    fits ``width`` cells (None: every column)."""
    from ablab.report.table import rich_table as _rt

    return _rt(result, width)
