"""Image-quality and rate-distortion metrics.

Images are uint8 arrays (H, W, 3) in 0..255 unless said otherwise. PSNR is over
all RGB samples (peak 255), in dB. Rates are bits per original pixel (bpp).
"""
from __future__ import annotations

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images of equal shape; inf when identical."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (0..1) over RGB of two uint8 (H, W, 3) images.

    Uses pytorch-msssim; images smaller than its 5-scale minimum (161 px) are
    reflect-padded up to it, which changes the score only slightly.
    """
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    ta = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(np.ascontiguousarray(b)).permute(2, 0, 1)[None].double()
    h, w = ta.shape[-2:]
    ph, pw = max(0, 161 - h), max(0, 161 - w)
    if ph or pw:
        ta = torch.nn.functional.pad(ta, (0, pw, 0, ph), mode="replicate")
        tb = torch.nn.functional.pad(tb, (0, pw, 0, ph), mode="replicate")
    return float(_ms_ssim(ta, tb, data_range=255.0, size_average=True))


def bd_rate(anchor_rate, anchor_dist, test_rate, test_dist) -> float:
    """Bjøntegaard delta rate of `test` against `anchor`, in percent.

    Rates in any positive unit (bpp); distortions in a higher-is-better unit
    (PSNR dB, or -10·log10(1 - MS-SSIM)). Log-rate is interpolated as a
    function of distortion with monotone pchip and integrated over the
    overlapping distortion range. Negative means the test codec needs fewer bits.
    Returns nan when the curves do not overlap.
    """
    from scipy.interpolate import PchipInterpolator

    def curve(rate, dist):
        rate, dist = np.asarray(rate, float), np.asarray(dist, float)
        order = np.argsort(dist)
        dist, lr = dist[order], np.log(rate[order])
        keep = np.concatenate([[True], np.diff(dist) > 1e-9])
        return dist[keep], lr[keep]

    da, la = curve(anchor_rate, anchor_dist)
    dt, lt = curve(test_rate, test_dist)
    lo, hi = max(da[0], dt[0]), min(da[-1], dt[-1])
    if hi <= lo or len(da) < 2 or len(dt) < 2:
        return float("nan")
    fa, ft = PchipInterpolator(da, la), PchipInterpolator(dt, lt)
    avg = (ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)
    return float((np.exp(avg) - 1) * 100)


def msssim_db(value: float) -> float:
    """MS-SSIM on a decibel scale, -10·log10(1 - value), for BD computations."""
    return float(-10 * np.log10(max(1e-12, 1 - value)))
