"""Study files are untrusted input: everything knowable before the first worker starts is checked
first, through the real CLI, with exit 2, a message naming the file/key/value, no traceback and
nothing recorded (no store is created)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

ENTRY = """\
def train(config, run):
    return {"score": float(config.get("score", 1.0))}
"""

STUDY = """\
name = "b"
entry = "entry.py:train"
seeds = 1
[metrics]
score = "max"
[baseline]
score = 1.0
"""


def _write(d: Path, study: str = STUDY, entry: str = ENTRY, name: str = "study.toml") -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "entry.py").write_text(entry)
    p = d / name
    p.write_text(textwrap.dedent(study))
    return p


def _refused(cli, path: Path, *words: str) -> str:
    code, out, err = cli("run", path, "-q", "-j", "1")
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "error:" in err
    low = err.lower()
    for w in words:
        assert w.lower() in low, (w, err)
    assert not (path.parent / ".ablab").exists(), "a refused study must record nothing"
    return err


@pytest.mark.parametrize(
    "entry_line, setup, words",
    [
        ('entry = "missing.py:train"', None, ["missing.py", "not found"]),
        ('entry = "pkgdir.py:train"', "dir", ["directory"]),
        ('entry = "data.csv:train"', None, ["data.csv", "not a python file"]),
        ('entry = "entry.py:trian"', None, ["trian", "did you mean 'train'"]),
        ('entry = "one.py:train"', "one-arg", ["train(config)", "(config, run)"]),
        ('entry = "syntax.py:train"', "syntax", ["syntax.py line 2"]),
        ('entry = "imports.py:train"', "imports", ["no_such_module_xyz", "not installed"]),
        ('entry = "no_such_pkg_xyz.mod:train"', None, ["no_such_pkg_xyz.mod", "cannot be found"]),
    ],
)
def test_bad_entries_are_refused_before_any_worker(cli, tmp_path, entry_line, setup, words):
    p = _write(tmp_path, STUDY.replace('entry = "entry.py:train"', entry_line))
    if setup == "dir":
        (tmp_path / "pkgdir.py").mkdir()
    elif setup == "one-arg":
        (tmp_path / "one.py").write_text("def train(config):\n    return {}\n")
    elif setup == "syntax":
        (tmp_path / "syntax.py").write_text("def train(config, run):\n    return (\n")
    elif setup == "imports":
        (tmp_path / "imports.py").write_text(
            "import no_such_module_xyz\n\ndef train(config, run):\n    return {}\n"
        )
    _refused(cli, p, *words)


def test_entries_that_can_only_be_judged_at_run_time_are_not_refused(tmp_path):
    from ablab.runtime.entry_check import check_entry

    (tmp_path / "a.py").write_text(
        "import sys\nsys.path.insert(0, 'lib')\nimport only_in_lib\n"
        "def train(config, run, extra=1):\n    return {}\n"
    )
    (tmp_path / "b.py").write_text(
        "try:\n    import no_such_module_xyz\nexcept ImportError:\n    pass\n"
        "def deco(f):\n    return f\n@deco\ndef train(config):\n    return {}\n"
    )
    (tmp_path / "c.py").write_text("from os.path import *\n")
    for e in ("a.py:train", "b.py:train", "c.py:train", {"command": "x"}):
        check_entry(e, tmp_path)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["nul byte", "binary"]),
        (STUDY.encode("utf-16"), ["utf-16", "utf-8"]),
        (b'name = "b\xff"\n', ["not utf-8", "0xff"]),
    ],
)
def test_binary_and_non_utf8_study_files_are_refused(cli, tmp_path, content, words):
    p = _write(tmp_path)
    p.write_bytes(content)
    _refused(cli, p, "study.toml", *words)


def test_a_utf8_bom_is_accepted(tmp_path):
    from ablab.spec import load_study

    p = _write(tmp_path)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert load_study(p).name == "b"


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_deep_nesting_is_refused(cli, tmp_path, suffix):
    depth = 1500 if suffix == ".yaml" else 5000
    if suffix == ".toml":
        text = STUDY + "deep = " + "[" * depth + "]" * depth + "\n"
    else:
        text = (
            "name: b\nentry: entry.py:train\nseeds: 1\nmetrics: {score: max}\n"
            "baseline: {score: 1.0, deep: " + "[" * depth + "]" * depth + "}\n"
        )
    p = _write(tmp_path, text, name="study" + suffix)
    _refused(cli, p, "nested")


def test_moderate_nesting_beyond_the_limit_names_the_key(cli, tmp_path):
    p = _write(tmp_path, STUDY + "deep = " + "[" * 40 + "]" * 40 + "\n")
    _refused(cli, p, "baseline.deep", "nested more than")


def test_yaml_alias_bomb_is_refused_quickly(cli, tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = (
        "name: b\nentry: entry.py:train\nseeds: 1\nmetrics: {score: max}\nbaseline:\n  score: 1.0\n"
        + "".join(f"  {ln}\n" for ln in lines)
    )
    p = _write(tmp_path, text, name="study.yaml")
    _refused(cli, p, "expands to more than", "aliases")


@pytest.mark.parametrize(
    "yaml_text, words",
    [
        ("metrics: {score: max, 1: min}", ["key 1", "int", "quote it"]),
        ("metrics: {score: max}\nablations: {3: {score: 2.0}}", ["key 3", "int"]),
        ("metrics: {score: max}\nbaseline: {score: 1.0, 10: x}", ["key 10", "baseline"]),
        ("metrics: {score: max}\nmetrics: {score: min}", ["duplicate key 'metrics'"]),
        ("metrics: {score: max, score: min}", ["duplicate key 'score'"]),
    ],
)
def test_yaml_integer_and_duplicate_keys_are_refused(cli, tmp_path, yaml_text, words):
    text = "name: b\nentry: entry.py:train\nseeds: 1\n" + yaml_text + "\n"
    if "baseline" not in yaml_text:
        text += "baseline: {score: 1.0}\n"
    p = _write(tmp_path, text, name="study.yaml")
    _refused(cli, p, "study.yaml", *words)


def test_yaml_exponent_floats_are_numbers_as_in_yaml_1_2(tmp_path):
    from ablab.spec import load_study

    p = _write(
        tmp_path,
        "name: b\nentry: entry.py:train\nseeds: 1\nmetrics: {score: max}\n"
        "baseline: {lr: 1e-3, big: 2E+5, neg: -5e-1, ver: '1e-3', n: 3, s: 1e-3x}\n",
        name="study.yaml",
    )
    b = load_study(p).baseline
    assert b == {"lr": 0.001, "big": 200000.0, "neg": -0.5, "ver": "1e-3", "n": 3, "s": "1e-3x"}
    assert isinstance(b["lr"], float) and isinstance(b["n"], int)


def test_plus_key_under_a_scalar_is_refused(cli, tmp_path):
    p = _write(tmp_path, STUDY + '[ablations]\nx = { "+score.sub" = 2 }\n')
    _refused(cli, p, "+score.sub", "'score' is 1.0", "not a table")


def test_two_settings_with_one_dotted_name_are_refused(cli, tmp_path):
    p = _write(tmp_path, STUDY + '"optim.lr" = 0.1\noptim = { lr = 0.2 }\n')
    _refused(cli, p, "two settings named 'optim.lr'")


@pytest.mark.slow
def test_a_quoted_dotted_key_is_ablatable(cli, tmp_path):
    """The entry reads config["optim.lr"]; the ablation must change exactly that value."""
    entry = 'def train(config, run):\n    return {"score": config["optim.lr"]}\n'
    text = STUDY + '"optim.lr" = 0.1\n[ablations]\nslow = { "optim.lr" = 0.001 }\n'
    p = _write(tmp_path, text, entry)
    code, out, err = cli("run", p, "-q", "-j", "1")
    assert code == 0, out + err
    code, out, _ = cli("runs", p, "--format", "json")
    rows = {r["variant"]: r for r in json.loads(out)}
    assert rows["baseline"]["metrics"]["score"] == 0.1
    assert rows["slow"]["metrics"]["score"] == 0.001


def test_resolution_of_dotted_names():
    from ablab.spec.model import apply_overrides

    base = {"optim.lr": 0.1, "net": {"depth": 2}, "a.b": {"c": 1}}
    assert apply_overrides(base, {"optim.lr": 1})["optim.lr"] == 1
    assert "optim" not in apply_overrides(base, {"optim.lr": 1})
    assert apply_overrides(base, {"net.depth": 3})["net"] == {"depth": 3}
    assert apply_overrides(base, {"+net.width": 8})["net"] == {"depth": 2, "width": 8}
    assert apply_overrides(base, {"+a.b.d": 2})["a.b"] == {"c": 1, "d": 2}
    assert apply_overrides(base, {"+x.y": 2})["x"] == {"y": 2}


@pytest.mark.parametrize(
    "line, words",
    [
        ("seeds = 1000000000000", ["1,000,000,000,000 seeds", "at most 10,000"]),
        ("seeds = [0, 18446744073709551616]", ["too large"]),
        ("split_seeds = 100000000", ["split_seeds", "at most"]),
    ],
)
def test_absurd_seed_counts_are_refused(cli, tmp_path, line, words):
    keep = "" if line.startswith("seeds") else "seeds = 1\n"
    text = STUDY.replace("seeds = 1\n", keep + line + "\n")
    p = _write(tmp_path, text)
    _refused(cli, p, *words)


def test_absurd_plans_are_refused_not_a_memory_error(cli, tmp_path):
    factors = ", ".join(f"f{i} = [0, 1]" for i in range(40))
    base = "\n".join(f"f{i} = 0" for i in range(40))
    text = STUDY + base + f'\n[design]\ntype = "factorial"\nfactors = {{ {factors} }}\n'
    p = _write(tmp_path, text)
    _refused(cli, p, "plans 1,099,511,627,776 runs", "at most 100,000")


def test_sensitivity_value_equal_to_an_ablation_is_refused(cli, tmp_path):
    text = (
        STUDY + "lr = 0.1\n[ablations]\nlow_lr = { lr = 0.01 }\n[sensitivity]\nlr = [0.01, 0.5]\n"
    )
    p = _write(tmp_path, text)
    _refused(cli, p, "[sensitivity] lr", "low_lr", "same run")


def test_sensitivity_beside_other_ablations_still_plans_distinct_runs(tmp_path):
    from ablab.plan.expand import expand
    from ablab.spec import load_study

    text = STUDY + "lr = 0.1\n[ablations]\nhi = { score = 2.0 }\n[sensitivity]\nlr = [0.01, 0.1]\n"
    plan = expand(load_study(_write(tmp_path, text)))
    assert len(plan) == 4 and len({r.key for r in plan.runs}) == 4


@pytest.mark.parametrize("rev", ["../../x", "a/b", ".hidden", "x\x1b[2J"])
def test_revision_names_that_would_be_paths_are_refused(cli, tmp_path, rev):
    p = _write(tmp_path)
    code, out, err = cli("run", p, "-q", "--revision", rev)
    assert code == 2 and "not a revision name" in err and "Traceback" not in err
    assert not (tmp_path / ".ablab").exists()


def test_yaml_merge_keys_may_override_without_being_duplicates(tmp_path):
    from ablab.spec import load_study

    text = (
        "name: b\nentry: entry.py:train\nseeds: 1\nmetrics: {score: max}\n"
        "baseline:\n  score: 1.0\n  net: &net {depth: 2, width: 8}\n"
        "ablations:\n  deep:\n    net:\n      <<: *net\n      depth: 4\n"
    )
    spec = load_study(_write(tmp_path, text, name="study.yaml"))
    assert spec.resolved("deep")["net"] == {"depth": 4, "width": 8}
