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
    onnx_net = runtime.OnnxNet.of(tmp_path, graphs)
    x = np.random.default_rng(1).random((2, 3, 48, 80), np.float32)
    levels = np.array([0.1, 0.7], np.float32)
    for scale in (1, 2):
        assert onnx_net.reach(scale) == net.reach(scale)
        want = runtime.TorchNet(net).infer(x, levels, scale)
        got = onnx_net.infer(x, levels, scale)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4



def test_a_prenet_passing_through_at_scale_1_has_no_graph_there_and_is_skipped(tmp_path, photo):
    """PreNet(identity_scales=[1]) returns its input at scale 1 and stays the learned downsampler at scale 2;
    its config rebuilds it, its export has no scale-1 graph, and both runtimes and run_tiled pass the image
    through untouched (run_tiled hands back the very array: no float round trip)."""
    from jpegplus.models import build

    torch.manual_seed(0)
    learned = PreNet().eval()
    for p in learned.parameters():
        p.data.normal_(0, 0.05)
    net = build("PreNet", {**learned.config, "identity_scales": [1]}).eval()
    net.load_state_dict(learned.state_dict())  # the same tensors: the scale-1 head stays, unused
    assert net.config["identity_scales"] == [1] and "identity_scales" not in learned.config  # older configs keep their form
    with pytest.raises(ValueError, match="scale 1 only"):
        PreNet(identity_scales=[2])
    graphs = export_onnx(net, tmp_path, "pre")
    assert [g.scale for g in graphs] == [2]
    onnx_net = runtime.OnnxNet.of(tmp_path, graphs, identity_scales=net.config["identity_scales"])
    x = np.random.default_rng(1).random((2, 3, 48, 80), np.float32)
    levels = np.array([0.1, 0.7], np.float32)
    for raw, runner in ((onnx_net, onnx_net), (net, runtime.TorchNet(net))):
        assert runner.passes_through(1) and not runner.passes_through(2) and runner.reach(1) == 0
        assert np.array_equal(runner.infer(x, levels, 1), x)
        want = runtime.TorchNet(learned).infer(x, levels, 2)
        assert np.abs(runner.infer(x, levels, 2) - want).max() < 1e-4
        h, w = photo.shape[:2]
        assert tiling.run_tiled(raw, photo, 0.3, 1, (w, h), multiple=16, upsamples=False) is photo
    assert not runtime.TorchNet(learned).passes_through(1)


