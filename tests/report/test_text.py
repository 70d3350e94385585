import csv
import io
import json

import pytest

from ablab.errors import AblabError
from ablab.report import FORMATS, render, rich_table

from .conftest import EVIL


def test_json_roundtrip_is_strict(study):
    text = render(study["result"], "json")
    assert json.loads(text) == study["result"]
    assert "NaN" not in text


def test_csv_has_one_row_per_variant_and_metric(study):
    r = study["result"]
    rows = list(csv.DictReader(io.StringIO(render(r, "csv"))))
    assert len(rows) == len(r["variants"]) * 2
    wider = next(x for x in rows if x["variant"] == "wider" and x["metric"] == "acc")
    v = next(v for v in r["variants"] if v["name"] == "wider")
    assert float(wider["mean"]) == pytest.approx(v["metrics"]["acc"]["mean"])
    assert wider["verdict"] == v["vs_baseline"]["acc"]["verdict"]
    base = next(x for x in rows if x["variant"] == "baseline")
    assert base["delta"] == "" and base["verdict"] == ""
    assert any(x["variant"] == EVIL for x in rows)  # csv keeps names verbatim


def test_markdown_tables_and_escaping(study):
    md = render(study["result"], "md")
    assert md.startswith("# Ablation study: demo")
    assert "## acc (↑ higher is better)" in md and "## loss (↓ lower is better)" in md
    assert "<script>" not in md and r"\<script\>" in md
    table_lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert all(line.count(" | ") == table_lines[0].count(" | ") for line in table_lines[:7])
    assert "| wider |" in md and "better" in md and "Holm" in md


def test_latex_booktabs_bold_best_and_escaping(study):
    tex = render(study["result"], "latex")
    for cmd in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}"):
        assert cmd in tex
    wider = next(line for line in tex.splitlines() if line.startswith("wider"))
    assert wider.count(r"\mathbf{") == 2  # best acc and best loss
    assert r"no\_aug" in tex and r"\textless{}script\textgreater{}" in tex
    assert "^{\\downarrow}" in next(
        line for line in tex.splitlines() if line.startswith(r"no\_aug")
    )


def test_table_text_and_rich_object(study):
    text = render(study["result"], "table")
    assert "wider" in text and "baseline" in text and "p (Holm)" in text
    assert "\x1b[" not in text  # no colour codes in plain text
    t = rich_table(study["result"])
    assert t.row_count == len(study["result"]["variants"])
    assert EVIL in text  # markup-like names are printed literally, not interpreted


def test_unknown_format_suggests():
    with pytest.raises(AblabError, match="did you mean 'html'"):
        render({}, "htm")
    assert set(FORMATS) == {"table", "md", "latex", "csv", "json", "html"}


def test_factorial_markdown_has_anova_and_shapley(factorial_study):
    md = render(factorial_study["result"], "md")
    assert "## Factorial effects on acc" in md and "augment:loss" in md and "Shapley" in md
