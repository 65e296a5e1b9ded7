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


# ---------------------------------------------------------------- SSIMULACRA2

# The definition is that of the `ssimulacra2` package (PyPI, a Python port of
# libjxl's tool): sRGB → linear → XYB (made positive), 6 scales of 2×2 box
# downsampling in linear RGB, at each an SSIM map and an edge-difference map
# from Gaussian blurs (σ 1.5, 11 taps, zero rows above and below, mirrored
# columns), pooled by mean and 4-norm and weighted into a 0..100 score.
SSIMULACRA2_SCALES = 6
SSIMULACRA2_C2 = 0.0009
_OPSIN = np.array([[0.30, 0.622, 0.078], [0.23, 0.692, 0.078],
                   [0.24342268924547819, 0.20476744424496821, 1.0 - 0.24342268924547819 - 0.20476744424496821]])
_OPSIN_BIAS = 0.0037930732552754493
_OPSIN_T = _OPSIN.T.astype(np.float32)
# Msssim.score's 108 weights: 3 channels × 6 scales × 2 norms × (ssim, artifact, detail lost)
SSIMULACRA2_WEIGHTS = (
    0.0, 0.0007376606707406586, 0.0, 0.0, 0.0007793481682867309, 0.0, 0.0, 0.0004371155730107379, 0.0,
    1.1041726426657346, 0.00066284834129271, 0.00015231632783718752, 0.0, 0.0016406437456599754, 0.0,
    1.8422455520539298, 11.441172603757666, 0.0, 0.0007989109436015163, 0.000176816438078653, 0.0,
    1.8787594979546387, 10.94906990605142, 0.0, 0.0007289346991508072, 0.9677937080626833, 0.0,
    0.00014003424285435884, 0.9981766977854967, 0.00031949755934435053, 0.0004550992113792063, 0.0, 0.0,
    0.0013648766163243398, 0.0, 0.0, 0.0, 0.0, 0.0, 7.466890328078848, 0.0, 17.445833984131262,
    0.0006235601634041466, 0.0, 0.0, 6.683678146179332, 0.00037724407979611296, 1.027889937768264,
    225.20515300849274, 0.0, 0.0, 19.213238186143016, 0.0011401524586618361, 0.001237755635509985,
    176.39317598450694, 0.0, 0.0, 24.43300999870476, 0.28520802612117757, 0.0004485436923833408, 0.0, 0.0, 0.0,
    34.77906344483772, 44.835625328877896, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0008680556573291698, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0005313191874358747, 0.0, 0.00016533814161379112, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0004179171803251336, 0.0017290828234722833, 0.0, 0.0020827005846636437, 0.0, 0.0, 8.826982764996862,
    23.19243343998926, 0.0, 95.1080498811086, 0.9863978034400682, 0.9834382792465353, 0.0012286405048278493,
    171.2667255897307, 0.9807858872435379, 0.0, 0.0, 0.0, 0.0005130064588990679, 0.0, 0.00010854057858411537,
)


