"""The cost table (seed's Table 1) in Markdown, LaTeX, terminal and HTML, from a fixed result."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ablab.analysis.costs import cost_summary, pareto_front
from ablab.report import render
from ablab.report.table import to_table

RESULT = {
    "study": "t1",
    "primary_metric": "acc",
    "baseline": "baseline",
    "alpha": 0.05,
    "metrics": {"acc": {"direction": "max"}},
    "runs": {"total": 4, "done": 4, "failed": 0},
    "variants": [
        {
            "name": "baseline",
            "n": 2,
            "config": {"lr": 0.1},
            "metrics": {"acc": {"n": 2, "mean": 0.9, "std": 0.01}},
        },
        {
            "name": "small",
            "n": 2,
            "config": {"lr": 0.1, "@backbone": {"replace": "m.py:small"}},
            "metrics": {"acc": {"n": 2, "mean": 0.8, "std": 0.02}},
            "vs_baseline": {"acc": {"verdict": "worse"}},
        },
    ],
}
RUNS = pd.DataFrame(
    {
        "variant": ["baseline", "baseline", "small", "small"],
        "seed": [0, 1, 0, 1],
        "status": "done",
        "sensitivity": None,
        "cost.latency_ms": [10.0, 12.0, 5.0, 5.0],
        "cost.params": [30.1e6, 30.1e6, 5.4e6, 5.4e6],
        "cost.flops": [4.1e9, 4.1e9, 0.6e9, 0.6e9],
        "cost.threads": [1.0] * 4,
    }
)


def result_with_costs():
    res = dict(RESULT)
    res["costs"] = cost_summary(RUNS, RESULT)
    return res


def test_summary_and_pareto():
    c = cost_summary(RUNS, RESULT)
    base, small = c["rows"]
    assert base["latency_ms"]["mean"] == 11.0 and round(base["latency_ms"]["std"], 6) == 1.414214
    assert small["verdict"] == "worse" and c["pareto"]["latency_ms"] == ["baseline", "small"]
    assert pareto_front({"a": (0.9, 1.0), "b": (0.8, 2.0), "c": (0.95, 3.0)}, "max") == ["a", "c"]
    assert pareto_front({"a": (0.1, 1.0), "b": (0.2, 1.0)}, "min") == ["a"]
    assert (
        cost_summary(RUNS.drop(columns=[c for c in RUNS if c.startswith("cost.")]), RESULT) is None
    )


def test_markdown_cost_columns():
    md = render(result_with_costs(), "md")
    table = md[md.index("## Costs") :]
    assert (
        "| Variant | acc ↑ (mean ± std) | Latency ms (mean ± std) | Params (M) | FLOPs (G) | Verdict | What was varied |"
        in table
    )
    assert "| baseline | 0.9 ± 0.01 | 11 ± 1.4 | 30.1 | 4.1 | baseline | — |" in table
    assert (
        "| small | 0.8 ± 0.02 | 5 ± 0 | 5.4 | 0.6 | worse | @backbone: replace by m.py:small |"
        in table
    )
    assert "Pareto front (acc vs latency): baseline, small" in table


def test_latex_cost_table():
    tex = render(result_with_costs(), "latex")
    part = tex[tex.index(r"\begin{tabular}{lrrrrll}") :]
    assert r"Variant & acc ($\uparrow$) (mean $\pm$ std) & Latency ms (mean $\pm$ std)" in part
    assert r"baseline & $0.9 \pm 0.01$ & $11 \pm 1.4$ & $30.1$ & $4.1$ & baseline & — \\" in part
    assert (
        r"small & $0.8 \pm 0.02$ & $5 \pm 0$ & $5.4$ & $0.6$ & worse & @backbone: replace by m.py:small \\"
        in part
    )


def test_terminal_and_html():
    res = result_with_costs()
    text = to_table(res, width=200)
    assert "Latency ms (mean ± std)" in text and "30.1" in text
    html = render(res, "html")
    assert '<section id="costs">' in html and "Pareto front" in html
    assert html.count("<svg") >= 2  # the trade-off plots (latency, params)
    assert "Costs" not in render(RESULT, "md")


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdef", min_size=1, max_size=3),
        st.tuples(st.integers(0, 5), st.integers(0, 5)),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["max", "min"]),
)
def test_pareto_front_property(points, direction):
    front = set(pareto_front(points, direction))
    s = 1 if direction == "max" else -1

    def dominates(p, q):
        (m1, c1), (m2, c2) = points[p], points[q]
        return s * m1 >= s * m2 and c1 <= c2 and (s * m1 > s * m2 or c1 < c2)

    for q in points:
        dominated = any(dominates(p, q) for p in points if p != q)
        assert (q in front) == (not dominated)
