"""Progressive jpegplus files and lossless transcodes.

A jpegplus file holds the same quantised coefficients whether it is written
baseline or progressive, by jpegplus or by `jpegtran`; the segment's image check
(jpegplus.segment) covers what decoding depends on, so such a file stays a
jpegplus file, while a real change (a lossless rotation, a crop, a re-encode)
is noticed and decoded plain. Files written by version 1 decode as before.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

import jpegplus
from jpegplus import cli, engine, plugin
from jpegplus import segment as seg
from jpegplus.bundle import resolve
from jpegplus.errors import SegmentWarning
from jpegplus.jpeg import pillow_only

FIXTURES = Path(__file__).parent / "fixtures"
SOF0, SOF2 = b"\xff\xc0", b"\xff\xc2"


def tool(*args: str) -> list[str]:
    if not shutil.which(args[0]):
        pytest.skip(f"{args[0]} not installed")
    return list(args)


def run(command: list[str], data: bytes) -> bytes:
    return subprocess.run(command, input=data, capture_output=True, check=True, timeout=60).stdout


def stored_pixels(data: bytes) -> np.ndarray:
    """The stored JPEG image as Pillow decodes it (no PostNet)."""
    with pillow_only(), Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def quiet_decode(data: bytes) -> np.ndarray:
    """jpegplus.decode, failing on any SegmentWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", SegmentWarning)
        return np.asarray(jpegplus.decode(data))


def head_of(data: bytes) -> seg.Segment:
    return seg.parse(seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(data)).applist))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "val0.png").convert("RGB")  # 192×128


CASES = [("rgb", 1, 85), ("rgb", 2, 40), ("grey", 1, 60), ("grey", 2, 30)]


@pytest.fixture(scope="module")
def twins(photo) -> dict:
    """{(kind, scale, quality): (baseline bytes, progressive bytes, default bytes)}, all at 4:2:0: where the
    ladder also offers 4:4:4 the closed loop may choose differently per layout, as the layouts' sizes differ."""
    out = {}
    for kind, scale, q in CASES:
        im = photo if kind == "rgb" else photo.convert("L")
        out[(kind, scale, q)] = tuple(jpegplus.encode(im, q, scale=scale, progressive=p, subsampling="4:2:0")
                                      for p in (False, True, None))
    return out


# ---------------------------------------------------------------- progressive files

@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-scale{c[1]}-q{c[2]}")
def test_progressive_twin_decodes_to_the_same_pixels(twins, case):
    base, prog, default = twins[case]
    assert SOF0 in base and SOF2 not in base and SOF2 in prog
    assert default == min(base, prog, key=len)  # the default is the smaller of the two
    with pillow_only():
        assert not Image.open(io.BytesIO(base)).info.get("progressive")
        info = Image.open(io.BytesIO(prog)).info
    assert info["progressive"] and info["progression"]
    assert np.array_equal(stored_pixels(base), stored_pixels(prog))  # without PostNet
    out = quiet_decode(prog)
    assert np.array_equal(quiet_decode(base), out)  # with PostNet
    assert out.shape[:2] == (128, 192)
    assert jpegplus.decode(prog).info["progressive"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-scale{c[1]}-q{c[2]}")
def test_twins_carry_the_same_image_check(twins, case):
    base, prog, _ = twins[case]
    b, p = head_of(base), head_of(prog)
    assert b.version == p.version == seg.FORMAT_VERSION == 2
    assert b.image_crc == p.image_crc and b.coding_crc != p.coding_crc
    assert seg.verify(base, seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(base)).applist)) == "coding"


def test_twins_hold_the_same_coefficients(twins):
    # jpegtran re-codes both as optimised baseline: the same coefficients and tables give the same bytes.
    command = tool("jpegtran", "-optimize", "-copy", "none")
    for base, prog, _ in twins.values():
        assert run(command, base) == run(command, prog)


def test_libjpeg_turbo_decodes_the_same_pixels_as_pillow(twins):
    # The image check hashes Pillow's decode; djpeg (the system's libjpeg-turbo, another
    # version than Pillow's own) must decode exactly the same pixels.
    command = tool("djpeg", "-pnm")
    for base, prog, _ in twins.values():
        for data in (base, prog):
            with Image.open(io.BytesIO(run(command, data))) as pnm:
                assert np.array_equal(np.asarray(pnm), stored_pixels(data))


def test_thumbnail_of_a_progressive_twin(twins):
    # draft() decodes the stored image with libjpeg's DCT scaling: the same coefficients, the same thumbnail.
    thumbs = []
    plugin.register()
    try:
        for data in twins[("rgb", 1, 85)][:2]:
            with Image.open(io.BytesIO(data)) as im:
                im.thumbnail((48, 48))
                thumbs.append(np.asarray(im))
    finally:
        plugin.unregister()
    assert thumbs[0].shape == (32, 48, 3) and np.array_equal(*thumbs)


def test_progressive_option_is_validated(photo):
    with pytest.raises(ValueError, match="progressive"):
        jpegplus.encode(photo, 50, progressive="yes")


def test_cmyk_follows_the_progressive_option(photo):
    cmyk = photo.convert("CMYK")
    assert SOF2 in jpegplus.encode(cmyk, 50, progressive=True)
    assert SOF2 not in jpegplus.encode(cmyk, 50)


# ---------------------------------------------------------------- lossless transcodes

@pytest.mark.parametrize("options", [["-progressive"], ["-optimize"], ["-progressive", "-optimize"]],
                         ids=["progressive", "optimize", "both"])
