"""``ablab.load`` (results as DataFrames and a report object) and ``Study.save``, checked against
what the real ``ablab`` command prints for the same study."""

from __future__ import annotations

import json
import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ablab
from ablab.errors import AblabError, SpecError, StoreError


def test_runs_frame_matches_cli_runs_json(ok_study, tools):
    res = ablab.load(ok_study["path"])
    df = res.runs()
    cli = json.loads(tools.cli("runs", ok_study["path"], "--format", "json").stdout)
    assert list(df["key"]) == [r["key"] for r in cli]
    head = ["key", "variant", "seed", "split_seed", "sensitivity", "status", "attempts"]
    assert list(df.columns[: len(head)]) == head
    for (_, row), r in zip(df.iterrows(), cli, strict=True):
        assert (row["variant"], row["seed"], row["status"], row["attempts"]) == (
            r["variant"],
            r["seed"],
            r["status"],
            r["attempts"],
        )
        assert row["score"] == r["metrics"]["score"]
        assert row["wall_seconds"] == pytest.approx(r["wall_seconds"])
        # configuration columns: the run's resolved config
        assert row["hidden"] == (8 if r["variant"] == "wide" else 4)
        assert row["mode"] == ("flaky" if r["variant"] == "flaky" else "ok")
    assert set(df.loc[df["variant"] == "flaky", "attempts"]) == {2}


def test_series_of_one_run_and_all(ok_study):
    res = ablab.load(ablab.Study.load(ok_study["path"]))
    key = res.runs()["key"].iloc[0]
    one = res.series(key[:8])  # a unique prefix is enough
    assert list(one.columns) == ["key", "variant", "seed", "name", "step", "value"]
    assert set(one["key"]) == {key} and list(one["step"]) == list(range(10))
    assert set(one["name"]) == {"loss"}
    every = res.series()
    assert len(every) == 10 * len(res.runs())
    with pytest.raises(AblabError, match="no run with key 'zzzz'"):
        res.series("zzzz")


def test_report_equals_cli_json_and_renders(ok_study, tools):
    rep = ablab.load(ok_study["path"]).report()
    cli = tools.cli("report", ok_study["path"], "--format", "json")
    assert cli.returncode == 0, cli.stderr
    assert rep.to_dict() == json.loads(cli.stdout)
    md = tools.cli("report", ok_study["path"], "--format", "md").stdout
    assert rep.to_markdown() == md[:-1]  # print() adds a newline
    assert rep.to_latex().startswith("\\begin{table}") or "\\toprule" in rep.to_latex()
    html = rep._repr_html_()
    assert "<table" in html and "wide" in html and "score" in html
    # a different alpha is the CLI's --alpha
    strict = ablab.load(ok_study["path"]).report(alpha=0.01).to_dict()
    cli01 = json.loads(
        tools.cli("report", ok_study["path"], "-f", "json", "--alpha", "0.01").stdout
    )
    assert strict == cli01 and strict["alpha"] == 0.01
    with pytest.raises(AblabError, match="alpha"):
        ablab.load(ok_study["path"]).report(alpha=1.5)


def test_report_html_escapes_variant_names(tmp_path, tools):
    from ablab.results_api import Report

    result = {
        "study": "<s>",
        "baseline": "baseline",
        "metrics": {"score": {"direction": "max"}},
        "variants": [{"name": "<img src=x>", "metrics": {"score": {"n": 2, "mean": 1.0}}}],
    }
    html = Report(result)._repr_html_()
    assert "<img" not in html and "&lt;img src=x&gt;" in html and "&lt;s&gt;" in html


def test_load_without_runs_is_a_clear_error(tmp_path, tools):
    path = tools.write_study(tmp_path / "never")
    with pytest.raises(StoreError, match="no store at"):
        ablab.load(path).runs()


def test_study_built_in_code_saved_then_used_from_the_shell(tmp_path, tools):
    """A study made in Python, run from Python, saved: the shell reports the same runs and
    `ablab run` finds nothing left to do."""
    tools.write_study(tmp_path, name="unused")  # writes entry.py
    study = ablab.Study(
        name="coded",
        entry="entry.py:train",
        seeds=2,
        metrics={"score": "max"},
        baseline={"mode": "ok", "hidden": 4, "steps": 5, "sleep": 0.0, "opt": {"lr": 0.1}},
        ablations={"wide": {"hidden": 8}, "slow": {"opt.lr": 0.01}},
        run={"timeout": "1m"},
        root=tmp_path,
    )
    summary = ablab.run(study, jobs=1)
    assert summary.done == 6
    path = study.save(tmp_path / "coded.toml")
    again = ablab.Study.load(path)
    assert again.spec.baseline == study.spec.baseline
    assert again.spec.variants == study.spec.variants
    run = tools.cli("run", path)
    assert run.returncode == 0 and "coded: 6/6 done" in run.stdout, run.stdout + run.stderr
    assert len(tools.starts(tmp_path)) == 6  # nothing ran again
    rep = tools.cli("report", path, "--format", "json")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout) == ablab.load(study).report().to_dict()
    # saved elsewhere, the entry path is rewritten relative to the new file
    other = study.save(tmp_path / "sub" / "coded.yaml")
    assert ablab.Study.load(other).spec.entry == "../entry.py:train"


def test_save_errors(tmp_path):
    study = ablab.Study(
        name="x",
        entry="entry.py:train",
        metrics={"m": "max"},
        baseline={"a": None, "b": 1},
        ablations={"b2": {"b": 2}},
        root=tmp_path,
    )
    with pytest.raises(SpecError, match="must end in .toml"):
        study.save(tmp_path / "x.txt")
    with pytest.raises(SpecError, match="baseline.a is null"):
        study.save(tmp_path / "x.toml")
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert ablab.Study.load(study.save(tmp_path / "x.yaml")).spec.baseline == {"a": None, "b": 1}
    main = ablab.Study(name="m", entry="__main__:train", metrics={"m": "max"})
    with pytest.raises(SpecError, match="running script or notebook"):
        main.save(tmp_path / "m.toml")


_scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1),
        _values | st.dictionaries(st.text(), _values, max_size=4),
        max_size=5,
    )
)
def test_toml_writer_round_trips(doc):
    from ablab.spec.tomlw import dumps

    assert tomllib.loads(dumps(doc)) == doc


def test_toml_writer_special_floats_and_keys():
    from ablab.spec.tomlw import dumps

    # a key with a trailing newline once passed the bare-key check ("$" matches before "\n")
    for doc in ({"0\n": {}}, {"0": False, "0\n": {"a b": 1}}, {"x": {"k\n": [1]}}):
        assert tomllib.loads(dumps(doc)) == doc

    back = tomllib.loads(dumps({"t": {"a": math.inf, "b": -math.inf, "c": math.nan}}))
    assert back["t"]["a"] == math.inf and back["t"]["b"] == -math.inf and math.isnan(back["t"]["c"])