def test_the_444_flag_starts_as_a_no_op_and_travels_through_both_runtimes(tmp_path):
    from jpegplus.models import build
    from jpegplus.models.nets import with_chroma_flag

    torch.manual_seed(0)
    net = BlockPostNet(channels=8, context=16, detail_depth=1, context_depth=1).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    wide = with_chroma_flag(net).eval()
    assert wide.takes_chroma and not net.takes_chroma and wide.config["chroma_flag"]
    assert "chroma_flag" not in net.config  # older configs keep their form
    y, level = torch.rand(2, 3, 32, 48), torch.tensor([0.2, 0.6])
    with torch.no_grad():
        for flag in (torch.zeros(2), torch.ones(2)):  # zero-initialised: the same function either way
            assert torch.equal(wide(y, level, 1, flag), net(y, level, 1))
        wide.stem.weight[:, -1].normal_(0, 0.5)  # as if trained: the flag now matters
        assert not torch.allclose(wide(y, level, 1, torch.ones(2)), wide(y, level, 1, torch.zeros(2)))
        assert torch.equal(wide(y, level, 1), wide(y, level, 1, torch.zeros(2)))  # None: 4:2:0
    rebuilt = build("BlockPostNet", wide.config)
    rebuilt.load_state_dict(wide.state_dict())  # Net(**config) rebuilds it

    graphs = export_onnx(wide, tmp_path, "p")
    onnx_net = runtime.OnnxNet.of(tmp_path, graphs)
    assert onnx_net.takes_chroma and runtime.TorchNet(wide).takes_chroma
    x = np.random.default_rng(2).random((2, 3, 32, 48), np.float32)
    levels = np.array([0.2, 0.6], np.float32)
    for scale in (1, 2):
        for flags in (np.array([0, 1], np.float32), None):
            want = runtime.TorchNet(wide).infer(x, levels, scale, flags)
            assert np.abs(onnx_net.infer(x, levels, scale, flags) - want).max() < 1e-4
    assert np.abs(runtime.TorchNet(wide).infer(x, levels, 1, np.ones(2, np.float32))
                  - runtime.TorchNet(wide).infer(x, levels, 1)).max() > 1e-3
    # A PostNet that reads the flag restores 4:4:4 files whole; one that does not keeps the guard rails.
    fine = engine.Stored(np.zeros((16, 16, 3), np.uint8), 0.3, full_chroma=True)
    assert engine.postnet_use(fine, 1) == "none" and engine.postnet_use(fine, 1, takes_chroma=True) == "whole"

    # restore (decode and the closed loop) hands each file's own flag to PostNet.
    from types import SimpleNamespace

    pixels = (np.random.default_rng(3).random((32, 48, 3)) * 255).astype(np.uint8)
    nets = engine.TiledNets(SimpleNamespace(nets={"post": wide}, views=1, pre_views=1))
    assert nets.takes_chroma
    got = engine.restore(nets, [engine.Stored(pixels, 0.3, True), engine.Stored(pixels, 0.3, False)], 1, (48, 32))
    for out, flag in zip(got, (True, False)):
        want = tiling.run_tiled(wide, pixels, 0.3, 1, (48, 32), multiple=16, upsamples=True, full_chroma=flag)
        assert np.array_equal(out, want)
    assert not np.array_equal(got[0], got[1])

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
    """A copy of the shipped weights whose PreNet and PostNet list int8 graphs, as
    training.export --int8 writes them (calibrated here on the fixture files)."""
    import dataclasses
    import json
    import shutil

    from jpegplus.bundle import read_manifest, weights_dir
    from training.export import ONNX_NETS, with_int8

    folder = tmp_path_factory.mktemp("int8") / "weights"
    shutil.copytree(weights_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py", "ablation*"))
    manifest = read_manifest(folder)
    fixtures = str(Path(__file__).parent / "fixtures")
    models = {**manifest.models, **{k: with_int8(folder, k, manifest.models[k], fixtures, count=3, crop=64)
                                    for k in ONNX_NETS}}
    (folder / "manifest.json").write_text(json.dumps(dataclasses.replace(manifest, models=models).to_json()))
    return folder


def test_int8_postnet_stays_within_its_tolerance(bundles, photo, int8_weights):
    float32, _ = bundles
    int8 = load_bundle(int8_weights, runtime="onnx", precision="int8")  # whatever this CPU's default
    assert int8.precision == "int8" and load_bundle(int8_weights, runtime="onnx", precision="float32").precision \
        == "float32"
    for quality, scale in ((10, 2), (30, 1), (90, 1)):
        data = jpegplus.encode(photo, quality, scale=scale, bundle=float32)
        a, b = (np.asarray(jpegplus.decode(data, bundle=bd)) for bd in (int8, float32))
        assert psnr(a, b) >= runtime.INT8_MIN_PSNR
        assert psnr(photo, a) > psnr(photo, b) - 0.1  # what int8 costs against the original: hundredths of a dB


def test_int8_prenet_stays_within_its_tolerance(bundles, photo, int8_weights):
    """PreNet's int8 graphs make nearly the image the float32 ones make, and so
    files of nearly the same size and quality (its BD-rate cost on val/:
    training.int8_check)."""
    from jpegplus.tables import quant_level

    float32, _ = bundles
    int8 = load_bundle(int8_weights, runtime="onnx", precision="int8")
    x = tiling.image_to_array(photo)
    scales = [s for s in (2, 1) if not float32.nets["pre"].passes_through(s)]  # where PreNet is a network
    for quality, scale in ((10, scales[0]), (50, scales[-1]), (90, scales[-1])):
        level = np.array([quant_level(float32.manifest.tables.tables(quality))], np.float32)
        a, b = (bd.nets["pre"].infer(x, level, scale) for bd in (int8, float32))
        assert 0 < np.abs(a - b).max() and psnr(*(np.clip(y[0], 0, 1) * 255 for y in (a, b))) >= runtime.INT8_MIN_PSNR
        files = [jpegplus.encode(photo, quality, scale=scale, bundle=bd) for bd in (int8, float32)]
        assert abs(len(files[0]) / len(files[1]) - 1) < 0.02
        decoded_db = [psnr(photo, np.asarray(jpegplus.decode(data, bundle=float32))) for data in files]
        assert abs(decoded_db[0] - decoded_db[1]) < 0.05


def test_a_missing_int8_graph_is_refused_unless_float32_is_asked_for(int8_weights, tmp_path):
    import shutil

    from jpegplus.bundle import read_manifest
    from jpegplus.errors import WeightsError

    folder = tmp_path / "weights"
    shutil.copytree(int8_weights, folder)
    (folder / read_manifest(folder).models["post"].graphs[0].int8[0]).unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_bundle(folder, runtime="onnx", precision="int8")
    assert load_bundle(folder, runtime="onnx", precision="float32").precision == "float32"


def test_precision_is_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv(runtime.PRECISION_VAR, "float32")
    assert load_bundle(runtime="onnx").precision == "float32"
    monkeypatch.setenv(runtime.PRECISION_VAR, "int4")
    with pytest.raises(ValueError, match="int8, float32"):
        load_bundle(runtime="onnx")


def test_film_starts_as_a_no_op_tells_levels_apart_and_travels_through_both_runtimes(tmp_path):
    from jpegplus.models import build
    from jpegplus.models.nets import with_chroma_flag, with_film

    torch.manual_seed(0)
    net = with_chroma_flag(BlockPostNet(channels=8, context=16, detail_depth=1, context_depth=1)).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    film = with_film(net, 5).eval()
    assert film.config == {**net.config, "film": 5} and "film" not in net.config
    y, level, flag = torch.rand(2, 3, 32, 48), torch.tensor([0.2, 0.6]), torch.tensor([0.0, 1.0])
    with torch.no_grad():
        assert torch.equal(film(y, level, 1, flag), net(y, level, 1, flag))  # zero-initialised: the same function
        film.films[0].linear.weight[:, 1].normal_(0, 0.5)  # as if trained at the knot 0.25 only
        moved = (film(y, level, 1, flag) - net(y, level, 1, flag)).abs().amax((1, 2, 3))
        assert moved[0] > 1e-3 and moved[1] < 1e-6  # level 0.6 is outside that knot's hat
    rebuilt = build("BlockPostNet", film.config)
    rebuilt.load_state_dict(film.state_dict())  # Net(**config) rebuilds it

    for p in film.films.parameters():
        p.data.normal_(0, 0.2)
    graphs = export_onnx(film, tmp_path, "p")
    onnx_net = runtime.OnnxNet.of(tmp_path, graphs)
    x = np.random.default_rng(3).random((2, 3, 32, 48), np.float32)
    for scale in (1, 2):
        want = runtime.TorchNet(film).infer(x, level.numpy(), scale, flag.numpy())
        assert np.abs(onnx_net.infer(x, level.numpy(), scale, flag.numpy()) - want).max() < 1e-4


def test_the_444_flag_widens_a_film_network_too():
    from jpegplus.models.nets import with_chroma_flag, with_film

    torch.manual_seed(0)
    net = with_film(BlockPostNet(channels=8, context=16, detail_depth=1, context_depth=1), 3).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    wide = with_chroma_flag(net).eval()
    assert wide.config == {**net.config, "chroma_flag": True}
    y, level = torch.rand(2, 3, 32, 48), torch.tensor([0.2, 0.6])
    with torch.no_grad():
        for flag in (torch.zeros(2), torch.ones(2)):  # zero-initialised: the same function either way
            assert torch.allclose(wide(y, level, 1, flag), net(y, level, 1), atol=1e-6)


@pytest.mark.parametrize("bounds, members", [([0.5], [0, 1, 0]), ([0.3, 0.7], [0, 1, 1])])  # two bands, three
def test_a_banded_postnet_runs_each_file_through_its_level_bands_member(tmp_path, bounds, members):
    from jpegplus.bundle import NetEntry, save_net
    from jpegplus.models import build
    from jpegplus.models.nets import BandedPostNet
    from jpegplus.tables import level_band

    assert level_band([0.1, 0.3, 0.5, 0.9], [0.3, 0.7]).tolist() == [0, 1, 1, 2]  # a bound opens its band
    with pytest.raises(ValueError):
        BandedPostNet([0.7, 0.3], {})
    torch.manual_seed(0)
    member = {"channels": 8, "context": 16, "detail_depth": 1, "context_depth": 1, "chroma_flag": True}
    net = BandedPostNet(bounds, member).eval()
    for p in net.parameters():
        p.data.normal_(0, 0.05)
    y, level, flag = torch.rand(3, 3, 32, 48), torch.tensor([0.2, 0.6, 0.4]), torch.tensor([0.0, 1.0, 1.0])
    with torch.no_grad():
        mixed = net(y, level, 1, flag)
        for i, b in enumerate(members):  # a mixed batch gives what each file gets alone from its member
            assert torch.allclose(mixed[i:i + 1], net.bands[b](y[i:i + 1], level[i:i + 1], 1, flag[i:i + 1]), atol=1e-6)
        assert (mixed[1] - net.bands[0](y[1:2], level[1:2], 1, flag[1:2])[0]).abs().max() > 1e-3
    rebuilt = build("BandedPostNet", net.config)
    rebuilt.load_state_dict(net.state_dict())  # Net(**config) rebuilds it

    graphs = export_onnx(net, tmp_path, "post")
    keys = [f"{s}" + (f"@{b}" if b else "") for s in (1, 2) for b in range(len(bounds) + 1)]
    assert sorted(g.key for g in graphs) == keys
    entry = NetEntry.from_json({**save_net(net, tmp_path, "post").to_json(),
                                "onnx": {g.key: g.to_json() for g in graphs}})  # the manifest's round trip
    assert {(g.scale, g.band) for g in entry.graphs} == {(s, b) for s in (1, 2) for b in range(len(bounds) + 1)}
    with pytest.raises(ValueError):  # a band without its graph
        NetEntry.from_json({**entry.to_json(), "onnx": {g.key: g.to_json() for g in graphs if g.key != "2@1"}})
    onnx_net = runtime.OnnxNet.of(tmp_path, graphs, net.config["bounds"])
    x = np.random.default_rng(4).random((3, 3, 32, 48), np.float32)
    for scale in (1, 2):
        want = runtime.TorchNet(net).infer(x, level.numpy(), scale, flag.numpy())
        assert np.abs(onnx_net.infer(x, level.numpy(), scale, flag.numpy()) - want).max() < 1e-4
        assert np.abs(onnx_net.infer(x[1:2], level[1:2].numpy(), scale, flag[1:2].numpy()) - want[1:2]).max() < 1e-4


def test_int8_is_the_default_only_on_cpus_with_8_bit_dot_products(monkeypatch):
    avx = "processor\t: 0\nflags\t\t: fpu sse2 avx fma\n"
    assert not runtime.cpu_has_int8_dot(avx) and not runtime.cpu_has_int8_dot("")
    assert not runtime.cpu_has_int8_dot("processor\t: 0\nFeatures\t: fp asimd asimddp\n")  # ARM: not measured
    assert runtime.cpu_has_int8_dot(avx.replace("avx", "avx avx2"))
    assert runtime.cpu_has_int8_dot(avx.replace("avx", "avx avx2 avx512f avx512_vnni"))
    assert runtime.cpu_has_int8_dot(avx.replace("avx", "avx avx_vnni"))
    monkeypatch.delenv(runtime.PRECISION_VAR, raising=False)
    for has, want in ((True, "int8"), (False, "float32")):
        monkeypatch.setattr(runtime, "cpu_has_int8_dot", lambda has=has: has)
        assert runtime.precision() == want
    monkeypatch.setenv(runtime.PRECISION_VAR, "int8")  # the environment decides over the CPU
    assert runtime.precision() == "int8"
