"""`jpegplus bench`: a smoke run on two fixture images, and its building blocks."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jpegplus.evaluation import bench, peers
from jpegplus.bundle import weights_dir

FIXTURES = Path(__file__).parent / "fixtures"

QUALITIES = [20, 60, 90]
ANCHOR_QUALITIES = [10, 50, 90]  # the default 10 … 90 takes too long for a unit test
NOFAKE = "pre/post without FakeCodec"


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
    manifest = json.loads((weights_dir() / "manifest.json").read_text())
    shutil.copy(weights_dir() / "manifest.json", nofake / "manifest.json")
    for entry in manifest["models"].values():
        shutil.copy(weights_dir() / entry["file"], nofake / entry["file"])
    out = root / "out"
    argv = [str(images), "--out", str(out), "--qualities", *map(str, QUALITIES), "--no-speed",
            "--anchor-qualities", *map(str, ANCHOR_QUALITIES),
            "--ablation-weights", str(nofake)]
    code = bench.main(argv)
    results = json.loads((out / "results.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    return code, out, results


@pytest.fixture(scope="module")
def curves(run):
    return run[2]["curves"]


def rows(results, codec, image):
    return {r["quality"]: r for r in results["per_image"][image][codec]["rows"]}


def test_run_writes_its_three_files_and_the_table(run, capsys):
    code, out, results = run
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
                "PostNet alone (scale 1)", NOFAKE}
    if peers.jpegli() is not None:
        expected.add("jpegli")
    assert set(curves) == expected
    assert curves["jpegplus"]["qualities"] == QUALITIES
    for name, c in curves.items():
        assert c["qualities"] == (QUALITIES if name.startswith(("jpegplus", "pre/post")) else ANCHOR_QUALITIES)


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


def test_quality_raises_rate_psnr_and_ms_ssim(curves):
    for name in ("Pillow default", "jpegplus", "jpegplus scale 1 only"):
        c = curves[name]
        for key in ("bpp", "psnr", "ms_ssim"):
            assert np.all(np.diff(c[key]) > 0), (name, key, c[key])
    assert 22 < curves["Pillow default"]["psnr"][0] < 28 and 31 < curves["Pillow default"]["psnr"][-1] < 37


def test_optimize_saves_bytes_at_identical_pixels(run):
    results = run[2]
    for img in results["image_names"]:
        default, optimized = rows(results, "Pillow default", img), rows(results, "Pillow optimize", img)
        for q in ANCHOR_QUALITIES:
            assert optimized[q]["bytes"] < default[q]["bytes"]
            assert optimized[q]["psnr"] == default[q]["psnr"]
            assert optimized[q]["ms_ssim"] == default[q]["ms_ssim"]
    s = results["summary"]["Pillow optimize"]
    assert -30 < s["bd_rate_psnr"] < -2 and s["bd_rate_ms_ssim"] == pytest.approx(s["bd_rate_psnr"], abs=1.0)
    assert s["spans_anchor_psnr"]


def test_anchor_against_itself(run):
    s = run[2]["summary"]["Pillow default"]
    assert s["bd_rate_psnr"] == pytest.approx(0, abs=1e-9) and s["bd_rate_ms_ssim"] == pytest.approx(0, abs=1e-9)
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
    assert {c.role for c in codecs} == {"anchor", "peer", "jpegplus"}


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
    for key in ("jpegplus_encode", "jpegplus_decode", "pillow_encode", "pillow_decode"):
        v = speed[f"{key}_ms_per_mp"]
        assert math.isfinite(v) and 0.1 < v < 100_000
    assert speed["pillow_decode_ms_per_mp"] < speed["jpegplus_decode_ms_per_mp"]


def test_empty_or_missing_folder_is_an_error(tmp_path, capsys):
    assert bench.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert bench.main([str(tmp_path / "absent")]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit):
        bench.main([str(tmp_path), "--qualities", "0"])
