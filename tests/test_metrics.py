"""jpegplus.evaluation.metrics: PSNR, MS-SSIM (against pytorch-msssim), SSIMULACRA2
(against the ssimulacra2 package) and BD-rate."""
import math

import numpy as np
import pytest
import torch

from jpegplus.evaluation.metrics import Ssimulacra2Reference, bd_rate, ms_ssim, msssim_db, psnr, ssimulacra2

# Pillow default on Kodak (shared/notes/anchors.md): bpp and PSNR at q10, 50, 90 plus two more points.
RATES = np.array([0.33, 0.55, 0.91, 1.40, 2.35])
PSNRS = np.array([26.7, 29.6, 32.2, 34.8, 38.0])


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PSNR

def test_psnr_of_identical_images_is_inf(fixture_rgb):
    assert psnr(fixture_rgb, fixture_rgb.copy()) == math.inf


def test_psnr_matches_its_definition():
    a = np.zeros((8, 8, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 16  # MSE = 256 / 192
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 * 192 / 256), abs=1e-9)
    assert psnr(a, np.full_like(a, 1)) == pytest.approx(48.1308, abs=1e-4)  # MSE 1


def test_psnr_refuses_different_shapes():
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


# ---------------------------------------------------------------- MS-SSIM

def reference_ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-msssim in float64, with the same edge padding below 161 px."""
    from pytorch_msssim import ms_ssim as torch_ms_ssim

    ta = torch.from_numpy(a.copy()).permute(2, 0, 1)[None].double()
    tb = torch.from_numpy(b.copy()).permute(2, 0, 1)[None].double()
    ph, pw = max(0, 161 - a.shape[0]), max(0, 161 - a.shape[1])
    if ph or pw:
        ta = torch.nn.functional.pad(ta, (0, pw, 0, ph), mode="replicate")
        tb = torch.nn.functional.pad(tb, (0, pw, 0, ph), mode="replicate")
    return float(torch_ms_ssim(ta, tb, data_range=255.0))


@pytest.mark.parametrize("shape", [(128, 192), (175, 163), (203, 261)])  # padded, odd sides at every scale, even
def test_ms_ssim_agrees_with_pytorch_msssim(fixture_rgb, shape):
    rng = np.random.default_rng(1)
    big = np.concatenate([fixture_rgb, fixture_rgb[::-1]], axis=0)
    big = np.concatenate([big, big[:, ::-1]], axis=1)  # 256 × 384
    a = big[: shape[0], : shape[1]]
    b = noisy(a, 6 + 10 * rng.random())
    assert ms_ssim(a, b) == pytest.approx(reference_ms_ssim(a, b), abs=2e-6)


def test_ms_ssim_is_one_for_identical_and_falls_with_noise(fixture_rgb):
    assert ms_ssim(fixture_rgb, fixture_rgb) == pytest.approx(1.0, abs=1e-7)
    light, heavy = ms_ssim(fixture_rgb, noisy(fixture_rgb, 3)), ms_ssim(fixture_rgb, noisy(fixture_rgb, 20))
    assert 0.9 < light < 1.0
    assert 0.0 < heavy < light - 0.05


def test_ms_ssim_is_symmetric(fixture_rgb):
    b = noisy(fixture_rgb, 8)
    assert ms_ssim(fixture_rgb, b) == pytest.approx(ms_ssim(b, fixture_rgb), abs=1e-12)


def test_msssim_db():
    assert msssim_db(0.9) == pytest.approx(10.0)
    assert msssim_db(0.99) == pytest.approx(20.0)
    assert math.isfinite(msssim_db(1.0))


# ---------------------------------------------------------------- BD-rate

def test_bd_rate_of_a_curve_against_itself_is_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("factor, expected", [(0.5, -50.0), (2.0, 100.0), (0.8, -20.0)])
def test_bd_rate_of_a_scaled_curve(factor, expected):
    assert bd_rate(RATES, PSNRS, RATES * factor, PSNRS) == pytest.approx(expected, abs=0.1)


def test_bd_rate_uses_only_the_overlap_and_ignores_order():
    # The test curve is the anchor at half the rate, sampled elsewhere and only up to 33 dB:
    # pchip of log-rate must still give -50 % over the overlap, whatever the point order.
    d = np.array([33.0, 27.5, 30.0, 31.0, 25.0])
    r = 0.5 * np.exp(np.interp(d, PSNRS, np.log(RATES)))
    assert bd_rate(RATES, PSNRS, r, d) == pytest.approx(-50.0, abs=1.0)


def test_bd_rate_without_overlap_is_nan():
    assert math.isnan(bd_rate(RATES, PSNRS, RATES, PSNRS + 20))


def test_bd_rate_interpolates_with_pchip_not_linearly():
    # A curve that is better only in the middle: pchip and linear interpolation differ,
    # the value must match pchip over log-rate computed here.
    from scipy.interpolate import PchipInterpolator

    test_r = RATES * np.array([1.0, 0.7, 0.6, 0.9, 1.0])
    fa, ft = PchipInterpolator(PSNRS, np.log(RATES)), PchipInterpolator(PSNRS, np.log(test_r))
    lo, hi = PSNRS[0], PSNRS[-1]
    expected = (math.exp((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)) - 1) * 100
    assert bd_rate(RATES, PSNRS, test_r, PSNRS) == pytest.approx(expected, abs=1e-9)
    assert -40 < expected < -5


# ---------------------------------------------------------------- SSIMULACRA2

def package_ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """The ssimulacra2 package's own score (it reads files: PNGs in memory)."""
    import io

    from PIL import Image

    ssimulacra2_package = pytest.importorskip("ssimulacra2")

    def png(x):
        buf = io.BytesIO()
        Image.fromarray(x).save(buf, "PNG")
        buf.seek(0)
        return buf

    return float(ssimulacra2_package.compute_ssimulacra2(png(a), png(b)))


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=quality)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize("shape, distortion", [
    ((128, 192), "jpeg5"), ((128, 192), "jpeg40"), ((128, 192), "jpeg90"),  # the fixture, 4 scales before < 8 px
    ((101, 77), "noise"),   # odd sides at every scale
    ((20, 13), "noise"),    # only 2 scales: the package's weighting of fewer scales
    ((256, 384), "jpeg20"),  # 6 scales, transposed shape to catch axis mix-ups
])
def test_ssimulacra2_agrees_with_the_package(fixture_rgb, shape, distortion):
    big = np.concatenate([fixture_rgb, fixture_rgb[::-1]], axis=0)
    big = np.concatenate([big, big[:, ::-1]], axis=1)  # 256 × 384
    a = np.ascontiguousarray(big[: shape[0], : shape[1]])
    b = noisy(a, 9) if distortion == "noise" else jpeg_roundtrip(a, int(distortion[4:]))
    assert ssimulacra2(a, b) == pytest.approx(package_ssimulacra2(a, b), abs=0.02)


