"""Factorial effects in every report format: the design, the fitted model, alias chains named
in full, how p-values are adjusted, undefined Shapley values (issue 15, items 4-6)."""

import json
import re
import textwrap

import pytest

from ablab.cli.main import main
from ablab.report import render

CHAIN = "a:b = c:e = d:f"

ENTRY = """
import random, zlib

def train(config, run):
    a, c, e = (2 * config[k] - 1 for k in "ace")
    rng = random.Random(zlib.crc32(repr(sorted(config.items())).encode()) + run.seed)
    return {"score": 1.0 + 0.2 * a + 0.1 * c * e + rng.gauss(0, 0.01)}
"""


@pytest.fixture(scope="module")
def fractional_report(tmp_path_factory):
    """A 2^(6-2) resolution IV study run through the CLI, with a planted c:e interaction (one
    seed: the three-way chains are pooled into the residual for error df)."""
    d = tmp_path_factory.mktemp("frac")
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent("""
        name = "fraction"
        entry = "entry.py:train"
        seeds = 1
        [metrics]
        score = "max"
        [baseline]
        a = 0
        b = 0
        c = 0
        d = 0
        e = 0
        f = 0
        [design]
        type = "fractional"
        resolution = "IV"
        factors = { a = [0, 1], b = [0, 1], c = [0, 1], d = [0, 1], e = [0, 1], f = [0, 1] }
    """)
    )
    study = d / "study.toml"
    assert main(["run", str(study), "-j", "2", "-q"]) == 0
    path = d / "report.json"
    assert main(["report", str(study), "--format", "json", "-o", str(path)]) == 0
    out = {"json": path.read_text(encoding="utf-8")}
    result = json.loads(out["json"])
    for fmt in ("md", "latex", "html", "table"):
        out[fmt] = render(result, fmt)
    return out


@pytest.mark.slow
def test_cli_json_carries_the_design_and_credits_the_chain(fractional_report):
    """Issue 15: the report showed a:b with p = 6.6e-8, aliased: false, and c:e as not
    estimable; effects.design was never passed."""
    e = json.loads(fractional_report["json"])["effects"]
    d = e["design"]
    assert d["generators"] == ["e = a*b*c", "f = a*b*d"] and d["resolution"] == 4
    assert ["a:b", "c:e", "d:f"] in d["alias_chains"]
    assert d["defining_relation"] == ["I = a*b*c*e", "I = a*b*d*f", "I = c*d*e*f"]
    row = next(r for r in e["anova"] if r["term"].startswith(CHAIN))
    assert row["aliased"] is True and row["p"] < 0.01
    assert all(r["term"] != "a:b" for r in e["anova"])
    ce = next(i for i in e["interactions"] if i["factors"] == ["c", "e"])
    assert ce["aliased"] and ce["status"] == "aliased"
    assert "c:e" not in json.dumps([r for r in e["aliased_terms"] if "not estimable" in r])
    assert e["shapley"]["values"] is None and e["shapley"]["reason"]
    assert e["model"]["pooled"] and "no replication" in e["model"]["pooled_reason"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["md", "latex", "html", "table"])
def test_every_format_prints_the_chain_design_and_adjustment(fractional_report, fmt):
    text = fractional_report[fmt]
    plain = re.sub(r"\\textasciitilde\{\}|\\", "", text) if fmt == "latex" else text
    assert CHAIN in plain
    assert "resolution IV" in plain and "e = a*b*c" in plain.replace("e = a\\*b\\*c", "e = a*b*c")
    assert "Holm" in plain and "unadj" in plain
    assert "Residual (pooled: a:c:d = " in plain  # one seed: the 3-way chains went there
    assert "Aliased (not estimable)" not in text
    if fmt != "latex":
        assert "Shapley values: undefined" in text


def test_markdown_of_a_full_factorial_says_what_was_fitted(factorial_study):
    md = render(factorial_study["result"], "md")
    assert "Design: full factorial" in md
    assert "every estimable term" in md and "Nothing pooled" in md
    assert "p (Holm)" in md and "p (unadj.)" in md
    assert "Shapley values (sum =" in md and "observed cell means" in md
