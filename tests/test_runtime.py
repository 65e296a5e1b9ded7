"""The two runtimes (jpegplus.runtime): ONNX Runtime, the default, and torch
compute the same networks within runtime.TOLERANCE after rounding to uint8."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import jpegplus
from jpegplus import engine, runtime, tiling
from jpegplus.bundle import export_onnx, load_bundle
from jpegplus.evaluation.metrics import psnr
from jpegplus.models.blocks import bicubic_up2, bicubic_up2_conv, pixel_unshuffle
from jpegplus.models.nets import BlockPostNet, PostNet, PreNet

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def bundles():
    return load_bundle(runtime="onnx", precision="float32"), load_bundle(runtime="torch")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB"))


@pytest.mark.parametrize("shape", [(2, 3, 37, 50), (1, 3, 1, 1), (1, 1, 2, 5), (1, 3, 64, 96)])
def test_bicubic_as_convolutions_is_torch_bicubic(shape):
    y = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    want = F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.equal(bicubic_up2(y), want)  # what torch runs
    assert (bicubic_up2_conv(y) - want).abs().max() < 1e-6  # what the ONNX graph holds


@pytest.mark.parametrize("r", [2, 4])
def test_unshuffle_as_a_convolution_is_exact(monkeypatch, r):
    x = torch.rand(2, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    want = F.pixel_unshuffle(x, r)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)  # the graph's arithmetic
    assert torch.equal(pixel_unshuffle(x, r), want)


@pytest.mark.parametrize("cls", [PreNet, PostNet, BlockPostNet])
def test_export_round_trip_of_untrained_networks(cls, tmp_path):
    # Random weights (not the identity), odd sizes on the 16-pixel grid, a batch of two levels.
    torch.manual_seed(0)
    net = cls().eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    graphs = export_onnx(net, tmp_path, "n")
    onnx_net = runtime.OnnxNet({g.scale: tmp_path / g.file for g in graphs}, {g.scale: g.reach for g in graphs})
    x = np.random.default_rng(1).random((2, 3, 48, 80), np.float32)
    levels = np.array([0.1, 0.7], np.float32)
    for scale in (1, 2):
        assert onnx_net.reach(scale) == net.reach(scale)
        want = runtime.TorchNet(net).infer(x, levels, scale)
        got = onnx_net.infer(x, levels, scale)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4


def test_shipped_networks_agree_across_runtimes(bundles, photo):
    onnx, torch_ = bundles
    h, w = photo.shape[:2]
    for name, scale, size, upsamples, multiple in (
            ("pre", 1, (w, h), False, 16), ("pre", 2, (-(-w // 2), -(-h // 2)), False, 16),
            ("post", 1, (w, h), True, 16), ("post", 2, (2 * w, 2 * h), True, 8)):
        outs = [tiling.run_tiled(b.nets[name], photo, 0.3, scale, size, multiple=multiple, upsamples=upsamples)
                for b in bundles]
        diff = np.abs(outs[0].astype(int) - outs[1])
        assert diff.max() <= runtime.TOLERANCE, (name, scale)
        assert (diff > 0).mean() < 1e-3, (name, scale)  # rounding ties only


@pytest.mark.parametrize("quality, scale", [(10, 2), (60, 1)])
def test_files_decoded_by_either_runtime_agree(bundles, photo, quality, scale):
    onnx, torch_ = bundles
    data = jpegplus.encode(photo, quality, scale=scale, bundle=onnx)
    a, b = (np.asarray(jpegplus.decode(data, bundle=bd), np.int64) for bd in bundles)
    assert a.shape == photo.shape and np.abs(a - b).max() <= runtime.TOLERANCE
    # Encoding through torch writes a file of the same size within a few bytes (PreNet rounding ties).
    assert abs(len(jpegplus.encode(photo, quality, scale=scale, bundle=torch_)) - len(data)) <= 16


def test_torch_batches_on_the_cpu_run_through_onnx(bundles, photo):
    onnx, torch_ = bundles
    x = torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2).float() / 255
    got = [engine.encode(b, engine.BatchNets(b, x), False, 30, None, {}, keep_rec=True) for b in bundles]
    for a, b in zip(*got):
        assert np.abs(a.rec.astype(int) - b.rec).max() <= runtime.TOLERANCE


def test_gpu_requests_without_torch_name_the_extra(monkeypatch, photo):
    data = jpegplus.encode(photo, 50)
    real = runtime.installed
    monkeypatch.setattr(runtime, "installed", lambda name: False if name == "torch" else real(name))
    with pytest.raises(runtime.RuntimeMissingError, match=r"pip install 'jpegplus\[torch\]'") as info:
        jpegplus.decode(data, device="cuda")
    assert "\n" not in str(info.value)
    assert jpegplus.decode(data).size == (photo.shape[1], photo.shape[0])  # the CPU needs no torch


def test_cpu_device_is_the_default_path(photo):
    data = jpegplus.encode(photo, 50)
    assert np.array_equal(np.asarray(jpegplus.decode(data, device="cpu")), np.asarray(jpegplus.decode(data)))


def test_thread_setting_reaches_both_runtimes(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "_threads", 0)
    try:
        runtime.set_threads(1)
        assert runtime.threads() == 1 and torch.get_num_threads() == 1
        net = load_bundle(runtime="onnx").nets["post"]
        assert all(s.get_session_options().intra_op_num_threads == 1 for s in net.sessions.values())
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def int8_weights(tmp_path_factory, photo):
    """A copy of the shipped weights whose PostNet also lists int8 graphs, as
    training.export --int8 writes them (calibrated here on two fixture files)."""
    import dataclasses
    import json
    import shutil

    from jpegplus.bundle import read_manifest, weights_dir
    from training.common import int8_calibration_feeds
    from training.export import int8_graph

    folder = tmp_path_factory.mktemp("int8") / "weights"
    shutil.copytree(weights_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py", "ablation*"))
    manifest = read_manifest(folder)
    post = manifest.models["post"]
    graphs = tuple(dataclasses.replace(g, int8=int8_graph(folder, g, int8_calibration_feeds(
        str(Path(__file__).parent / "fixtures"), g.scale, count=3, crop=64))) for g in post.graphs)
    models = {**manifest.models, "post": dataclasses.replace(post, graphs=graphs)}
    (folder / "manifest.json").write_text(json.dumps(dataclasses.replace(manifest, models=models).to_json()))
    return folder


def test_int8_postnet_stays_within_its_tolerance(bundles, photo, int8_weights):
    float32, _ = bundles
    int8 = load_bundle(int8_weights, runtime="onnx")
    assert int8.precision == "int8" and load_bundle(int8_weights, runtime="onnx", precision="float32").precision \
        == "float32"
    for quality, scale in ((10, 2), (30, 1), (90, 1)):
        data = jpegplus.encode(photo, quality, scale=scale, bundle=float32)
        a, b = (np.asarray(jpegplus.decode(data, bundle=bd)) for bd in (int8, float32))
        assert psnr(a, b) >= runtime.INT8_MIN_PSNR
        assert psnr(photo, a) > psnr(photo, b) - 0.1  # what int8 costs against the original: hundredths of a dB


def test_a_missing_int8_graph_is_refused_unless_float32_is_asked_for(int8_weights, tmp_path):
    import shutil

    from jpegplus.bundle import read_manifest
    from jpegplus.errors import WeightsError

    folder = tmp_path / "weights"
    shutil.copytree(int8_weights, folder)
    (folder / read_manifest(folder).models["post"].graphs[0].int8[0]).unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_bundle(folder, runtime="onnx")
    assert load_bundle(folder, runtime="onnx", precision="float32").precision == "float32"


def test_precision_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.PRECISION_VAR, "float32")
    assert load_bundle(runtime="onnx").precision == "float32"
    monkeypatch.setenv(runtime.PRECISION_VAR, "int4")
    with pytest.raises(ValueError, match="int8, float32"):
        load_bundle(runtime="onnx")
