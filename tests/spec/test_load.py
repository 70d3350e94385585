"""Study files (TOML and YAML) parse into a StudySpec; every error names the file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ablab.errors import SpecError
from ablab.spec import BASELINE, load_study, parse_duration, parse_study

TOML = """\
name = "digits-mlp"
entry = "train.py:train"
seeds = 3
[metrics]
accuracy = "max"
loss = "min"
val = { direction = "max", reduce = "best" }
[baseline]
hidden = 128
dropout = 0.1
augment = true
optim = { lr = 0.01, momentum = 0.9 }
[ablations]
no-augment = { augment = false }
small = { hidden = 32 }
slow = { "optim.lr" = 0.001 }
extra = { "+mixup" = 0.2 }
[run]
timeout = "1h30m"
retries = 2
"""

YAML = """\
name: digits-mlp
entry: train.py:train
seeds: 3
metrics:
  accuracy: max
  loss: min
  val: {direction: max, reduce: best}
baseline:
  hidden: 128
  dropout: 0.1
  augment: true
  optim: {lr: 0.01, momentum: 0.9}
ablations:
  no-augment: {augment: false}
  small: {hidden: 32}
  slow: {optim.lr: 0.001}
  extra: {+mixup: 0.2}
run:
  timeout: 1h30m
  retries: 2
