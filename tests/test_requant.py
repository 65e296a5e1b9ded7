"""Rate–distortion requantisation (jpegplus/requant.py): libjpeg must keep the coefficients we chose."""
import numpy as np
import pytest

from jpegplus import requant
from jpegplus.jpeg import decode_array, encode_array
from jpegplus.evaluation.metrics import psnr
from jpegplus.tables import jpegplus_tables

TABLES = jpegplus_tables(50, 0.3, 0.6)
OPTIONS = {"deadzone": 0.6, "eob": 0.1}


def luma_fraction(rgb: np.ndarray, table: np.ndarray) -> float:
    """Mean distance of the AC luma coefficients c/Q from the nearest integer (0 = on the lattice)."""
    y = (rgb.astype(np.float32) @ requant.RGB_TO_YCC.T)[..., 0] - 128
    h, w = (s // 8 * 8 for s in y.shape)
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    c = blocks @ requant.DCT2.T / table.reshape(64)
    return float(np.abs(c - np.round(c))[:, 1:].mean())


def test_libjpegs_own_quantiser_returns_the_input(fixture_rgb):
    assert requant.requantise(fixture_rgb, TABLES) is fixture_rgb


def test_dct_matches_the_orthonormal_definition():
    block = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    two_step = requant.DCT @ block @ requant.DCT.T
    np.testing.assert_allclose((block.reshape(1, 64) @ requant.DCT2.T).reshape(8, 8), two_step, atol=1e-5)
    np.testing.assert_allclose(requant.DCT @ requant.DCT.T, np.eye(8), atol=1e-6)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_requantised_image_sits_on_the_quantiser_lattice(fixture_images, index):
    rgb = fixture_images[index]
    before = luma_fraction(rgb, TABLES[0])
    after = luma_fraction(requant.requantise(rgb, TABLES, **OPTIONS), TABLES[0])
    assert after < 0.03 and after < before / 4, (before, after)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_fewer_bytes_for_a_small_loss(fixture_images, index):
    """Measured on the fixtures at internal q50: 0.83–0.86× the bytes for 0.4–0.8 dB."""
    rgb = fixture_images[index]
    plain = encode_array(rgb, TABLES)
    simpler = encode_array(requant.requantise(rgb, TABLES, **OPTIONS), TABLES)
    assert len(simpler) < 0.93 * len(plain)
    assert psnr(decode_array(simpler), rgb) > psnr(decode_array(plain), rgb) - 1.2


def chroma_fraction(rgb: np.ndarray, table: np.ndarray) -> float:
    """luma_fraction for Cr at full resolution (the plane a 4:4:4 file codes)."""
    return luma_fraction(np.repeat(((rgb.astype(np.float32) @ requant.RGB_TO_YCC.T)[..., 2:3] + 128), 3, 2), table)


@pytest.mark.parametrize("index", [0, 1])
def test_444_requantises_full_resolution_chroma_and_libjpeg_keeps_it(fixture_images, index):
    rgb = fixture_images[index]
    out = requant.requantise(rgb, TABLES, **OPTIONS, subsampling="4:4:4")
    assert chroma_fraction(out, TABLES[1]) < min(0.05, chroma_fraction(rgb, TABLES[1]) / 4)
    assert luma_fraction(out, TABLES[0]) < 0.03
    plain = encode_array(rgb, TABLES, subsampling="4:4:4")
    simpler = encode_array(out, TABLES, subsampling="4:4:4")
    assert len(simpler) < 0.93 * len(plain)
    assert psnr(decode_array(simpler), rgb) > psnr(decode_array(plain), rgb) - 1.2
    # and decoding the file gives back (up to 8-bit rounding) the requantised image itself
    assert psnr(decode_array(simpler), out) > 45


def test_shapes_grey_and_odd_sizes_kept(fixture_rgb):
    odd = fixture_rgb[:37, :53]
    out = requant.requantise(odd, TABLES, **OPTIONS)
    assert out.shape == odd.shape and out.dtype == np.uint8
    grey = np.ascontiguousarray(fixture_rgb[..., 1])
    g = requant.requantise(grey, TABLES, **OPTIONS)
    assert g.shape == grey.shape and luma_fraction(np.repeat(g[..., None], 3, 2), TABLES[0]) < 0.03


def test_bands_do_not_change_the_result(fixture_rgb, monkeypatch):
    whole = requant.requantise(fixture_rgb, TABLES, **OPTIONS)
    monkeypatch.setattr(requant, "BAND", 32)
    np.testing.assert_array_equal(requant.requantise(fixture_rgb, TABLES, **OPTIONS), whole)


def fancy_upsampler(n: int) -> np.ndarray:
    """libjpeg's "fancy" 1-D ×2 upsampling as a (2n, n) matrix, edges repeated."""
    u = np.zeros((2 * n, n))
    for i in range(n):
        u[2 * i, i] += 0.75
        u[2 * i, max(i - 1, 0)] += 0.25
        u[2 * i + 1, i] += 0.75
        u[2 * i + 1, min(i + 1, n - 1)] += 0.25
    return u


def test_fancy_inverse_is_the_upsamplers_least_squares_inverse():
    plane = np.cumsum(np.random.default_rng(1).normal(size=(48, 40)), 0).astype(np.float32)
    exact = np.linalg.pinv(fancy_upsampler(24)) @ plane
    got = requant.fancy_inverse(plane, 0)
    assert got.shape == (24, 40)
    step = np.abs(np.diff(plane, axis=0)).mean()
    assert np.abs(got - exact).max() < 0.03 * step  # the filter's truncation and the float32 sums
    np.testing.assert_allclose(requant.fancy_inverse(plane.T, 1), got.T, atol=1e-5)


def test_sharp_chroma_comes_back_closer_through_fancy_upsampling(fixture_images):
    """At fine tables the stored chroma dominates: least-squares chroma beats 2×2 averages.
    Measured on the three fixtures, chroma PSNR at share 0 / 0.5 / 1: 45.8 / 46.6 / 47.1,
    31.6 / 32.8 / 33.2 and 39.2 / 40.9 / 41.7 dB."""
    fine = jpegplus_tables(97, 0.3, 0.6)

    def chroma_psnr(rgb, sharp):
        data = encode_array(requant.requantise(rgb, fine, **OPTIONS, sharp=sharp), fine)
        cbcr = lambda a: (a.astype(np.float32) @ requant.RGB_TO_YCC.T)[..., 1:]
        return 10 * np.log10(255 ** 2 / np.mean((cbcr(decode_array(data)) - cbcr(rgb)) ** 2))

    rgb = fixture_images[0]
    assert chroma_psnr(rgb, 1.0) > chroma_psnr(rgb, 0.5) > chroma_psnr(rgb, 0.0) + 0.3


def test_sharp_chroma_bands_and_444_grey(fixture_rgb, monkeypatch):
    sharp = dict(OPTIONS, sharp=0.5)
    whole = requant.requantise(fixture_rgb, TABLES, **sharp)
    assert (whole != requant.requantise(fixture_rgb, TABLES, **OPTIONS)).any()
    monkeypatch.setattr(requant, "BAND", 32)  # bands read CONTEXT rows around them: seams must not show
    np.testing.assert_array_equal(requant.requantise(fixture_rgb, TABLES, **sharp), whole)
    odd = requant.requantise(fixture_rgb[:37, :53], TABLES, **sharp)
    assert odd.shape == (37, 53, 3) and odd.dtype == np.uint8
    for args in ((fixture_rgb, "4:4:4"), (np.ascontiguousarray(fixture_rgb[..., 1]), "4:2:0")):
        np.testing.assert_array_equal(requant.requantise(args[0], TABLES, **sharp, subsampling=args[1]),
                                      requant.requantise(args[0], TABLES, **OPTIONS, subsampling=args[1]))


def test_zigzag_is_jpegs_scan_order():
    assert requant.ZIGZAG[:10].tolist() == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    assert sorted(requant.ZIGZAG.tolist()) == list(range(64)) and requant.ZIGZAG[-1] == 63


def test_symbol_bits_follow_annex_k():
    levels = np.zeros((64, 1))
    levels[[0, 1, 3, 40], 0] = [5, 1, -3, 1]  # DC, then (run 0, size 1), (run 1, size 2), (run 36, size 1)
    bits = requant.symbol_bits(levels)[:, 0]
    assert bits[0] == 0 and bits[1] == 2 + 1 and bits[3] == 5 + 2  # codes 0x01: 2 bits, 0x12: 5 bits
    assert bits[40] == 2 * 11 + requant.AC_BITS[0x41] + 1  # two ZRLs (11 bits each), then (run 4, size 1)


def test_eob_placement_drops_only_tails_that_do_not_pay():
    c = np.zeros((64, 2), np.float32)  # zig-zag-major: scan position first
    c[0] = 3.0
    c[1] = 4.0                               # cheap and large: kept
    c[60] = 1.0                              # costly isolated ±1 at the end of a long run
    k = np.round(c)
    q = np.full(64, 4.0, np.float32)
    kept = requant.place_eob(c, k.copy(), q, lam=0.0)
    np.testing.assert_array_equal(kept, k)   # λ = 0: bits are free, nothing cut
    cut = requant.place_eob(c, k.copy(), q, lam=10.0)
    assert cut[60, 0] == 0 and cut[1, 0] == 4 and cut[0, 0] == 3


@pytest.mark.parametrize("n_busy", [3, 40])  # under and over BUSY_GATHER's share of 64 blocks
def test_eob_placement_is_the_argmax_of_suffix_gains(n_busy):
    """place_eob's row loops give what the direct definition gives: for each block,
    the first non-zero AC position p maximising λ·bits(p:) − error(p:), if that is > 0."""
    rng = np.random.default_rng(n_busy)
    c = np.zeros((64, 64), np.float32)
    c[:, :n_busy] = rng.laplace(scale=np.linspace(6, 0.2, 64)[:, None], size=(64, n_busy))
    c[0] = rng.normal(0, 20, 64)
    k = np.round(c)
    q = np.linspace(2, 30, 64).astype(np.float32)
    lam = 25.0
    bits = requant.symbol_bits(k)
    gain = np.array([[lam * bits[p:, b].sum() - ((c[p:, b] ** 2 - (c[p:, b] - k[p:, b]) ** 2) * q[p:] ** 2).sum()
                      for b in range(64)] for p in range(64)])
    gain[0], gain[k == 0] = -np.inf, -np.inf
    want = k.copy()
    for b, p in enumerate(gain.argmax(0)):
        if gain[p, b] > 0:
            want[p:, b] = 0
    np.testing.assert_array_equal(requant.place_eob(c, k.copy(), q, lam), want)
    assert (want != k).any()  # the case cuts something
