"""Bad input, damaged and lying segments, re-encoded files, decompression bombs
and tiled inference. Behaviour only: none of it depends on the trained weights."""
from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, UnidentifiedImageError

import jpegplus
from jpegplus import engine, segment as seg, tiling
from jpegplus.errors import JpegPlusError, NotJpegError, SegmentWarning
from jpegplus.models.nets import BlockPostNet, PostNet, PreNet

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(FIXTURES / "val2.png").convert("RGB").crop((0, 0, 40, 24))


@pytest.fixture(scope="module")
def file(photo) -> bytes:
    return jpegplus.encode(photo, 80, scale=2)


def pillow_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def segment_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the jpegplus payload inside `data`."""
    start = data.find(b"\xff\xe9") + 4
    return start, start + len(seg.IDENT) + seg._BODY.size


def with_payload(data: bytes, payload: bytes) -> bytes:
    """`data` with its APP9 payload replaced (length field rewritten)."""
    start, end = segment_span(data)
    return data[:start - 2] + struct.pack(">H", len(payload) + 2) + payload + data[end:]


def decode_plain_with_warning(data: bytes, match: str = "") -> Image.Image:
    """Decode expecting a SegmentWarning and exactly Pillow's plain decode."""
    with pytest.warns(SegmentWarning, match=match):
        out = jpegplus.decode(data)
    assert np.array_equal(np.asarray(out), pillow_pixels(data))
    return out


# ---------------------------------------------------------------- bad bytes

@pytest.mark.parametrize("blob", [b"", b"\xff\xd8", b"\xff\xd8\xff\xe0", bytes(range(256)) * 4],
                         ids=["empty", "soi", "soi-app0", "noise"])
def test_unreadable_bytes_raise_pillows_error(blob):
    with pytest.raises(UnidentifiedImageError):
        jpegplus.decode(blob)


def test_random_bytes_never_crash():
    rng = np.random.default_rng(0)
    for _ in range(50):
        with pytest.raises(OSError):
            jpegplus.decode(b"\xff\xd8" + rng.bytes(int(rng.integers(0, 400))))


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_files_raise_oserror(file, keep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SegmentWarning)
        with pytest.raises(OSError):
            jpegplus.decode(file[:int(len(file) * keep)])


def test_other_formats_are_refused(photo):
    buf = io.BytesIO()
    photo.save(buf, "PNG")
    with pytest.raises(NotJpegError, match="PNG") as info:
        jpegplus.decode(buf.getvalue())
    assert isinstance(info.value, OSError) and isinstance(info.value, JpegPlusError)


def test_zero_height_jpeg_is_refused(file):
    sof = file.find(b"\xff\xc0")
    broken = file[:sof + 5] + b"\x00\x00" + file[sof + 7:]
    with pytest.raises(OSError):
        jpegplus.decode(broken)


# ---------------------------------------------------------------- segments

