"""Shared building blocks: a plain conv trunk that works at 1/4 resolution, and
the ops whose ONNX export is written differently from torch's own.

Pixel-unshuffle by 4 turns an (N, 3, H, W) image into (N, 48, H/4, W/4), so a
3×3 conv sees a 12×12 pixel window and costs 1/16 per output pixel: this is
what keeps PostNet within 0.5 s per megapixel on two CPU cores.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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


# What the ONNX graphs hold instead of torch's own op, where ONNX Runtime's version of
# the op is slow: the same function (tests/test_runtime.py), different arithmetic.


def _cubic(t: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel at distance t (a = -0.75, as torch's and OpenCV's bicubic)."""
    t = abs(t)
    return ((a + 2) * t - (a + 3)) * t * t + 1 if t <= 1 else ((a * t - 5 * a) * t + 8 * a) * t - 4 * a


# Bicubic ×2 with half-pixel centres: output 2i samples input i − ¼, output 2i+1 samples i + ¼.
# Taps on input pixels i−2 … i+2 for the two phases (rows: even, odd outputs).
_PHASES = ((_cubic(1.75), _cubic(0.75), _cubic(0.25), _cubic(1.25), 0.0),
           (0.0, _cubic(1.25), _cubic(0.25), _cubic(0.75), _cubic(1.75)))


def bicubic_up2(y: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) → (N, C, 2h, 2w): bicubic ×2 as F.interpolate(y, scale_factor=2,
    mode="bicubic", align_corners=False) computes it (edge pixels repeated beyond
    the border). torch runs F.interpolate itself (its fastest); an ONNX export
    gets the same function as two fixed separable convolutions and a pixel
    shuffle, which ONNX Runtime runs far faster than its cubic Resize op (that
    op cost more than the whole PostNet trunk). The two agree within float
    rounding (tests/test_runtime.py)."""
    if torch.onnx.is_in_onnx_export():
        return bicubic_up2_conv(y)
    return F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)


def bicubic_up2_conv(y: torch.Tensor) -> torch.Tensor:
    """bicubic_up2 as fixed convolutions: replicate-pad 2, 5-tap rows then
    5-tap columns per output phase, pixel shuffle. (N, C, h, w) → (N, C, 2h, 2w)."""
    n, c, h, w = y.shape
    taps = torch.tensor(_PHASES, dtype=y.dtype, device=y.device)
    p = F.pad(y.reshape(n * c, 1, h, w), (2, 2, 2, 2), mode="replicate")
    rows = F.conv2d(p, taps.reshape(2, 1, 5, 1))                            # (nc, 2, h, w + 4): even, odd rows
    both = F.conv2d(rows, taps.reshape(2, 1, 1, 5).repeat(2, 1, 1, 1), groups=2)  # (nc, 4, h, w): (row, col) phase
    return F.pixel_shuffle(both, 2).reshape(n, c, 2 * h, 2 * w)


def pixel_unshuffle(x: torch.Tensor, r: int) -> torch.Tensor:
    """F.pixel_unshuffle(x, r): (N, C, H, W) → (N, C·r², H/r, W/r). An ONNX export
    gets it as a stride-r convolution with one-hot weights (exact: each output
    is one input times 1), which ONNX Runtime runs several times faster than
    the 6-D Transpose torch exports."""
    if not torch.onnx.is_in_onnx_export():
        return F.pixel_unshuffle(x, r)
    c = int(x.shape[1])  # a constant of the graph (3): the kernel's shape must be known
    pick = torch.eye(c * r * r, dtype=x.dtype, device=x.device).reshape(c * r * r, c, r, r)
    return F.conv2d(x, pick, stride=r)

