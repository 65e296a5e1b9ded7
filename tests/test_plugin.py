"""jpegplus.register(): Pillow reads and writes jpegplus files under "JPEG".

The plain-JPEG cases follow upstream Pillow's Tests/test_file_jpeg.py (round
trip, quality ordering, EXIF/ICC/dpi/comment, progressive, optimize,
subsampling, qtables, MPO) with jpegplus registered.
"""
import io
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin, MpoImagePlugin

import jpegplus
from jpegplus import plugin
from jpegplus import segment as seg
from jpegplus.jpeg import pillow_only
from jpegplus.evaluation.metrics import psnr

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def photo():
    return Image.open(FIXTURES / "val1.png").convert("RGB")  # 192×128


@pytest.fixture
def registered():
    plugin.register()
    try:
        yield
    finally:
        plugin.unregister()


def pillow_bytes(im, **options) -> bytes:
    """What Pillow's own JPEG writer makes (jpegplus not registered)."""
    assert not plugin.is_registered()
    buf = io.BytesIO()
    im.save(buf, "JPEG", **options)
    return buf.getvalue()


def save(im, **options) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **options)
    return buf.getvalue()


def roundtrip(im, **options):
    """Upstream's helper: save to memory with Pillow's API, open again."""
    data = save(im, **options)
    out = Image.open(io.BytesIO(data))
    out.bytes = len(data)
    return out


def pillow_psnr(im, quality=75) -> float:
    """PSNR (dB) of Pillow's own JPEG of `im` at `quality`: the bar jpegplus is calibrated against."""
    buf = io.BytesIO()
    with pillow_only():
        im.save(buf, "JPEG", quality=quality)
        decoded = Image.open(io.BytesIO(buf.getvalue())).convert(im.mode)
    return psnr(np.asarray(im), np.asarray(decoded))


def has_segment(data: bytes) -> bool:
    return seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(data)).applist) is not None


# ---------------------------------------------------------------- registration

