"""The jpegplus command line, through cli.main(argv) (and once as `python -m jpegplus`)."""
import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegplus
import jpegplus.evaluation
from jpegplus import cli, target
from jpegplus import segment as seg

FIXTURES = Path(__file__).parent / "fixtures"
SUMMARY = re.compile(r"(\d+) of (\d+) files: ([\d,]+) bytes -> ([\d,]+) bytes, ([\d.]+) % (smaller|larger) than Pillow "
                     r"at qualit(?:y|ies) ([\d-]+)")
DECODED = re.compile(r"(\d+) of (\d+) files: ([\d.,]+) MP written \(([\d,]+) pixels, ([\d,]+) bytes\)")


@pytest.fixture
def tree(tmp_path):
    """in/val0.png, in/sub/val1.png, loose/val2.png."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "loose").mkdir()
    shutil.copy(FIXTURES / "val0.png", tmp_path / "in" / "val0.png")
    shutil.copy(FIXTURES / "val1.png", tmp_path / "in" / "sub" / "val1.png")
    shutil.copy(FIXTURES / "val2.png", tmp_path / "loose" / "val2.png")
    return tmp_path


def summary(text: str):
    """(done, total, bytes before, bytes after, % against Pillow: negative when smaller, the quality text)."""
    m = SUMMARY.search(text)
    assert m, text
    done, total, before, after = (int(g.replace(",", "")) for g in m.groups()[:4])
    return done, total, before, after, float(m.group(5)) * (-1 if m.group(6) == "smaller" else 1), m.group(7)


def pillow_bytes(path: Path, quality: int, **meta) -> int:
    """What Pillow's own JPEG writer makes of an input at `quality`."""
    buf = io.BytesIO()
    with Image.open(path) as im:
        im.save(buf, "JPEG", quality=quality, **meta)
    return buf.tell()


def is_jpegplus(path: Path) -> bool:
    with Image.open(path) as im:
        return seg.find(im.applist) is not None


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_encode_folder_and_glob_into_out(tree, capsys):
    rc = cli.main(["encode", str(tree / "in"), str(tree / "loose" / "*.png"), "-o", str(tree / "out"), "-q", "60"])
    out = capsys.readouterr().out
    assert rc == 0
    assert files_in(tree / "out") == ["sub/val1.jpg", "val0.jpg", "val2.jpg"]
    assert all(is_jpegplus(p) for p in (tree / "out").rglob("*.jpg"))
    done, total, before, after, pct, quality = summary(out)
    inputs = [tree / "in" / "val0.png", tree / "in" / "sub" / "val1.png", tree / "loose" / "val2.png"]
    outputs = list((tree / "out").rglob("*.jpg"))
    assert (done, total, quality) == (3, 3, "60")
    assert before == sum(p.stat().st_size for p in inputs)
    assert after == sum(p.stat().st_size for p in outputs)
    # against Pillow's own JPEG of the same images at the same quality, with the same metadata (kept)
    pillow = sum(pillow_bytes(p, 60, **{k: v for k, v in Image.open(p).info.items() if k == "icc_profile"})
                 for p in inputs)
    assert abs(pct - 100 * (after / pillow - 1)) < 0.06
    assert "JPEG input" not in out
    assert jpegplus.decode((tree / "out" / "val0.jpg").read_bytes()).size == (192, 128)


def test_encode_keeps_metadata_unless_strip(tree, capsys):
    # A file converter keeps metadata (unlike a Pillow save, which writes only what it is given).
    exif = Image.Exif()
    exif[0x0112] = 6
    src = Image.open(FIXTURES / "val0.png").convert("RGB")
    src.save(tree / "meta.png", dpi=(300, 300), exif=exif, icc_profile=b"not a real profile")
    assert cli.main(["encode", str(tree / "meta.png"), "-o", str(tree / "kept")]) == 0
    assert cli.main(["encode", str(tree / "meta.png"), "-o", str(tree / "bare"), "--strip"]) == 0
    with Image.open(tree / "kept" / "meta.jpg") as im:
        assert im.info["icc_profile"] == b"not a real profile" and im.getexif()[0x0112] == 6
        assert tuple(round(v) for v in im.info["dpi"]) == (300, 300)
    with Image.open(tree / "bare" / "meta.jpg") as im:
        assert not {"icc_profile", "exif", "dpi"} & set(im.info)


