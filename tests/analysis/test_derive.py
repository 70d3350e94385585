"""Issue 16: metrics derived from stored returns and series; metric kinds in the spec; run order;
comparison rules of reproduce; record notes."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ablab.analysis.derive import declaration_changes, derive_metrics, reduce_points
from ablab.analysis.reduce import reduce_series
from ablab.errors import SpecError
from ablab.execute.order import run_order
from ablab.spec.load import parse_study
from ablab.spec.serialize import spec_to_dict
from ablab.verify.compare import VARIES, compare_metrics, compare_series, metric_rules


def study(metrics, **run):
    raw = {"name": "s", "entry": "t.py:f", "seeds": 3, "metrics": metrics, "baseline": {"x": 1}}
    raw["ablations"] = {"a": {"x": 2}, "b": {"x": 3}}
    if run:
        raw["run"] = run
    return parse_study(raw)


def test_last_is_the_last_value_logged_at_the_last_step():
    series = [("v", 0, 0.5), ("v", 1, 0.9), ("v", 1, 0.2), ("w", 1, 3.0)]
    spec = study({"acc": "max", "v": {"direction": "max", "reduce": "last"}})
    assert derive_metrics(spec.metrics, {"acc": 1.0}, series)["v"] == 0.2
    # the same through the analysis function the worker used to call (sorted by value before)
    df = pd.DataFrame([(s, v) for n, s, v in series if n == "v"], columns=["step", "value"])
    assert reduce_series(df, "max", "last") == 0.2


def test_named_series_give_final_and_best():
    spec = study(
        {
            "acc": "max",
            "best_val": {"direction": "max", "series": "val", "reduce": "best"},
            "final_val": {"direction": "max", "series": "val", "reduce": "last"},
            "low": {"direction": "min", "series": "val", "reduce": "best"},
        }
    )
    out = derive_metrics(
        spec.metrics,
        {"acc": 0.5, "extra": 2.0},
        [("val", i, v) for i, v in enumerate([0.3, 0.8, 0.6])],
    )
    assert out == {"acc": 0.5, "extra": 2.0, "best_val": 0.8, "final_val": 0.6, "low": 0.3}
    assert math.isnan(derive_metrics(spec.metrics, {}, [])["acc"])


@settings(deadline=None, max_examples=60)  # no timing assertions under CPU load
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(-1e6, 1e6)), min_size=1))
def test_reduce_points_agrees_with_reduce_series(points):
    df = pd.DataFrame(points, columns=["step", "value"])
    for how in ("last", "best"):
        for d in ("max", "min"):
            assert reduce_points(points, d, how) == reduce_series(df, d, how)


def test_declaration_changes_are_named():
    assert declaration_changes(
        {"acc": "max", "v": {"direction": "max", "reduce": "last"}, "old": "min"},
        {"acc": "max", "v": {"direction": "max", "reduce": "best"}, "new": "none"},
    ) == ["v: reduce last -> best", "new: added", "old: removed"]
    assert declaration_changes({"acc": "max"}, {"acc": {"direction": "max"}}) == []


def test_metric_kinds_parse_round_trip_and_fail_clearly():
    m = {
        "acc": "max",
        "secs": {"direction": "min", "deterministic": False},
        "loss": {"direction": "min", "tolerance": {"rtol": 1e-6}},
        "n": "none",
        "bv": {"direction": "max", "series": "val", "reduce": "best"},
    }
    spec = study(m, order="variant")
    assert spec.metric("secs").deterministic is False
    assert spec.metric("loss").tolerance == (1e-6, 0.0)
    assert spec.metric("n").direction == "none" and not spec.metric("n").tested
    assert spec.metric("bv").series_name == "val" and spec.run.order == "variant"
    again = parse_study(spec_to_dict(spec))
    assert again.metrics == spec.metrics and again.run.order == "variant"
    for bad, words in (
        (
            {"n": "none", "acc": "max"},
            "primary (first) metric 'n' is declared direction = \"none\"",
        ),
        (
            {"acc": "max", "x": {"direction": "none", "reduce": "best"}},
            'reduce = "best" needs a direction',
        ),
        ({"acc": "max", "x": {"series": "v"}}, 'needs reduce = "last" or "best"'),
        ({"acc": "max", "x": {"deterministic": "no"}}, "deterministic = 'no'"),
        ({"acc": "max", "x": {"tolerance": {"rtol": -1}}}, "tolerance.rtol = -1"),
        ({"acc": "max", "x": {"tolerance": {"rtl": 1}}}, "expected a table with rtol and/or atol"),
        ({"acc": "max", "x": {"determinstic": False}}, "did you mean 'deterministic'?"),
    ):
        with pytest.raises(SpecError) as e:
            study(bad)
        assert words in str(e.value) + (e.value.hint or "")
    with pytest.raises(SpecError, match="order = 'random'"):
        study({"acc": "max"}, order="random")


def test_interleaved_order_is_seed_major_and_seeded():
    from ablab.plan.designs_bridge import plan_for

    spec = study({"acc": "max"})
    runs = plan_for(spec).runs
    order = run_order(runs, "interleave", "s")
    by_pos = sorted(runs, key=lambda r: order[r.key])
    assert [r.seed for r in by_pos] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert order == run_order(runs, "interleave", "s")  # the same every time
    blocks = [[r.variant for r in by_pos[i : i + 3]] for i in (0, 3, 6)]
    assert len({tuple(b) for b in blocks}) > 1  # not the same variant first in every block
    plain = run_order(runs, "variant")
    assert [r.key for r in sorted(runs, key=lambda r: plain[r.key])] == [r.key for r in runs]


def test_reproduce_rules_varies_by_nature_and_per_metric_tolerance():
    spec = study(
        {
            "acc": "max",
            "secs": {"direction": "min", "deterministic": False},
            "loss": {"direction": "min", "tolerance": {"rtol": 1e-3}},
        }
    )
    rules = metric_rules(spec)
    m = compare_metrics(
        {"acc": 1.0, "secs": 2.0, "loss": 1.0},
        {"acc": 1.0, "secs": 9.0, "loss": 1.0001},
        0,
        0,
        rules,
    )
    status = {r["metric"]: r["status"] for r in m["rows"]}
    assert status == {"acc": "identical", "secs": VARIES, "loss": "within tolerance"}
    assert m["within"] and not m["identical"] and m["varies"] == ["secs"]
    m = compare_metrics({"acc": 1.0, "secs": 2.0}, {"acc": 1.0, "secs": 3.0}, 0, 0, rules)
    assert m["identical"]
    assert not compare_metrics({"acc": 1.0}, {"acc": 1.1}, 0, 0, rules)["within"]
    s = compare_series([("loss", 0, 1.0)], [("loss", 0, 1.0)], 0, 0, rules)
    assert s["identical"]


def test_order_note_when_a_varying_metric_ran_apart():
    from ablab.results_notes import order_notes

    spec = study({"acc": "max", "secs": {"direction": "min", "deterministic": False}})
    rows = []
    for i, v in enumerate(["baseline", "a", "b"]):
        for s in range(3):
            t = 10 * i + s  # variant by variant: no overlap in time
            rows.append(
                {
                    "variant": v,
                    "seed": s,
                    "status": "done",
                    "sensitivity": None,
                    "started_at": t,
                    "ended_at": t + 0.5,
                }
            )
    res = SimpleNamespace(spec=spec, runs=pd.DataFrame(rows))
    notes = order_notes(res)
    assert len(notes) == 1 and "secs" in notes[0] and "a, b" in notes[0]
    for r in rows:  # interleaved: every variant spans the whole time
        r["started_at"], r["ended_at"] = (
            r["seed"] * 10 + {"baseline": 0, "a": 1, "b": 2}[r["variant"]],
            r["seed"] * 10 + 3,
        )
    assert order_notes(SimpleNamespace(spec=spec, runs=pd.DataFrame(rows))) == []
