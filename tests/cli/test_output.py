"""User-controlled text (config values, errors, names) is printed literally: never read as Rich
markup, and without terminal control sequences."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

ENTRY = """\
def train(config, run):
    if config["fail"]:
        raise ValueError("\\x1b[2J\\x1b]0;pwned\\x07[bold red]boom[/] at [/data/train.csv]")
    return {"score": 1.0}
"""


@pytest.fixture(scope="module")
def printed_study(tmp_path_factory) -> Path:
    from ablab.cli.main import main

    d = tmp_path_factory.mktemp("output")
    (d / "entry.py").write_text(ENTRY)
    (d / "study.toml").write_text(
        textwrap.dedent("""\
        name = "printing"
        entry = "entry.py:train"
        seeds = 1
        [metrics]
        score = "max"
        [baseline]
        data = "[/data/train.csv]"
        shape = "[batch, 3, 32, 32]"
        fail = false
        [ablations]
        broken = { fail = true }
        """)
    )
    assert main(["run", str(d / "study.toml"), "-q", "-j", "1"]) == 1
    return d / "study.toml"


def _keys(cli, study) -> dict[str, str]:
    code, out, _ = cli("runs", study, "--format", "json")
    assert code == 0
    return {r["variant"]: r["key"] for r in json.loads(out)}


@pytest.mark.slow
def test_show_prints_markup_like_config_values_literally(cli, printed_study):
    keys = _keys(cli, printed_study)
    code, out, err = cli("show", keys["baseline"], "--study", printed_study)
    assert code == 0, err
    assert "[/data/train.csv]" in out and "[batch, 3, 32, 32]" in out


@pytest.mark.slow
def test_errors_are_printed_without_control_sequences(cli, printed_study):
    keys = _keys(cli, printed_study)
    code, out, err = cli("show", keys["broken"], "--study", printed_study)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out
    assert "[bold red]boom[/] at [/data/train.csv]" in out
    code, out, err = cli("runs", printed_study)
    assert code == 0, err
    assert "\x1b" not in out and "[bold red]boom" in out
    code, out, _ = cli("runs", printed_study, "--format", "csv")
    assert "\x1b" not in out and "[bold red]boom[/]" in out
    code, out, err = cli("status", printed_study)
    assert code == 0 and "broken" in out


def test_error_messages_are_not_markup(cli, tmp_path):
    bad = tmp_path / "[red]x[/]\x1b[2J.toml"
    code, _, err = cli("run", bad)
    assert code == 2
    assert "[red]x[/]" in err and "\x1b" not in err


def test_clean_and_safe():
    from ablab.termtext import clean, safe

    assert clean("a\x1b[31mb\x1b[0m\x1b]0;t\x07c\x9b2Jd\x00e\rf\r\ng\th") == "abcdef\r\ng\th"
    assert safe("[/x]") == "\\[/x]"
