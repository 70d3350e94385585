"""Issue 16, formatting: golden Markdown and LaTeX tables of a fixed study, the terminal table
at 80 and 100 columns, failed and all-failed variants in every format, one number format per
column. Regenerate the golden files with ``ABLAB_UPDATE_GOLDEN=1`` (then read the diff)."""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console

from ablab.report import render, rich_table
from ablab.report.numfmt import column_format

from .fixed_study import fixed_result

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def fixed():
    return fixed_result()


def md_tables(md: str) -> str:
    """The Markdown from the primary metric's heading to the methods (the tables)."""
    start = md.index("\n## acc")
    return md[start + 1 : md.index("### Methods")].rstrip() + "\n"


def latex_table(tex: str) -> str:
    start = tex.index(r"% requires \usepackage{booktabs}")
    return tex[start : tex.index(r"\end{table}", start) + len(r"\end{table}")] + "\n"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ABLAB_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with ABLAB_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed (ABLAB_UPDATE_GOLDEN=1)"


def test_markdown_tables_golden(fixed):
    check_golden("fixed_study.md", md_tables(render(fixed, "md")))


def test_latex_table_golden(fixed):
    check_golden("fixed_study.tex", latex_table(render(fixed, "latex")))


def test_markdown_opens_with_a_summary_not_verdict_bullets(fixed, study):
    md = render(fixed, "md")
    head = md[: md.index("\n## acc")]
    assert "- " not in head and "Against the baseline on acc: 1 better, 1 worse" in head
    assert "Failed runs: no\\_dropout 2/5 failed, broken\\_lr 5/5 failed (no result)" in head
    bullets = [ln for ln in md.splitlines() if ln.startswith("- ") and " the baseline on " in ln]
    assert bullets and all(" on acc" in b for b in bullets)  # the primary metric only
    assert "(n = " not in md_tables(md).split("| Variant")[1]  # n stated once, above
    # a baseline called "baseline" is never "baseline (baseline)", in any format
    for fmt in ("md", "latex", "table", "html"):
        assert "baseline (baseline)" not in render(study["result"], fmt), fmt


def test_marks_are_not_arrows(fixed):
    for fmt in ("md", "latex", "table", "html"):
        text = render(fixed, fmt)
        assert "▲" not in text and "▼" not in text, fmt
    tex = render(fixed, "latex")
    body = tex[tex.index(r"\midrule") : tex.index(r"\bottomrule")]
    assert r"\uparrow" not in body and r"\downarrow" not in body  # arrows only in headers
    assert "^{-}" in body and "^{+}" in body and r"$^{+}$/$^{-}$" in tex


def test_failed_runs_shown_everywhere(fixed):
    for fmt in ("md", "latex", "table", "html"):
        text = render(fixed, fmt)
        assert "2/5 failed" in text and "5/5 failed" in text, fmt
        assert "broken_lr" in text.replace("\\_", "_"), fmt  # the all-failed variant stays
    rows = list(csv.DictReader(io.StringIO(render(fixed, "csv"))))
    failed = {r["variant"]: (r["n"], r["failed"]) for r in rows if r["metric"] == "acc"}
    assert failed["no_dropout"] == ("3", "2") and failed["broken_lr"] == ("0", "5")
    md = render(fixed, "md")
    row = next(ln for ln in md.splitlines() if ln.startswith("| broken\\_lr"))
    assert "0 (5/5 failed)" in row and "no result" in row
    assert "**No result** (no finished run): broken\\_lr (5/5 failed)." in md


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("which", ["fixed", "long_names"])
def test_terminal_table_fits(width, which, fixed, study):
    result = fixed if which == "fixed" else study["result"]
    console = Console(width=width, record=True, file=open(os.devnull, "w"), color_system=None)
    console.print(rich_table(result, width))
    text = console.export_text()
    lines = text.splitlines()
    assert max(cell_len(ln) for ln in lines) <= width
    assert "…" not in text
    header = next(ln for ln in lines if ln.startswith("┃"))
    for col in ("variant", "acc ↑", "Δ (%)", "p (Holm)", "verdict"):
        assert col in header, (width, col)
    if which == "fixed":
        assert "Not shown at this width" in text and "--wide" in text
        assert "2/5 failed" in text and "no result" in text


