"""Stress jpegplus: a battery of bad inputs, every mode and size, and one huge image.

    python tests/stress.py                    # battery + 100-megapixel encode/decode
    python tests/stress.py --megapixels 0     # battery only

Prints: cases tried and failures (a failure is any outcome fuzz.check (tests/fuzz.py)
rejects, or an encode that succeeds/fails where Pillow's JPEG writer would
not), then for the huge image the encode and decode times, the file size, its
PSNR against the input and the peak resident memory (ru_maxrss) of the child
process that did it, which must stay under --max-rss-gb (default 3).

The huge image is sample.png tiled to the requested size; the child raises
Image.MAX_IMAGE_PIXELS to fit it, as a user decoding such a file would.
"""
from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

import jpegplus
from jpegplus import engine, segment as seg

import fuzz  # tests/fuzz.py, next to this file

SAMPLE = Path(jpegplus.__file__).parent / "data" / "sample.png"
MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "YCbCr", "CMYK", "I;16", "I", "F", "LAB", "HSV"]
SIZES = [(1, 1), (1, 7), (7, 1), (2, 2), (17, 9), (31, 33), (48, 16)]


def rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- battery

def decode_cases():
    """(name, bytes) of bad or damaged inputs, deterministic."""
    rng = np.random.default_rng(0)
    yield "empty", b""
    for n in (1, 2, 3, 4, 16, 64, 512):
        for k in range(5):
            yield f"random {n} B", rng.bytes(n)
            yield f"SOI + random {n} B", b"\xff\xd8" + rng.bytes(n)
    for b, data in enumerate(fuzz.base_files()):
        for cut in np.linspace(0, len(data), 41).astype(int)[:-1]:
            yield f"base {b} truncated at {cut}", data[:cut]
        start = fuzz.segment_start(data) - len(seg.IDENT)
        for pos in range(start, start + len(seg.IDENT) + seg._BODY.size):
            for bit in range(8):
                yield f"base {b} segment bit {pos - start}.{bit}", fuzz.apply(data, ("flip", pos / len(data), 1 << bit))
        for field in fuzz.FIELDS:
            for value in (0, 1, 2, 3, 65535, 2**31, 2**32 - 1):
                for reseal in (False, True):
                    yield f"base {b} {field}={value} reseal={reseal}", fuzz.set_field(data, field, value, reseal)
        for kind in (("drop_segment",), ("duplicate_segment",), ("segment_length", 0), ("segment_length", 3),
                     ("segment_length", 65535)):
            yield f"base {b} {kind}", fuzz.apply(data, kind)
        im = Image.open(io.BytesIO(data))
        marker = data[data.find(b"\xff\xe9"):]
        marker = marker[:4 + int.from_bytes(marker[2:4], "big") - 2]
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90, extra=marker)
        yield f"base {b} re-encoded keeping the segment", buf.getvalue()
        if shutil.which("jpegtran"):
            out = subprocess.run(["jpegtran", "-copy", "all", "-progressive"], input=data, capture_output=True).stdout
            yield f"base {b} jpegtran -progressive -copy all", out


def encode_cases():
    for mode in MODES:
        for size in SIZES + [(0, 5)]:
            yield mode, size


def pillow_writes(image: Image.Image) -> bool:
    try:
        image.save(io.BytesIO(), "JPEG")
        return True
    except (OSError, ValueError):
        return False


def check_encode(mode: str, size: tuple[int, int]) -> str:
    """Encode like Pillow's writer: succeed exactly when it does, and decode back to the size."""
    noise = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), np.uint8)
    try:
        image = Image.fromarray(noise).convert(mode)
    except ValueError:  # Pillow has no RGB → mode conversion (e.g. I;16): a blank image of the mode
        image = Image.new(mode, size)
    expected = pillow_writes(image)
    try:
        data = jpegplus.encode(image, 75)
    except (OSError, ValueError) as e:
        if expected:
            raise fuzz.FuzzFailure(f"encode {mode} {size} raised {type(e).__name__} but Pillow writes it") from e
        return f"refused like Pillow ({type(e).__name__})"
    if not expected:
        raise fuzz.FuzzFailure(f"encode {mode} {size} succeeded but Pillow refuses it")
    out = jpegplus.decode(data)
    if out.size != size:
        raise fuzz.FuzzFailure(f"encode {mode} {size} decoded to {out.size}")
    return "encoded and decoded"


