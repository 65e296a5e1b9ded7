"""jpegplus.register(): Pillow reads and writes jpegplus files under "JPEG".

The cases follow upstream Pillow's Tests/test_file_jpeg.py and
Tests/test_image_draft.py (round trip, quality ordering, the metadata rule,
EXIF/ICC/XMP/dpi/comment, progressive, optimize, separate tables, subsampling,
qtables, draft sizes and modes, MPO) with jpegplus registered, making the same
assertions of jpegplus files that Pillow makes of its own.
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

def test_black_and_white_opens_as_stored(photo, registered):
    # A mode-1 image that jpegplus.encode wrote shown-as-stored (the plugin leaves mode 1 to Pillow's writer):
    # opening it through the plugin gives the stored image itself (no PostNet), in Pillow's mode for it.
    data = jpegplus.encode(photo.convert("1"), 80)
    assert seg.of_bytes(data).as_stored
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "L"
        out = np.asarray(im)
    with pillow_only():
        assert np.array_equal(out, np.asarray(Image.open(io.BytesIO(data))))


@pytest.fixture(scope="module")
def half_file(photo):
    return jpegplus.encode(photo, 60, scale=2)


# Pillow's Tests/test_image_draft.py table: (requested size, size after draft) for a 435×361 JPEG.
PILLOW_DRAFT_SIZES = [
    ((2048, 2048), (435, 361)), ((435, 361), (435, 361)),
    ((218, 128), (435, 361)), ((217, 128), (218, 181)), ((109, 64), (218, 181)), ((108, 64), (109, 91)),
    ((55, 32), (109, 91)), ((54, 32), (55, 46)), ((27, 16), (55, 46)),
    ((128, 181), (435, 361)), ((128, 180), (218, 181)), ((64, 91), (218, 181)), ((64, 90), (109, 91)),
    ((32, 46), (109, 91)), ((32, 45), (55, 46)), ((16, 22), (55, 46)),
]


@pytest.fixture(scope="module")
def draft_files(photo):
    """A 435×361 picture: jpegplus files at scale 1 and 2, and Pillow's own JPEG."""
    im = photo.resize((435, 361))
    return {1: jpegplus.encode(im, 60, scale=1), 2: jpegplus.encode(im, 60, scale=2), "plain": pillow_bytes(im)}


def draft_roundtrip(data: bytes, mode, size):
    """Upstream's helper and its assertions on the returned box."""
    im = Image.open(io.BytesIO(data))
    mode_out, box = im.draft(mode, size)
    scale, _ = im.decoderconfig
    assert box[:2] == (0, 0)
    assert (im.width - scale) < box[2] <= im.width
    assert (im.height - scale) < box[3] <= im.height
    return im, (mode_out, box)


@pytest.mark.parametrize("requested, expected", PILLOW_DRAFT_SIZES)
def test_draft_sizes_follow_pillow(registered, draft_files, requested, expected):
    pillow, pillow_result = draft_roundtrip(draft_files["plain"], None, requested)
    for scale in (1, 2):
        im, result = draft_roundtrip(draft_files[scale], None, requested)
        assert isinstance(im, plugin.JpegPlusImageFile)
        assert result == pillow_result  # the same mode and box as Pillow's for a plain 435×361 JPEG
        assert im.size == expected
        if expected != (435, 361):  # the full size runs PostNet: covered below
            im.load()
            assert im.size == pillow.size == expected and im.mode == "RGB"


@pytest.mark.parametrize("in_mode, req_mode, out_mode", [
    ("RGB", "1", "RGB"), ("RGB", "L", "L"), ("RGB", "RGB", "RGB"), ("RGB", "YCbCr", "YCbCr"),
    ("L", "1", "L"), ("L", "L", "L"), ("L", "RGB", "L"), ("L", "YCbCr", "L"),
])
@pytest.mark.parametrize("size", [None, (24, 16)])
def test_draft_modes_follow_pillow(registered, photo, in_mode, req_mode, out_mode, size):
    data = jpegplus.encode(photo.convert(in_mode).resize((64, 48)), 60)
    im, (mode, _) = draft_roundtrip(data, req_mode, size)
    assert mode == im.mode == out_mode
    im.load()
    assert im.mode == out_mode and im.size == ((64, 48) if size is None else (32, 24))


