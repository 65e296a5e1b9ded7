"""What the segment's check values cost, in ms per megapixel of the stored image.

    python tests/check_cost.py ../shared/data/kodak -n 6 -q 75

For jpegplus files of the first N images (median over the images, best of 3
runs each):

- seal v1: the version-1 check (CRC over the scan), what sealing cost before;
- seal v2: both version-2 checks (coding CRC, and the image check: one libjpeg
  decode of the file and a CRC over its tables and pixels);
- verify, file as written: the coding CRC alone (no decode);
- verify, losslessly transcoded (`jpegtran -copy all -progressive`, when
  installed): the coding CRC fails, the image check decodes the file;
- progressive twin: writing the progressive file too, to keep the smaller
  (what the default layout costs on top of the check).
"""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image, JpegImagePlugin

import jpegplus
from jpegplus import segment as seg
from jpegplus.bundle import resolve
from jpegplus.jpeg import encode_array

import measure_args  # tests/measure_args.py


def best_of(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def costs(data: bytes) -> dict:
    """Seconds per task for one baseline jpegplus file."""
    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    payload = seg.find(im.applist)
    head = seg.parse(payload)
    fields = head.fields()
    out = {"seal v1": best_of(lambda: seg.check_v1(data, fields)),
           "seal v2": best_of(lambda: seg.seal(data, head)),
           "verify, file as written": best_of(lambda: seg.verify(data, payload))}
    if shutil.which("jpegtran"):
        moved = subprocess.run(["jpegtran", "-copy", "all", "-progressive"], input=data, capture_output=True,
                               check=True).stdout
        assert seg.verify(moved, payload) == "image"
        out["verify, losslessly transcoded"] = best_of(lambda: seg.verify(moved, payload))
    return out


def twin_cost(image: Image.Image, quality: int) -> float:
    """Seconds to write the progressive twin of the stored image (same tables, same requantised pixels)."""
    bundle = resolve(None)
    tables = bundle.manifest.tables.tables(bundle.manifest.ladder.row(quality).q1)
    stored = bundle.manifest.tables.requantise(np.asarray(image), tables)
    return best_of(lambda: encode_array(stored, tables, progressive=True))


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, 75, limit=6).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    rows: dict = {}
    for path in paths:
        image = Image.open(path).convert("RGB")
        data = jpegplus.encode(image, args.quality, scale=1, progressive=False)
        megapixels = image.size[0] * image.size[1] / 1e6
        for task, seconds in costs(data).items():
            rows.setdefault(task, []).append(1000 * seconds / megapixels)
        rows.setdefault("progressive twin", []).append(1000 * twin_cost(image, args.quality) / megapixels)
    print(f"check values, {len(paths)} images at quality {args.quality}, scale 1: median ms per megapixel")
    for task, values in rows.items():
        print(f"  {task:32s} {np.median(values):7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
