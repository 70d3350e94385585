import itertools

import numpy as np
import pytest

from ablab.errors import PlanError
from ablab.plan.designs import (
    ablation_path_step,
    config_key,
    fractional_factorial,
    full_factorial,
)


def test_full_factorial_all_combinations():
    rows = full_factorial({"a": [0, 1], "b": ["x", "y", "z"]})
    assert len(rows) == 6
    assert rows[0] == {"a": 0, "b": "x"} and rows[-1] == {"a": 1, "b": "z"}
    assert len({config_key(r) for r in rows}) == 6
    with pytest.raises(PlanError, match="'b'"):
        full_factorial({"a": [0, 1], "b": [1]})


def coded(design):
    return np.array(
        [[1 if r[f] == lv[1] else -1 for f, lv in design.factors.items()] for r in design.rows]
    )


@pytest.mark.parametrize(
    "k,res,runs", [(5, "V", 16), (7, "III", 8), (8, "IV", 16), (6, "V", 32), (4, 4, 8)]
)
def test_fractional_sizes_and_resolution(k, res, runs):
    names = [f"f{i}" for i in range(k)]
    d = fractional_factorial({n: ["lo", "hi"] for n in names}, res)
    assert d.runs == runs
    r = {"III": 3, "IV": 4, "V": 5}.get(res, res)
    assert d.resolution >= r
    X = coded(d)
    # balanced, orthogonal main effects
    assert (X.sum(axis=0) == 0).all()
    assert (X.T @ X == runs * np.eye(k, dtype=int)).all()
    # every word of the defining relation is the identity column
    for word in d.defining_relation:
        prod = np.prod(X[:, [names.index(w) for w in word]], axis=1)
        assert (prod == 1).all()
        assert len(word) >= r


def test_fractional_generators_and_aliases_res_iii():
    d = fractional_factorial({c: [0, 1] for c in "abc"}, "III")
    assert d.runs == 4 and d.generator_strings() == ["c = a*b"]
    assert d.aliases["a"] == ["b:c"] and d.aliases["a:b"] == ["c"]
    X = coded(d)
    assert (X[:, 0] == X[:, 1] * X[:, 2]).all()  # a is confounded with bc
    info = d.to_dict()
    assert info["defining_relation"] == ["I = a*b*c"] and info["resolution"] == 3


def test_fractional_res_v_keeps_two_factor_interactions_clear():
    d = fractional_factorial({c: [0, 1] for c in "abcde"}, "V")
    assert all(al == [] for al in d.aliases.values())


def test_fractional_rejects_multilevel_factors_and_bad_resolution():
    with pytest.raises(PlanError, match="exactly two levels.*'b' has 3"):
        fractional_factorial({"a": [0, 1], "b": [1, 2, 3]}, "IV")
    with pytest.raises(PlanError, match="resolution"):
        fractional_factorial({"a": [0, 1], "b": [0, 1]}, "II")


def test_ablation_path_walks_greedily_to_target():
    baseline = {"lr": 0.1, "opt": {"name": "sgd", "momentum": 0.0}, "aug": False}
    target = {"lr": 0.01, "opt": {"name": "adam", "momentum": 0.0}, "aug": True}
    gain = {"lr": 0.05, "opt.name": 0.02, "aug": 0.01}

    def truth(cfg):
        return (
            0.5
            + (cfg["lr"] == 0.01) * gain["lr"]
            + (cfg["opt"]["name"] == "adam") * gain["opt.name"]
            + cfg["aug"] * gain["aug"]
        )

    results = {}
    steps = 0
    while True:
        st = ablation_path_step(baseline, target, results, "max")
        if st.done:
            break
        assert st.to_run
        for cfg in st.to_run:
            results[config_key(cfg)] = truth(cfg)
        steps += 1
    assert [p["changed"] for p in st.path] == [None, "lr", "opt.name", "aug"]
    assert st.path[-1]["config"] == target and st.path[0]["config"] == baseline
    assert st.path[-1]["value"] == pytest.approx(truth(target))
    # baseline, then 3 + 2 + 1 candidates, 4 rounds of requests
    assert len(results) == 1 + 3 + 2 + 1 and steps == 4


