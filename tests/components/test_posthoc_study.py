"""A post-hoc study through the CLI: module edits by path, costs, example-level statistics,
edit errors that fail a run with the closest module paths, and check-determinism with costs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "posthoc"

STUDY = """
name = "posthoc-mini"
entry = "evaluate.py:evaluate"
seeds = 1

[metrics]
accuracy = "max"
test_loss = "min"

[baseline]
d = 16
heads = 2
depth = 2
epochs = 3
lr = 0.01
batch_size = 128

[ablations]
no-head0 = { "@encoder.layers.*.attn.heads.0" = "zero" }
skip-mlp1 = { "@encoder.layers.1.mlp" = "identity" }
low-rank = { "@encoder.layers.*.mlp" = { replace = "models.py:low_rank_mlp", args = { rank = 2 } } }
typo = { "@encoder.layer.*.mlp" = "zero" }
bad-identity = { "@encoder.layers.0.mlp.0" = "identity" }
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    d = tmp_path_factory.mktemp("posthoc")
    for f in ("models.py", "evaluate.py"):
        shutil.copy(EXAMPLE / f, d / f)
    (d / "study.toml").write_text(STUDY)
    return d / "study.toml"


@pytest.mark.slow
def test_posthoc_study_end_to_end(study, cli):
    code, out, err = cli("run", study, "-j", "2", "-q")
    assert code == 1, err  # two variants fail on purpose
    code, out, _ = cli("runs", study, "--format", "json")
    runs = {r["variant"]: r for r in json.loads(out)}
    assert runs["typo"]["status"] == "failed"
    assert "matched no module" in runs["typo"]["error"]
    assert runs["bad-identity"]["status"] == "failed"
    assert re.search(
        r"input shape \[256, 8, 16\] to output shape \[256, 8, 64\]", runs["bad-identity"]["error"]
    )

    code, show, _ = cli("show", runs["typo"]["key"], "--study", study)
    assert "encoder.layers.0.mlp" in show  # the closest existing paths are named

    code, md, _ = cli("report", study, "-f", "md")
    assert code == 0
    costs = md[md.index("## Costs") :]
    assert "Params (M)" in costs and "FLOPs (G)" in costs and "low-rank" in costs
    assert "McNemar exact" in md

    # the example-level p-value equals scipy's binomial test on the stored discordant counts
    code, rep, _ = cli("report", study, "-f", "json")
    result = json.loads(rep)
    row = next(r for r in result["examples"]["correct"]["rows"] if r["variant"] == "no-head0")
    n = row["b"] + row["c"]
    p = stats.binomtest(min(row["b"], row["c"]), n, 0.5).pvalue if n else 1.0
    assert np.isclose(row["p_value"], p)
    by_name = {r["variant"]: r for r in result["costs"]["rows"]}
    assert by_name["skip-mlp1"]["params"]["mean"] < by_name["baseline"]["params"]["mean"]
    assert by_name["low-rank"]["flops"]["mean"] < by_name["baseline"]["flops"]["mean"]
    assert by_name["no-head0"]["params"]["mean"] == by_name["baseline"]["params"]["mean"]
    assert "@encoder.layers.1.mlp" in json.dumps(result["variants"])  # what was varied

    code, out, err = cli("check-determinism", study, "--variant", "no-head0", "--json")
    assert code == 0, out + err