def test_draft_without_reduction_is_the_full_decode(registered, half_file):
    full = np.asarray(jpegplus.decode(half_file))
    with Image.open(io.BytesIO(half_file)) as im:
        assert im.draft("RGB", (150, 100)) == ("RGB", (0, 0, 192, 128))  # less than 2× smaller
        assert im.size == (192, 128)
        assert np.array_equal(np.asarray(im), full)
    with Image.open(io.BytesIO(half_file)) as im:
        assert im.draft("L", None) == ("L", (0, 0, 192, 128))
        assert np.array_equal(np.asarray(im), np.asarray(Image.fromarray(full).convert("L")))


def test_second_draft_returns_none(registered, half_file):
    with Image.open(io.BytesIO(half_file)) as im:
        assert im.draft(None, (96, 64)) == ("RGB", (0, 0, 96, 64))
        assert im.draft(None, (48, 32)) is None  # Pillow protects from a second call
        im.load()
        assert im.size == (96, 64)


def test_thumbnail_is_the_stored_image_without_postnet(registered, half_file, photo, monkeypatch):
    from jpegplus import engine

    def no_postnet(*args, **kwargs):
        raise AssertionError("thumbnail() ran PostNet")

    monkeypatch.setattr(engine, "post_image", no_postnet)
    with Image.open(io.BytesIO(half_file)) as im:
        im.thumbnail((48, 32))
        assert im.size == (48, 32)
        thumb = np.asarray(im)
    # The reduction (2) equals the file's scale: the stored 96×64 JPEG is the reduced image,
    # so the thumbnail is exactly Pillow's thumbnail of the stored JPEG.
    plugin.unregister()
    with Image.open(io.BytesIO(half_file)) as stored:
        assert stored.size == (96, 64)
        stored.thumbnail((48, 32))
        assert np.array_equal(thumb, np.asarray(stored))
    reference = np.asarray(photo.resize((48, 32), Image.Resampling.BICUBIC))
    assert psnr(reference, thumb) > 22  # a reduced picture of the same scene


def test_thumbnail_of_a_scale_1_file_is_pillows(photo):
    # At scale 1 the stored image is the original size: draft() reduces it exactly as Pillow's own draft.
    data = jpegplus.encode(photo, 60, scale=1)
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((48, 32))
        expected = np.asarray(im)
    plugin.register()
    try:
        with Image.open(io.BytesIO(data)) as im:
            assert isinstance(im, plugin.JpegPlusImageFile)
            im.thumbnail((48, 32))
            assert np.array_equal(np.asarray(im), expected)
    finally:
        plugin.unregister()


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


@pytest.fixture(scope="module")
def rich(photo):
    """The photo with every kind of metadata in its info, as an opened JPEG would have."""
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    im = photo.copy()
    im.info.update(icc_profile=icc, exif=exif.tobytes(), xmp=b"<x:xmpmeta/>", dpi=(200, 200), comment=b"hello")
    return im


METADATA = ("exif", "icc_profile", "xmp", "dpi", "comment")


def metadata_of(data: bytes) -> dict:
    with pillow_only(), Image.open(io.BytesIO(data)) as im:
        return {k: im.info.get(k) for k in METADATA}


@pytest.mark.parametrize("options", [
    {},
    {"comment": None},
    {"comment": ""},
    {"comment": "Test comment text"},
    {"xmp": b"<given/>", "dpi": (72, 72)},
    {"icc_profile": b"Test" * 10, "exif": Image.Exif()},
])
def test_writes_exactly_the_metadata_pillow_writes(rich, options):
    expected = metadata_of(pillow_bytes(rich, **options))
    plugin.register()
    try:
        data = save(rich, **options)
    finally:
        plugin.unregister()
    assert has_segment(data)
    assert metadata_of(data) == expected


