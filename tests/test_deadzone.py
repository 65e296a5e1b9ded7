"""Dead-zone requantisation (jpegplus/deadzone.py): libjpeg must keep the coefficients we chose."""
import numpy as np
import pytest

from jpegplus import deadzone
from jpegplus.jpeg import decode_array, encode_array
from jpegplus.metrics import psnr
from jpegplus.tables import jpegplus_tables

TABLES = jpegplus_tables(50, 0.3, 0.6)


def luma_fraction(rgb: np.ndarray, table: np.ndarray) -> float:
    """Mean distance of the AC luma coefficients c/Q from the nearest integer (0 = on the lattice)."""
    y = (rgb.astype(np.float32) @ deadzone.RGB_TO_YCC.T)[..., 0] - 128
    h, w = (s // 8 * 8 for s in y.shape)
    blocks = y[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    c = blocks @ deadzone.DCT2.T / table.reshape(64)
    return float(np.abs(c - np.round(c))[:, 1:].mean())


def test_half_threshold_is_plain_rounding(fixture_rgb):
    assert deadzone.requantise(fixture_rgb, TABLES, 0.5) is fixture_rgb


def test_dct_matches_the_orthonormal_definition():
    block = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    two_step = deadzone.DCT @ block @ deadzone.DCT.T
    np.testing.assert_allclose((block.reshape(1, 64) @ deadzone.DCT2.T).reshape(8, 8), two_step, atol=1e-5)
    np.testing.assert_allclose(deadzone.DCT @ deadzone.DCT.T, np.eye(8), atol=1e-6)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_requantised_image_sits_on_the_quantiser_lattice(fixture_images, index):
    rgb = fixture_images[index]
    before = luma_fraction(rgb, TABLES[0])
    after = luma_fraction(deadzone.requantise(rgb, TABLES, 0.65), TABLES[0])
    assert after < 0.03 and after < before / 4, (before, after)


@pytest.mark.parametrize("index", [0, 1, 2])
def test_fewer_bytes_for_a_small_loss(fixture_images, index):
    """Measured on the fixtures at internal q50: 0.86–0.88× the bytes for 0.2–0.8 dB."""
    rgb = fixture_images[index]
    plain = encode_array(rgb, TABLES)
    simpler = encode_array(deadzone.requantise(rgb, TABLES, 0.65), TABLES)
    assert len(simpler) < 0.93 * len(plain)
    assert psnr(decode_array(simpler), rgb) > psnr(decode_array(plain), rgb) - 1.2


def test_shapes_grey_and_odd_sizes_kept(fixture_rgb):
    odd = fixture_rgb[:37, :53]
    out = deadzone.requantise(odd, TABLES, 0.65)
    assert out.shape == odd.shape and out.dtype == np.uint8
    grey = np.ascontiguousarray(fixture_rgb[..., 1])
    g = deadzone.requantise(grey, TABLES, 0.65)
    assert g.shape == grey.shape and luma_fraction(np.repeat(g[..., None], 3, 2), TABLES[0]) < 0.03


def test_bands_do_not_change_the_result(fixture_rgb, monkeypatch):
    whole = deadzone.requantise(fixture_rgb, TABLES, 0.65)
    monkeypatch.setattr(deadzone, "BAND", 32)
    np.testing.assert_array_equal(deadzone.requantise(fixture_rgb, TABLES, 0.65), whole)