def test_ablation_path_min_direction_and_errors():
    base, tgt = {"a": 0, "b": 0}, {"a": 1, "b": 1}
    res = {
        config_key(c): v
        for c, v in [(base, 1.0), ({"a": 1, "b": 0}, 0.9), ({"a": 0, "b": 1}, 0.5), (tgt, 0.4)]
    }
    st = ablation_path_step(base, tgt, res, "min")
    assert st.done and [p["changed"] for p in st.path] == [None, "b", "a"]
    with pytest.raises(PlanError, match="equals the baseline"):
        ablation_path_step(base, base, {}, "max")


def test_full_factorial_matches_itertools():
    f = {"a": [1, 2], "b": [3, 4], "c": [5, 6, 7]}
    assert [tuple(r.values()) for r in full_factorial(f)] == list(itertools.product(*f.values()))


def _pydoe3_chains(design, max_order=None):
    """Alias chains by pyDOE3 (the oracle), as sets of sorted term strings ("ab")."""
    from pyDOE3 import fracfact_aliasing

    names = list(design.factors)
    assert all(len(n) == 1 for n in names)
    chains = fracfact_aliasing(coded(design))[0]
    out = set()
    for chain in chains:
        terms = [t.strip() for t in chain.split("=")]
        if max_order is not None:
            terms = [t for t in terms if len(t) <= max_order]
        if len(terms) >= 2:
            out.add(frozenset(terms))
    return out


@pytest.mark.parametrize("k,res", [(6, "IV"), (5, "III"), (7, "IV"), (7, "III"), (8, "IV")])
def test_alias_chains_agree_with_pydoe3(k, res):
    d = fractional_factorial({c: [0, 1] for c in "abcdefgh"[:k]}, res)
    ours = {frozenset(t.replace(":", "") for t in c) for c in d.to_dict()["alias_chains"]}
    assert ours == _pydoe3_chains(d, max_order=2)


def test_res_iv_six_factors_is_the_textbook_design():
    d = fractional_factorial({c: [0, 1] for c in "abcdef"}, "IV").to_dict()
    assert d["notation"] == "2^(6-2)" and d["runs"] == 16
    assert d["resolution"] == 4 and d["resolution_roman"] == "IV"
    assert d["generators"] == ["e = a*b*c", "f = a*b*d"]
    assert d["defining_relation"] == ["I = a*b*c*e", "I = a*b*d*f", "I = c*d*e*f"]
    assert ["a:b", "c:e", "d:f"] in d["alias_chains"]


def test_full_factorial_fallback_says_so():
    d = fractional_factorial({c: [0, 1] for c in "abc"}, "V")
    assert d.full and d.runs == 8
    info = d.to_dict()
    assert info["type"] == "full factorial" and info["resolution"] is None
    assert info["requested_resolution"] == 5 and "no 2^(3-p) fraction" in info["note"]
    assert info["alias_chains"] == [] and info["defining_relation"] == []
    assert not fractional_factorial({c: [0, 1] for c in "abcd"}, "IV").full


def _factorial_spec(**design):
    from ablab.spec import parse_study

    raw = {
        "name": "f",
        "entry": "m:f",
        "seeds": 2,
        "metrics": {"acc": "max"},
        "baseline": {"a": 0, "b": 0, "c": 0},
        "design": {"factors": {"a": [0, 1], "b": [0, 1], "c": [0, 1]}, **design},
    }
    return parse_study(raw)


def test_design_info_reaches_the_report_with_the_requested_anova_order():
    from ablab.errors import SpecError
    from ablab.plan.designs_bridge import design_info

    info = design_info(_factorial_spec(type="fractional", resolution="III"))
    assert info["generators"] == ["c = a*b"] and info["alias_chains"] == [
        ["a", "b:c"],
        ["b", "a:c"],
        ["c", "a:b"],
    ]
    full = design_info(_factorial_spec(type="factorial", max_order=2))
    assert full["type"] == "full factorial" and full["max_order"] == 2
    for bad in (0, "2", True):
        with pytest.raises(SpecError, match="max_order"):
            _factorial_spec(type="factorial", max_order=bad)