def test_encode_layout_options(tree, capsys):
    sizes = {}
    for flag in ("--baseline", "--progressive", None):
        out = tree / f"layout{flag}"
        assert cli.main(["encode", str(tree / "in" / "val0.png"), "-o", str(out)] + ([flag] if flag else [])) == 0
        data = (out / "val0.jpg").read_bytes()
        sizes[flag] = len(data)
        if flag:
            assert (b"\xff\xc2" in data, b"\xff\xc0" in data) == ((True, False) if flag == "--progressive"
                                                                   else (False, True))
    assert sizes[None] == min(sizes["--baseline"], sizes["--progressive"])
    with pytest.raises(SystemExit):
        cli.main(["encode", str(tree / "in"), "-o", str(tree / "x"), "--baseline", "--progressive"])


def test_parallel_workers_give_the_same_files(tree, capsys):
    assert cli.main(["encode", str(tree / "in"), "-o", str(tree / "one")]) == 0
    assert cli.main(["encode", str(tree / "in"), "-o", str(tree / "two"), "-j", "2", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "2/2" in err  # the progress bar ran to the end
    for name in ("val0.jpg", "sub/val1.jpg"):
        assert (tree / "one" / name).read_bytes() == (tree / "two" / name).read_bytes()


def test_decode_to_full_size_png(tree, capsys):
    src = Image.open(FIXTURES / "val0.png").convert("RGB")
    (tree / "j").mkdir()
    jpegplus.save(src, tree / "j" / "half.jpg", 60, scale=2)
    plain = tree / "j" / "plain.jpg"
    src.save(plain, quality=80)
    assert cli.main(["decode", str(tree / "j"), "-o", str(tree / "png")]) == 0
    with Image.open(tree / "png" / "half.png") as im:
        assert im.format == "PNG" and im.size == (192, 128)
        assert np.array_equal(np.asarray(im), np.asarray(jpegplus.decode((tree / "j" / "half.jpg").read_bytes())))
    with Image.open(tree / "png" / "plain.png") as im, Image.open(plain) as ref:
        assert np.array_equal(np.asarray(im), np.asarray(ref))  # a plain JPEG decodes as Pillow does
    m = DECODED.search(capsys.readouterr().out)
    assert m and m.group(1, 2, 3, 4) == ("2", "2", "0.05", "49,152"), m  # 2 × 192 × 128 pixels
    assert int(m.group(5).replace(",", "")) == sum(p.stat().st_size for p in (tree / "png").iterdir())


def test_stdin_to_stdout_as_module(tree):
    png = (FIXTURES / "val2.png").read_bytes()
    run = subprocess.run([sys.executable, "-m", "jpegplus", "encode", "-", "-q", "50"], input=png,
                         capture_output=True, check=True)
    assert run.stdout[:2] == b"\xff\xd8" and seg.find(Image.open(io.BytesIO(run.stdout)).applist)
    assert summary(run.stderr.decode())[:2] == (1, 1)  # the summary goes to stderr, the image to stdout


def test_decode_stdin_to_stdout(tree, monkeypatch, capsysbinary):
    data = jpegplus.encode(Image.open(FIXTURES / "val0.png"), 50)
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))
    assert cli.main(["decode", "-", "-o", "-"]) == 0
    captured = capsysbinary.readouterr()
    with Image.open(io.BytesIO(captured.out)) as im:
        assert im.format == "PNG" and im.size == (192, 128)
    assert b"1 of 1 files" in captured.err


def test_never_overwrites_an_input(tree, capsys):
    jpg_dir = tree / "jpgs"
    assert cli.main(["encode", str(tree / "in"), "-o", str(jpg_dir)]) == 0
    before = {p: p.read_bytes() for p in jpg_dir.rglob("*.jpg")}
    with pytest.raises(SystemExit) as exc:
        cli.main(["encode", str(jpg_dir), "-o", str(jpg_dir)])
    assert exc.value.code == 2
    assert "is an input; refusing to overwrite it" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in jpg_dir.rglob("*.jpg")} == before


def test_two_inputs_one_output_is_refused(tree, capsys):
    Image.open(FIXTURES / "val0.png").save(tree / "in" / "val0.bmp")
    with pytest.raises(SystemExit) as exc:
        cli.main(["encode", str(tree / "in"), "-o", str(tree / "out")])
    assert exc.value.code == 2 and "would both be written to" in capsys.readouterr().err
    assert not (tree / "out").exists()


