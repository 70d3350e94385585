"""A small transformer for 8x8 digits (each image row is a token) and a post-hoc replacement.

Every part worth ablating is a named module, so a study can address it by path:
``encoder.layers.{i}.attn.heads.{h}`` (one attention head), ``encoder.layers.{i}.attn``,
``encoder.layers.{i}.mlp``, ``encoder.layers.{i}.norm1`` / ``norm2``, ``norm``, ``head``.
"""

from __future__ import annotations

import torch
from torch import nn


class Head(nn.Module):
    """One attention head: its own query, key and value projections."""

    def __init__(self, d: int, dh: int) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(d, dh), nn.Linear(d, dh), nn.Linear(d, dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        att = self.q(x) @ self.k(x).transpose(1, 2) / self.q.out_features**0.5
        return att.softmax(-1) @ self.v(x)


class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList([Head(d, d // heads) for _ in range(heads)])
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.cat([h(x) for h in self.heads], dim=-1))


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    def __init__(self, d: int, heads: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(d, heads) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class DigitsTransformer(nn.Module):
    """(batch, 64) pixels -> 8 row tokens -> encoder -> mean pool -> 10 logits."""

    def __init__(self, d: int = 32, heads: int = 4, depth: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(1, 8, d))
        self.encoder = Encoder(d, heads, depth)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.view(-1, 8, 8)) + self.pos
        return self.head(self.norm(self.encoder(h)).mean(dim=1))


def low_rank_mlp(old: nn.Sequential, rank: int = 4) -> nn.Sequential:
    """A lighter MLP without retraining: each Linear replaced by its rank-``rank`` truncated SVD
    (two thin Linears), so the block keeps most of what it learned with fewer parameters."""
    layers: list[nn.Module] = []
    for m in old:
        if not isinstance(m, nn.Linear):
            layers.append(m)
            continue
        u, s, vh = torch.linalg.svd(m.weight.detach(), full_matrices=False)
        first = nn.Linear(m.in_features, rank, bias=False)
        second = nn.Linear(rank, m.out_features, bias=m.bias is not None)
        with torch.no_grad():
            first.weight.copy_(vh[:rank] * s[:rank, None])
            second.weight.copy_(u[:, :rank])
            if m.bias is not None:
                second.bias.copy_(m.bias)
        layers += [first, second]
    return nn.Sequential(*layers)
