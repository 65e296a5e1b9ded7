"""PreNet and PostNet: the learned halves around the real JPEG codec.

Images are float tensors (N, 3, H, W) in 0..1. `level` is the per-sample
quantisation level (N,) from tables.quant_level; `scale` is 1 or 2.
Full-size H, W must be multiples of 16 (the codec pads).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Trunk, condition_maps


class PreNet(nn.Module):
    """Full-size RGB → RGB at 1/scale: a learned residual over the identity
    (scale 1) or over a 2×2 area downsample (scale 2). One trunk, one head per scale."""

    scales = (1, 2)

    def __init__(self, channels: int = 32, depth: int = 3):
        super().__init__()
        self.config = {"channels": channels, "depth": depth}
        self.trunk = Trunk(48 + 2, 48, channels, depth)
        self.head2 = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)

    def forward(self, x: torch.Tensor, level: torch.Tensor, scale: int) -> torch.Tensor:
        u = F.pixel_unshuffle(x, 4) - 0.5  # centred input: trains several times faster than 0..1
        flag = torch.full_like(level, float(scale == 2))
        feats = self.trunk.features(torch.cat([u, condition_maps(u, level, flag)], 1))
        if scale == 1:
            return x + F.pixel_shuffle(self.trunk.head(feats), 4)
        return F.avg_pool2d(x, 2) + F.pixel_shuffle(self.head2(feats), 2)


class PostNet(nn.Module):
    """Decoded RGB at 1/scale → full-size RGB: bicubic ×scale, then a learned
    residual that upsamples detail and removes block and ringing artifacts."""

    scales = (1, 2)

    def __init__(self, channels: int = 64, depth: int = 5):
        super().__init__()
        self.config = {"channels": channels, "depth": depth}
        self.trunk = Trunk(48 + 2, 48, channels, depth)

    def forward(self, y: torch.Tensor, level: torch.Tensor, scale: int) -> torch.Tensor:
        base = y if scale == 1 else F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
        u = F.pixel_unshuffle(base, 4) - 0.5  # centred input: trains several times faster than 0..1
        flag = torch.full_like(level, float(scale == 2))
        return base + F.pixel_shuffle(self.trunk(torch.cat([u, condition_maps(u, level, flag)], 1)), 4)
