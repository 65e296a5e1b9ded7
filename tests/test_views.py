"""PostNet's views (jpegplus.views): each view undone exactly, the block grid
kept, the count read from the manifest, $JPEGPLUS_VIEWS and load_bundle, the
same average on both runtimes and through tiles, and what it earns."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import jpegplus
from jpegplus import runtime, tiling, views
from jpegplus.bundle import load_bundle
from jpegplus.errors import WeightsError
from jpegplus.evaluation import metrics
from jpegplus.models.nets import BlockPostNet

FIXTURES = Path(__file__).parent / "fixtures"


def upsample(x, scale: int = 2):
    """An exactly symmetric 'network': nearest-neighbour ×scale, numpy or torch."""
    if isinstance(x, np.ndarray):
        return x.repeat(scale, -2).repeat(scale, -1).astype(np.float32)
    return x.repeat_interleave(scale, -2).repeat_interleave(scale, -1).float()


def ramp(x):
    """A network that is not symmetric: adds 0.01 × the column index (scale 1)."""
    cols = np.arange(x.shape[-1], dtype=np.float32) * 0.01
    return x + (cols if isinstance(x, np.ndarray) else torch.from_numpy(cols))


@pytest.mark.parametrize("n", views.COUNTS)
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_each_view_is_undone(n, kind):
    # Odd sizes: the flipped views pad to the 16-pixel grid and crop the padding back off.
    x = np.random.default_rng(n).random((2, 3, 21, 35), np.float32)
    x = x if kind == "numpy" else torch.from_numpy(x)
    out = views.averaged(upsample, x, n)
    assert type(out) is type(x) and tuple(out.shape) == (2, 3, 42, 70)
    np.testing.assert_allclose(np.asarray(out), np.asarray(upsample(x)), atol=1e-6)


def test_views_are_averaged():
    x = np.zeros((1, 3, 32, 48), np.float32)
    assert np.array_equal(views.averaged(ramp, x, 1), ramp(x))
    two = views.averaged(ramp, x, 2)  # the transpose view adds the ramp down the rows instead
    rows, cols = np.meshgrid(np.arange(32), np.arange(48), indexing="ij")
    np.testing.assert_allclose(two[0, 0], (rows + cols) * 0.005, atol=1e-6)
    four = views.averaged(ramp, x, 4)  # and the half-turns run it right to left, bottom to top
    np.testing.assert_allclose(four[0, 0], (rows + cols + (31 - rows) + (47 - cols)) * 0.0025, atol=1e-6)


def test_flipped_views_keep_the_block_grid():
    # A 'network' that marks the edges of 4:2:0's 16×16 units where it sees them: every view must see
    # them where the file has them.
    def edges(x):
        out = np.zeros_like(x)
        for k in (0, 15):
            out[..., k::16, :] += 1
            out[..., :, k::16] += 1
        return out
    x = np.zeros((1, 3, 40, 24), np.float32)  # multiples of 8, not of 16: the flips pad first
    for n in views.COUNTS:
        np.testing.assert_array_equal(views.averaged(edges, x, n), edges(x))


@pytest.mark.parametrize("bad", [0, 3, 16, True, "2", 2.0])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8"):
        views.check(bad)


def test_count_from_environment(monkeypatch):
    monkeypatch.delenv(views.VIEWS_VAR, raising=False)
    assert views.from_env(2) == 2
    monkeypatch.setenv(views.VIEWS_VAR, "8")
    assert views.from_env(2) == 8
    assert load_bundle(names=("post",)).views == 8
    assert load_bundle(names=("post",), views=1).views == 1  # the argument wins
    monkeypatch.setenv(views.VIEWS_VAR, "3")
    with pytest.raises(ValueError, match="JPEGPLUS_VIEWS must be one of"):
        load_bundle(names=("post",))


def copy_weights(tmp_path: Path) -> Path:
    folder = tmp_path / "w"
    shutil.copytree(jpegplus.bundle.weights_dir(), folder)
    return folder


def test_manifest_gives_the_count(tmp_path, monkeypatch):
    monkeypatch.delenv(views.VIEWS_VAR, raising=False)
    folder = copy_weights(tmp_path)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["models"]["post"].pop("views", None)
    (folder / "manifest.json").write_text(json.dumps(raw))
    assert load_bundle(folder, names=("post",)).views == 1  # older manifests: PostNet alone
    raw["models"]["post"]["views"] = 4
    (folder / "manifest.json").write_text(json.dumps(raw))
    bundle = load_bundle(folder, names=("post",))
    assert bundle.views == 4 and "views=4" in repr(bundle)
    assert bundle.manifest.to_json()["models"]["post"]["views"] == 4
    raw["models"]["post"]["views"] = 5
    (folder / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match=r"models\.post \(PostNet views must be one of"):
        load_bundle(folder, names=("post",))


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_views_match_untiled(scale):
    torch.manual_seed(3)
    net = BlockPostNet(channels=8, context=16, detail_depth=1, context_depth=1)
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    net.eval()
    src = np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB"))[:45, :61 if scale == 1 else 37]
    h, w = src.shape[:2]
    size = (w * scale, h * scale)
    multiple = 16 // scale
    padded = np.pad(src, ((0, -h % multiple), (0, -w % multiple), (0, 0)), mode="edge")
    with torch.inference_mode():
        level = torch.tensor([0.4])
        ref = views.averaged(lambda v: net(v, level, scale), torch.from_numpy(tiling.image_to_array(padded)), 4)
    ref = tiling.array_to_image(ref.numpy())[:size[1], :size[0]]
    out = tiling.run_tiled(net, src, 0.4, scale, size, multiple=multiple, upsamples=True, tile=16, views=4)
    assert np.abs(out.astype(int) - ref).max() <= tiling.TOLERANCE
    alone = tiling.run_tiled(net, src, 0.4, scale, size, multiple=multiple, upsamples=True, tile=16)
    assert np.abs(alone.astype(int) - ref).max() > 2  # the views changed the output


@pytest.fixture(scope="module")
def photos():
    return [Image.open(FIXTURES / f"val{i}.png").convert("RGB") for i in range(3)]


def test_runtimes_agree_with_views(photos):
    data = jpegplus.encode(photos[0], 40)
    onnx, torch_ = (np.asarray(jpegplus.decode(data, bundle=load_bundle(runtime=r, precision="float32", views=2)),
                               np.int16) for r in ("onnx", "torch"))
    assert np.abs(onnx - torch_).max() <= runtime.TOLERANCE


def test_views_earn_their_time(photos):
    # Measured (model 181dadfb, these three fixtures at quality 20 / 50 / 80): two views over one
    # +0.09 to +0.14 dB, mean +0.11; on whole val/ images about +0.10 dB (README).
    gains = []
    for q in (20, 50, 80):
        for im in photos:
            data = jpegplus.encode(im, q, scale=1)
            one, two = (metrics.psnr(np.asarray(jpegplus.decode(data, bundle=load_bundle(views=v))), np.asarray(im))
                        for v in (1, 2))
            gains.append(two - one)
    assert min(gains) > 0.03
    assert np.mean(gains) > 0.06


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_onnx_views_side_by_side_match_one_after_the_other(monkeypatch, cores):
    # On 2 cores the two views run side by side on one-thread sessions; the average must not change.
    net = load_bundle(runtime="onnx", precision="float32", names=("post",)).nets["post"]
    x = np.random.default_rng(0).random((1, 3, 48, 80), np.float32)
    levels, flags = np.array([0.5], np.float32), np.array([0.0], np.float32)
    alone = net.infer(x, levels, 1, flags)
    want = (alone + net.infer(x.swapaxes(-1, -2), levels, 1, flags).swapaxes(-1, -2)) / 2
    monkeypatch.setattr(runtime, "workers", lambda: cores)
    got = net.infer(x, levels, 1, flags, views=2)
    assert np.abs(got - want).max() < 1e-4
    assert set(net._narrow) == ({max(1, cores // 2)} if cores > 1 else set())


def test_prenet_views_average_the_downsampled_image(tmp_path):
    # PreNet at scale ½ through run_tiled with two views is the mean of it on the image and on its transpose;
    # export --pre-views writes the count and the bundle's encoder uses it.
    from jpegplus.models.nets import PreNet
    from training import export

    torch.manual_seed(5)
    net = PreNet()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    net.eval()
    src = np.asarray(Image.open(FIXTURES / "val2.png").convert("RGB"))[:64, :96]
    x = torch.from_numpy(tiling.image_to_array(src))
    level = torch.tensor([0.8])
    with torch.inference_mode():
        want = (net(x, level, 2) + net(x.transpose(-1, -2), level, 2).transpose(-1, -2)) / 2
    want = tiling.array_to_image(want.numpy())
    got = tiling.run_tiled(net, src, 0.8, 2, (48, 32), multiple=16, upsamples=False, views=2)
    assert np.abs(got.astype(int) - want).max() <= tiling.TOLERANCE
    assert np.abs(tiling.run_tiled(net, src, 0.8, 2, (48, 32), multiple=16, upsamples=False).astype(int)
                  - want).max() > 1
    export.main(["--out", str(tmp_path / "w"), "--pre-views", "2"])
    bundle = load_bundle(tmp_path / "w")
    assert (bundle.pre_views, bundle.views) == (2, 1)