"""

BASE = {
    "name": "s",
    "entry": "train.py:train",
    "seeds": 2,
    "metrics": {"acc": "max"},
    "baseline": {"hidden": 128, "dropout": 0.1, "optim": {"lr": 0.01}},
}


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def spec_error(tmp_path: Path, text: str, name: str = "study.toml") -> str:
    p = write(tmp_path, text, name)
    with pytest.raises(SpecError) as e:
        load_study(p)
    msg = str(e.value)
    assert str(p.resolve()) in msg or str(p) in msg, f"message does not name the file: {msg}"
    return msg


def toml_with(**sections: str) -> str:
    """The valid TOML study with some lines replaced/added (key -> line, '' removes)."""
    lines = TOML.splitlines()
    for key, line in sections.items():
        idx = [
            i for i, ln in enumerate(lines) if ln.startswith(key + " ") or ln.startswith(key + "=")
        ]
        if idx:
            lines[idx[0]] = line
        else:
            lines.insert(0, line)
    return "\n".join(ln for ln in lines if ln) + "\n"


def check_spec(spec):
    assert spec.name == "digits-mlp"
    assert spec.entry == "train.py:train"
    assert spec.seeds == (0, 1, 2)
    assert [(m.name, m.direction, m.reduce) for m in spec.metrics] == [
        ("accuracy", "max", "value"),
        ("loss", "min", "value"),
        ("val", "max", "best"),
    ]
    assert spec.primary_metric.name == "accuracy"
    assert list(spec.variants) == [BASELINE, "no-augment", "small", "slow", "extra"]
    assert spec.variants["slow"] == {"optim.lr": 0.001}
    assert spec.resolved("slow")["optim"] == {"lr": 0.001, "momentum": 0.9}
    assert spec.resolved("small")["hidden"] == 32 and spec.resolved("small")["dropout"] == 0.1
    assert spec.resolved("extra")["mixup"] == 0.2  # '+key' declares a new key
    assert "mixup" not in spec.resolved(BASELINE)
    assert spec.resolved(BASELINE) == spec.baseline
    assert spec.run.timeout == 5400.0 and spec.run.retries == 2


def test_toml_parses(tmp_path):
    p = write(tmp_path, TOML)
    spec = load_study(p)
    check_spec(spec)
    assert spec.source == p.resolve() and spec.root == tmp_path.resolve()


@pytest.mark.parametrize("suffix", ["yaml", "yml"])
def test_yaml_parses_to_the_same_spec(tmp_path, suffix):
    y = load_study(write(tmp_path, YAML, f"study.{suffix}"))
    t = load_study(write(tmp_path, TOML))
    check_spec(y)
    assert (y.seeds, y.metrics, y.baseline, y.variants, y.run) == (
        t.seeds,
        t.metrics,
        t.baseline,
        t.variants,
        t.run,
    )


def test_explicit_seed_list_and_defaults(tmp_path):
    spec = parse_study({**BASE, "seeds": [7, 3, 11]})
    assert spec.seeds == (7, 3, 11)
    spec = parse_study({k: v for k, v in BASE.items() if k != "seeds"})
    assert spec.seeds == (0, 1, 2, 3, 4)
    assert spec.run.timeout is None and spec.run.retries == 0 and spec.run.deterministic is True
    assert list(spec.variants) == [BASELINE]


@pytest.mark.parametrize(
    "value, seconds",
    [("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("1.5m", 90.0), (45, 45.0), (2.5, 2.5)],
)
def test_durations(value, seconds):
    assert parse_duration(value, "f") == seconds


@pytest.mark.parametrize(
    "literal", ['"10 minutes"', '""', '"0s"', '"-5"', "0", "-3", "true", '"m"', '"5d"']
)
def test_bad_durations(tmp_path, literal):
    msg = spec_error(tmp_path, TOML.replace('timeout = "1h30m"', f"timeout = {literal}"))
    assert "[run]: timeout = " in msg and "not a duration" in msg


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(SpecError, match="study file not found"):
        load_study(tmp_path / "nope.toml")
    msg = spec_error(tmp_path, TOML, "study.json")
    assert "unknown study file type" in msg


def test_invalid_toml_and_yaml(tmp_path):
    assert "not valid TOML" in spec_error(tmp_path, 'name = "x\n')
    assert "not valid YAML" in spec_error(tmp_path, "name: [unclosed\n", "s.yaml")
    assert "expected a table" in spec_error(tmp_path, "- just\n- a list\n", "s.yaml")


@pytest.mark.parametrize("key", ["name", "entry"])
def test_missing_required_keys(tmp_path, key):
    msg = spec_error(tmp_path, toml_with(**{key: ""}))
    assert key in msg


def test_missing_metrics(tmp_path):
    text = TOML.split("[metrics]")[0] + "[baseline]" + TOML.split("[baseline]")[1]
    msg = spec_error(tmp_path, text)
    assert "[metrics]" in msg and "missing or empty" in msg


@pytest.mark.parametrize(
    "line, words",
    [
        ("name = 3", ["name must be a str", "int 3"]),
        ('entry = "train.py"', ["entry", "not an entry point", "file.py:function"]),
        ('name = "bad name!"', ["name", "not a valid study name"]),
    ],
)
def test_wrong_types(tmp_path, line, words):
    key = line.split()[0]
    msg = spec_error(tmp_path, toml_with(**{key: line}))
    for w in words:
        assert w in msg


def test_unknown_top_level_key_suggests(tmp_path):
    msg = spec_error(tmp_path, "seed = 3\n" + TOML)
    assert "unknown top-level key 'seed'" in msg and "did you mean 'seeds'?" in msg


def test_unknown_run_key_suggests(tmp_path):
    msg = spec_error(tmp_path, TOML + "timout = 3\n")
    assert "[run] unknown key 'timout'" in msg and "did you mean 'timeout'?" in msg


@pytest.mark.parametrize(
    "line, words",
    [
        ("retries = -1", ["[run] retries", "-1", "integer >= 0"]),
        ('retries = "2"', ["[run] retries", "'2'"]),
        ("threads = 0", ["[run] threads", "integer >= 1"]),
        ("deterministic = 1", ["[run] deterministic", 'true, false or "warn"']),
        ("cpus = -2", ["[run] cpus", "non-negative"]),
        ('code = "src"', ["[run] code", "list of paths"]),
    ],
)
def test_bad_run_values(tmp_path, line, words):
    text = TOML.replace("retries = 2", line) if line.startswith("retries") else TOML + line + "\n"
    msg = spec_error(tmp_path, text)
    for w in words:
        assert w in msg


def test_override_of_unknown_key_with_did_you_mean(tmp_path):
    msg = spec_error(tmp_path, TOML.replace("small = { hidden = 32 }", "small = { hiden = 32 }"))
    assert "[ablations] small overrides 'hiden', which the baseline does not have" in msg
    assert "did you mean 'hidden'?" in msg
    assert "+hiden" in msg  # how to declare it as new


def test_override_of_unknown_nested_key(tmp_path):
    msg = spec_error(tmp_path, TOML.replace('"optim.lr" = 0.001', '"optim.lrr" = 0.001'))
    assert "'optim.lrr'" in msg and "did you mean 'optim.lr'?" in msg


def test_override_without_near_miss_still_explains(tmp_path):
    msg = spec_error(tmp_path, TOML.replace("small = { hidden = 32 }", "small = { zzz = 32 }"))
    assert "'zzz'" in msg and "did you mean" not in msg and '"+zzz"' in msg


def test_plus_declares_a_new_key():
    spec = parse_study(
        {**BASE, "ablations": {"mix": {"+mixup": 0.2}, "deep": {"+optim.beta": 0.5}}}
    )
    assert spec.resolved("mix")["mixup"] == 0.2
    assert spec.resolved("deep")["optim"] == {"lr": 0.01, "beta": 0.5}


def test_duplicate_configs(tmp_path):
    msg = spec_error(tmp_path, TOML.replace("small = { hidden = 32 }", "small = { hidden = 128 }"))
    assert "variant 'small' has the same configuration as 'baseline'" in msg
    msg = spec_error(
        tmp_path, TOML.replace("small = { hidden = 32 }", "small = { augment = false }")
    )
    assert "'small' has the same configuration as 'no-augment'" in msg


@pytest.mark.parametrize(
    "ablation, words",
    [
        ("baseline = { hidden = 3 }", ["'baseline' is reserved"]),
        ("empty = {}", ["[ablations] empty", "non-empty table"]),
        ("bad = 3", ["[ablations] bad", "non-empty table", "int 3"]),
    ],
)
def test_bad_ablations(tmp_path, ablation, words):
    msg = spec_error(tmp_path, TOML.replace("small = { hidden = 32 }", ablation))
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "seeds, words",
    [
        ("0", ["seeds = 0", "at least 1 seed"]),
        ("-2", ["seeds = -2"]),
        ("[1, 1, 2]", ["repeats a seed"]),
        ("[]", ["seeds = []", "non-negative integers"]),
        ("[0, -1]", ["seeds = [0, -1]"]),
        ('"five"', ["seeds = 'five'"]),
        ("true", ["seeds = True"]),
        ("[0.5]", ["seeds = [0.5]"]),
    ],
)
def test_bad_seeds(tmp_path, seeds, words):
    msg = spec_error(tmp_path, toml_with(seeds=f"seeds = {seeds}"))
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "metric, words",
    [
        (
            'accuracy = "maximize"',
            ["[metrics] accuracy = 'maximize'", 'expected "max", "min" or "none"'],
        ),
        ("accuracy = 1", ["[metrics] accuracy = 1"]),
        ('accuracy = { direction = "up" }', ["accuracy = 'up'"]),
        (
            'accuracy = { direction = "max", reduce = "mean" }',
            ["[metrics.accuracy] reduce = 'mean'"],
        ),
        (
            'accuracy = { directon = "max" }',
            ["[metrics.accuracy] unknown key 'directon'", "did you mean 'direction'?"],
        ),
    ],
)
def test_bad_metric_directions(tmp_path, metric, words):
    msg = spec_error(tmp_path, TOML.replace('accuracy = "max"', metric))
    for w in words:
        assert w in msg


def test_parse_study_without_file_names_the_study():
    with pytest.raises(SpecError, match=r"^study: missing required key 'name'"):
        parse_study({k: v for k, v in BASE.items() if k != "name"})


def test_errors_carry_hints():
    with pytest.raises(SpecError) as e:
        parse_study({**BASE, "ablations": {"a": {"hiddn": 3}}})
    assert e.value.hint is not None and "did you mean 'hidden'?" in e.value.hint
    assert e.value.exit_code == 2


def test_post_metrics_are_declared_but_not_required_from_the_run(tmp_path):
    from ablab.runtime.run import check_metrics

    spec = load_study(
        write(
            tmp_path,
            TOML.replace(
                'loss = "min"', 'loss = "min"\npair = { direction = "max", reduce = "post" }'
            ),
        )
    )
    assert ("pair", "post") in [(m.name, m.reduce) for m in spec.metrics]
    reduced = {m.name for m in spec.metrics if m.reduce != "value"}
    assert check_metrics(
        {"accuracy": 1.0, "loss": 0.5}, [m.name for m in spec.metrics], reduced
    ) == {"accuracy": 1.0, "loss": 0.5}
    msg = spec_error(
        tmp_path,
        TOML.replace('accuracy = "max"', 'accuracy = { direction = "max", reduce = "post" }'),
    )
    assert "the primary (first) metric 'accuracy' is declared reduce = \"post\"" in msg


def test_ablations_beside_a_design_are_rejected(tmp_path):
    # they used to be parsed and then silently left out of the plan
    design = '[design]\ntype = "factorial"\nfactors = { hidden = [32, 128] }\n[run]'
    msg = spec_error(tmp_path, TOML.replace("[run]", design))
    assert (
        '[ablations] (no-augment, small, slow, extra) cannot be combined with [design] type = "factorial"'
        in msg
    )
    without = TOML[: TOML.index("[ablations]")] + TOML[TOML.index("[run]") :]
    assert load_study(write(tmp_path, without.replace("[run]", design))).design.type == "factorial"


def test_serialized_spec_parses_back(tmp_path):
    from ablab.spec.serialize import spec_to_dict

    spec = load_study(write(tmp_path, TOML))
    again = parse_study(spec_to_dict(spec))
    assert (again.seeds, again.metrics, again.baseline, again.variants, again.run) == (
        spec.seeds,
        spec.metrics,
        spec.baseline,
        spec.variants,
        spec.run,
    )


def test_python_api_study_matches_the_file(tmp_path):
    import ablab

    s = ablab.Study(
        name="digits-mlp",
        entry="train.py:train",
        seeds=3,
        metrics={"accuracy": "max", "loss": "min", "val": {"direction": "max", "reduce": "best"}},
        baseline={
            "hidden": 128,
            "dropout": 0.1,
            "augment": True,
            "optim": {"lr": 0.01, "momentum": 0.9},
        },
        ablations={
            "no-augment": {"augment": False},
            "small": {"hidden": 32},
            "slow": {"optim.lr": 0.001},
            "extra": {"+mixup": 0.2},
        },
        run={"timeout": "1h30m", "retries": 2},
        root=tmp_path,
    )
    check_spec(s.spec)
    assert s.spec.root == tmp_path.resolve()
    with pytest.raises(SpecError, match="did you mean 'hidden'"):
        ablab.Study(
            name="x",
            entry="t.py:f",
            metrics={"a": "max"},
            baseline={"hidden": 1},
            ablations={"s": {"hiden": 2}},
        )