def test_import_registers_nothing_and_loads_no_torch(tmp_path, photo):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpegplus.encode(photo, 60, scale=2))
    code = ("import sys, jpegplus, jpegplus.plugin; from PIL import Image, JpegImagePlugin; "
            f"im = Image.open({str(path)!r}); "
            "assert im.size == (96, 64), im.size; "
            "assert Image.OPEN['JPEG'][0] is JpegImagePlugin.jpeg_factory; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_save_by_extension_and_open_original_size(registered, tmp_path, photo):
    path = tmp_path / "x.jpg"
    photo.save(path, quality=60, scale=2)
    assert has_segment(path.read_bytes())
    with Image.open(path) as im:
        assert isinstance(im, JpegImagePlugin.JpegImageFile)
        assert im.format == "JPEG" and im.get_format_mimetype() == "image/jpeg"
        assert (im.size, im.mode) == ((192, 128), "RGB")
        assert im.jpegplus_segment.scale == 2
        im.load()
        assert im.size == (192, 128)
        # The same pixels as jpegplus.decode gives.
        assert np.array_equal(np.asarray(im), np.asarray(jpegplus.decode(path.read_bytes())))
    with Image.open(path, formats=["JPEG"]) as im:
        assert im.size == (192, 128)


def test_unregister_restores_pillow(tmp_path, photo):
    plugin.register()
    photo.save(tmp_path / "a.jpg", scale=2)
    plugin.unregister()
    assert Image.OPEN["JPEG"][0] is JpegImagePlugin.jpeg_factory
    assert Image.SAVE["JPEG"] is JpegImagePlugin._save
    with Image.open(tmp_path / "a.jpg") as im:
        assert type(im) is JpegImagePlugin.JpegImageFile and im.size == (96, 64)
    photo.save(tmp_path / "b.jpg")
    assert not has_segment((tmp_path / "b.jpg").read_bytes())
    plugin.unregister()  # a second call is harmless


def test_defaults_apply_and_save_options_win(photo):
    plugin.register(quality=20)
    try:
        low, high = save(photo), save(photo, quality=90)
    finally:
        plugin.unregister()
    assert has_segment(low) and has_segment(high)
    assert len(low) < len(high)


def test_codec_works_while_registered(registered, photo):
    data = jpegplus.encode(photo, 60, scale=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no SegmentWarning from decoding twice
        out = jpegplus.decode(data)
    plugin.unregister()
    assert np.array_equal(np.asarray(out), np.asarray(jpegplus.decode(data)))


# ---------------------------------------------------------------- jpegplus images behave

@pytest.fixture(scope="module")
def half_file(photo):
    return jpegplus.encode(photo, 60, scale=2)


def test_thumbnail_uses_draft(registered, half_file, photo):
    with Image.open(io.BytesIO(half_file)) as im:
        im.thumbnail((48, 32))
        assert im.size == (48, 32)
        thumb = np.asarray(im)
    reference = np.asarray(photo.resize((48, 32), Image.Resampling.BICUBIC))
    assert psnr(reference, thumb) > 22  # a reduced picture of the same scene

    with Image.open(io.BytesIO(half_file)) as im:
        assert im.draft("RGB", (150, 100)) is None  # less than 2× smaller: full PostNet decode
        assert im.size == (192, 128)
        mode, box = im.draft("RGB", (48, 32))
        # The stored 96×64 JPEG decoded at 1/2 by libjpeg; the box covers the original picture.
        assert im.size == (48, 32) and box == (0, 0, 48.0, 32.0)


def test_copy_convert_pickle(registered, half_file):
    im = Image.open(io.BytesIO(half_file))
    ref = np.asarray(jpegplus.decode(half_file))
    clone = pickle.loads(pickle.dumps(im))  # pickling loads the image first
    assert clone.size == (192, 128) and np.array_equal(np.asarray(clone), ref)
    assert np.array_equal(np.asarray(im.copy()), ref)
    grey = im.convert("L")
    assert grey.size == (192, 128)
    assert np.array_equal(np.asarray(grey), np.asarray(Image.fromarray(ref).convert("L")))


def test_grey_roundtrip(registered, photo):
    im = roundtrip(photo.convert("L"), quality=70)
    assert (im.mode, im.size) == ("L", (192, 128))
    im.load()
    grey = photo.convert("L")
    assert psnr(np.asarray(grey), np.asarray(im)) > pillow_psnr(grey, 70) - 1.5


def test_damaged_file_opens_as_plain_jpeg(registered, half_file):
    data = bytearray(half_file)
    data[-20] ^= 0xFF  # inside the entropy-coded data
    with pytest.warns(jpegplus.SegmentWarning):
        im = Image.open(io.BytesIO(bytes(data)))
    assert type(im) is JpegImagePlugin.JpegImageFile and im.size == (96, 64)


# ---------------------------------------------------------------- plain JPEGs: exactly Pillow

@pytest.fixture(scope="module")
def plain_jpeg(photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 3
    return pillow_bytes(photo, quality=80, icc_profile=icc, exif=exif, comment=b"plain", dpi=(72, 72))


def open_plain(data: bytes):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_plain_jpeg_identical_to_pillow(plain_jpeg):
    native = open_plain(plain_jpeg)
    plugin.register()
    try:
        ours = open_plain(plain_jpeg)
    finally:
        plugin.unregister()
    assert type(ours) is JpegImagePlugin.JpegImageFile
    assert ours.tobytes() == native.tobytes()
    assert ours.info == native.info and ours.applist == native.applist
    assert ours.size == native.size and ours.mode == native.mode


def test_mpo_still_works(photo):
    buf = io.BytesIO()
    photo.save(buf, "MPO", save_all=True, append_images=[photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    native = Image.open(io.BytesIO(buf.getvalue()))
    native.seek(1)
    plugin.register()
    try:
        im = Image.open(io.BytesIO(buf.getvalue()))
        assert isinstance(im, MpoImagePlugin.MpoImageFile) and im.format == "MPO" and im.n_frames == 2
        im.seek(1)
        assert im.tobytes() == native.tobytes()
    finally:
        plugin.unregister()


# ---------------------------------------------------------------- saving: upstream's cases

def test_round_trip(registered, photo):
    im = roundtrip(photo)
    assert (im.mode, im.size, im.format) == ("RGB", (192, 128), "JPEG")
    im.load()
    assert psnr(np.asarray(photo), np.asarray(im)) > pillow_psnr(photo) - 1.5


def test_quality_ordering(registered, photo):
    sizes = [roundtrip(photo, quality=q).bytes for q in (10, 50, 75, 95)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert roundtrip(photo).bytes == roundtrip(photo, quality=75).bytes  # 75 is the default


def test_metadata_survive(registered, photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    exif.get_ifd(0x8769)[0xA002] = 999
    im = roundtrip(photo, scale=2, icc_profile=icc, exif=exif, dpi=(200, 200), comment="hello")
    assert im.info["icc_profile"] == icc
    assert im.info["comment"] == b"hello"
    assert im.info["dpi"] == (200, 200)
    assert im.getexif()[0x0112] == 8
    assert im.getexif().get_ifd(0x8769)[0xA002] == 192  # full width, not the stored 96

    # Re-saving an opened file keeps its metadata (im.info is copied), unless told not to.
    again = roundtrip(im)
    assert again.info["icc_profile"] == icc and again.getexif()[0x0112] == 8
    bare = roundtrip(im, keep_metadata=False)
    assert "icc_profile" not in bare.info and "exif" not in bare.info


def test_optimize_is_honoured_by_jpegplus(registered, photo):
    plain, optimized = save(photo), save(photo, optimize=True)
    assert has_segment(optimized)
    assert optimized == plain  # jpegplus always writes optimised Huffman tables


@pytest.mark.parametrize("options", [
    {"progressive": True},
    {"subsampling": "4:4:4"},
    {"subsampling": 1},
    {"qtables": "web_low"},
    {"qtables": [list(range(1, 65))]},
    {"quality": "web_high"},
    {"quality": 0},
    {"restart_marker_blocks": 4},
    {"streamtype": 2},
    {"keep_rgb": True},
])
def test_bitstream_options_fall_back_to_pillow(photo, options):
    expected = pillow_bytes(photo, **options)
    plugin.register()
    try:
        assert save(photo, **options) == expected
    finally:
        plugin.unregister()


def test_progressive_info(registered, photo):
    im = roundtrip(photo, progressive=True)
    assert im.info.get("progressive") and im.info.get("progression")
    assert not roundtrip(photo).info.get("progressive")


def test_quality_keep_falls_back(photo, plain_jpeg):
    native_src = Image.open(io.BytesIO(plain_jpeg))
    expected = pillow_bytes(native_src, quality="keep")
    plugin.register()
    try:
        src = Image.open(io.BytesIO(plain_jpeg))
        assert save(src, quality="keep") == expected
    finally:
        plugin.unregister()


def test_subsampling_420_stays_jpegplus(registered, photo):
    assert has_segment(save(photo, subsampling="4:2:0"))


def test_modes_follow_pillow(registered, photo):
    with pytest.raises(OSError, match="cannot write mode RGBA as JPEG"):
        save(photo.convert("RGBA"))
    cmyk = photo.convert("CMYK")
    data = save(cmyk)
    plugin.unregister()
    assert data == pillow_bytes(cmyk)
