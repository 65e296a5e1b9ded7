"""jpegplus.Filter: a real jpegplus round trip for PIL, numpy and torch inputs."""
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import jpegplus
from jpegplus import bundle as bundle_module
from jpegplus import codec, engine
from jpegplus import segment as seg
from jpegplus.bundle import Ladder
from jpegplus.evaluation.metrics import psnr

FIXTURES = Path(__file__).parent / "fixtures"
QUALITY = 50


@pytest.fixture(scope="module")
def photos():
    return [Image.open(FIXTURES / f"val{i}.png").convert("RGB") for i in (0, 1)]  # 192×128 each


def reference(image, **options) -> np.ndarray:
    """What jpegplus.encode + jpegplus.decode give: uint8 (H, W, 3) or (H, W)."""
    return np.asarray(codec.decode(codec.encode(image, QUALITY, keep_metadata=False, **options)))


def to_tensor(images) -> torch.Tensor:
    """PIL images → float (N, 3, H, W) in 0..1."""
    return torch.stack([torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255 for im in images])


def levels(t: torch.Tensor) -> np.ndarray:
    """float (..., C, H, W) 0..1 → int (..., H, W, C) on 0..255."""
    return (t.float() * 255).round().to(torch.int64).movedim(-3, -1).cpu().numpy()


def test_pil_is_the_codec_round_trip(photos):
    out = jpegplus.Filter(QUALITY)(photos[0])
    assert isinstance(out, Image.Image) and (out.mode, out.size) == ("RGB", (192, 128))
    assert np.array_equal(np.asarray(out), reference(photos[0]))
    assert 20 < psnr(np.asarray(photos[0]), np.asarray(out)) < 60  # changed, but the same picture


def test_pil_modes(photos):
    f = jpegplus.Filter(QUALITY)
    grey = f(photos[0].convert("L"))
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), reference(photos[0].convert("L")))
    rgba = photos[0].convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    out = f(rgba)
    assert out.mode == "RGBA" and out.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    with pytest.raises(ValueError, match="modes"):
        f(photos[0].convert("P"))


@pytest.mark.parametrize("shape", [(128, 192), (128, 192, 1), (128, 192, 3), (128, 192, 4)])
def test_numpy_same_shape_and_dtype(photos, shape):
    rgb = np.asarray(photos[0])
    arr = {(128, 192): rgb[:, :, 0], (128, 192, 1): rgb[:, :, :1], (128, 192, 3): rgb,
           (128, 192, 4): np.dstack([rgb, rgb[:, :, :1]])}[shape]
    out = jpegplus.Filter(QUALITY)(arr)
    assert out.shape == arr.shape and out.dtype == np.uint8
    if arr.ndim == 3 and arr.shape[2] == 4:
        assert np.array_equal(out[:, :, 3], arr[:, :, 3])  # alpha passes through
        assert np.array_equal(out[:, :, :3], reference(rgb))
    elif arr.ndim == 3 and arr.shape[2] == 3:
        assert np.array_equal(out, reference(rgb))
    else:
        assert np.array_equal(out.reshape(128, 192), reference(rgb[:, :, 0]))


