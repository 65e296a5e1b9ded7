"""`jpegplus bench`: a smoke run on two fixture images, and its building blocks
(the no-networks yardstick, the standard viewer, the low-rate table)."""
import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegplus.evaluation import bench, peers
from jpegplus.bundle import read_manifest, weights_dir

FIXTURES = Path(__file__).parent / "fixtures"

QUALITIES = [1, 20, 60, 90]
ANCHOR_QUALITIES = [10, 50, 90]  # the default 10 … 90 takes too long for a unit test
LOW_QUALITIES = [1, 5]
NOFAKE = "pre/post without FakeCodec"
EXTENSIONS = {"Pillow default (low qualities)", "area ½ + bicubic (low qualities)"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One benchmark run: 2 images, jpegplus at 3 qualities, all ablations (the
    no-FakeCodec pair is a copy of the shipped weights), no speed pass."""
    root = tmp_path_factory.mktemp("bench")
    images = root / "images"
    images.mkdir()
    for name in ("val0.png", "val2.png"):
        shutil.copy(FIXTURES / name, images / name)
    (images / "notes.txt").write_text("not an image")
    nofake = root / "nofake"
    nofake.mkdir()
    shutil.copy(weights_dir() / "manifest.json", nofake / "manifest.json")
    for entry in read_manifest().models.values():
        for name in entry.files():
            shutil.copy(weights_dir() / name, nofake / name)
    out = root / "out"
    argv = [str(images), "--out", str(out), "--qualities", *map(str, QUALITIES), "--no-speed",
            "--anchor-qualities", *map(str, ANCHOR_QUALITIES), "--low-qualities", *map(str, LOW_QUALITIES),
            "--ablation-weights", str(nofake)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = bench.main(argv)
    results = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    return code, out, results, printed.getvalue()


@pytest.fixture(scope="module")
def curves(run):
    return run[2]["curves"]


def rows(results, codec, image):
    return {r["quality"]: r for r in results["per_image"][image][codec]["rows"]}


def test_run_writes_its_three_files_and_the_table(run):
    code, out, results, _ = run
    assert code == 0
    assert results["images"] == 2 and results["image_names"] == ["val0.png", "val2.png"]
    with Image.open(out / "rd.png") as im:
        assert im.format == "PNG" and im.size[0] > 800 and im.size[1] > 300
    md = (out / "results.md").read_text()
    assert "Pillow default at q10, 50, 90 " in md
    assert "| codec | BD-rate PSNR-RGB | BD-rate MS-SSIM |" in md
    for name in results["curves"]:
        assert f"| {name} " in md or f"| **{name}** " in md
    env = results["environment"]
    assert env["model_id"] == json.loads((weights_dir() / "manifest.json").read_text())["model_id"]
    assert env["torch_threads"] >= 1 and "--no-speed" in env["command"]
    assert results["speed"] is None


def test_every_codec_is_there(curves):
    expected = {"Pillow default", "Pillow optimize", "area ½ + bicubic", "jpegplus", "jpegplus scale 1 only",
                "PostNet alone (scale 1)", NOFAKE, "no networks", "standard viewer", *EXTENSIONS}
    if peers.jpegli() is not None:
        expected.add("jpegli")
    assert set(curves) == expected
    assert curves["jpegplus"]["qualities"] == QUALITIES
    jpegplus_qualities = ("jpegplus", "pre/post", "no networks", "standard viewer")
    for name, c in curves.items():
        want = QUALITIES if name.startswith(jpegplus_qualities) else LOW_QUALITIES if name in EXTENSIONS \
            else ANCHOR_QUALITIES
        assert c["qualities"] == want, name


def test_rate_is_bits_per_original_pixel_and_curves_average_images(run):
    results = run[2]
    for codec, c in results["curves"].items():
        per = [rows(results, codec, img) for img in results["image_names"]]
        for i, q in enumerate(c["qualities"]):
            for r in per:
                assert r[q]["bpp"] == pytest.approx(r[q]["bytes"] * 8 / (192 * 128))
            assert c["bpp"][i] == pytest.approx(np.mean([r[q]["bpp"] for r in per]))
            assert c["psnr"][i] == pytest.approx(np.mean([r[q]["psnr"] for r in per]))
            assert c["ms_ssim"][i] == pytest.approx(np.mean([r[q]["ms_ssim"] for r in per]))
            assert c["ssimulacra2"][i] == pytest.approx(np.mean([r[q]["ssimulacra2"] for r in per]))


def test_quality_raises_rate_psnr_and_ms_ssim(curves):
    for name in ("Pillow default", "jpegplus", "jpegplus scale 1 only", "no networks"):
        c = curves[name]
        for key in ("bpp", "psnr", "ms_ssim", "ssimulacra2"):
            assert np.all(np.diff(c[key]) >= 0), (name, key, c[key])
            assert c[key][-1] > c[key][0], (name, key, c[key])
    assert 22 < curves["Pillow default"]["psnr"][0] < 28 and 31 < curves["Pillow default"]["psnr"][-1] < 37


def test_optimize_saves_bytes_at_identical_pixels(run):
    results = run[2]
    for img in results["image_names"]:
        default, optimized = rows(results, "Pillow default", img), rows(results, "Pillow optimize", img)
        for q in ANCHOR_QUALITIES:
            assert optimized[q]["bytes"] < default[q]["bytes"]
            assert optimized[q]["psnr"] == default[q]["psnr"]
            assert optimized[q]["ms_ssim"] == default[q]["ms_ssim"]
            assert optimized[q]["ssimulacra2"] == default[q]["ssimulacra2"]
    s = results["summary"]["Pillow optimize"]
    assert -30 < s["bd_rate_psnr"] < -2 and s["bd_rate_ms_ssim"] == pytest.approx(s["bd_rate_psnr"], abs=1.0)
    assert s["spans_anchor_psnr"]


def test_anchor_against_itself(run):
    s = run[2]["summary"]["Pillow default"]
    assert s["bd_rate_psnr"] == pytest.approx(0, abs=1e-9) and s["bd_rate_ms_ssim"] == pytest.approx(0, abs=1e-9)
    assert s["bd_rate_ssimulacra2"] == pytest.approx(0, abs=1e-9)
    assert s["spans_anchor_psnr"] and s["overlap_share"] == pytest.approx(1.0)


def test_area_downsampling_is_cheaper_and_caps_psnr(curves):
    area, anchor = curves["area ½ + bicubic"], curves["Pillow default"]
    assert np.all(np.array(area["bpp"]) < np.array(anchor["bpp"]))
    assert area["psnr"][-1] < anchor["psnr"][-1] - 3


def test_jpegplus_files_and_the_scale_one_ablation(run):
    results = run[2]
    for img in results["image_names"]:
        main, s1 = rows(results, "jpegplus", img), rows(results, "jpegplus scale 1 only", img)
        for q in QUALITIES:
            assert main[q]["scale"] in (1, 2) and s1[q]["scale"] == 1
            if main[q]["scale"] == 1:  # the closed loop chose scale 1: the very same file
                assert s1[q]["bytes"] == main[q]["bytes"] and s1[q]["psnr"] == main[q]["psnr"]
    assert all(0 <= v <= 1 for v in results["curves"]["jpegplus"]["scale2_share"])


def test_postnet_alone_decodes_the_anchor_files(run):
    results = run[2]
    for img in results["image_names"]:
        anchor, post = rows(results, "Pillow default", img), rows(results, "PostNet alone (scale 1)", img)
        for q in ANCHOR_QUALITIES:
            assert post[q]["bytes"] == anchor[q]["bytes"]
            assert post[q]["psnr"] > anchor[q]["psnr"] - 1.0  # enhancement must not wreck the image


def test_ablation_bundle_is_used(run):
    # The no-FakeCodec folder holds a copy of the shipped weights here, so its files are identical.
    results = run[2]
    for img in results["image_names"]:
        assert rows(results, NOFAKE, img) == rows(results, "jpegplus", img)


def test_ladder_check_compares_equal_qualities(run):
    check = run[2]["ladder_check"]
    assert [r["quality"] for r in check] == [90]
    assert all(0.2 < r["bytes_ratio"] < 2 and abs(r["psnr_gain_db"]) < 6 for r in check)


def test_missing_ablation_weights_give_a_note(tmp_path):
    codecs, notes, _ = bench.build_codecs([50], True, tmp_path / "absent")
    assert NOFAKE not in {c.name for c in codecs}
    assert any("without FakeCodec skipped" in n for n in notes)
    codecs, notes, _ = bench.build_codecs([50], False, None)
    # without ablations the yardstick stays: the learned share and the low-rate table are in every run
    assert {c.role for c in codecs} == {"anchor", "peer", "jpegplus", "yardstick", "extension"}
    assert {"no networks", "standard viewer"} <= {c.name for c in codecs}
    codecs, _, _ = bench.build_codecs([50], False, None, low_qualities=[])
    assert "extension" not in {c.role for c in codecs}


def test_compare_to_anchor_on_synthetic_curves():
    anchor = {"bpp": [0.3, 0.6, 1.2, 2.4], "psnr": [26.0, 29.0, 32.0, 36.0], "ms_ssim_db": [9.0, 11.0, 13.0, 16.0]}
    half = dict(anchor, bpp=[b / 2 for b in anchor["bpp"]])
    short = dict(anchor, psnr=[20.0, 22.0, 27.0, 30.0])
    s = bench.compare_to_anchor({"Pillow default": anchor, "half": half, "short": short})
    assert s["half"]["bd_rate_psnr"] == pytest.approx(-50, abs=0.1)
    assert s["half"]["bd_rate_ms_ssim"] == pytest.approx(-50, abs=0.1)
    assert s["half"]["spans_anchor_psnr"] and not s["short"]["spans_anchor_psnr"]
    assert s["short"]["overlap_psnr"] == [26.0, 30.0] and s["short"]["overlap_share"] == pytest.approx(0.4)


def test_speed_is_measured_in_ms_per_megapixel():
    speed = bench.measure_speed([FIXTURES / "val1.png"])
    assert speed["images"] == 1 and speed["quality"] == 75
    for key in ("jpegplus_encode", "jpegplus_decode", "jpegplus_torch_encode", "jpegplus_torch_decode",
                "pillow_encode", "pillow_decode"):
        v = speed[f"{key}_ms_per_mp"]
        assert math.isfinite(v) and 0.1 < v < 100_000
    assert speed["pillow_decode_ms_per_mp"] < speed["jpegplus_decode_ms_per_mp"]
    from jpegplus.bundle import default_bundle

    assert ("jpegplus_1view_decode_ms_per_mp" in speed) == (default_bundle().views > 1)  # what views cost


def test_empty_or_missing_folder_is_an_error(tmp_path, capsys):
    assert bench.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert bench.main([str(tmp_path / "absent")]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path), "--qualities", "0"])


# ---------------------------------------------------------------- the yardstick: no networks, standard viewer

def test_fresh_networks_are_identity_area_and_bicubic():
    """What the no-networks row rests on, checked on the manifest's own classes
    without jpegplus's check_identity: a fresh PreNet gives x and the 2×2 mean,
    a fresh PostNet gives y and torch's bicubic ×2 (which matches the separable
    Keys a = -0.75 kernel computed here by hand)."""
    import torch
    import torch.nn.functional as F

    from jpegplus.bundle import default_bundle
    from jpegplus.models import build

    manifest = default_bundle().manifest
    pre = build(manifest.models["pre"].class_name, manifest.models["pre"].config).eval()
    post = build(manifest.models["post"].class_name, manifest.models["post"].config).eval()
    x = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    level = torch.tensor([0.4])
    with torch.inference_mode():
        assert torch.equal(pre(x, level, 1), x)
        area = x.reshape(1, 3, 16, 2, 32, 2).mean(dim=(3, 5))
        assert torch.allclose(pre(x, level, 2), area, atol=1e-6, rtol=0)
        assert torch.equal(post(x, level, 1), x)
        up = post(x, level, 2)
    assert torch.equal(up, F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False))

    def keys(t, a=-0.75):  # the cubic convolution kernel
        t = abs(t)
        return (a + 2) * t**3 - (a + 3) * t**2 + 1 if t <= 1 else a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a if t < 2 else 0

    def upsample_matrix(n):  # ×2, half-pixel centres, edge clamp
        m = np.zeros((2 * n, n))
        for i in range(2 * n):
            src = (i + 0.5) / 2 - 0.5
            base = math.floor(src)
            for k in range(base - 1, base + 3):
                m[i, min(max(k, 0), n - 1)] += keys(src - k)
        return m

    xs = x[0].double().numpy()
    ref = np.einsum("ij,cjk,lk->cil", upsample_matrix(32), xs, upsample_matrix(64))
    assert np.abs(up[0].double().numpy() - ref).max() < 1e-5


def test_check_identity_refuses_trained_networks():
    from jpegplus.bundle import load_bundle

    bundle = load_bundle(runtime="torch")
    with pytest.raises(peers.NotIdentityError, match="PostNet"):
        peers.check_identity("post", bundle.nets["post"])
    ident = peers.identity_bundle()
    for name in ("pre", "post"):
        peers.check_identity(name, ident.nets[name])
        assert type(ident.nets[name]) is type(bundle.nets[name])
    assert ident.manifest.tables == bundle.manifest.tables and ident.manifest.ladder == bundle.manifest.ladder
    assert ident.model_id == peers.IDENTITY_MODEL_ID != bundle.model_id


@pytest.mark.parametrize("quality, scale", [(1, None), (30, 2), (80, None)])
def test_fast_identity_gives_the_files_and_decodes_of_full_fresh_networks(fixture_rgb, quality, scale):
    import jpegplus

    rgb = fixture_rgb[:117, :181]  # odd sides: padding and cropping are the same too
    fast, full = peers.identity_bundle(), peers.identity_bundle(fast=False)
    a = jpegplus.encode(rgb, quality, scale=scale, bundle=fast)
    b = jpegplus.encode(rgb, quality, scale=scale, bundle=full)
    assert a == b
    assert np.array_equal(np.asarray(jpegplus.decode(a, bundle=fast)), np.asarray(jpegplus.decode(b, bundle=full)))


def test_no_networks_is_plain_pillow_decode_at_scale_one(fixture_rgb):
    """At scale 1 identity PostNet gives what Pillow decodes: the no-networks
    decode and the standard viewer agree pixel for pixel."""
    codec = peers.no_networks([60])
    viewer = peers.standard_viewer([60])
    data = jpegplus_encode_scale(fixture_rgb, 60, 1, peers.identity_bundle())
    size = fixture_rgb.shape[1::-1]
    assert np.array_equal(codec.decode(data, size), viewer.decode(data, size))


def jpegplus_encode_scale(rgb, quality, scale, bundle=None):
    import jpegplus

    return jpegplus.encode(rgb, quality, scale=scale, bundle=bundle)


def test_standard_viewer_decodes_with_plain_pillow_and_bicubic(fixture_rgb):
    import jpegplus

    rgb = fixture_rgb[:117, :181]
    viewer = peers.standard_viewer([30])
    for scale in (1, 2):
        data = jpegplus_encode_scale(rgb, 30, scale)
        with Image.open(io.BytesIO(data)) as im:
            plain = im.convert("RGB")
        if scale == 2:
            assert plain.size == (91, 59)
            plain = plain.resize((182, 118), Image.BICUBIC)
        shown = viewer.decode(data, (181, 117))
        assert shown.shape == rgb.shape and np.array_equal(shown, np.asarray(plain)[:117, :181])
        # what jpegplus's own decoder shows differs: PostNet ran there
        assert not np.array_equal(shown, np.asarray(jpegplus.decode(data)))
    # a registered jpegplus plugin does not change what the standard viewer shows
    jpegplus.register()
    try:
        assert np.array_equal(viewer.decode(data, (181, 117)), shown)
    finally:
        jpegplus.unregister()


def test_standard_viewer_and_no_networks_rows(run):
    results = run[2]
    for img in results["image_names"]:
        main, view = rows(results, "jpegplus", img), rows(results, "standard viewer", img)
        nonet = rows(results, "no networks", img)
        for q in QUALITIES:
            assert view[q]["bytes"] == main[q]["bytes"] and view[q]["scale"] == main[q]["scale"]
            assert nonet[q]["scale"] in (1, 2)
            assert view[q]["psnr"] < main[q]["psnr"] + 1.0
    assert "standard viewer" in results["summary"] and "no networks" in results["summary"]


def test_learned_share_is_printed_and_stored(run):
    _, out, results, printed = run
    share, summary = results["learned_share"], results["summary"]
    for key in ("psnr", "ms_ssim", "ssimulacra2"):
        want = summary["no networks"][f"bd_rate_{key}"] - summary["jpegplus"][f"bd_rate_{key}"]
        assert share[key] == pytest.approx(want)
    line = f"**Learned share** = BD-rate(no networks) − BD-rate(jpegplus): {share['psnr']:+.1f} points over PSNR-RGB"
    assert line in printed and line in (out / "results.md").read_text()
    assert "| standard viewer |" in printed and "| no networks |" in printed


def test_postnet_gain_pairs_the_same_files():
    curves = {"jpegplus": {"qualities": [1, 20, 60], "psnr": [25.0, 31.0, 38.5]},
              "standard viewer": {"qualities": [1, 20, 60], "psnr": [24.0, 30.5, 38.4]},
              "Pillow default": {"qualities": [10, 50], "psnr": [27.0, 33.0]},
              peers.POSTNET_ALONE: {"qualities": [10, 50, 90], "psnr": [28.25, 33.5, 40.0]}}
    rows = bench.postnet_gain(curves)
    assert [r["files"] for r in rows] == ["jpegplus files", "Pillow's files, enhance=True"]
    assert rows[0]["gain_db"] == pytest.approx({1: 1.0, 20: 0.5, 60: 0.1})
    assert rows[1]["gain_db"] == pytest.approx({10: 1.25, 50: 0.5})  # q90: no plain decode measured
    assert bench.postnet_gain({"jpegplus": curves["jpegplus"]}) == []


def test_postnet_gain_of_the_run(run):
    _, out, results, printed = run
    curves = results["curves"]
    main, alone = results["postnet_gain"]
    for q in QUALITIES:
        want = (curves["jpegplus"]["psnr"][curves["jpegplus"]["qualities"].index(q)]
                - curves["standard viewer"]["psnr"][curves["standard viewer"]["qualities"].index(q)])
        assert main["gain_db"][str(q)] == pytest.approx(want)
    assert set(alone["gain_db"]) == {str(q) for q in ANCHOR_QUALITIES}
    assert alone["gain_db"]["10"] > 0.3  # PostNet restores Pillow's quality-10 files on the fixtures
    assert "PostNet's gain in PSNR-RGB (dB)" in printed
    assert "| jpegplus files (jpegplus against standard viewer) |" in (out / "results.md").read_text()


def test_learned_share_without_the_rows():
    summary = {"jpegplus": {"bd_rate_psnr": -30.0, "bd_rate_ms_ssim": None},
               "no networks": {"bd_rate_psnr": -27.5, "bd_rate_ms_ssim": -10.0}}
    assert bench.learned_share(summary) == {"psnr": pytest.approx(2.5), "ms_ssim": None}
    assert bench.learned_share({"jpegplus": summary["jpegplus"]}) is None


# ---------------------------------------------------------------- the low-rate table

def test_value_at_rate_interpolates_over_log_rate():
    bpp = [0.05, 0.1, 0.2, 0.4, 0.8]
    psnr = [20 + 3 * math.log2(b / 0.05) for b in bpp]  # 3 dB per doubling: a line in log-rate
    assert bench.value_at_rate(bpp, psnr, 0.15) == pytest.approx(23 + 3 * math.log2(1.5))
    assert bench.value_at_rate(bpp, psnr, 0.1) == pytest.approx(23.0)
    assert bench.value_at_rate(bpp, psnr, 0.05) == pytest.approx(20.0)
    assert bench.value_at_rate(bpp, psnr, 0.04) is None and bench.value_at_rate(bpp, psnr, 0.9) is None
    # order does not matter, and the same file at two qualities (equal rates) counts once
    assert bench.value_at_rate(bpp[::-1] + [0.1], psnr[::-1] + [23.0], 0.3) == pytest.approx(
        bench.value_at_rate(bpp, psnr, 0.3))


def synthetic(bpp, psnr, role="peer", qualities=None, extends=None):
    c = {"role": role, "qualities": qualities or list(range(10, 10 * len(bpp) + 1, 10)), "bpp": list(bpp),
         "psnr": list(psnr), "ms_ssim_db": [p / 2 for p in psnr]}
    if extends:
        c["extends"] = extends
    return c


def test_low_rate_table_joins_extensions_and_compares_to_area():
    area = synthetic([0.1, 0.2, 0.4], [22.0, 24.0, 26.0])
    area_low = synthetic([0.03, 0.05], [19.0, 20.5], role="extension", qualities=[1, 5], extends="area ½ + bicubic")
    half = synthetic([0.05, 0.1, 0.2], [22.0, 24.0, 26.0], role="jpegplus", qualities=[1, 10, 50])
    curves = {"Pillow default": synthetic([0.3, 0.6], [26.0, 30.0], role="anchor"), "area ½ + bicubic": area,
              "area ½ + bicubic (low qualities)": area_low, "jpegplus": half}
    joined = bench.joined_curve(curves, "area ½ + bicubic")
    assert joined["qualities"] == [1, 5, 10, 20, 30] and joined["bpp"] == [0.03, 0.05, 0.1, 0.2, 0.4]
    table = bench.low_rate_table(curves)
    assert table["targets_bpp"] == [0.10, 0.15, 0.25] and table["reference"] == "area ½ + bicubic"
    j, a, p = (table["codecs"][n] for n in ("jpegplus", "area ½ + bicubic", "Pillow default"))
    assert j["lowest_bpp"] == 0.05 and j["lowest_quality"] == 1 and j["psnr_at_lowest"] == 22.0
    assert a["lowest_bpp"] == 0.03 and a["lowest_quality"] == 1
    assert j["psnr_at"]["0.10"] == pytest.approx(24.0) and j["psnr_at"]["0.25"] is None
    assert a["psnr_at"]["0.10"] == pytest.approx(22.0) and a["psnr_at"]["0.25"] is not None
    assert p["psnr_at"] == {"0.10": None, "0.15": None, "0.25": None}
    # jpegplus is area's curve at half the rate over 22-26 dB
    assert j["vs_reference"]["bd_rate_psnr"] == pytest.approx(-50, abs=0.5)
    assert j["overlap_psnr"] == [22.0, 26.0]
    assert a["vs_reference"]["bd_rate_psnr"] == pytest.approx(0, abs=1e-9)
    assert p["overlap_psnr"] is None and p["vs_reference"]["bd_rate_psnr"] is None
    assert "no networks" not in table["codecs"]  # rows only for codecs that ran
    # extensions stay out of the BD-rate summary against the anchor
    assert "area ½ + bicubic (low qualities)" not in bench.compare_to_anchor(curves)


def test_low_rate_table_of_the_run(run):
    _, out, results, printed = run
    low = results["low_rate"]
    assert list(low["codecs"]) == ["jpegplus", "no networks", "standard viewer", "Pillow default", "area ½ + bicubic"]
    curves = results["curves"]
    assert low["codecs"]["jpegplus"]["lowest_quality"] == 1
    assert low["codecs"]["jpegplus"]["lowest_bpp"] == pytest.approx(min(curves["jpegplus"]["bpp"]))
    for name in ("Pillow default", "area ½ + bicubic"):
        lowest = low["codecs"][name]
        assert lowest["lowest_quality"] == 1
        assert lowest["lowest_bpp"] == pytest.approx(curves[f"{name} (low qualities)"]["bpp"][0])
        assert lowest["lowest_bpp"] < min(curves[name]["bpp"])
    for r in low["codecs"].values():
        assert set(r["psnr_at"]) == {"0.10", "0.15", "0.25"}
        assert set(r["vs_reference"]) == {"bd_rate_psnr", "bd_rate_ms_ssim", "bd_rate_ssimulacra2"}
    assert "PSNR at 0.15 bpp" in printed and "| area ½ + bicubic | " in printed
    assert "PSNR at 0.15 bpp" in (out / "results.md").read_text()


# ---------------------------------------------------------------- SSIMULACRA2

def test_ssimulacra2_is_scored_and_cross_checked(run):
    pytest.importorskip("ssimulacra2")
    results = run[2]
    check = results["ssimulacra2_check"]
    assert check["within_tolerance"] and abs(check["difference"]) <= bench.SSIMULACRA2_TOLERANCE
    assert "ssimulacra2 package" in check["note"]
    for img in results["image_names"]:
        anchor = rows(results, "Pillow default", img)
        assert anchor[10]["ssimulacra2"] < anchor[50]["ssimulacra2"] < anchor[90]["ssimulacra2"] < 100
    assert "BD-rate SSIMULACRA2" in run[3]


def test_measure_image_without_ssimulacra2(fixture_rgb):
    codecs = [peers.pillow_default([30, 70])]
    without = bench.measure_image(fixture_rgb, codecs, ssimulacra2=False)["Pillow default"]["rows"]
    with_ = bench.measure_image(fixture_rgb, codecs)["Pillow default"]["rows"]
    assert all("ssimulacra2" not in r for r in without) and all("ssimulacra2" in r for r in with_)
    assert [r["psnr"] for r in without] == [r["psnr"] for r in with_]
    curves = bench.average_curves({"a": {"Pillow default": {"rows": without, "seconds": 0}}}, codecs)
    assert "ssimulacra2" not in curves["Pillow default"]
    assert set(bench.compare_to_anchor(curves)["Pillow default"]) >= {"bd_rate_psnr", "bd_rate_ms_ssim"}
    assert "bd_rate_ssimulacra2" not in bench.compare_to_anchor(curves)["Pillow default"]
