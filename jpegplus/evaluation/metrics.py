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


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = 161  # 11-tap window after 4 halvings needs > 160 px


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (size,) in float32, as pytorch-msssim makes it."""
    coords = np.arange(size, dtype=np.float32) - size // 2
    g = np.exp(-(coords**2) / np.float32(2 * sigma**2))
    return g / g.sum()


def ssim_and_cs(x: np.ndarray, y: np.ndarray, win: np.ndarray, peak: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """Mean SSIM and mean contrast-structure per channel, each (C,), of float32
    (H, W, C) images in 0..peak; 'valid' filtering (no padding), like pytorch-msssim.
    Maps are float32 (MS-SSIM within ~1e-7 of float64), means are accumulated in float64."""
    import cv2

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    r = len(win) // 2

    def blur(a):
        out = cv2.sepFilter2D(a, cv2.CV_32F, win, win, borderType=cv2.BORDER_REFLECT)
        return out.reshape(a.shape)[r:-r, r:-r]

    mu1, mu2 = blur(x), blur(y)
    s11 = blur(x * x) - mu1 * mu1
    s22 = blur(y * y) - mu2 * mu2
    s12 = blur(x * y) - mu1 * mu2
    cs_map = (2 * s12 + c2) / (s11 + s22 + c2)
    ssim_map = (2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1) * cs_map
    return ssim_map.mean(axis=(0, 1), dtype=np.float64), cs_map.mean(axis=(0, 1), dtype=np.float64)


def halve(a: np.ndarray) -> np.ndarray:
    """2×2 average pool of (H, W, C); an odd side gets one leading zero row or
    column that counts in the average (torch avg_pool2d with padding=side%2)."""
    h, w = a.shape[:2]
    a = np.pad(a, ((h % 2, 0), (w % 2, 0), (0, 0)))
    return (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (0..1) over RGB of two uint8 (H, W, 3) images, averaged over channels.

    The definition of pytorch-msssim (5 scales, 11-tap Gaussian σ=1.5, valid
    filtering, its weights), computed with OpenCV in float32 because that is
    about 30× faster on the CPU than the torch version in float64; tests check
    that they agree to 2e-6.
    Images smaller than the 5-scale minimum (161 px) are edge-padded up to it
    at the bottom and right, which changes the score only slightly.
    """
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    x = np.asarray(a, np.float32).reshape(a.shape[0], a.shape[1], -1)
    y = np.asarray(b, np.float32).reshape(x.shape)
    ph, pw = max(0, MS_SSIM_MIN_SIDE - x.shape[0]), max(0, MS_SSIM_MIN_SIDE - x.shape[1])
    if ph or pw:
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="edge")
        y = np.pad(y, ((0, ph), (0, pw), (0, 0)), mode="edge")
    win = gaussian_window()
    factors = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim_c, cs_c = ssim_and_cs(x, y, win)
        if level < len(MS_SSIM_WEIGHTS) - 1:
            factors.append(np.maximum(cs_c, 0))
            x, y = halve(x), halve(y)
    factors.append(np.maximum(ssim_c, 0))
    per_channel = np.prod([f**w for f, w in zip(factors, MS_SSIM_WEIGHTS)], axis=0)
    return float(per_channel.mean())


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