@pytest.mark.parametrize("scale", [None, 2])
def test_torch_batch_matches_the_codec_per_image(photos, scale):
    x = to_tensor(photos)
    out = jpegplus.Filter(QUALITY, scale=scale)(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    got = levels(out)
    for i, im in enumerate(photos):
        # One batch through the networks; at most one level of float noise from batching.
        assert np.abs(got[i] - reference(im, scale=scale).astype(np.int64)).max() <= 1


def test_torch_single_image_grey_and_dtypes(photos):
    f = jpegplus.Filter(QUALITY)
    x = to_tensor(photos[:1])[0]
    for dtype in (torch.float64, torch.float16):
        out = f(x.to(dtype))
        assert out.shape == (3, 128, 192) and out.dtype == dtype
    grey = to_tensor([photos[0].convert("L").convert("RGB")])[:, :1]
    out = f(grey)
    assert out.shape == (1, 1, 128, 192)
    assert np.abs(levels(out)[0, :, :, 0] - reference(photos[0].convert("L")).astype(np.int64)).max() <= 1


def switch_lambda(bundle, image, quality) -> float:
    """The λ above which the closed loop picks scale 2 for `image` (inf if never),
    scored as the fold scores it: the plain decode (engine.FOLD_MARGIN is 0, so
    its proxy decides every choice but an exact tie)."""
    rgb = np.asarray(image.convert("RGB"))
    nets = engine.TiledNets(bundle, [rgb])
    cost = []
    for candidate in engine.candidates(bundle.manifest.ladder.row(quality), image.size):
        [data] = engine.encode_candidate(bundle, nets, False, candidate, {})
        rec = engine.plain_image(data, candidate.scale, image.size)
        cost.append((engine.squared_error(rec, rgb), 8 * len(data) / (rgb.shape[0] * rgb.shape[1])))
    (m1, b1), (m2, b2) = cost
    return (m2 - m1) / (b1 - b2) if b1 > b2 else float("inf")


def test_torch_batch_chooses_scale_per_image_like_the_codec(photos, monkeypatch):
    """With a ladder that offers both scales, the batch picks per image what encode picks."""
    real = bundle_module.default_bundle()
    ladder = real.manifest.ladder.to_json()
    ladder["q2"] = [max(1, q) for q in ladder["q1"]]
    ladder["q444"] = [0] * len(ladder["q1"])  # scale 1 at 4:2:0 against scale 2 alone

    def with_ladder(lad: dict):
        return dataclasses.replace(real, manifest=dataclasses.replace(real.manifest, ladder=Ladder.from_json(lad)))

    two_scales = with_ladder(ladder)
    flat = Image.new("RGB", (192, 128), (90, 120, 200))  # halving is nearly free here
    images = [photos[1], flat]
    # a λ between the two images' switch points, so they need different scales
    lam_photo, lam_flat = (switch_lambda(two_scales, im, QUALITY) for im in images)
    assert lam_flat < lam_photo
    ladder["lambda"] = [float(np.sqrt(max(lam_flat, 1e-3) * lam_photo))] * len(ladder["q1"])
    two_scales = with_ladder(ladder)
    monkeypatch.setattr(bundle_module, "default_bundle", lambda: two_scales)  # the one place to patch
    chosen = [seg.parse(seg.find(Image.open(io.BytesIO(codec.encode(im, QUALITY))).applist)).scale for im in images]
    assert chosen == [1, 2]  # the premise: the two images need different scales
    got = levels(jpegplus.Filter(QUALITY)(to_tensor(images)))
    for i, im in enumerate(images):
        assert np.abs(got[i] - reference(im).astype(np.int64)).max() <= 1


def test_bundle_is_used_for_every_input_type(photos):
    """Filter(bundle=...) takes weights as encode does: here a ladder that codes quality 50 at internal 95."""
    real = bundle_module.default_bundle()
    ladder = real.manifest.ladder.to_json()
    ladder["q1"], ladder["q2"], ladder["q444"] = [95] * 100, [0] * 100, [0] * 100
    fine = dataclasses.replace(real, manifest=dataclasses.replace(real.manifest, ladder=Ladder.from_json(ladder)))
    f = jpegplus.Filter(QUALITY, bundle=fine)
    expected = np.asarray(codec.decode(codec.encode(photos[0], QUALITY, bundle=fine, keep_metadata=False), bundle=fine))
    assert np.array_equal(np.asarray(f(photos[0])), expected)
    assert np.abs(levels(f(to_tensor(photos[:1])))[0] - expected.astype(np.int64)).max() <= 1
    original = np.asarray(photos[0])
    assert psnr(original, expected) > psnr(original, reference(photos[0])) + 3  # really the other ladder
    assert repr(f) == f"Filter(quality=50, bundle={real!r})" and real.model_id in repr(real)


def test_compose_step_and_repr(photos):
    f = jpegplus.Filter(QUALITY, scale=2)
    assert repr(f) == "Filter(quality=50, scale=2)"
    pipeline = [lambda im: im.rotate(180), f, np.asarray]  # what torchvision's Compose does
    x = photos[0]
    for step in pipeline:
        x = step(x)
    assert x.shape == (128, 192, 3)


def test_errors():
    with pytest.raises(ValueError):
        jpegplus.Filter(0)
    with pytest.raises(ValueError):
        jpegplus.Filter(75, scale=3)
    f = jpegplus.Filter()
    with pytest.raises(TypeError):
        f(torch.zeros(3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError):
        f(torch.zeros(2, 16, 16))
    with pytest.raises(TypeError):
        f(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(TypeError):
        f("not an image")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_batch_stays_on_gpu(photos):
    x = to_tensor(photos)
    f = jpegplus.Filter(QUALITY)
    out = f(x.cuda())
    assert out.is_cuda and out.shape == x.shape
    assert np.abs(levels(out) - levels(f(x))).max() <= 2