def test_intact_file_is_trusted(file, photo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = jpegplus.decode(file)
    assert out.size == photo.size and Image.open(io.BytesIO(file)).size == (20, 12)


CHECKS = len(seg.IDENT) + seg._BODY.size - 8  # the two check values end the payload


@pytest.mark.parametrize("offset", range(len(seg.IDENT), CHECKS))
def test_any_damaged_segment_byte_gives_warning_and_plain_decode(file, offset):
    start, _ = segment_span(file)
    damaged = bytearray(file)
    damaged[start + offset] ^= 0x01  # a 1-bit change in every field (version, scale, flags, sizes, model)
    out = decode_plain_with_warning(bytes(damaged))
    assert out.size == (20, 12)


@pytest.mark.parametrize("which", ["coding", "image", "both"])
def test_damaged_check_value(file, photo, which):
    # Each check value covers every field: one alone still vouches for the file
    # (a damaged coding check costs one decode; a damaged image check is never read
    # while the coding bytes are intact); both damaged is a plain decode.
    start, _ = segment_span(file)
    damaged = bytearray(file)
    for offset in {"coding": [CHECKS], "image": [CHECKS + 4], "both": [CHECKS, CHECKS + 4]}[which]:
        damaged[start + offset] ^= 0x01
    if which == "both":
        decode_plain_with_warning(bytes(damaged), "changed since jpegplus wrote it")
        return
    payload = bytes(damaged[start:start + len(seg.IDENT) + seg._BODY.size])
    assert seg.verify(bytes(damaged), payload) == ("image" if which == "coding" else "coding")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jpegplus.decode(bytes(damaged)).size == photo.size


def test_truncated_and_overlong_segment(file):
    start, end = segment_span(file)
    payload = file[start:end]
    decode_plain_with_warning(with_payload(file, payload[:20]), "bytes, expected")
    decode_plain_with_warning(with_payload(file, payload[:len(seg.IDENT)]), "truncated")
    decode_plain_with_warning(with_payload(file, payload + b"\x00" * 7), "bytes, expected")


def test_future_version(file):
    start, end = segment_span(file)
    payload = bytearray(file[start:end])
    payload[len(seg.IDENT)] = seg.FORMAT_VERSION + 1
    decode_plain_with_warning(with_payload(file, bytes(payload)), f"version {seg.FORMAT_VERSION + 1} is not supported")


def resealed(file: bytes, **changes) -> bytes:
    """`file` with segment fields changed and a *valid* check value: a deliberate liar."""
    start, end = segment_span(file)
    head = seg.Segment(**{**seg.parse(file[start:end]).__dict__, **changes, "coding_crc": 0, "image_crc": 0})
    return seg.seal(with_payload(file, head.payload()), head)


def test_lying_sizes_are_not_trusted(file):
    # A liar that knows the check value still cannot claim a size the stored image does not support.
    decode_plain_with_warning(resealed(file, width=4000, height=3000), "inconsistent")
    decode_plain_with_warning(resealed(file, width=80, height=48, stored_width=40, stored_height=24),
                              "stored image is 40x24")
    decode_plain_with_warning(resealed(file, grey=True), "grey")
    # Shown as stored is for scale 1 only: a scale-2 file has to be upsampled.
    decode_plain_with_warning(resealed(file, as_stored=True), "as it is at scale 2")


def test_unknown_flags_are_not_trusted(file):
    start, end = segment_span(file)
    payload = bytearray(file[start:end])
    flags = len(seg.IDENT) + 2  # version, scale, then the u16 flags
    payload[flags:flags + 2] = struct.pack(">H", 4)
    decode_plain_with_warning(with_payload(file, bytes(payload)), "unknown flags 0x0004")


def test_reencoded_keeping_the_segment(file):
    # What ImageMagick does: new pixels, same segment. Simulated with Pillow's extra=.
    start, end = segment_span(file)
    marker = file[start - 4:end]
    im = Image.open(io.BytesIO(file))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, extra=marker)
    out = decode_plain_with_warning(buf.getvalue(), "changed since jpegplus wrote it")
    assert out.size == im.size


def test_imagemagick_reencode_keeping_the_segment(file):
    # Lossless transcodes, lossless rotations and crops: tests/test_transcode.py.
    if not shutil.which("/usr/bin/convert"):
        pytest.skip("ImageMagick not installed")
    out = subprocess.run(["/usr/bin/convert", "-", "-quality", "90", "jpg:-"], input=file, capture_output=True,
                         timeout=60).stdout
    assert seg.find(Image.open(io.BytesIO(out)).applist) is not None  # the tool did keep it
    decode_plain_with_warning(out, "changed since jpegplus wrote it")


# ---------------------------------------------------------------- decompression bombs

def test_original_size_obeys_max_image_pixels(file, monkeypatch):
    # 40x24 = 960 px original, stored 20x12 = 240 px.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # stored passes, original > 2 × limit
    with pytest.raises(Image.DecompressionBombError, match="960 pixels"):
        jpegplus.decode(file)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # between 1 and 2 × limit: Pillow warns
    with pytest.warns(Image.DecompressionBombWarning, match="960 pixels"):
        assert jpegplus.decode(file).size == (40, 24)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert jpegplus.decode(file).size == (40, 24)


