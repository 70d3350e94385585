import json
import textwrap

import pytest
import torch

from ablab.cli.probe import probe_command
from ablab.errors import AblabError

MODEL = textwrap.dedent("""
    import torch
    from torch import nn

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 144, 16), nn.ReLU(), nn.Linear(16, 10))

    def not_a_model():
        return 3
""")


@pytest.fixture
def entry(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(MODEL)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_probe_writes_json_plot_csv(entry, capsys):
    out = entry / "out"
    probe_command("m.py:model", id="glyphs-digits", ood="glyphs-heldout-fonts,glyphs-letters",
                  layers=None, out=out, resolution=12, n_train_per_class=12,
                  n_test_per_class=6)  # fmt: skip
    text = " ".join(capsys.readouterr().out.split())
    assert "r =" in text and "tunnel strength" in text
    d = json.loads((out / "probe.json").read_text())
    assert d["layers"] == ["0", "3"] and set(d["ood_acc"]) == {
        "glyphs-heldout-fonts",
        "glyphs-letters",
    }
    assert (out / "probe.png").exists() and (out / "probe.svg").exists()
    assert (out / "probe.csv").read_text().startswith("layer,depth,id_acc")


def test_cli_probe_user_errors(entry):
    kw = {"layers": None, "out": None, "resolution": 12, "n_train_per_class": 4,
          "n_test_per_class": 2}  # fmt: skip
    with pytest.raises(AblabError, match="not a torch nn.Module"):
        probe_command("m.py:not_a_model", id="glyphs-digits", ood="glyphs-letters", **kw)
    with pytest.raises(AblabError, match="available"):
        probe_command("m.py:model", id="glyphs-digits", ood="glyphs-letters",
                      **{**kw, "layers": "features.9"})  # fmt: skip
    with pytest.raises(AblabError, match="unknown dataset"):
        probe_command("m.py:model", id="glyphs-digits", ood="glyph-letters", **kw)
    with pytest.raises(AblabError, match="cannot take inputs"):
        probe_command("m.py:model", id="glyphs-digits", ood="glyphs-letters",
                      **{**kw, "resolution": 16})  # fmt: skip
    with pytest.raises(AblabError):
        probe_command("m.py:nope", id="glyphs-digits", ood="glyphs-letters", **kw)
    assert torch.get_num_threads() >= 1


def test_cli_main_exit_code_2(entry):
    main = pytest.importorskip("ablab.cli.main")
    rc = main.main(["probe", "m.py:model", "--id", "glyphs-digits", "--ood", "glyph-letters"])
    assert rc == 2