def test_failures_stop_or_keep_going(tree, capsys):
    bad = tree / "loose" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    good = tree / "loose" / "val2.png"
    rc = cli.main(["encode", str(bad), str(good), "-o", str(tree / "stop")])
    captured = capsys.readouterr()
    assert rc == 1
    failures = [line for line in captured.err.splitlines() if line.startswith("jpegplus: ")]
    assert len(failures) == 1 and str(bad) in failures[0]
    assert not (tree / "stop" / "val2.jpg").exists()  # stopped at the first failure
    assert "1 not done" in captured.out

    rc = cli.main(["encode", str(bad), str(good), "missing.png", "-o", str(tree / "go"), "--keep-going"])
    captured = capsys.readouterr()
    assert rc == 1
    failures = [line for line in captured.err.splitlines() if line.startswith("jpegplus: ")]
    assert len(failures) == 2 and "missing.png" in failures[1]
    assert files_in(tree / "go") == ["val2.jpg"]
    assert summary(captured.out)[:2] == (1, 3) and "2 failed" in captured.out


def test_target_size_and_psnr(tree, capsys):
    src = tree / "loose" / "val2.png"
    assert cli.parse_size("150k") == 150_000 and cli.parse_size("1.5M") == 1_500_000
    assert cli.parse_size("2000") == 2000 and cli.parse_size("12kB") == 12_000
    for bad in ("", "12 kilo", "1.5G", "-3k"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_size(bad)
    n = len(jpegplus.encode(Image.open(src), 50))  # --strip: like encode, no ICC profile of the input's
    assert cli.main(["encode", str(src), "-o", str(tree / "sized"), "--target-size", f"{n / 1000}k", "--strip"]) == 0
    data = (tree / "sized" / "val2.jpg").read_bytes()
    assert len(data) <= n and data == jpegplus.encode(Image.open(src), target_size=n)
    found = target.encode(Image.open(src), target.Goal(size=n))
    assert summary(capsys.readouterr().out)[5] == str(found.quality) and found.quality >= 50
    assert cli.main(["encode", str(src), "-o", str(tree / "psnr"), "--target-psnr", "30", "--strip"]) == 0
    assert (tree / "psnr" / "val2.jpg").read_bytes() == jpegplus.encode(Image.open(src), target_psnr=30)
    capsys.readouterr()
    # out of reach: one line for that file, and --keep-going carries on with the others
    rc = cli.main(["encode", str(src), str(tree / "in" / "val0.png"), "-o", str(tree / "tiny"), "--target-size",
                   str(len(jpegplus.encode(Image.open(tree / "in" / "val0.png"), 1))), "--keep-going", "--strip"])
    captured = capsys.readouterr()
    failures = [line for line in captured.err.splitlines() if line.startswith("jpegplus: ")]
    assert rc == 1 and len(failures) == 1 and "val2.png: TargetError: target_size" in failures[0]
    assert "cannot be met: the smallest file jpegplus writes for this image is" in failures[0]
    assert files_in(tree / "tiny") == ["val0.jpg"] and summary(captured.out)[:2] == (1, 2)
    with pytest.raises(SystemExit) as exc:
        cli.main(["encode", str(src), "-o", str(tree / "x"), "-q", "50", "--target-size", "10k"])
    assert exc.value.code == 2


def test_summary_against_jpeg_inputs(tree, capsys):
    (tree / "j").mkdir()
    src = Image.open(FIXTURES / "val0.png").convert("RGB")
    src.save(tree / "j" / "a.jpg", quality=95)
    src.save(tree / "j" / "b.png")
    assert cli.main(["encode", str(tree / "j"), "-o", str(tree / "re"), "-q", "50"]) == 0
    out = capsys.readouterr().out
    mine = (tree / "re" / "a.jpg").stat().st_size
    theirs = (tree / "j" / "a.jpg").stat().st_size
    m = re.search(r", ([\d.]+) % (smaller|larger) than the JPEG input\b", out)
    assert m and m.group(2) == "smaller" and float(m.group(1)) == pytest.approx(100 * (1 - mine / theirs), abs=0.06)
    assert summary(out)[:2] == (2, 2)


def test_interrupt_leaves_no_partial_file(tree, monkeypatch, capsys):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)  # Ctrl-C after the data hit the temporary file
    rc = cli.main(["encode", str(tree / "loose"), "-o", str(tree / "out")])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    assert files_in(tree / "out") == []


