"""Module edits by path: glob matching, zero / identity / mean / replace, and their errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablab.components.apply import apply_edits, match_modules
from ablab.components.edits import ComponentError, split_edits
from ablab.errors import SpecError


class Block(nn.Module):
    def __init__(self, d: int = 4) -> None:
        super().__init__()
        self.attn = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x):
        return x + self.mlp(x + self.attn(x))


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = Encoder()
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.encoder(x))


X = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))


def test_glob_matches_one_segment():
    m = Net()
    assert match_modules(m, "encoder.layers.*.attn") == [
        "encoder.layers.0.attn",
        "encoder.layers.1.attn",
    ]
    assert match_modules(m, "encoder.layers.*.mlp.0") == [
        "encoder.layers.0.mlp.0",
        "encoder.layers.1.mlp.0",
    ]
    assert match_modules(m, "encoder.*.attn") == []  # '*' is one segment, not several


def test_zero_replaces_outputs_with_zeros():
    m = Net()
    _, recs = apply_edits(m, {"@encoder.layers.*.attn": "zero"})
    assert recs[0].matched == ["encoder.layers.0.attn", "encoder.layers.1.attn"]
    assert torch.all(m.encoder.layers[0].attn(X) == 0)
    # by hand: with attn zeroed each block is x + mlp(x)
    ref = Net()
    h = X
    for b in ref.encoder.layers:
        h = h + b.mlp(h)
    assert torch.allclose(m(X), ref.head(h))


def test_identity_removes_module_and_its_parameters():
    m = Net()
    n0 = sum(p.numel() for p in m.parameters())
    mlp_params = sum(p.numel() for p in m.encoder.layers[1].mlp.parameters())
    apply_edits(m, {"@encoder.layers.1.mlp": "identity"})
    assert sum(p.numel() for p in m.parameters()) == n0 - mlp_params
    ref = Net()
    b0, b1 = ref.encoder.layers
    h = b0(X)
    h = h + (h + b1.attn(h))  # mlp passes its input through
    assert torch.allclose(m(X), ref.head(h))


def test_identity_with_shape_change_fails_with_shapes():
    m = Net()
    apply_edits(m, {"@encoder.layers.0.mlp.0": "identity"})  # Linear(4, 8): [5, 4] -> [5, 8]
    with pytest.raises(ComponentError, match=r"input shape \[5, 4\] to output shape \[5, 8\]"):
        m(X)


def test_mean_replaces_output_by_reference_mean():
    m = Net()
    ref = Net()
    expected = ref.head(ref.encoder(X)).mean(0)
    apply_edits(m, {"@head": "mean"}, reference=X)
    out = m(X[:2])
    assert out.shape == (2, 3)
    assert torch.allclose(out, expected.expand(2, 3))
    with pytest.raises(ComponentError, match="reference batch"):
        apply_edits(Net(), {"@head": "mean"})


def test_replace_calls_factory_with_old_module_and_args():
    m = Net()
    seen = []

    def factory(old, width=0):
        seen.append((type(old).__name__, width))
        return nn.Linear(old.in_features, old.out_features, bias=False)

    _, recs = apply_edits(
        m,
        {"@head": {"replace": "models.py:small", "args": {"width": 7}}},
        load_factory=lambda ref: factory,
    )
    assert seen == [("Linear", 7)]
    assert m.head.bias is None and recs[0].matched == ["head"]
    with pytest.raises(ComponentError, match="expected a torch.nn.Module"):
        apply_edits(Net(), {"@head": {"replace": "m.py:f"}}, load_factory=lambda r: lambda: 3)


def test_no_match_names_closest_paths():
    with pytest.raises(ComponentError) as e:
        apply_edits(Net(), {"@encoder.layer.*.atn": "zero"})
    assert "matched no module" in e.value.message
    assert "encoder.layers.0.attn" in e.value.hint


def test_spec_validation_of_edit_values():
    plain, edits = split_edits({"lr": 0.1, "@a.*.b": "zero"}, "study.toml")
    assert plain == {"lr": 0.1} and edits == {"@a.*.b": "zero"}
    with pytest.raises(SpecError, match="did you mean 'zero'"):
        split_edits({"@a": "zeros"}, "study.toml")
    with pytest.raises(SpecError, match="not a module path"):
        split_edits({"@a..b": "zero"}, "study.toml")
    with pytest.raises(SpecError, match="not a factory reference"):
        split_edits({"@a": {"replace": "nofunc"}}, "study.toml")
    with pytest.raises(SpecError, match="unknown key 'replce'"):
        split_edits({"@a": {"replce": "m.py:f"}}, "study.toml")