def test_ssimulacra2_is_100_for_identical_and_falls_with_distortion(fixture_rgb):
    # 256 × 384: all 6 scales (an image under 256 px a side has fewer, and the
    # package's weighting then gives unusual values: the 192×128 fixture scores 53 at q95)
    big = np.concatenate([fixture_rgb, fixture_rgb[::-1]], axis=0)
    big = np.ascontiguousarray(np.concatenate([big, big[:, ::-1]], axis=1))
    assert ssimulacra2(big, big) == pytest.approx(100.0)
    scores = [ssimulacra2(big, jpeg_roundtrip(big, q)) for q in (95, 60, 20, 5)]
    assert 100 > scores[0] > scores[1] > scores[2] > scores[3]
    assert scores[0] > 75 and scores[3] < 0


def test_ssimulacra2_reference_is_reusable_and_checks_its_input(fixture_rgb):
    ref = Ssimulacra2Reference(fixture_rgb)
    b, c = noisy(fixture_rgb, 5), jpeg_roundtrip(fixture_rgb, 30)
    assert ref.score(b) == ssimulacra2(fixture_rgb, b)
    assert ref.score(c) == ssimulacra2(fixture_rgb, c)
    assert ref.score(b) == ref.score(b)
    with pytest.raises(ValueError):
        ref.score(fixture_rgb[:64])
    with pytest.raises(ValueError):
        Ssimulacra2Reference(fixture_rgb.astype(np.float32))
