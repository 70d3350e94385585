"""Issue 15 through the real CLI: a 3-seed study's report never says "no-difference", each
delta interval agrees with its p-value, every interval names its method and level, and a
study run with seeds = "auto" reports the sequential test's verdicts."""

import csv
import io
import json
import textwrap

import pytest

from ablab.cli.main import main

ENTRY = """
import random, zlib
def train(config, run):
    r = random.Random(run.seed * 7919 + zlib.crc32(run.variant.encode()))
    shared = random.Random(run.seed).gauss(0.0, 0.01)
    acc = 0.8 + config["eff"] + shared + r.gauss(0.0, config["noise"])
    return {"acc": acc, "loss": 1.0 - acc + r.gauss(0.0, 0.01)}
"""


def _study(tmp_path, head, ablations):
    d = tmp_path / "s"
    d.mkdir()
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent(head)
        + textwrap.dedent("""
        [baseline]
        eff = 0.0
        noise = 0.002
        [ablations]
        """)
        + ablations
    )
    return d / "study.toml"


def _report(capsys, study, fmt):
    capsys.readouterr()
    assert main(["report", str(study), "--format", fmt]) == 0
    return capsys.readouterr().out


THREE_SEEDS = """
    name = "three"
    entry = "entry.py:train"
    seeds = [0, 1, 2]
    [metrics]
    acc = { direction = "max", margin = 0.01 }
    loss = "min"
"""
ABLATIONS = """
big = { eff = 0.05 }
tiny = { eff = 0.0005 }
noisy = { eff = 0.004, noise = 0.02 }
"""


@pytest.mark.slow
def test_three_seed_study_report(tmp_path, capsys):
    study = _study(tmp_path, THREE_SEEDS, ABLATIONS)
    assert main(["run", str(study), "-j", "1", "-q"]) == 0
    r = json.loads(_report(capsys, study, "json"))
    by = {v["name"]: v["vs_baseline"] for v in r["variants"]}
    assert by["big"]["acc"]["verdict"] == "better"
    assert by["tiny"]["acc"]["verdict"] == "equivalent"  # margin 0.01 declared
    assert by["noisy"]["acc"]["verdict"] == "inconclusive"
    assert by["noisy"]["loss"]["seeds_needed"] is None  # no margin on loss: no figure
    assert isinstance(by["noisy"]["acc"]["seeds_needed"], int)
    for name, per in by.items():
        for m, c in per.items():
            assert c["verdict"] in ("better", "worse", "equivalent", "inconclusive")
            assert c["reason"], (name, m)
            assert c["ci_method"] == "unadjusted 95% paired t-interval"
            excludes = c["delta_ci_low"] > 0 or c["delta_ci_high"] < 0
            assert excludes == (c["p_value"] < r["alpha"]), (name, m)
            # the interval is never narrower than the test implies: it is the t-interval
            half = (c["delta_ci_high"] - c["delta_ci_low"]) / 2
            assert half == pytest.approx(4.302652729749464 * c["se"], rel=1e-9)  # t_{.975,2}
    for v in r["variants"]:
        assert v["metrics"]["acc"]["ci_method"] == "unadjusted 95% t-interval"
    texts = {fmt: _report(capsys, study, fmt) for fmt in ("md", "table", "latex", "csv", "html")}
    texts["json"] = json.dumps(r)
    for fmt, text in texts.items():
        assert "no-difference" not in text and "no difference" not in text, fmt
    assert "unadjusted 95% paired t-interval" in texts["md"] and "Holm" in texts["md"]
    assert "equivalent" in texts["md"] and "TOST" in texts["md"]
    assert "p (Holm)" in texts["table"] and "t-interval" in texts["table"]
    assert r"\approx" in texts["latex"] and "Holm-adjusted within each metric" in texts["latex"]
    rows = list(csv.DictReader(io.StringIO(texts["csv"])))
    assert {x["reason"] for x in rows if x["variant"] == "noisy"} != {""}
    assert "unadjusted 95%" in texts["html"] and "v-equivalent" in texts["html"]


def test_bad_margin_exits_2(tmp_path, capsys):
    study = _study(tmp_path, THREE_SEEDS.replace("margin = 0.01", "margin = -1"), ABLATIONS)
    assert main(["run", str(study), "-q"]) == 2
    assert "margin = -1" in capsys.readouterr().err


AUTO = """
    name = "auto"
    entry = "entry.py:train"
    seeds = "auto"
    min_seeds = 3
    max_seeds = 6
    [metrics]
    acc = "max"
"""


@pytest.mark.slow
def test_adaptive_study_reports_the_sequential_verdicts(tmp_path, capsys):
    from ablab.analysis.adaptive import allocate_seeds

    study = _study(tmp_path, AUTO, "big = { eff = 0.05 }\nnull = { eff = 0.00001 }\n")
    assert main(["run", str(study), "-j", "1", "-q"]) == 0
    r = json.loads(_report(capsys, study, "json"))
    assert r["adaptive"]["max_seeds"] == 6
    assert "anticonservative" in r["methods"]["adaptive"]
    runs = json.loads(
        (capsys.readouterr(), main(["runs", str(study), "--format", "json"]))
        and capsys.readouterr().out
    )
    results = {}
    for x in runs:
        results.setdefault(x["variant"], {})[x["seed"]] = x["metrics"]["acc"]
    dec = allocate_seeds(results, baseline="baseline", min_seeds=3, max_seeds=6)
    by = {v["name"]: v["vs_baseline"]["acc"] for v in r["variants"][1:]}
    for name, c in by.items():
        expected = {"better": "better", "worse": "worse"}.get(dec.verdicts[name], "inconclusive")
        assert c["verdict"] == expected
        assert c["sequential"]["status"] == dec.variants[name].status
        assert c["sequential"]["critical"] == pytest.approx(dec.variants[name].critical)
        assert "fixed_sample_verdict" in c and "fixed-sample" in c["ci_method"]
    assert by["big"]["verdict"] == "better" and "boundary" in by["big"]["reason"]
    md = _report(capsys, study, "md")
    assert "adaptively" in md and "anticonservative" in md