def test_stored_size_obeys_max_image_pixels(file, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(Image.DecompressionBombError):
        jpegplus.decode(file)


def test_encoder_is_not_limited_by_max_image_pixels(photo, monkeypatch):
    # The closed-loop scale choice decodes its own candidates; the input is already in memory.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    big = photo.resize((64, 48))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(jpegplus.encode(big, 75)) > 0


def test_files_bigger_than_pillows_buffer_are_written():
    """Noise at quality 100 (4:4:4, the finest tables) takes about 2.5 bytes a pixel, more than the buffer Pillow
    gives an optimised or progressive JPEG (2 bytes a pixel): Pillow's own save fails there, jpegplus's does not."""
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    with pytest.raises(OSError):
        Image.fromarray(noise).save(io.BytesIO(), "JPEG", quality=100, subsampling=0, optimize=True)
    data = jpegplus.encode(noise, 100)
    assert len(data) > 2 * noise.shape[0] * noise.shape[1]
    assert np.asarray(jpegplus.decode(data)).shape == noise.shape


# ---------------------------------------------------------------- tiling

def random_net(cls, seed: int):
    torch.manual_seed(seed)
    net = cls()
    for p in net.parameters():
        p.data.normal_(0, 0.05)  # not identity: the halo must really be needed
    return net.eval()


def untiled(net, src, level, scale, size, multiple):
    """The reference the tiled path is tested against: one network call on the
    whole edge-padded image, uint8 (h, w, 3) of `size` (w, h)."""
    h, w = src.shape[:2]
    padded = np.pad(src, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="edge")
    with torch.inference_mode():
        y = net(torch.from_numpy(tiling.image_to_array(padded)), torch.tensor([level]), scale)
    return tiling.array_to_image(y.numpy())[:size[1], :size[0]]


CASES = [(PreNet, False, 1), (PreNet, False, 2), (PostNet, True, 1), (PostNet, True, 2),
         (BlockPostNet, True, 1), (BlockPostNet, True, 2)]
IDS = ["pre1", "pre2", "post1", "post2", "blockpost1", "blockpost2"]


@pytest.mark.parametrize("cls, upsamples, scale", CASES, ids=IDS)
def test_tiled_matches_untiled_within_tolerance(cls, upsamples, scale):
    net = random_net(cls, 1)
    src = np.asarray(Image.open(FIXTURES / "val0.png").convert("RGB"))[:45, :61]
    h, w = src.shape[:2]
    size = (w * scale, h * scale) if upsamples else (-(-w // scale), -(-h // scale))
    multiple = 16 // scale if upsamples else 16
    ref = untiled(net, src, 0.4, scale, size, multiple)
    for tile in (16, 32):
        out = tiling.run_tiled(net, src, 0.4, scale, size, multiple=multiple, upsamples=upsamples, tile=tile)
        assert out.shape == ref.shape
        assert np.abs(out.astype(int) - ref).max() <= tiling.TOLERANCE


@pytest.mark.parametrize("scale", [1, 2])
def test_block_postnet_tiles_match_untiled_beyond_its_halo(scale):
    # An image several halos wide, so that tiles really cut through its context path.
    net = random_net(BlockPostNet, 4)
    src = np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB"))[:, :190 // scale]
    h, w = src.shape[:2]
    size = (w * scale, h * scale)
    ref = untiled(net, src, 0.4, scale, size, 16 // scale)
    out = tiling.run_tiled(net, src, 0.4, scale, size, multiple=16 // scale, upsamples=True, tile=32)
    assert tiling.halo(net, scale) < w // 2
    assert np.abs(out.astype(int) - ref).max() <= tiling.TOLERANCE


def test_halo_is_what_makes_tiles_match(monkeypatch):
    net = random_net(PostNet, 2)
    src = np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB"))[:64, :64]
    ref = untiled(net, src, 0.4, 1, (64, 64), 16)
    monkeypatch.setattr(tiling, "halo", lambda *a: 0)
    out = tiling.run_tiled(net, src, 0.4, 1, (64, 64), multiple=16, upsamples=True, tile=16)
    assert np.abs(out.astype(int) - ref).max() > 10 * tiling.TOLERANCE


@pytest.mark.parametrize("cls, upsamples, scale", CASES, ids=IDS)
def test_halo_covers_the_receptive_field(cls, upsamples, scale):
    # Change one input pixel; every changed output pixel must lie within the halo (in input pixels).
    net = random_net(cls, 3)
    side = 128
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    b = a.copy()
    b[64, 64] = 255 - b[64, 64]
    x = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        y = net(x, torch.tensor([0.4, 0.4]), scale)
    changed = np.argwhere((y[0] - y[1]).abs().amax(0).numpy() > 1e-6)
    factor = scale if upsamples else 1 / scale
    reach = np.abs(changed / factor - 64).max()
    assert 8 < reach <= tiling.halo(net, scale)


def test_network_calls_are_bounded_by_the_tile(monkeypatch, photo):
    # Memory: no network call sees more than (tile + 2·halo)² pixels, whatever the image size.
    seen = []
    real = tiling.image_to_array
    monkeypatch.setattr(tiling, "image_to_array", lambda arr: seen.append(arr.shape[:2]) or real(arr))
    image = photo.resize((200, 136))
    jpegplus.encode(image, 20, scale=2, tile=64)  # PreNet on the 200×136 input (it passes through at scale 1)
    assert len(seen) >= 12  # 4 × 3 tiles
    out = jpegplus.decode(jpegplus.encode(image, 80, scale=1, tile=64), tile=64)  # PostNet on a 200×136 file
    assert out.size == (200, 136)
    assert len(seen) >= 2 * 12
    from jpegplus.bundle import default_bundle

    bound = 64 + 2 * max(tiling.halo(net, s) for net in default_bundle().nets.values() for s in (1, 2))
    assert max(max(s) for s in seen) <= bound


def test_squared_error_matches_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 700, 33, 3), dtype=np.uint8)
    assert engine.squared_error(a, b) == pytest.approx(np.mean((a.astype(float) - b) ** 2), rel=1e-12)
    grey = engine.to_grey(a)
    assert np.array_equal(grey, np.asarray(Image.fromarray(a).convert("L")))


def test_stress_script_smoke(capsys):
    import stress  # tests/stress.py

    assert stress.main(["--no-battery", "--megapixels", "0.05", "--tile", "64"]) == 0
    out = capsys.readouterr().out
    assert "huge image: 229x223" in out and "peak RSS" in out and ": OK" in out
    assert float(re.search(r"PSNR ([\d.]+) dB", out).group(1)) > 30


def test_closed_loop_choice_uses_tilewise_error(photo):
    # With a ladder that allows scale 2, encode must pick the cheaper candidate by
    # MSE + λ·bpp, the error computed by bands of rows from the reconstruction.
    from dataclasses import replace

    from jpegplus.bundle import Ladder, default_bundle

    base = default_bundle()
    image = photo.resize((64, 48))
    rgb = np.asarray(image)
    candidates = {s: jpegplus.encode(image, 60, scale=s) for s in (1, 2)}
    mse = {s: np.mean((np.asarray(jpegplus.decode(d), float) - rgb) ** 2) for s, d in candidates.items()}
    bpp = {s: 8 * len(d) / rgb[:, :, 0].size for s, d in candidates.items()}
    for lam in (0.0, 1e6):
        ladder = base.manifest.ladder.to_json()
        ladder["q2"][59], ladder["lambda"][59] = ladder["q1"][59], lam
        bundle = replace(base, manifest=replace(base.manifest, ladder=Ladder.from_json(ladder)))
        best = min((1, 2), key=lambda s: mse[s] + lam * bpp[s])
        assert jpegplus.encode(image, 60, bundle=bundle) == candidates[best]
