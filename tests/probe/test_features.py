import numpy as np
import pytest
import torch
import torch.nn as nn

from ablab.errors import AblabError, DataError
from ablab.probe.features import extract, reduce_output, select_points

from .conftest import small_cnn


def test_default_points_extend_over_norm_and_activation():
    pts = select_points(small_cnn())
    assert [(p.name, p.hooked, p.kind) for p in pts] == [
        ("0", "2", "conv"), ("3", "4", "conv"), ("6", "7", "linear"), ("8", "8", "linear"),
    ]  # fmt: skip


def test_features_equal_manual_forward_and_head_is_dropped():
    torch.manual_seed(0)
    m = small_cnn().eval()
    x = torch.rand(5, 1, 12, 12)
    feats = extract(m, x.numpy(), select_points(m), batch_size=2, drop_output=True)
    assert list(feats) == ["0", "3", "6"]  # "8" is the model output (logits)
    with torch.no_grad():
        h1 = m[2](m[1](m[0](x)))
        ref = nn.functional.adaptive_avg_pool2d(h1, 2).flatten(1).numpy()
        h3 = m[7](m[6](m[5](m[4](m[3](h1)))))
    assert feats["0"].shape == (5, 8 * 4) and np.allclose(feats["0"], ref, atol=1e-6)
    assert np.allclose(feats["6"], h3.numpy(), atol=1e-6)


def test_selection_by_name_regex_and_type():
    m = small_cnn()
    assert [p.name for p in select_points(m, ["3"])] == ["3"]
    assert [p.name for p in select_points(m, r"[0-9]")] == [str(i) for i in range(9)]
    assert [p.name for p in select_points(m, [nn.Conv2d])] == ["0", "3"]
    with pytest.raises(AblabError, match=r"available: 0, 1, 2"):
        select_points(m, ["features.conv9"])


class TinyViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(1, 16, 4, stride=4)
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True, dropout=0.0)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.blocks(t).mean(1))


def test_transformer_blocks_are_probe_points_and_tokens_mean_pooled():
    torch.manual_seed(0)
    m = TinyViT().eval()
    pts = select_points(m)
    names = [p.name for p in pts]
    assert "blocks.layers.0" in names and "blocks.layers.1" in names
    assert not any(n.startswith("blocks.layers.0.") for n in names)  # no inner linears
    x = torch.rand(3, 1, 12, 12)
    feats = extract(m, x.numpy(), pts)
    with torch.no_grad():
        t = m.embed(x).flatten(2).transpose(1, 2)
        ref = m.blocks.layers[0](t).mean(1).numpy()
    assert np.allclose(feats["blocks.layers.0"], ref, atol=1e-5)


def test_reduce_output_conv1d_and_seq_first():
    out = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    r = reduce_output(out, "conv", 2)
    assert r.shape == (2, 6) and r[0, 0] == out[0, 0, :4].mean()
    layer = nn.TransformerEncoderLayer(8, 2, batch_first=False)
    tok = torch.rand(5, 2, 8)  # (T, N, D)
    assert torch.allclose(reduce_output(tok, "block", 2, layer), tok.mean(0))


def test_wrong_input_shape_is_a_data_error():
    m = small_cnn()
    with pytest.raises(DataError, match=r"inputs of shape \(1, 20, 20\)"):
        extract(m, np.zeros((2, 1, 20, 20), np.float32), select_points(m))


def test_model_mode_restored():
    m = small_cnn().train()
    extract(m, np.zeros((2, 1, 12, 12), np.float32), select_points(m))
    assert m.training
