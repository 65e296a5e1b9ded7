"""The codec core with the shipped weights: round trips, the file format, the
promise against Pillow, and the FakeCodec's fidelity."""
import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import jpegplus
from jpegplus import segment
from jpegplus.bundle import load_bundle, read_manifest, weights_dir
from jpegplus.jpeg import decode_array, encode_array
from jpegplus.evaluation.metrics import psnr


def pillow_jpeg(arr, quality):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(128, 192, 3), (53, 37, 3), (40, 64)])
def test_round_trip_keeps_size_and_mode(fixture_rgb, shape):
    arr = fixture_rgb[: shape[0], : shape[1]]
    if len(shape) == 2:
        arr = np.asarray(Image.fromarray(arr).convert("L"))
    out = jpegplus.decode(jpegplus.encode(arr, 60))
    assert out.size == (shape[1], shape[0])
    assert out.mode == ("L" if len(shape) == 2 else "RGB")


@pytest.mark.parametrize("scale", [1, 2])
def test_file_is_baseline_jpeg_with_segment(fixture_rgb, scale):
    data = jpegplus.encode(fixture_rgb, 30, scale=scale)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and not im.info.get("progressive")
    head = segment.parse(segment.find(im.applist))
    assert (head.width, head.height, head.scale) == (192, 128, scale)
    assert im.size == (192 // scale, 128 // scale)
    assert head.model_id == load_bundle().model_id
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the segment must be trusted: no SegmentWarning
        assert jpegplus.decode(data).size == (192, 128)


def test_plain_jpeg_decodes_exactly_as_pillow(fixture_rgb):
    data = pillow_jpeg(fixture_rgb, 40)
    ours = jpegplus.decode(data)
    assert np.array_equal(np.asarray(ours), np.asarray(Image.open(io.BytesIO(data))))
    enhanced = jpegplus.decode(data, enhance=True)
    assert enhanced.size == ours.size and enhanced.mode == ours.mode
    # enhance=True runs PostNet: the pixels change. PostNet is trained for jpegplus's own tables; on
    # Pillow's standard tables it measured -0.5..+0.1 dB on val/ crops (README), so only a bound is promised.
    assert not np.array_equal(np.asarray(enhanced), np.asarray(ours))
    assert psnr(fixture_rgb, np.asarray(enhanced)) > psnr(fixture_rgb, np.asarray(ours)) - 0.6


def pillow_at_least(arr, nbytes):
    """Pillow's default JPEG at the lowest quality whose file has at least `nbytes` bytes."""
    for q in range(1, 101):
        data = pillow_jpeg(arr, q)
        if len(data) >= nbytes:
            return data
    return data


@pytest.mark.parametrize("quality", [30, 75])
def test_beats_pillow_at_no_more_bytes(fixture_images, quality):
    """At a fixed jpegplus quality, each fixture's file is compared with Pillow's smallest file
    that is at least as big: jpegplus gives ≥ 0.5 dB more PSNR on average over the three fixtures."""
    gain = []
    for arr in fixture_images:
        ours = jpegplus.encode(arr, quality)
        theirs = pillow_at_least(arr, len(ours))
        gain.append(psnr(arr, np.asarray(jpegplus.decode(ours))) - psnr(arr, decode_array(theirs)))
    assert np.mean(gain) >= 0.5


def test_quality_orders_size_and_psnr(fixture_rgb):
    sizes, scores = [], []
    for q in (10, 50, 90):
        data = jpegplus.encode(fixture_rgb, q, scale=1)
        sizes.append(len(data))
        scores.append(psnr(fixture_rgb, np.asarray(jpegplus.decode(data))))
    assert sizes == sorted(sizes) and scores == sorted(scores)


@pytest.mark.parametrize("quality", [15, 50, 90])
def test_fakecodec_imitates_real_jpeg(fixture_rgb, quality):
    """The shipped FakeCodec imitates the encoder's own files (requantisation included): output within
    38 dB PSNR of libjpeg-turbo's decode of them, rate within 10 % of their size."""
    fc = load_bundle(names=("fakecodec",)).nets["fakecodec"]
    family = read_manifest().tables
    t = family.tables(quality)
    data = encode_array(family.requantise(fixture_rgb, t), t)
    real = decode_array(data)
    with torch.no_grad():
        out = fc(torch.from_numpy(fixture_rgb.copy()).permute(2, 0, 1)[None].float(), torch.from_numpy(t)[None].float())
    fake = out["x_hat"][0].clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
    assert psnr(fake, real) >= 38.0
    assert abs(float(out["bits"][0]) - 8 * len(data)) / (8 * len(data)) < 0.10


def test_damaged_weights_are_refused(tmp_path):
    import shutil

    from jpegplus.errors import WeightsError

    shutil.copytree(weights_dir(), tmp_path / "w")
    post = next((tmp_path / "w").glob("post-*.safetensors"))
    raw = bytearray(post.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    post.write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match="damaged"):
        load_bundle(tmp_path / "w", runtime="torch")


# ---------------------------------------------------------------- 4:4:4 where it pays

def test_closed_loop_takes_444_where_chroma_detail_pays(offer_444, chroma_stripes):
    from jpegplus.jpeg import subsampling_of

    arr = chroma_stripes
    files = {q: jpegplus.encode(arr, 90, bundle=offer_444(q)) for q in (0, 80)}
    kinds = {q: subsampling_of(Image.open(io.BytesIO(d))) for q, d in files.items()}
    assert kinds == {0: "4:2:0", 80: "4:4:4"}
    quality = {q: psnr(np.asarray(jpegplus.decode(d, bundle=offer_444(q))), arr) for q, d in files.items()}
    assert quality[80] > quality[0] + 3, quality  # what 4:2:0 loses on one-pixel chroma stripes
    # grey images, scale 2 and a forced subsampling stay 4:2:0; a forced scale 1 still takes 4:4:4
    grey = np.asarray(Image.fromarray(arr).convert("L"))
    assert subsampling_of(Image.open(io.BytesIO(jpegplus.encode(grey, 90, bundle=offer_444(80))))) is None
    for forced, kind in (({"scale": 2}, "4:2:0"), ({"subsampling": "4:2:0"}, "4:2:0"), ({"scale": 1}, "4:4:4")):
        data = jpegplus.encode(arr, 90, bundle=offer_444(80), **forced)
        assert subsampling_of(Image.open(io.BytesIO(data))) == kind, forced
    with pytest.raises(ValueError, match="subsampling must be"):
        jpegplus.encode(arr, 90, subsampling="4:4:4")


def test_444_files_go_through_a_flag_reading_postnet_whole(offer_444, chroma_stripes, fixture_rgb):
    from jpegplus.bundle import load_bundle, weights_dir
    from jpegplus.jpeg import subsampling_of
    from jpegplus.requant import RGB_TO_YCC

    def chroma_change(a, b):  # 99th percentile: rounding, and clipping where new luma meets saturated colour
        ycc = [np.asarray(x, np.float32) @ RGB_TO_YCC.T for x in (a, b)]
        return np.percentile(np.abs(ycc[0][..., 1:] - ycc[1][..., 1:]), 99)

    bundle = offer_444(40)  # coarse enough that PostNet has chroma to restore (at 80 it leaves these stripes be)
    assert bundle.nets["post"].takes_chroma  # the shipped PostNet reads the 4:4:4 flag
    data = jpegplus.encode(chroma_stripes, 90, bundle=bundle)
    assert subsampling_of(Image.open(io.BytesIO(data))) == "4:4:4"
    out, plain = np.asarray(jpegplus.decode(data, bundle=bundle)), decode_array(data)
    # restored whole: chroma too (its luma on the file's own chroma, the "luma" use, changes chroma by 0.0 here)
    assert chroma_change(out, plain) > 0.5
    # Pillow's own 4:4:4 files with enhance=True, coarse to fine: whole through the shipped PostNet; a PostNet
    # without the flag (the ablation pair's) keeps fine files' chroma (80) or decodes the finest plainly (92).
    unflagged = load_bundle(weights_dir() / "ablation-nofake")
    assert not getattr(unflagged.nets["post"], "takes_chroma", False)
    for quality, use in ((20, "whole"), (80, "luma"), (92, "none")):
        buf = io.BytesIO()
        Image.fromarray(fixture_rgb).save(buf, "JPEG", quality=quality, subsampling="4:4:4")
        plain = decode_array(buf.getvalue())
        shipped = np.asarray(jpegplus.decode(buf.getvalue(), enhance=True))
        assert chroma_change(shipped, plain) > 0.5 and not np.array_equal(shipped, plain), quality
        old = np.asarray(jpegplus.decode(buf.getvalue(), enhance=True, bundle=unflagged))
        assert (chroma_change(old, plain) < 1.5) == (use != "whole"), quality
        assert np.array_equal(old, plain) == (use == "none"), quality

@pytest.mark.parametrize("progressive", [None, True])
@pytest.mark.parametrize("quality", [8, 75])
def test_work_side_by_side_or_in_turn_gives_the_same_file(fixture_rgb, monkeypatch, progressive, quality):
    """Small images write both JPEG layouts, and try the encode's candidates (scale ½ at quality 8, 4:4:4 at
    75), on threads side by side; big ones (engine.AT_ONCE_PIXELS) one after the other: the bytes are the
    same either way."""
    from jpegplus import engine

    tried = []
    real = engine.encode_candidate
    monkeypatch.setattr(engine, "encode_candidate", lambda *a, **k: tried.append(a[3]) or real(*a, **k))
    at_once = jpegplus.encode(fixture_rgb, quality, progressive=progressive)
    assert len(tried) == 2, tried
    monkeypatch.setattr(engine, "AT_ONCE_PIXELS", 0)
    in_turn = jpegplus.encode(fixture_rgb, quality, progressive=progressive)
    assert in_turn == at_once and len(at_once) > 500
