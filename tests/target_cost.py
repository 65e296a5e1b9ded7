"""What a target costs: encodes per search and time against one encode.

    python tests/target_cost.py ../shared/data/kodak --bpp 0.25 0.5 1 2 --psnr 30 35 40

For each image (the first N of the folder) and each target (a size given in
bits per pixel, converted to bytes for the image; or a PSNR in dB): the number
of encodes the search made (those at a forced scale included), the quality it
found, and its time over the time of one encode at that quality. Prints one
Markdown table: mean and max encodes, mean time ratio, per target, and how many
searches found no quality (TargetError). --sweep also encodes every quality
1..25 of each image and counts the images whose file size falls somewhere as
quality rises (the closed loop switching scale), the case the search handles.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import jpegplus
from jpegplus import target
from jpegplus.errors import TargetError

SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def one(rgb: np.ndarray, goal: target.Goal) -> dict | None:
    """Encodes, quality and time ratio of one search; None when nothing meets the goal."""
    try:
        found, seconds = timed(lambda: target.encode(rgb, goal))
    except TargetError:
        return None
    assert goal.size is None or len(found.data) <= goal.size
    _, single = timed(lambda: jpegplus.encode(rgb, found.quality))
    return {"encodes": len(found.trials), "forced": sum(t.forced for t in found.trials),
            "quality": found.quality, "ratio": seconds / single}


def falls(rgb: np.ndarray, top: int = 25) -> bool:
    sizes = [len(jpegplus.encode(rgb, q)) for q in range(1, top + 1)]
    return any(b < a for a, b in zip(sizes, sizes[1:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("-n", type=int, default=24, help="images (the first N, sorted)")
    p.add_argument("--bpp", type=float, nargs="*", default=[0.25, 0.5, 1.0, 2.0])
    p.add_argument("--psnr", type=float, nargs="*", default=[30.0, 35.0, 40.0])
    p.add_argument("--sweep", action="store_true", help="also count images whose size falls over quality 1..25")
    args = p.parse_args(argv)
    paths = sorted(q for q in args.folder.iterdir() if q.suffix.lower() in SUFFIXES)[:args.n]
    goals = [(f"{b:g} bpp", lambda px, b=b: target.Goal(size=int(b * px / 8))) for b in args.bpp]
    goals += [(f"{d:g} dB", lambda px, d=d: target.Goal(psnr=d)) for d in args.psnr]
    rows = {name: [] for name, _ in goals}
    falling = 0
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for name, make in goals:
            rows[name].append(one(rgb, make(rgb.shape[0] * rgb.shape[1])))
        falling += args.sweep and falls(rgb)
        print(f"{path.name}: " + ", ".join(f"{k} {v[-1] and (v[-1]['encodes'], v[-1]['quality'])}"
                                           for k, v in rows.items()), file=sys.stderr, flush=True)
    print(f"{len(paths)} images of {args.folder}")
    print("| target | mean encodes | max encodes | of them forced (mean) | quality found (median) "
          "| time / one encode (mean) | out of reach |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, results in rows.items():
        ok = [r for r in results if r]
        if not ok:
            print(f"| {name} | | | | | | {len(results)} |")
            continue
        enc = [r["encodes"] for r in ok]
        print(f"| {name} | {statistics.mean(enc):.1f} | {max(enc)} | {statistics.mean(r['forced'] for r in ok):.1f} "
              f"| {statistics.median(r['quality'] for r in ok):g} | {statistics.mean(r['ratio'] for r in ok):.1f}× "
              f"| {len(results) - len(ok)} |")
    if args.sweep:
        print(f"file size falls somewhere over quality 1..25 for {falling} of {len(paths)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
