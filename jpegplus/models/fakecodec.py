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

# Per plane group (luma, chroma): 4 soft statistics; plus a per-file constant (the first rate model);
# the entropy model adds per group the Annex K estimate of AC and DC bits from the encoder's levels.
N_RATE_FEATURES = 9
N_ENTROPY_FEATURES = 4


def rate_features(coeffs: list[torch.Tensor], levels: list[torch.Tensor] | None = None,
                  deadzone: float = 0.5, entropy: bool = False) -> torch.Tensor:
    """(N, 9) rate features from the scaled coefficients c = DCT/Q of Y, Cb, Cr
    (each (N, H/8, W/8, 8, 8)) and the levels the encoder gives them; with
    `entropy`, (N, 13).

    Per plane group (luma, chroma): a soft count of coefficients that are sent
    (ramping over |c| = deadzone ± 0.25, so gradients can push one to zero; the
    ones end-of-block placement cut, per `levels`, count nothing), the
    soft-weighted magnitude bits Σ nz·log2(1 + |c|) and its square (long Huffman
    codes for large magnitudes), and a soft count of blocks with any non-zero AC
    (each costs an end-of-block code); plus a per-file constant for headers and
    Huffman tables. `entropy` appends per group the Annex K AC and DC bits of
    the levels (jpegplus.requant.annex_k_bits): exact counts of what the coder
    sees, so the fit follows real sizes far closer (val/ mean absolute error
    5–7 % → 2–3 % per quality band), but constants for the gradient: the soft
    statistics still carry it."""
    threshold = max(deadzone, 0.5)
    if levels is None:
        levels = [None] * len(coeffs)
    feats = []
    for group, group_levels in ((coeffs[:1], levels[:1]), (coeffs[1:], levels[1:])):
        nz = []
        for c, k in zip(group, group_levels):
            ramp = torch.clamp(2 * (c.abs() - threshold) + 0.5, 0, 1)
            sent = None if k is None else ((k.detach() != 0) | (c.detach().abs() < threshold + 0.25)).to(c)
            nz.append(ramp if sent is None else ramp * sent)
        count = sum(z.flatten(1).sum(1) for z in nz)
        logs = [torch.log2(1 + c.abs()) for c in group]
        mag = sum((z * l).flatten(1).sum(1) for z, l in zip(nz, logs))
        mag2 = sum((z * l * l).flatten(1).sum(1) for z, l in zip(nz, logs))
        ac = [z.flatten(-2)[..., 1:].amax(-1) for z in nz]
        eob = sum(a.flatten(1).sum(1) for a in ac)
        feats += [count, mag, mag2, eob]
    feats.append(torch.ones_like(feats[0]))
    if entropy:
        feats += list(entropy_features(levels, feats[0]).unbind(1))
    return torch.stack(feats, 1)


def entropy_features(levels: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """(N, 4) Annex K (AC, DC) bits of luma, then of both chroma planes, from
    the encoder's levels (N, H/8, W/8, 8, 8) per plane; no gradient."""
    from ..requant import annex_k_bits

    rows = []
    for n in range(levels[0].shape[0]):
        row = []
        for group, chroma in ((levels[:1], False), (levels[1:], True)):
            bits = [annex_k_bits(k[n].detach().reshape(-1, 64).cpu().numpy(), chroma) for k in group]
            row += [sum(b[0] for b in bits), sum(b[1] for b in bits)]
        rows.append(row)
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


class FakeCodec(nn.Module):
    """forward(x, tables) → {"x_hat": (N,3,H,W) 0..255, "bits": (N,) estimated file bits}.

    x: float (N, 3, H, W) in 0..255, H and W multiples of 16; tables: (N, 2, 8, 8).
    `deadzone`, `eob` and `sharp` are the encoder's requantisation it imitates
    (0.5, 0 and 0: libjpeg's own rounding and chroma averages, what the first
    FakeCodec modelled). The rate model has one weight vector per band of quantisation level (`rate_bands`; band b holds
    levels from rate_edges[b - 1] up), fitted by training/train_fakecodec.py."""

    def __init__(self, channels: int = 32, depth: int = 3, deadzone: float = 0.5, eob: float = 0.0,
                 rate_bands: int = 1, entropy: bool = False, sharp: float = 0.0):
        super().__init__()
        self.config = {"channels": channels, "depth": depth}
        if (deadzone, eob, rate_bands) != (0.5, 0.0, 1):  # older checkpoints have none of these keys
            self.config.update(deadzone=deadzone, eob=eob, rate_bands=rate_bands)
        if entropy:
            self.config["entropy"] = True
        if sharp:
            self.config["sharp"] = sharp
        self.entropy = entropy
        self.n_rate = N_RATE_FEATURES + N_ENTROPY_FEATURES * entropy
        self.jpeg = DiffJPEG(deadzone, eob, sharp)
        self.correct = Trunk(48 + 1, 48, channels, depth)
        shape = (self.n_rate,) if rate_bands == 1 else (rate_bands, self.n_rate)
        self.register_buffer("rate_weights", torch.zeros(shape))
        self.register_buffer("rate_edges", torch.linspace(0, 1, rate_bands + 1)[1:-1], persistent=rate_bands > 1)

    def rate_band(self, level: torch.Tensor) -> torch.Tensor:
        """Band index (N,) of per-sample quantisation levels (N,)."""
        return torch.bucketize(level, self.rate_edges, right=True)

    def forward(self, x: torch.Tensor, tables: torch.Tensor) -> dict:
        base, coeffs, levels = self.jpeg(x, tables)
        level = torch.log2(tables[:, 0].float()).mean((1, 2)) / 8
        u = F.pixel_unshuffle(base / 255, 4)
        delta = F.pixel_shuffle(self.correct(torch.cat([u, condition_maps(u, level)], 1)), 4)
        x_hat = base + 255 * delta
        weights = self.rate_weights.reshape(-1, self.n_rate)[self.rate_band(level)]  # (N, features)
        bits = (rate_features(coeffs, levels, self.jpeg.deadzone, self.entropy) * weights).sum(1)
        return {"x_hat": x_hat, "bits": bits, "base": base}