def test_info_lines_and_json(tree, capsys):
    src = Image.open(FIXTURES / "val0.png")
    jpegplus.save(src, tree / "half.jpg", 60, scale=2)
    src.convert("RGB").save(tree / "plain.jpg", quality=80)
    damaged = bytearray((tree / "half.jpg").read_bytes())
    damaged[-20] ^= 0xFF
    (tree / "damaged.jpg").write_bytes(bytes(damaged))
    jpegplus.save(src.convert("1"), tree / "bw.jpg", 60)
    files = [str(tree / n) for n in ("half.jpg", "plain.jpg", "damaged.jpg", "bw.jpg")]
    assert cli.main(["info", *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = jpegplus.bundle.default_bundle().model_id
    assert "192x128 RGB stored as 96x64 (scale 2)" in lines[0] and f"model {model}" in lines[0]
    assert lines[0].endswith("intact") and "shown as stored" not in lines[0]
    assert "plain JPEG" in lines[1] and "192x128" in lines[1]
    assert "NOT intact" in lines[2]
    assert "192x128 L stored as 192x128 (scale 1)" in lines[3] and "shown as stored, intact" in lines[3]
    assert cli.main(["info", "--json", files[0]]) == 0
    [record] = json.loads(capsys.readouterr().out)
    size = (tree / "half.jpg").stat().st_size
    assert record["jpegplus"] == {"version": 2, "scale": 2, "size": [192, 128], "grey": False,
                                  "as_stored": False, "model_id": model, "intact": True, "transcoded": False}
    assert record["bytes"] == size and record["stored_size"] == [96, 64] and record["subsampling"] == "4:2:0"
    assert record["bpp"] == pytest.approx(8 * size / (192 * 128), abs=1e-4)


def test_info_on_a_transcoded_file(tree, capsys):
    if not shutil.which("jpegtran"):
        pytest.skip("jpegtran not installed")
    data = jpegplus.encode(Image.open(FIXTURES / "val0.png"), 60, scale=2, progressive=False)
    out = subprocess.run(["jpegtran", "-copy", "all", "-progressive"], input=data, capture_output=True,
                         check=True).stdout
    (tree / "t.jpg").write_bytes(out)
    assert cli.main(["info", str(tree / "t.jpg")]) == 0
    line = capsys.readouterr().out.strip()
    assert "jpegplus v2 progressive" in line and line.endswith("intact (losslessly transcoded: same image, "
                                                               "new entropy coding)")


def test_bench_is_forwarded(monkeypatch):
    seen = []
    fake = types.ModuleType("jpegplus.evaluation.bench")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "jpegplus.evaluation.bench", fake)
    monkeypatch.setattr(jpegplus.evaluation, "bench", fake, raising=False)
    assert cli.main(["bench", "kodak/", "--qualities", "50", "75"]) == 7
    assert seen == [["kodak/", "--qualities", "50", "75"]]


def test_bench_without_its_extra_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert cli.main(["bench", "kodak/"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "pip install 'jpegplus[bench]'" in err[0] and "missing: matplotlib" in err[0]


def test_demo(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    ours = (tmp_path / "sample.jpegplus.jpg").stat().st_size
    theirs = (tmp_path / "sample.pillow.jpg").stat().st_size
    assert f"{ours:,} bytes" in out and f"{theirs:,} bytes" in out
    saved = float(re.search(r"saved\s*:\s*(-?[\d.]+)%", out).group(1))
    assert saved == pytest.approx(100 * (1 - ours / theirs), abs=0.06)
    assert len(re.findall(r"PSNR \d+\.\d\d dB", out)) == 2
    assert str(tmp_path) in out
    with Image.open(tmp_path / "sample.jpegplus-decoded.png") as im:
        assert im.size == (768, 512)


def test_usage_errors(tree):
    for argv in (["encode", str(tree / "in")],                      # no -o
                 ["encode", str(tree / "in"), "-o", "-"],          # stdout takes one input
                 ["encode", str(tree / "nothing-here"), "-o", str(tree / "o"), "-j", "0"],
                 ["encode", str(tree / "in" / "*.gif"), "-o", str(tree / "o")],
                 ["frobnicate"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2, argv


def test_outputs_get_the_usual_file_mode(tmp_path):
    # Written under a temporary name (mkstemp makes it 0600), but readable as any new file is.
    import stat

    from jpegplus import batch

    dst = tmp_path / "out.jpg"
    batch.write_output(str(dst), b"data")
    assert stat.S_IMODE(dst.stat().st_mode) == 0o666 & ~batch.current_umask()
    assert batch.current_umask() == os.umask(os.umask(0o022))
