"""Differentiable JPEG (baseline, 4:2:0) in torch: the analytic core of FakeCodec.

Follows libjpeg-turbo's data path: JFIF RGB→YCbCr, 2×2 box chroma
downsampling (moved toward the least-squares chroma for the decoder's
upsampling by the encoder's `sharp` share, as jpegplus.requant does), 8×8
DCT, quantisation by the given tables, dequantisation, IDCT,
"fancy" (triangular) chroma upsampling, YCbCr→RGB, rounding and clamping.
Rounding is straight-through: exact in the forward pass, identity gradient.
All images are float tensors (N, 3, H, W) in 0..255 with H, W multiples of 16.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return torch.stack([y, cb, cr], 1)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x[:, 0], x[:, 1] - 128, x[:, 2] - 128
    r = y + 1.402 * cr
    g = y - 0.344136 * cb - 0.714136 * cr
    b = y + 1.772 * cb
    return torch.stack([r, g, b], 1)


def dct_matrix() -> torch.Tensor:
    """Orthonormal 8-point DCT-II matrix D, so that coefficients = D · block · Dᵀ."""
    d = torch.zeros(8, 8, dtype=torch.float64)
    for k in range(8):
        for n in range(8):
            a = math.sqrt(1 / 8) if k == 0 else math.sqrt(2 / 8)
            d[k, n] = a * math.cos(math.pi * (2 * n + 1) * k / 16)
    return d.float()


def to_blocks(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) → (N, H/8, W/8, 8, 8)."""
    n, h, w = x.shape
    return x.reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)


def from_blocks(b: torch.Tensor) -> torch.Tensor:
    """(N, H/8, W/8, 8, 8) → (N, H, W)."""
    n, bh, bw = b.shape[:3]
    return b.permute(0, 1, 3, 2, 4).reshape(n, bh * 8, bw * 8)


def fancy_upsample(c: torch.Tensor) -> torch.Tensor:
    """libjpeg's h2v2 triangular upsampling ≈ bilinear with half-pixel centres. (N, H, W) → (N, 2H, 2W)."""
    return F.interpolate(c[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]


def fancy_inverse(x: torch.Tensor, dim: int) -> torch.Tensor:
    """jpegplus.requant.fancy_inverse in torch (differentiable): (…) with an even
    length along `dim` (-1 or -2) → half that length along it."""
    from ..requant import SHARP_TAPS

    r = 2 * SHARP_TAPS
    x = x.movedim(dim, -1)
    p = torch.cat([x[..., :r].flip(-1), x, x[..., -r:].flip(-1)], -1)  # symmetric extension, as numpy's
    m = x.shape[-1]
    out = 0
    for k in range(SHARP_TAPS):
        near, far = p[..., r - 2 * k:r - 2 * k + m:2], p[..., r + 1 + 2 * k:r + 1 + 2 * k + m:2]
        out = out + 2 / 3 * (-1 / 3) ** k * (near + far)
    return out.movedim(-1, dim)


def encoder_levels(c: torch.Tensor, tables: torch.Tensor, deadzone: float, eob: float) -> torch.Tensor:
    """The integer levels jpegplus's encoder gives scaled coefficients c (N, bh, bw, 8, 8)
    with per-sample 8×8 `tables` (N, 8, 8): jpegplus.requant's dead zone and
    end-of-block placement, computed exactly (no gradient; see quantise)."""
    from ..requant import quantise_levels

    flat = c.detach().float().cpu().numpy().reshape(c.shape[0], -1, 64)
    levels = [quantise_levels(f, t, deadzone, eob) for f, t in zip(flat, tables.detach().cpu().numpy())]
    return torch.from_numpy(np.stack(levels)).to(c).reshape(c.shape)


def quantise(c: torch.Tensor, tables: torch.Tensor, deadzone: float, eob: float) -> torch.Tensor:
    """Levels of c in the forward pass, identity gradient (straight-through): libjpeg's
    rounding when deadzone ≤ 0.5 and eob = 0, else the encoder's requantisation."""
    if deadzone <= 0.5 and eob <= 0:
        return ste_round(c)
    return c + (encoder_levels(c, tables, deadzone, eob) - c).detach()


class DiffJPEG(torch.nn.Module):
    """Analytic JPEG round trip. `forward(x, tables)` returns the decoded image,
    the scaled DCT coefficients c = DCT/Q (before rounding) per plane and the
    levels the encoder gives them (straight-through), which the rate model reads.
    tables: (N, 2, 8, 8) luma and chroma quantisers. `deadzone` and `eob` are
    the encoder's requantisation (jpegplus.requant; 0.5 and 0: libjpeg's own),
    `sharp` its chroma share (0: libjpeg's 2×2 averages)."""

    def __init__(self, deadzone: float = 0.5, eob: float = 0.0, sharp: float = 0.0):
        super().__init__()
        self.deadzone, self.eob, self.sharp = deadzone, eob, sharp
        self.register_buffer("dct", dct_matrix(), persistent=False)

    def forward(self, x: torch.Tensor, tables: torch.Tensor):
        ycc = rgb_to_ycbcr(x) - 128
        chroma = F.avg_pool2d(ycc[:, 1:], 2)
        if self.sharp > 0:
            chroma = chroma + self.sharp * (fancy_inverse(fancy_inverse(ycc[:, 1:], -2), -1) - chroma)
        planes = [ycc[:, 0], chroma[:, 0], chroma[:, 1]]
        out, coeffs, levels = [], [], []
        for i, p in enumerate(planes):
            t = tables[:, 0 if i == 0 else 1]
            q = t[:, None, None]  # (N, 1, 1, 8, 8)
            c = self.dct @ to_blocks(p) @ self.dct.T / q
            k = quantise(c, t, self.deadzone, self.eob)
            coeffs.append(c)
            levels.append(k)
            rec = from_blocks(self.dct.T @ (k * q) @ self.dct)
            out.append(rec if i == 0 else fancy_upsample(rec))
        rgb = ycbcr_to_rgb(torch.stack(out, 1) + 128)
        return ste_round(rgb.clamp(0, 255)), coeffs, levels
