"""Metadata through jpegplus: EXIF (orientation, size tags), ICC, XMP, dpi, comment."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

import jpegplus
from jpegplus.metadata import fix_exif_size, metadata_from

FIXTURES = Path(__file__).parent / "fixtures"
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


@pytest.fixture(scope="module")
def photo():
    return Image.open(FIXTURES / "val0.png").convert("RGB")  # 192×128


def camera_exif(width=4000, height=3000, orientation=6) -> Image.Exif:
    """EXIF as a camera writes it before the picture is resized: stale size tags."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "jpegplus-test-camera"
    exif[0x0100], exif[0x0101] = width, height
    ifd = exif.get_ifd(0x8769)
    ifd[0xA002], ifd[0xA003] = width, height
    ifd[0x9003] = "2024:01:02 03:04:05"
    return exif


def sizes(exif: Image.Exif):
    ifd = exif.get_ifd(0x8769)
    return exif.get(0x0100), exif.get(0x0101), ifd.get(0xA002), ifd.get(0xA003)


def reopen(data: bytes) -> Image.Image:
    return jpegplus.decode(data)


@pytest.mark.parametrize("scale", [1, 2])
def test_all_metadata_survive_save_and_open(photo, scale):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = jpegplus.encode(photo, 75, scale=scale, exif=camera_exif().tobytes(), icc_profile=icc,
                           xmp=XMP, dpi=(300, 300), comment=b"made by a test")
    stored = Image.open(io.BytesIO(data))
    assert stored.size == (-(-192 // scale), -(-128 // scale))
    out = reopen(data)
    assert out.size == (192, 128)
    assert out.info["icc_profile"] == icc
    assert out.info["xmp"] == XMP
    assert out.info["comment"] == b"made by a test"
    assert tuple(round(v) for v in out.info["dpi"]) == (300, 300)
    exif = out.getexif()
    assert exif[0x0112] == 6 and exif[0x010F] == "jpegplus-test-camera"
    assert exif.get_ifd(0x8769)[0x9003] == "2024:01:02 03:04:05"
    # The size tags describe the full-size image, not the stored one.
    assert sizes(exif) == (192, 128, 192, 128)


def test_orientation_applies_to_the_full_size_image(photo):
    out = reopen(jpegplus.encode(photo, 75, scale=2, exif=camera_exif(orientation=6).tobytes()))
    upright = ImageOps.exif_transpose(out)
    assert upright.size == (128, 192)  # orientation 6: rotate 90°


def test_only_what_the_call_gives_is_written_as_pillow_does(photo):
    # Pillow's rule ("XMP is not saved from image info"): of im.info only the comment is taken.
    src = photo.copy()
    src.info.update(exif=camera_exif().tobytes(), comment=b"kept", dpi=(150, 150), xmp=XMP,
                    icc_profile=b"not a real profile")
    out = reopen(jpegplus.encode(src, 75))
    assert [k for k in ("exif", "icc_profile", "xmp", "dpi", "comment") if k in out.info] == ["comment"]
    assert out.info["comment"] == b"kept"
    assert "comment" not in reopen(jpegplus.encode(src, 75, comment=None)).info  # None drops it, as in Pillow
    assert "comment" not in reopen(jpegplus.encode(src, 75, comment=b"")).info
    given = reopen(jpegplus.encode(src, 75, xmp=b"<given/>", dpi=(72, 72)))
    assert given.info["xmp"] == b"<given/>" and given.info["dpi"] == (72, 72) and "exif" not in given.info


def test_keep_metadata_copies_info(photo):
    src = photo.copy()
    src.info.update(exif=camera_exif().tobytes(), comment=b"kept", dpi=(150, 150), xmp=XMP)
    kept = reopen(jpegplus.encode(src, 75, keep_metadata=True))
    assert kept.info["comment"] == b"kept" and kept.getexif()[0x0112] == 6 and kept.info["xmp"] == XMP
    assert tuple(round(v) for v in kept.info["dpi"]) == (150, 150)
    assert sizes(kept.getexif()) == (192, 128, 192, 128)  # the copied EXIF describes this image
    assert "exif" not in reopen(jpegplus.encode(src, 75, keep_metadata=True, exif=None)).info  # None drops one
    original = Image.Exif()
    original.load(src.info["exif"])
    assert sizes(original) == (4000, 3000, 4000, 3000)  # the caller's info is untouched


def test_save_follows_the_same_rule(photo, tmp_path):
    src = photo.copy()
    src.info.update(icc_profile=b"not a real profile", comment=b"kept")
    jpegplus.save(src, tmp_path / "a.jpg", 60)
    jpegplus.save(src, tmp_path / "b.jpg", 60, keep_metadata=True)
    assert "icc_profile" not in Image.open(tmp_path / "a.jpg").info
    assert Image.open(tmp_path / "b.jpg").info["icc_profile"] == b"not a real profile"


def test_fix_exif_size_patches_in_place_and_keeps_every_other_byte():
    raw = camera_exif().tobytes()
    assert raw.startswith(b"Exif\x00\x00")
    fixed = fix_exif_size(raw, 640, 480)
    assert len(fixed) == len(raw)
    diff = np.flatnonzero(np.frombuffer(fixed, np.uint8) != np.frombuffer(raw, np.uint8))
    assert 0 < len(diff) <= 16  # only the four value fields changed
    exif = Image.Exif()
    exif.load(fixed)
    assert sizes(exif) == (640, 480, 640, 480)
    assert exif[0x0112] == 6


def test_fix_exif_size_short_tag_grows_to_long():
    exif = Image.Exif()
    exif[0x0100] = 100  # Pillow writes a small int as SHORT
    raw = exif.tobytes()
    out = Image.Exif()
    out.load(fix_exif_size(raw, 70000, 5))
    assert out[0x0100] == 70000


def test_fix_exif_size_leaves_other_exif_alone():
    no_size = Image.Exif()
    no_size[0x0112] = 3
    raw = no_size.tobytes()
    assert fix_exif_size(raw, 10, 10) == raw  # absent tags are not added
    assert fix_exif_size(b"garbage that is not TIFF", 10, 10) == b"garbage that is not TIFF"
    assert fix_exif_size(b"Exif\x00\x00MM\x00*\x00\x00\xff\xff", 10, 10) == b"Exif\x00\x00MM\x00*\x00\x00\xff\xff"


def test_fix_exif_size_on_exif_object():
    original = camera_exif()
    exif = Image.Exif()
    exif.load(fix_exif_size(original, 32, 16))
    assert sizes(exif) == (32, 16, 32, 16)
    assert sizes(original) == (4000, 3000, 4000, 3000)  # the caller's object is not changed


def test_metadata_from_array_uses_its_shape():
    arr = np.zeros((20, 30, 3), np.uint8)
    meta = metadata_from(arr, {"exif": camera_exif().tobytes()}, True)
    exif = Image.Exif()
    exif.load(meta["exif"])
    assert sizes(exif) == (30, 20, 30, 20)
