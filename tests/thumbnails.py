"""What serves a thumbnail of a jpegplus file best: PostNet at the reduced size, or not.

    python tests/thumbnails.py ../shared/data/kodak            # all images, qualities 30 and 75

`Image.thumbnail()` calls `draft()`, which decodes the stored JPEG with
libjpeg's DCT scaling (by 2, 4 or 8). This compares, per reduction, the
thumbnail of each jpegplus file against the thumbnail of the original
(Pillow's `thumbnail()` of the PNG: PSNR-RGB in dB, higher is better) and the
time it takes, for:

- skip: the DCT-scaled stored image as it is (jpegplus.plugin.POST_AT_REDUCED_SIZE = False);
- post: PostNet (scale 1) run on the DCT-scaled image (POST_AT_REDUCED_SIZE = True);
- full: no draft — the full-size PostNet decode, then resized;
- pillow: Pillow's own JPEG at the same quality, through Pillow's own draft.

The plugin ships the winner as POST_AT_REDUCED_SIZE; the README gives the figures.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import jpegplus
from jpegplus import plugin
from jpegplus.evaluation.metrics import psnr
from jpegplus.jpeg import pillow_only

import measure_args  # tests/measure_args.py

# reduction → thumbnail box (px): thumbnail((b, b)) asks draft() for (2b, 2b), which reduces a
# 768×512 (or 512×768) Kodak image by min(768 // 2b, 512 // 2b)
BOXES = {2: 128, 4: 64, 8: 32}


def thumbnail(data: bytes, box: int, *, load_first: bool = False) -> tuple[np.ndarray, float]:
    """Pillow's thumbnail((box, box)) of a JPEG file opened through Pillow: (pixels, seconds)."""
    t0 = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        if load_first:
            im.load()
        im.thumbnail((box, box))
        out = np.asarray(im.convert("RGB"))
    return out, time.perf_counter() - t0


def measure(paths: list[Path], qualities: list[int]) -> dict:
    """{(quality, reduction, way): [(psnr, seconds), ...]} over the images."""
    results: dict = {}
    for path in paths:
        original = Image.open(path).convert("RGB")
        for q in qualities:
            ours = jpegplus.encode(original, q)
            buf = io.BytesIO()
            with pillow_only():
                original.save(buf, "JPEG", quality=q)
            for reduction, box in BOXES.items():
                ref = original.copy()
                ref.thumbnail((box, box))
                ref = np.asarray(ref)
                ways = {}
                plugin.register()
                try:
                    for name, post in (("skip", False), ("post", True)):
                        plugin.POST_AT_REDUCED_SIZE = post
                        ways[name] = thumbnail(ours, box)
                    ways["full"] = thumbnail(ours, box, load_first=True)
                finally:
                    plugin.POST_AT_REDUCED_SIZE = False
                    plugin.unregister()
                ways["pillow"] = thumbnail(buf.getvalue(), box)
                for name, (pixels, seconds) in ways.items():
                    results.setdefault((q, reduction, name), []).append((psnr(ref, pixels), seconds))
    return results


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, [30, 75]).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    results = measure(paths, args.quality)
    print(f"thumbnails of {len(paths)} images: mean PSNR-RGB (dB) against the original's thumbnail, "
          "mean time (ms)")
    print("| quality | reduction | skip PostNet | PostNet at reduced size | full decode, then resize | Pillow's JPEG |")
    print("|---:|---:|---:|---:|---:|---:|")
    for q in args.quality:
        for reduction in BOXES:
            cells = []
            for name in ("skip", "post", "full", "pillow"):
                values = np.array(results[(q, reduction, name)])
                cells.append(f"{values[:, 0].mean():.2f} dB, {1000 * values[:, 1].mean():.0f} ms")
            print(f"| {q} | {reduction} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