def battery() -> dict:
    outcomes, failures, t0 = {}, [], time.time()
    tried = 0
    jobs = [("decode", name, lambda data=data: fuzz.check(data)) for name, data in decode_cases()]
    jobs += [("encode", f"{m} {s}", lambda m=m, s=s: check_encode(m, s)) for m, s in encode_cases()]
    for kind, name, job in jobs:
        tried += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outcome = f"{kind}: {job()}"
        except Exception as e:  # any escape is a failure to report, not a crash of the battery
            outcome = f"{kind}: FAILURE"
            failures.append(f"{name}: {type(e).__name__} {e}")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return {"cases": tried, "failures": failures, "outcomes": outcomes, "seconds": time.time() - t0}


# ---------------------------------------------------------------- huge image

def huge_image(megapixels: float) -> np.ndarray:
    """uint8 (H, W, 3): sample.png tiled (with mirrored copies, so tiles join smoothly) to ≈ megapixels."""
    tile = np.asarray(Image.open(SAMPLE).convert("RGB"))
    tile = np.concatenate([np.concatenate([tile, tile[:, ::-1]], 1), np.concatenate([tile[::-1], tile[::-1, ::-1]], 1)])
    side = int(np.sqrt(megapixels * 1e6))
    reps = (-(-side // tile.shape[0]), -(-side // tile.shape[1]), 1)
    # width not a multiple of 8 on purpose; contiguous, as a caller's own array would be
    return np.ascontiguousarray(np.tile(tile, reps)[:side, :side + side % 7])


def huge_child(megapixels: float, tile: int | None) -> dict:
    """Encode and decode one huge image in this process; figures as a dict."""
    Image.MAX_IMAGE_PIXELS = None
    jpegplus.bundle.default_bundle()
    base = rss_mb()
    image = huge_image(megapixels)
    t0 = time.time()
    data = jpegplus.encode(image, 75, tile=tile)
    t1 = time.time()
    after_encode = rss_mb()
    out = jpegplus.decode(data, tile=tile)
    t2 = time.time()
    after_decode = rss_mb()
    rec = np.asarray(out)
    del out
    mse = engine.squared_error(rec, image)
    return {"width": image.shape[1], "height": image.shape[0], "megapixels": image.shape[0] * image.shape[1] / 1e6,
            "bytes": len(data), "scale": seg.parse(seg.find(Image.open(io.BytesIO(data)).applist)).scale,
            "encode_s": t1 - t0, "decode_s": t2 - t1, "psnr_db": 10 * np.log10(255**2 / max(mse, 1e-12)),
            "rss_base_mb": base, "rss_encode_mb": after_encode, "rss_decode_mb": after_decode}


def huge(megapixels: float, tile: int | None) -> dict:
    """Run huge_child in a fresh process, so its peak RSS is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--megapixels", str(megapixels)]
    if tile:
        cmd += ["--tile", str(tile)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"huge-image child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100.0, help="huge image size; 0 skips it")
    parser.add_argument("--tile", type=int, default=None, help="tile side in pixels (default jpegplus.tiling.TILE)")
    parser.add_argument("--max-rss-gb", type=float, default=3.0)
    parser.add_argument("--no-battery", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(huge_child(args.megapixels, args.tile)))
        return 0
    status = 0
    if not args.no_battery:
        report = battery()
        print(f"battery: {report['cases']} cases tried, {len(report['failures'])} failures, "
              f"{report['seconds']:.0f} s, peak RSS {rss_mb():.0f} MB")
        for name, count in sorted(report["outcomes"].items()):
            print(f"  {count:6d}  {name}")
        for failure in report["failures"][:20]:
            print(f"  FAILURE {failure}")
        status |= bool(report["failures"])
    if args.megapixels > 0:
        r = huge(args.megapixels, args.tile)
        ok = r["rss_decode_mb"] < args.max_rss_gb * 1024
        print(f"huge image: {r['width']}x{r['height']} ({r['megapixels']:.1f} MP), scale {r['scale']}, "
              f"{r['bytes'] / 1e6:.1f} MB, {8 * r['bytes'] / (r['megapixels'] * 1e6):.3f} bpp, "
              f"PSNR {r['psnr_db']:.2f} dB")
        print(f"  encode {r['encode_s']:.1f} s, decode {r['decode_s']:.1f} s")
        print(f"  peak RSS: {r['rss_base_mb']:.0f} MB after loading, {r['rss_encode_mb']:.0f} MB after encode, "
              f"{r['rss_decode_mb']:.0f} MB after decode (limit {args.max_rss_gb * 1024:.0f} MB): "
              f"{'OK' if ok else 'OVER'}")
        status |= not ok
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
