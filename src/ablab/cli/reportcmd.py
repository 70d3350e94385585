"""`ablab report`: statistics against the baseline, rendered for a terminal, a paper or a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablab.cli.common import clean, console, load, safe
from ablab.cli.runcmd import StoreOpt, StudyArg
from ablab.errors import AblabError

FORMATS = ("table", "md", "latex", "csv", "json", "html")


def report(
    study_file: StudyArg,
    store: StoreOpt = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table, md, latex, csv, json or html.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")
    ] = None,
    alpha: Annotated[
        float, typer.Option("--alpha", help="Significance level for verdicts (Holm-corrected).")
    ] = 0.05,
    revision: Annotated[
        str | None, typer.Option("--revision", help="Report this revision (default: newest).")
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", help="Terminal table: every column, whatever the terminal's width."),
    ] = False,
) -> None:
    """Per variant: mean, std, CI; against the baseline: delta, p (Holm), effect sizes, verdict."""
    from ablab.errors import did_you_mean
    from ablab.report import render
    from ablab.results import analyze_results, load_results

    if format not in FORMATS:
        raise AblabError(
            f"--format {format!r} is not a report format",
            hint=did_you_mean(format, FORMATS) or f"choose one of {', '.join(FORMATS)}",
        )
    if not 0 < alpha < 1:
        raise AblabError(f"--alpha {alpha}: expected a number between 0 and 1")
    spec, st = load(study_file, store)
    res = load_results(spec, st, revision)
    result = analyze_results(res, alpha=alpha)
    from ablab.results import summarize_verifications
    from ablab.store.records import verifications as load_verifications

    sentence, verifications = summarize_verifications(
        load_verifications(st, study_id=res.study["id"])
    )
    if sentence:
        result["verification"] = sentence
    if format == "table" and output is None:
        from ablab.cli.common import table_console
        from ablab.report import rich_table

        # a terminal gets a table that fits it (columns dropped by priority, named in the
        # caption); piped or captured output (make demo, CI logs) and --wide get every column
        out = table_console(wide)
        out.print(rich_table(result, None if wide or out is not console else out.width))
        from ablab.report.table import effects_table

        if (effects := effects_table(result)) is not None:
            out.print(effects)
        from ablab.report.costs import rich_costs
        from ablab.report.examples import rich_examples

        for extra in [rich_costs(result), *rich_examples(result)]:
            if extra is not None:
                out.print(extra)
        from ablab.report.notes import items

        for kind, text in items(result):
            color = "bold red" if kind == "warning" else "yellow"
            out.print(f"[{color}]{kind}:[/] {safe(text)}", highlight=False)
        if sentence:
            console.print(f"reproducibility: {safe(sentence)}", highlight=False)
        return
    text = render(
        result,
        format,
        runs=res.runs,
        series=res.series,
        provenance=res.provenance,
        verifications=verifications,
    )
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {safe(output)}", highlight=False)
    else:
        print(clean(text))  # the file formats are written as they are; a terminal gets them clean