def test_metadata_survive(registered, photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 8
    exif.get_ifd(0x8769)[0xA002] = 999
    im = roundtrip(photo, scale=2, icc_profile=icc, exif=exif, dpi=(200, 200), comment="hello", xmp=b"XMP test")
    assert im.info["icc_profile"] == icc
    assert im.info["comment"] == b"hello"
    assert im.info["dpi"] == (200, 200)
    assert im.info["xmp"] == b"XMP test"
    assert im.getexif()[0x0112] == 8
    assert im.getexif().get_ifd(0x8769)[0xA002] == 192  # full width, not the stored 96

    # Pillow's rule: a re-save writes only what it is given ("XMP is not saved from
    # image info"), except the comment, which Pillow's writer takes from im.info.
    again = roundtrip(im)
    assert [k for k in METADATA if k in again.info] == ["comment"] and again.info["comment"] == b"hello"
    # keep_metadata=True opts in to copying im.info, as a save option or a register() default.
    kept = roundtrip(im, keep_metadata=True)
    assert kept.info["icc_profile"] == icc and kept.info["xmp"] == b"XMP test" and kept.getexif()[0x0112] == 8
    plugin.register(keep_metadata=True)
    assert roundtrip(im).info["icc_profile"] == icc
    assert "icc_profile" not in roundtrip(im, keep_metadata=False).info


def test_keep_metadata_also_applies_when_pillow_writes(registered, rich):
    plain = roundtrip(rich, qtables="web_high")  # falls back to Pillow's writer
    assert "icc_profile" not in plain.info and not has_segment(save(rich, qtables="web_high"))
    kept = roundtrip(rich, qtables="web_high", keep_metadata=True)
    assert kept.info["icc_profile"] == rich.info["icc_profile"] and kept.info["xmp"] == rich.info["xmp"]


def test_optimize_is_honoured_by_jpegplus(registered, photo):
    plain, optimized = save(photo), save(photo, optimize=True)
    assert has_segment(optimized)
    assert optimized == plain  # jpegplus always writes optimised Huffman tables


@pytest.mark.parametrize("options", [
    {"streamtype": 0},
    {"streamtype": 1},
    {"streamtype": 2},
    {"smooth": 50},
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


def test_progressive(registered, photo):
    # Pillow's test_progressive and test_progressive_compat: the same pixels, flags on open.
    data = {name: save(photo, **options) for name, options in [
        ("default", {}), ("baseline", {"progressive": False}), ("progressive", {"progressive": True}),
        ("progression", {"progression": True}), ("no progression", {"progression": 0})]}
    ims = {name: Image.open(io.BytesIO(d)) for name, d in data.items()}
    assert all(has_segment(d) for d in data.values())
    for name in ("baseline", "no progression"):
        assert not ims[name].info.get("progressive") and not ims[name].info.get("progression")
    for name in ("progressive", "progression"):
        assert ims[name].info.get("progressive") and ims[name].info.get("progression")
    reference = np.asarray(ims["baseline"])
    for name, im in ims.items():
        assert np.array_equal(np.asarray(im), reference), name  # bit for bit, through PostNet
    assert data["progression"] == data["progressive"] and data["no progression"] == data["baseline"]
    # The default is the smaller file (where Pillow's default is never smaller than progressive).
    assert data["default"] == min(data["baseline"], data["progressive"], key=len)


def test_separate_tables(registered, photo):
    # Pillow's test_separate_tables: a tables-only stream (1) and an image-only stream (2)
    # combine into the image of the interchange stream (0) of the same call options.
    data = [save(photo, streamtype=streamtype) for streamtype in range(3)]
    assert b"\xff\xdb" in data[1] and b"\xff\xdb" not in data[2]  # DQT
    assert b"\xff\xda" not in data[1] and b"\xff\xda" in data[2]  # SOS
    interchange, combined = Image.open(io.BytesIO(data[0])), Image.open(io.BytesIO(data[1] + data[2]))
    assert np.array_equal(np.asarray(interchange), np.asarray(combined))
    plugin.unregister()
    assert data[0] == pillow_bytes(photo, streamtype=0)


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
