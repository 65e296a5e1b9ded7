"""FakeCodec imitates the real encoder: its requantisation, straight-through."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from jpegplus.bundle import read_manifest
from jpegplus.evaluation.metrics import psnr
from jpegplus.jpeg import decode_array, encode_array
from jpegplus.models import build
from jpegplus.models.diffjpeg import DiffJPEG

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "val1.png")


@pytest.fixture(scope="module")
def image():
    return np.asarray(Image.open(FIXTURE).convert("RGB"))[:128, :192]


@pytest.mark.parametrize("quality", [20, 60])
def test_core_with_requantisation_matches_the_real_encoder(image, quality):
    family = read_manifest().tables
    tables = family.tables(quality)
    real = decode_array(encode_array(family.requantise(image, tables), tables))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    t = torch.from_numpy(tables[None]).float()
    with torch.no_grad():
        modelled = DiffJPEG(family.deadzone, family.eob, family.sharp)(x, t)[0][0].permute(1, 2, 0).numpy()
        plain = DiffJPEG()(x, t)[0][0].permute(1, 2, 0).numpy()
    assert psnr(modelled, real) > 40
    assert psnr(modelled, real) > psnr(plain, real) + 2  # libjpeg's rounding is a worse model of these files


def test_sharp_chroma_matches_the_encoders(image):
    from jpegplus import requant
    from jpegplus.models.diffjpeg import fancy_inverse

    plane = image[..., 2].astype(np.float32)
    both = lambda f, a: f(f(a, 0 if isinstance(a, np.ndarray) else -2), 1 if isinstance(a, np.ndarray) else -1)
    np.testing.assert_allclose(both(fancy_inverse, torch.from_numpy(plane)).numpy(),
                               both(requant.fancy_inverse, plane), atol=1e-3)
    family = read_manifest().tables
    tables = family.tables(60)
    # share 0.5; at 1 the chroma's overshoot is clipped in RGB on this saturated crop (38.7 dB)
    real = decode_array(encode_array(requant.requantise(image, tables, family.deadzone, family.eob, sharp=0.5), tables))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    t = torch.from_numpy(tables[None]).float()
    with torch.no_grad():
        sharp = DiffJPEG(family.deadzone, family.eob, 0.5)(x, t)[0][0].permute(1, 2, 0).numpy()
        averaged = DiffJPEG(family.deadzone, family.eob)(x, t)[0][0].permute(1, 2, 0).numpy()
    assert psnr(sharp, real) > 40 and psnr(sharp, real) > psnr(averaged, real) + 5  # measured 44.9 against 32.9


def test_levels_are_straight_through(image):
    family = read_manifest().tables
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().requires_grad_()
    t = torch.from_numpy(family.tables(40)[None]).float()
    out, coeffs, levels = DiffJPEG(family.deadzone, family.eob, family.sharp)(x, t)
    assert all(torch.equal(k, k.round()) for k in levels)
    out.sum().backward()
    assert x.grad.abs().sum() > 0


def test_first_fakecodec_config_and_state_are_unchanged():
    net = build("FakeCodec", {"channels": 32, "depth": 3})
    assert net.config == {"channels": 32, "depth": 3}
    assert "rate_edges" not in net.state_dict() and net.rate_weights.shape == (9,)
    banded = build("FakeCodec", {"channels": 8, "depth": 1, "deadzone": 0.6, "eob": 0.1, "rate_bands": 4})
    assert banded.config["rate_bands"] == 4 and banded.rate_weights.shape == (4, 9)
    assert banded.rate_band(torch.tensor([0.0, 0.3, 0.6, 0.99])).tolist() == [0, 1, 2, 3]


def test_annex_k_bits_count_what_the_coder_sends():
    from jpegplus.requant import DC_BITS, EOB_BITS, annex_k_bits

    flat = np.zeros((10, 64), np.int32)
    assert annex_k_bits(flat, chroma=False) == (0.0, 10 * DC_BITS[0][0])  # DC differences of 0: size 0 each
    one = flat.copy()
    one[3, 1] = 1  # one AC coefficient of size 1 right after DC: symbol 0x01 (2 bits) + 1 bit + an EOB
    one[0, 0] = -5  # DC difference −5 then +5: size 3 twice
    ac, dc = annex_k_bits(one, chroma=True)
    assert ac == 2 + 1 + EOB_BITS
    assert dc == 8 * DC_BITS[1][0] + 2 * (DC_BITS[1][3] + 3)


def test_entropy_rate_model_has_its_own_features():
    net = build("FakeCodec", {"channels": 8, "depth": 1, "deadzone": 0.6, "eob": 0.2, "rate_bands": 4, "entropy": True})
    assert net.config["entropy"] and net.rate_weights.shape == (4, 13)
    again = build("FakeCodec", net.config)  # Net(**config) rebuilds it
    again.load_state_dict(net.state_dict())
    image = np.asarray(Image.open(FIXTURE).convert("RGB"))[:64, :64]
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float().requires_grad_()
    net.rate_weights.fill_(1.0)
    bits = net(x, torch.from_numpy(read_manifest().tables.tables(40)[None]).float())["bits"]
    bits.sum().backward()
    assert bits.item() > 0 and x.grad.abs().sum() > 0  # the soft statistics still carry a gradient
