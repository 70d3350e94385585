"""Small models for the tunnel-effect study (Harun et al., NeurIPS 2024, section 4).

* ``vgg``: VGG-like CNN; ``depth`` conv blocks (conv-BN-ReLU), a 2x2 max-pool after every
  second block while the map is larger than 2x2; ``reduction`` is the stride of the first
  convolution (the early spatial-reduction variable: 1 = none, 2 or 4 = stronger).
* ``resnet``: ResNet-like, a stem then ``depth`` basic residual blocks, stride 2 every second.
* ``mlp``: ``depth`` hidden layers of ``width`` units on the flattened image.
* ``vit``: a tiny ViT, patch embedding + ``depth`` transformer encoder blocks, mean pooled.

``build(config, n_classes, resolution)`` picks one from ``config["arch"]``.
``pretrained_vgg()`` trains a small VGG on glyph digits for a few seconds and returns it; it
is the model entry of the CLI example ``ablab probe examples/tunnel/models.py:pretrained_vgg``.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


def vgg(depth: int = 6, width: int = 16, reduction: int = 1, n_classes: int = 10,
        resolution: int = 32, in_ch: int = 1) -> nn.Module:  # fmt: skip
    layers: list[nn.Module] = _conv_block(in_ch, width, stride=reduction)
    side, ch = -(-resolution // reduction), width
    for i in range(1, depth):
        cout = min(width * 2 ** (i // 2), width * 8)
        layers += _conv_block(ch, cout)
        ch = cout
        if i % 2 == 1 and side > 2:
            layers.append(nn.MaxPool2d(2))
            side //= 2
    layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(ch * 4, 4 * width), nn.ReLU(),
               nn.Linear(4 * width, n_classes)]  # fmt: skip
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )  # fmt: skip
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    def __init__(self, depth: int = 4, width: int = 16, n_classes: int = 10, in_ch: int = 1):
        super().__init__()
        self.stem = nn.Sequential(*_conv_block(in_ch, width))
        blocks, ch = [], width
        for i in range(depth):
            stride = 2 if i % 2 == 1 else 1
            cout = ch * stride
            blocks.append(BasicBlock(ch, cout, stride))
            ch = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def resnet_probe_layers(model: ResNet) -> list[str]:
    """Probe points of a ResNet: the stem and the output of every residual block."""
    return ["stem"] + [f"blocks.{i}" for i in range(len(model.blocks))]


def mlp(depth: int = 4, width: int = 128, n_classes: int = 10, resolution: int = 32,
        in_ch: int = 1) -> nn.Module:  # fmt: skip
    layers: list[nn.Module] = [nn.Flatten()]
    d = in_ch * resolution * resolution
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, n_classes))
    return nn.Sequential(*layers)


class TinyViT(nn.Module):
    def __init__(self, resolution: int = 32, patch: int = 4, dim: int = 48, depth: int = 4,
                 heads: int = 3, n_classes: int = 10, in_ch: int = 1) -> None:  # fmt: skip
        super().__init__()
        n_tok = (resolution // patch) ** 2
        self.embed = nn.Conv2d(in_ch, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, n_tok, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True
            )  # fmt: skip
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2) + self.pos
        for b in self.blocks:
            t = b(t)
        return self.head(self.norm(t).mean(1))


def build(config: dict, n_classes: int, resolution: int) -> tuple[nn.Module, list[str] | None]:
    """(model, probe layers or None for the defaults) for ``config["arch"]``."""
    arch = config.get("arch", "vgg")
    depth, width = int(config.get("depth", 6)), int(config.get("width", 16))
    if arch == "vgg":
        m = vgg(depth, width, int(config.get("reduction", 1)), n_classes, resolution)
        return m, None
    if arch == "resnet":
        r = ResNet(depth, width, n_classes)
        return r, resnet_probe_layers(r)
    if arch == "mlp":
        return mlp(depth, int(config.get("mlp_width", 128)), n_classes, resolution), None
    if arch == "vit":
        v = TinyViT(resolution, int(config.get("patch", 4)), 3 * width, depth, 3, n_classes)
        return v, None
    raise ValueError(f"unknown arch '{arch}': choose vgg, resnet, mlp or vit")


def pretrained_vgg() -> nn.Module:
    """A small VGG trained for a few seconds on 16 px glyph digits (seed 0)."""
    from train import fit  # examples/tunnel/train.py, next to this file

    from ablab import data

    torch.manual_seed(0)
    ds = data.load("glyphs-digits", seed=0, resolution=16, n_train_per_class=100,
                   n_test_per_class=20)  # fmt: skip
    model = vgg(depth=6, width=12, n_classes=10, resolution=16)
    fit(model, ds, epochs=4, lr=3e-3, augment=False, generator=torch.Generator().manual_seed(0))
    return model.eval()
