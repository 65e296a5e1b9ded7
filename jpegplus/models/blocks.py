"""Shared building block: a plain conv trunk that works at 1/4 resolution.

Pixel-unshuffle by 4 turns an (N, 3, H, W) image into (N, 48, H/4, W/4), so a
3×3 conv sees a 12×12 pixel window and costs 1/16 per output pixel: this is
what keeps PostNet within 0.5 s per megapixel on two CPU cores.
"""
from __future__ import annotations

import torch
from torch import nn


class Trunk(nn.Module):
    """in_ch → `channels` → `depth` × (3×3 conv + ReLU) → out_ch, at one resolution.
    The last conv starts at zero so a fresh network is an identity around its skip."""

    def __init__(self, in_ch: int, out_ch: int, channels: int, depth: int):
        super().__init__()
        layers = [nn.Conv2d(in_ch, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth):
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):  # keeps activations alive through the depth; PyTorch's default shrinks them
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.head = nn.Conv2d(channels, out_ch, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def trunk_convs(trunk: Trunk) -> int:
    """3×3 convolutions in sequence in a trunk: its body plus the head."""
    return sum(isinstance(m, nn.Conv2d) for m in trunk.body) + 1


def condition_maps(ref: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
    """Constant planes (N, len(values), h, w) shaped like `ref`, one per per-sample scalar (N,)."""
    n, _, h, w = ref.shape
    return torch.stack([v.to(ref).reshape(n, 1, 1).expand(n, h, w) for v in values], 1)