@pytest.mark.parametrize("case", [("rgb", 2, 40), ("grey", 1, 60)], ids=["rgb-scale2", "grey-scale1"])
def test_lossless_transcode_stays_jpegplus(twins, case, options):
    base, prog, _ = twins[case]
    for source in (base, prog):
        out = run(tool("jpegtran", "-copy", "all", *options), source)
        assert seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist) is not None
        assert np.array_equal(quiet_decode(out), quiet_decode(base))  # full size, through PostNet
        assert seg.of_bytes(out).scale == case[1]
        how = seg.verify(out, seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist))
        if "-progressive" in options and source is base:
            assert how == "image"  # new entropy coding, same image
        facts = cli.describe(out)["jpegplus"]
        assert facts["intact"] and facts["transcoded"] == (how == "image")


def test_transcoded_file_through_pillow(twins):
    base, _, _ = twins[("rgb", 2, 40)]
    out = run(tool("jpegtran", "-copy", "all", "-progressive"), base)
    plugin.register()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", SegmentWarning)
            im = Image.open(io.BytesIO(out))
        assert isinstance(im, plugin.JpegPlusImageFile) and im.size == (192, 128)
        assert im.info["progressive"] and im.info["progression"]
        assert np.array_equal(np.asarray(im), quiet_decode(base))
    finally:
        plugin.unregister()


@pytest.mark.parametrize("change, match", [
    (["jpegtran", "-copy", "all", "-rotate", "90"], "stored image is"),  # lossless rotation: the size changes
    (["jpegtran", "-copy", "all", "-rotate", "180"], "changed since jpegplus wrote it"),  # same size, new pixels
    (["jpegtran", "-copy", "all", "-flip", "horizontal", "-progressive"], "changed since jpegplus wrote it"),
    (["jpegtran", "-copy", "all", "-crop", "96x64+0+0"], "stored image is"),
    (["/usr/bin/convert", "-", "-quality", "90", "jpg:-"], "changed since jpegplus wrote it"),  # a re-encode
], ids=["rotate90", "rotate180", "flip-progressive", "crop", "imagemagick"])
def test_real_changes_warn_and_decode_plain(twins, change, match):
    base, _, _ = twins[("rgb", 1, 85)]
    out = run(tool(*change), base)
    assert seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist) is not None  # the tool kept it
    with pytest.warns(SegmentWarning, match=match):
        decoded = jpegplus.decode(out)
    assert np.array_equal(np.asarray(decoded), stored_pixels(out))
    assert not cli.describe(out)["jpegplus"]["intact"]


def test_an_edit_that_keeps_the_coding_structure_is_noticed(twins):
    # Pixels changed and re-encoded with the very same tables, segment kept: only the image check can tell.
    base, _, _ = twins[("rgb", 1, 85)]
    with pillow_only(), Image.open(io.BytesIO(base)) as im:
        edited = im.copy()
        tables = im.quantization
    edited.paste((255, 0, 0), (8, 8, 24, 24))
    marker = base[base.find(b"\xff\xe9"):]
    marker = marker[:2 + int.from_bytes(marker[2:4], "big")]
    buf = io.BytesIO()
    with pillow_only():
        edited.save(buf, "JPEG", qtables=tables, subsampling="4:2:0", optimize=True, extra=marker)
    with pytest.warns(SegmentWarning, match="changed since jpegplus wrote it"):
        jpegplus.decode(buf.getvalue())


# ---------------------------------------------------------------- version 1 files

V1_FILES = {"v1-rgb-scale2.jpg": ((192, 128), "RGB", 2), "v1-grey-scale1.jpg": ((100, 70), "L", 1)}


@pytest.mark.parametrize("name", V1_FILES)
def test_version_1_files_decode_as_before(name):
    # Written by jpegplus before the image check existed (tests/fixtures/v1-*.jpg).
    data = (FIXTURES / name).read_bytes()
    size, mode, scale = V1_FILES[name]
    head = seg.of_bytes(data)
    assert (head.version, head.scale, (head.width, head.height)) == (1, scale, size)
    out = jpegplus.decode(data)
    assert (out.size, out.mode) == (size, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SegmentWarning)
        out = quiet_decode(data)
    with pillow_only(), Image.open(io.BytesIO(data)) as stored:
        stored.load()
        expected = engine.post_image(resolve(None), stored, scale, size, mode == "L")
    assert np.array_equal(out, np.asarray(expected))
    assert cli.describe(data)["jpegplus"]["version"] == 1


def test_version_1_segment_damage_and_transcodes_as_before():
    data = (FIXTURES / "v1-rgb-scale2.jpg").read_bytes()
    damaged = bytearray(data)
    damaged[-20] ^= 0xFF  # its check covers the entropy-coded data
    with pytest.warns(SegmentWarning, match="changed since jpegplus wrote it"):
        assert jpegplus.decode(bytes(damaged)).size == (96, 64)
    if shutil.which("jpegtran"):
        with pytest.warns(SegmentWarning, match="changed since jpegplus wrote it"):
            assert jpegplus.decode(run(["jpegtran", "-copy", "all", "-progressive"], data)).size == (96, 64)


def test_version_1_layout_round_trips():
    head = seg.of_bytes((FIXTURES / "v1-rgb-scale2.jpg").read_bytes())
    assert seg.parse(head.payload()) == head and len(head.payload()) == len(seg.IDENT) + 32