def test_terminal_table_wide_keeps_every_column(fixed):
    from ablab.report.table import to_table

    assert "Not shown at this width: n_params ↓" in to_table(fixed, width=140)
    text = to_table(fixed, width=80, wide=True)
    header = next(ln for ln in text.splitlines() if ln.startswith("┃"))
    for col in ("95% CI", "Δ 95% CI", "loss ↓", "n_params ↓"):
        assert col in header
    assert "Not shown" not in text


def _decimals(cell: str) -> int:
    m = re.search(r"\.(\d+)", cell)
    return len(m.group(1)) if m else 0


def test_one_number_format_per_column(fixed):
    md = md_tables(render(fixed, "md"))
    rows = [ln.split(" | ") for ln in md.splitlines() if ln.startswith("| ") and "±" in ln]
    means = [r[2].strip("* ") for r in rows[:4]]  # acc column, four variants with results
    assert {_decimals(x) for x in means} == {4}
    for cell in means:
        mean, std = cell.split(" ± ")
        assert _decimals(mean) == _decimals(std)
    assert "205k" in md and "1.23M" in md and "e+05" not in md and "± 0 " not in md
    tex = latex_table(render(fixed, "latex"))
    for mean, std in re.findall(r"([\d.]+) \\pm ([\d.]+)", tex):
        assert _decimals(mean) == _decimals(std)  # never more digits on the std


def test_column_format_examples():
    f = column_format([0.81234, 0.79], [0.0042, 0.0061])
    assert f.pm(0.81234, 0.0042) == "0.8123 ± 0.0042" and f(0.79) == "0.7900"
    assert f(-0.00001, sign=True) == "0.0000"  # never -0.0000
    assert column_format([205_000, 1_200], [0, 0])(205_000) == "205,000"
    counts = column_format([205_000_000, 850_000], [0.0, 0.0])
    assert counts(205_000_000) == "205M" and counts(850_000) == "850k"
    assert counts.pm(850_000, 0.0) == "850k"
    assert column_format([1.62, 0.56], [0.3, 0.1]).pm(1.62, 0.3) == "1.62 ± 0.30"
    assert column_format([12345.6], [150.0]).pm(12345.6, 150.0) == "12,346 ± 150"
    assert column_format([0.5], [None])(0.5) == "0.5000"  # n = 1: the scale decides
    tiny = column_format([3e-6, 2e-6], [1e-8, 2e-8])
    assert tiny(3e-6) == "3.000e-06"


@given(
    st.lists(st.floats(-1e4, 1e4, allow_nan=False), min_size=1, max_size=6),
    st.lists(st.floats(1e-5, 1e3), min_size=1, max_size=6),
)
def test_column_format_same_decimals_and_two_std_digits(means, stds):
    import statistics

    f = column_format(means, stds)
    assert f.kind == "fixed"  # measurements in this range never go scientific
    cells = [f(m) for m in means] + [f(s) for s in stds]
    assert len({_decimals(c) for c in cells}) == 1  # one format down the column
    med = f(statistics.median(stds)).replace(",", "").replace(".", "").lstrip("0")
    assert len(med) >= 2  # the typical std keeps two significant digits


def test_narrow_table_stacks_the_relative_delta_to_keep_its_interval(fixed):
    from ablab.report.table import to_table

    text = to_table(fixed, width=95)
    header = next(ln for ln in text.splitlines() if ln.startswith("┃"))
    assert "Δ 95% CI" in header and max(cell_len(ln) for ln in text.splitlines()) <= 95
    row = next(ln for ln in text.splitlines() if "│ wide" in ln)
    assert "+0.0142" in row and "(+1.6%)" not in row  # the % sits on the line below


def test_informational_metric_has_no_arrow_mark_or_bold(fixed):
    """A metric declared direction = "none" (issue 16's metric kinds): reported, never marked."""
    import copy

    r = copy.deepcopy(fixed)
    r["metrics"]["n_params"]["direction"] = "none"
    for v in r["variants"]:
        if "n_params" in v["vs_baseline"]:
            v["vs_baseline"]["n_params"] = {**v["vs_baseline"]["n_params"], "verdict": None}
    md = render(r, "md")
    assert "n\\_params (info)" in md and "informational, not tested" in md
    assert "**205k**" not in md and "| 1.23M |" in md
    tex = latex_table(render(r, "latex"))
    assert r"n\_params (info)" in tex and r"\mathbf{205" not in tex
    from ablab.report.table import to_table

    assert "n_params (info)" in to_table(r, wide=True)
    assert "n_params (info)" in render(r, "html")
