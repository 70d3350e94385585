"""Hydra config trees as baselines and Hydra override lists as ablations."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import ablab
from ablab.errors import SpecError

pytest.importorskip("hydra")

TRAIN = """\
defaults:
  - model: mlp
  - _self_
data:
  augment: true
  size: 100
trainer:
  epochs: 3
  lr: 0.1
  total_steps: ${trainer.epochs}
"""
ENTRY = """\
def train(config, run):
    return {"score": float(config["trainer"]["total_steps"]) + (0.5 if config["data"]["augment"] else 0.0)}
"""


def write(d: Path, ablations: str) -> Path:
    (d / "conf" / "model").mkdir(parents=True)
    (d / "conf" / "train.yaml").write_text(TRAIN)
    (d / "conf" / "model" / "mlp.yaml").write_text("hidden: 32\ndepth: 2\n")
    (d / "conf" / "model" / "linear.yaml").write_text("kind: linear\n")
    (d / "entry.py").write_text(ENTRY)
    path = d / "study.toml"
    path.write_text(
        textwrap.dedent(
            """\
            name = "hy"
            entry = "entry.py:train"
            seeds = 1
            baseline = { hydra = { config_path = "conf", config_name = "train" } }
            [metrics]
            score = "max"
            [ablations]
            """
        )
        + ablations
    )
    return path


ABLATIONS = """\
no-aug = ["data.augment=false", "+trainer.fast=true"]
short = ["trainer.epochs=1"]
linear = ["model=linear"]
plain = { "data.size" = 50 }
"""


def test_compose_resolves_to_plain_config_and_stable_keys(tmp_path):
    from ablab.plan.designs_bridge import plan_for

    spec = ablab.Study.load(write(tmp_path, ABLATIONS)).spec
    assert spec.baseline == {
        "model": {"hidden": 32, "depth": 2},
        "data": {"augment": True, "size": 100},
        "trainer": {"epochs": 3, "lr": 0.1, "total_steps": 3},
    }
    assert spec.variants["no-aug"] == {"data.augment": False, "+trainer.fast": True}
    assert spec.resolved("short")["trainer"] == {"epochs": 1, "lr": 0.1, "total_steps": 1}
    assert spec.resolved("linear")["model"] == {"kind": "linear"}
    assert spec.variants["linear"] == {"model": {}, "+model.kind": "linear"}
    assert spec.resolved("plain")["data"]["size"] == 50
    # the same study written by hand without Hydra has the same run keys
    plain = tmp_path / "plain.toml"
    plain.write_text(
        textwrap.dedent(
            """\
            name = "hy"
            entry = "entry.py:train"
            seeds = 1
            [metrics]
            score = "max"
            [baseline]
            model = { hidden = 32, depth = 2 }
            data = { augment = true, size = 100 }
            trainer = { epochs = 3, lr = 0.1, total_steps = 3 }
            [ablations]
            no-aug = { "data.augment" = false, "+trainer.fast" = true }
            short = { "trainer.epochs" = 1, "trainer.total_steps" = 1 }
            linear = { model = {}, "+model.kind" = "linear" }
            plain = { "data.size" = 50 }
            """
        )
    )
    by_hand = ablab.Study.load(plain).spec
    keys = {(r.variant, r.key) for r in plan_for(spec).runs}
    assert keys == {(r.variant, r.key) for r in plan_for(by_hand).runs}
    # and Study.save writes that plain form, which needs no Hydra to read
    saved = ablab.Study.from_spec(spec).save(tmp_path / "saved.toml")
    assert "hydra" not in saved.read_text()
    assert {(r.variant, r.key) for r in plan_for(ablab.Study.load(saved).spec).runs} == keys


def test_override_typo_is_a_spec_error_with_hydras_message(tmp_path, cli):
    path = write(tmp_path, 'typo = ["data.augmnt=false"]\n')
    code, out, err = cli("run", path)
    assert code == 2, out + err
    assert "[ablations] typo" in err and "data.augmnt" in err and "Traceback" not in err
    assert "Could not override 'data.augmnt'" in err and "not in struct" in err  # Hydra's words
    assert "did you mean 'data.augment'?" in err
    assert not (tmp_path / ".ablab").exists()


@pytest.mark.parametrize(
    ("baseline", "ablations", "match"),
    [
        ('{ hydra = { config_path = "nope", config_name = "train" } }', "", "folder .* not found"),
        ('{ hydra = { config_path = "conf" } }', "", "config_name"),
        ('{ hydra = { config_path = "conf", config_name = "trian" } }', "", "trian"),
        ('{ hydra = { config_path = "conf", config_name = "train", over = [] } }', "", "over"),
        (None, 'bad = ["data.augment=[unclosed"]', r"\[ablations\] bad"),
        (None, 'same = ["data.augment=true"]', "leave the baseline unchanged"),
        (None, 'gone = ["~data"]', "delete top-level key"),
        (None, "num = [3]", "list of Hydra overrides"),
    ],
)
def test_bad_hydra_input(tmp_path, baseline, ablations, match):
    path = write(tmp_path, ablations + "\n")
    if baseline is not None:
        text = path.read_text().splitlines()
        text = [f"baseline = {baseline}" if t.startswith("baseline =") else t for t in text]
        path.write_text("\n".join(text) + "\n")
    with pytest.raises(SpecError, match=match):
        ablab.Study.load(path)


def test_hydra_study_runs_end_to_end(tmp_path, cli):
    path = write(tmp_path, 'no-aug = ["data.augment=false"]\nshort = ["trainer.epochs=1"]\n')
    code, out, err = cli("run", path, "--quiet")
    assert code == 0, out + err
    df = ablab.load(path).runs().set_index("variant")
    assert df.loc["baseline", "score"] == 3.5
    assert df.loc["no-aug", "score"] == 3.0
    assert df.loc["short", "score"] == 1.5  # the interpolation followed the override
    assert df.loc["short", "trainer.total_steps"] == 1


def test_hydra_example_matches_the_plain_digits_study():
    """examples/hydra_digits composes to exactly the configurations of examples/digits."""
    ex = Path(__file__).resolve().parents[2] / "examples"
    hy = ablab.Study.load(ex / "hydra_digits" / "study.toml").spec
    plain = ablab.Study.load(ex / "digits" / "study.toml").spec
    for v in ("baseline", "no-augment", "no-dropout", "small"):
        assert hy.resolved(v) == plain.resolved(v), v
    assert hy.resolved("no-weight-decay") == {**plain.baseline, "weight_decay": 0.0}
    assert hy.variants["no-weight-decay"] == {"weight_decay": 0.0}


def test_baseline_overrides_and_yaml_study(tmp_path):
    path = write(tmp_path, "")
    y = tmp_path / "study.yaml"
    y.write_text(
        textwrap.dedent(
            """\
            name: hy
            entry: entry.py:train
            seeds: 1
            metrics: {score: max}
            baseline:
              hydra: {config_path: conf, config_name: train, overrides: ["trainer.epochs=5"]}
            ablations:
              fast: ["trainer.lr=0.5"]
            """
        )
    )
    assert path.exists()
    spec = ablab.Study.load(y).spec
    assert spec.baseline["trainer"] == {"epochs": 5, "lr": 0.1, "total_steps": 5}
    assert spec.variants["fast"] == {"trainer.lr": 0.5}
    assert spec.resolved("fast")["trainer"]["total_steps"] == 5
