"""Every input mode and size, and EXIF orientation, handled as Pillow's JPEG writer does."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import jpegplus
from jpegplus import segment as seg
from jpegplus.errors import EmptyImageError, JpegPlusError, UnsupportedModeError
from jpegplus.evaluation.metrics import psnr

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "val1.png").convert("RGB").crop((0, 0, 64, 48))


def pillow_roundtrip(image: Image.Image, **options) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", **options)
    return Image.open(io.BytesIO(buf.getvalue()))


def has_segment(data: bytes) -> bool:
    return seg.find(Image.open(io.BytesIO(data)).applist) is not None


def as_array(im: Image.Image) -> np.ndarray:
    return np.asarray(im, np.float64)


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "RGBX", "YCbCr"])
def test_writable_modes_decode_to_pillows_mode(photo, mode):
    image = photo.convert(mode)
    data = jpegplus.encode(image, 90)
    assert has_segment(data)
    out = jpegplus.decode(data)
    expected = pillow_roundtrip(image, quality=90)
    assert (out.mode, out.size) == (expected.mode, expected.size) == (("L" if mode in "1L" else "RGB"), photo.size)
    # Same fidelity class as Pillow's own JPEG at this quality: within 3 dB of it, and above 25 dB.
    reference = as_array(image.convert(out.mode))
    ours, theirs = psnr(as_array(out), reference), psnr(as_array(expected), reference)
    assert ours > 25 and ours > theirs - 3, (ours, theirs)


@pytest.mark.parametrize("quality", [10, 90])
def test_black_and_white_is_shown_as_stored(photo, quality):
    # Mode 1 (dithered black and white here) is stored at scale 1 and decoded without PostNet, which learnt from
    # photos and took this crop's plain decode from 41.5 to 36.6 dB at quality 90 (model b6096d0d).
    image = photo.convert("1")
    data = jpegplus.encode(image, quality)
    head = seg.of_bytes(data)
    assert head.as_stored and head.grey and head.scale == 1
    out = jpegplus.decode(data)
    assert np.array_equal(as_array(out), as_array(Image.open(io.BytesIO(data))))
    reference = as_array(image.convert("L"))
    assert psnr(as_array(out), reference) > psnr(as_array(pillow_roundtrip(image, quality=quality)), reference)
    # Grey photos and a forced scale 2 still go through PostNet.
    assert not seg.of_bytes(jpegplus.encode(photo.convert("L"), quality)).as_stored
    forced = seg.of_bytes(jpegplus.encode(image, quality, scale=2))
    assert forced.scale == 2 and not forced.as_stored


def test_cmyk_is_pillows_plain_cmyk_jpeg(photo):
    image = photo.convert("CMYK")
    data = jpegplus.encode(image, 80, keep_metadata=False)
    assert not has_segment(data)
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=80)
    assert data == buf.getvalue()
    # Metadata is kept as for every other mode.
    assert Image.open(io.BytesIO(jpegplus.encode(image, 80, comment=b"cmyk"))).info["comment"] == b"cmyk"
    out = jpegplus.decode(data)
    assert out.mode == "CMYK" and np.array_equal(np.asarray(out), np.asarray(Image.open(buf)))


@pytest.mark.parametrize("mode", ["LA", "P", "RGBA", "I;16", "I", "F", "PA", "La", "RGBa", "HSV", "LAB"])
def test_refused_modes_raise_what_pillow_raises(mode):
    image = Image.new(mode, (20, 10))
    with pytest.raises(OSError) as pillow_error:
        image.save(io.BytesIO(), "JPEG")
    with pytest.raises(UnsupportedModeError) as ours:
        jpegplus.encode(image)
    assert isinstance(ours.value, OSError) and isinstance(ours.value, JpegPlusError)
    assert str(ours.value) == str(pillow_error.value) == f"cannot write mode {mode} as JPEG"


@pytest.mark.parametrize("shape, mode", [((10, 12, 4), "RGBA"), ((10, 12, 2), "LA")])
def test_arrays_with_alpha_are_refused_like_pillow(shape, mode):
    with pytest.raises(UnsupportedModeError, match=f"cannot write mode {mode} as JPEG"):
        jpegplus.encode(np.zeros(shape, np.uint8))


@pytest.mark.parametrize("array", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3, 1), np.uint8),
                                   np.zeros((8, 8, 5), np.uint8)])
def test_arrays_of_other_dtypes_or_shapes(array):
    with pytest.raises(JpegPlusError, match="numpy input"):
        jpegplus.encode(array)


@pytest.mark.parametrize("image", [Image.new("RGB", (0, 5)), Image.new("L", (7, 0)), np.zeros((0, 4, 3), np.uint8),
                                   np.zeros((3, 0), np.uint8)], ids=["rgb0x5", "L7x0", "array0x4", "array3x0"])
def test_empty_images(image):
    with pytest.raises(EmptyImageError, match="cannot write empty image") as info:
        jpegplus.encode(image)
    assert isinstance(info.value, ValueError)


SIZES = [(1, 1), (1, 9), (9, 1), (2, 33), (17, 23), (15, 16), (33, 31), (40, 24)]


@pytest.mark.parametrize("scale", [None, 1, 2])
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_odd_sizes_round_trip(photo, size, scale):
    image = photo.resize(size, Image.BICUBIC)
    data = jpegplus.encode(image, 85, scale=scale)
    head = seg.parse(seg.find(Image.open(io.BytesIO(data)).applist))
    assert (head.width, head.height) == size
    stored = Image.open(io.BytesIO(data)).size
    assert stored == (-(-size[0] // head.scale), -(-size[1] // head.scale))
    out = jpegplus.decode(data)
    assert out.size == size and out.mode == "RGB"
    # Constant-colour check that catches misplaced padding: the mean colour survives.
    assert np.abs(as_array(out).mean((0, 1)) - as_array(image).mean((0, 1))).max() < 12


def test_grey_array_and_single_channel_array_match():
    grey = (np.arange(21 * 13) % 251).astype(np.uint8).reshape(13, 21)
    a, b = jpegplus.encode(grey, 70), jpegplus.encode(grey[:, :, None], 70)
    assert a == b
    assert jpegplus.decode(a).mode == "L" and jpegplus.decode(a).size == (21, 13)


def test_exif_orientation_is_kept_not_applied(photo):
    # Pillow does not rotate on save; the tag travels with the EXIF, so viewers
    # (and ImageOps.exif_transpose) rotate the decoded image exactly as Pillow's.
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = photo.resize((40, 24))
    image.info["exif"] = exif.tobytes()
    out = jpegplus.decode(jpegplus.encode(image, 85, exif=image.info["exif"]))  # given, as Pillow needs it
    pillow = pillow_roundtrip(image, quality=85, exif=image.info["exif"])
    assert out.size == pillow.size == (40, 24)
    assert out.getexif()[0x0112] == pillow.getexif()[0x0112] == 6
    shown, shown_pillow = ImageOps.exif_transpose(out), ImageOps.exif_transpose(pillow)
    assert shown.size == shown_pillow.size == (24, 40)
    assert psnr(as_array(shown), as_array(shown_pillow)) > 25
