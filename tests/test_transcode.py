"""Lossless transcodes of jpegplus files.

`jpegtran` can re-code a jpegplus file (progressive, optimised) keeping its
quantised coefficients; the segment's image check (jpegplus.segment) covers
what decoding depends on, so such a file stays a jpegplus file, while a real
change (a lossless rotation, a crop, a re-encode) is noticed and decoded plain.
Files written by version 1 decode as before.
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


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "val0.png").convert("RGB")  # 192×128


CASES = [("rgb", 1, 85), ("rgb", 2, 40), ("grey", 1, 60), ("grey", 2, 30)]


@pytest.fixture(scope="module")
def files(photo) -> dict:
    """{(kind, scale, quality): jpegplus bytes}."""
    return {(kind, scale, q): jpegplus.encode(photo if kind == "rgb" else photo.convert("L"), q, scale=scale)
            for kind, scale, q in CASES}


def test_libjpeg_turbo_decodes_the_same_pixels_as_pillow(files):
    # The image check hashes Pillow's decode; djpeg (the system's libjpeg-turbo, another
    # version than Pillow's own) must decode exactly the same pixels, baseline or progressive.
    command = tool("djpeg", "-pnm")
    for base in files.values():
        for data in (base, run(tool("jpegtran", "-copy", "all", "-progressive"), base)):
            with Image.open(io.BytesIO(run(command, data))) as pnm:
                assert np.array_equal(np.asarray(pnm), stored_pixels(data))


# ---------------------------------------------------------------- lossless transcodes

@pytest.mark.parametrize("options", [["-progressive"], ["-optimize"], ["-progressive", "-optimize"]],
                         ids=["progressive", "optimize", "both"])
@pytest.mark.parametrize("case", [("rgb", 2, 40), ("grey", 1, 60)], ids=["rgb-scale2", "grey-scale1"])
def test_lossless_transcode_stays_jpegplus(files, case, options):
    base = files[case]
    out = run(tool("jpegtran", "-copy", "all", *options), base)
    assert seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist) is not None
    assert np.array_equal(quiet_decode(out), quiet_decode(base))  # full size, through PostNet
    assert seg.of_bytes(out).scale == case[1]
    how = seg.verify(out, seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist))
    if "-progressive" in options:
        assert how == "image"  # new entropy coding, same image
    facts = cli.describe(out)["jpegplus"]
    assert facts["intact"] and facts["transcoded"] == (how == "image")


def test_transcoded_file_through_pillow(files):
    base = files[("rgb", 2, 40)]
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
def test_real_changes_warn_and_decode_plain(files, change, match):
    base = files[("rgb", 1, 85)]
    out = run(tool(*change), base)
    assert seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(out)).applist) is not None  # the tool kept it
    with pytest.warns(SegmentWarning, match=match):
        decoded = jpegplus.decode(out)
    assert np.array_equal(np.asarray(decoded), stored_pixels(out))
    assert not cli.describe(out)["jpegplus"]["intact"]


def test_an_edit_that_keeps_the_coding_structure_is_noticed(files):
    # Pixels changed and re-encoded with the very same tables, segment kept: only the image check can tell.
    base = files[("rgb", 1, 85)]
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