def _srgb_lut() -> np.ndarray:
    v = np.arange(256, dtype=np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


_SRGB_TO_LINEAR = _srgb_lut()


def _gauss_kernel(sigma: float = 1.5, truncate: float = 3.33) -> np.ndarray:
    """scipy.ndimage.gaussian_filter's 1-D kernel (radius int(truncate·σ + 0.5))."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * x * x / sigma**2)
    return (k / k.sum()).astype(np.float32)


_SSIMULACRA2_KERNEL = _gauss_kernel()
_ONE = np.ones(1, np.float32)


def _blur(a: np.ndarray) -> np.ndarray:
    """The package's blur, in the image's own orientation: zeros beyond the left
    and right columns, mirrored rows (scipy 'reflect'). (The package works on
    the transposed image, (W, H, 3), and pads its first axis with zeros.)"""
    import cv2

    k = _SSIMULACRA2_KERNEL
    a = cv2.sepFilter2D(a, cv2.CV_32F, k, _ONE, borderType=cv2.BORDER_CONSTANT)
    return cv2.sepFilter2D(a, cv2.CV_32F, _ONE, k, borderType=cv2.BORDER_REFLECT).reshape(a.shape)


def _xyb_positive(linear: np.ndarray) -> np.ndarray:
    """Linear RGB (H, W, 3) float32 → XYB made positive (the package's MakePositiveXYB)."""
    import cv2

    mixed = np.maximum(linear @ _OPSIN_T + np.float32(_OPSIN_BIAS), 0)
    mixed = cv2.pow(mixed, 1 / 3).reshape(mixed.shape)  # cube root, ~10× np.cbrt; within 2e-7 of it
    mixed -= np.float32(np.cbrt(_OPSIN_BIAS))
    m0, m1, m2 = mixed[..., 0], mixed[..., 1], mixed[..., 2]
    y = 0.5 * (m0 + m1)
    return np.stack([7.0 * (m0 - m1) + 0.42, y + 0.01, (m2 - y) + 0.55], axis=2)


def _box_half(a: np.ndarray) -> np.ndarray:
    """2×2 mean; an odd last row or column averages only the pixels it has (edge repeat)."""
    h, w = a.shape[:2]
    a = np.pad(a, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return 0.25 * (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2])


def _pool(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel (3,): the mean and the 4-norm mean of a non-negative (H, W, 3) map (sums in float64)."""
    import cv2

    d4 = d * d
    d4 *= d4
    return np.array(cv2.mean(d)[:3]), np.array(cv2.mean(d4)[:3]) ** 0.25


class Ssimulacra2Reference:
    """SSIMULACRA2 against one original, its per-scale terms computed once.

    score(distorted) gives what `ssimulacra2.compute_ssimulacra2` gives for the
    two images (tests check agreement to 0.02 points), in float32 with OpenCV
    blurs, 10-20× faster; keeping the original's blurs saves about a third more
    when one original is scored against many decodes, as the benchmark does.
    Like the package, an image under 256 px a side has fewer than 6 scales (a
    scale needs 8 px), and the package's weighting then gives unusual values:
    compare scores of images of one size only.
    """

    def __init__(self, rgb: np.ndarray):
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"SSIMULACRA2 takes uint8 RGB (H, W, 3), got {rgb.dtype} {rgb.shape}")
        self.shape = rgb.shape
        self.scales = []
        linear = _SRGB_TO_LINEAR[rgb]
        for scale in range(SSIMULACRA2_SCALES):
            if linear.shape[0] < 8 or linear.shape[1] < 8:
                break
            x = _xyb_positive(linear)
            self.scales.append((x, _blur(x), _blur(x * x)))
            if scale < SSIMULACRA2_SCALES - 1:
                linear = _box_half(linear)

    def score(self, distorted: np.ndarray) -> float:
        distorted = np.asarray(distorted)
        if distorted.shape != self.shape or distorted.dtype != np.uint8:
            raise ValueError(f"shape mismatch: {self.shape} vs {distorted.shape} ({distorted.dtype})")
        linear = _SRGB_TO_LINEAR[distorted]
        terms = []  # per scale: ssim (mean, 4-norm), artifact (mean, 4-norm), detail lost (mean, 4-norm); each (3,)
        for i, (x1, mu1, s11) in enumerate(self.scales):
            x2 = _xyb_positive(linear)
            mu2, s22, s12 = _blur(x2), _blur(x2 * x2), _blur(x1 * x2)
            m12 = mu1 * mu2
            num_m = 1.0 - (mu1 - mu2) ** 2
            num_s = 2.0 * (s12 - m12) + SSIMULACRA2_C2
            denom_s = (s11 - mu1 * mu1) + (s22 - mu2 * mu2) + SSIMULACRA2_C2
            ssim = _pool(np.maximum(1.0 - num_m * num_s / denom_s, 0.0))
            d1 = (1.0 + np.abs(x2 - mu2)) / (1.0 + np.abs(x1 - mu1)) - 1.0
            terms.append((ssim, _pool(np.maximum(d1, 0.0)), _pool(np.maximum(-d1, 0.0))))
            if i < len(self.scales) - 1:
                linear = _box_half(linear)
        return ssimulacra2_score(terms)


def ssimulacra2_score(terms) -> float:
    """The package's weighting (Msssim.score) of per-scale pooled terms into 0..100."""
    w = SSIMULACRA2_WEIGHTS
    total, i = 0.0, 0
    for c in range(3):
        for ssim, artifact, detail in terms:
            for n in range(2):
                total += w[i] * abs(ssim[n][c]) + w[i + 1] * abs(artifact[n][c]) + w[i + 2] * abs(detail[n][c])
                i += 3
    s = total * 0.9562382616834844
    s = 2.326765642916932 * s - 0.020884521182843837 * s * s + 6.248496625763138e-05 * s * s * s
    return float(100.0 - 10.0 * s ** 0.6276336467831387) if s > 0 else 100.0


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """SSIMULACRA2 (higher is better, 100 = identical, about 90 visually lossless,
    30-50 heavily compressed) of distorted `b` against original `a`, both uint8 RGB."""
    return Ssimulacra2Reference(a).score(b)
