"""[metrics] margin: parsed, validated at the boundary, carried through serialisation."""

from __future__ import annotations

import pytest

from ablab.errors import SpecError
from ablab.spec import parse_study
from ablab.spec.serialize import spec_to_dict

BASE = {
    "name": "m",
    "entry": "train.py:train",
    "seeds": 3,
    "baseline": {"hidden": 1},
    "ablations": {"wide": {"hidden": 2}},
}


def test_margin_is_parsed_and_round_trips():
    spec = parse_study(
        {**BASE, "metrics": {"acc": {"direction": "max", "margin": 0.005}, "loss": "min"}}
    )
    assert spec.metric("acc").margin == 0.005 and spec.metric("loss").margin is None
    again = parse_study(spec_to_dict(spec))
    assert again.metrics == spec.metrics


@pytest.mark.parametrize("bad", [0, -0.01, float("inf"), float("nan"), "0.1", True])
def test_bad_margin_names_the_metric_and_value(bad):
    with pytest.raises(SpecError, match=r"\[metrics\.acc\] margin = .*positive finite number"):
        parse_study({**BASE, "metrics": {"acc": {"direction": "max", "margin": bad}}})
