"""FakeCodec: a differentiable stand-in for libjpeg-turbo encode → decode (4:2:0,
optimised Huffman), with a differentiable rate estimate in bits.

Output = DiffJPEG(x) + a small CNN correction learnt on real (x, JPEG(x)) pairs.
Rate = a calibrated linear model over soft statistics of the quantised DCT
coefficients, its weights fitted to real file sizes (training/train_fakecodec.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Trunk, condition_maps
from .diffjpeg import DiffJPEG

# Per plane group (luma, chroma): 4 soft statistics; plus a per-file constant.
N_RATE_FEATURES = 9


def rate_features(coeffs: list[torch.Tensor]) -> torch.Tensor:
    """(N, 9) rate features from the scaled coefficients c = DCT/Q of Y, Cb, Cr.

    Per plane group (luma, chroma): a soft count of coefficients that round
    away from zero (ramping from |c| = 0.25 to 0.75, so gradients can push one
    to zero), the soft-weighted magnitude bits Σ nz·log2(1 + |c|) and its square (long
    Huffman codes for large magnitudes), and a soft
    count of blocks with any non-zero AC (each costs an end-of-block code);
    plus a per-file constant for headers and Huffman tables."""
    feats = []
    for group in (coeffs[:1], coeffs[1:]):
        nz = [torch.clamp(2 * c.abs() - 0.5, 0, 1) for c in group]
        count = sum(z.flatten(1).sum(1) for z in nz)
        logs = [torch.log2(1 + c.abs()) for c in group]
        mag = sum((z * l).flatten(1).sum(1) for z, l in zip(nz, logs))
        mag2 = sum((z * l * l).flatten(1).sum(1) for z, l in zip(nz, logs))
        ac = [z.flatten(-2)[..., 1:].amax(-1) for z in nz]
        eob = sum(a.flatten(1).sum(1) for a in ac)
        feats += [count, mag, mag2, eob]
    feats.append(torch.ones_like(feats[0]))
    return torch.stack(feats, 1)


class FakeCodec(nn.Module):
    """forward(x, tables) → {"x_hat": (N,3,H,W) 0..255, "bits": (N,) estimated file bits}.

    x: float (N, 3, H, W) in 0..255, H and W multiples of 16; tables: (N, 2, 8, 8)."""

    def __init__(self, channels: int = 32, depth: int = 3):
        super().__init__()
        self.config = {"channels": channels, "depth": depth}
        self.jpeg = DiffJPEG()
        self.correct = Trunk(48 + 1, 48, channels, depth)
        self.register_buffer("rate_weights", torch.zeros(N_RATE_FEATURES))

    def forward(self, x: torch.Tensor, tables: torch.Tensor) -> dict:
        base, coeffs = self.jpeg(x, tables)
        level = torch.log2(tables[:, 0].float()).mean((1, 2)) / 8
        u = F.pixel_unshuffle(base / 255, 4)
        delta = F.pixel_shuffle(self.correct(torch.cat([u, condition_maps(u, level)], 1)), 4)
        x_hat = base + 255 * delta
        bits = rate_features(coeffs) @ self.rate_weights
        return {"x_hat": x_hat, "bits": bits, "base": base}
