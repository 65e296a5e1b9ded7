"""Black-and-white (mode 1) images: what jpegplus shows (the stored image as it is, segment.AS_STORED),
what PostNet would have made of the same files, and Pillow's own files, per quality. The README's
mode-1 figures (Limits).

    python tests/bilevel_check.py ../shared/data/val/cid22 -n 6

Each image is halved (box filter, so the dithering is at a realistic scale) and converted to mode 1
(Floyd–Steinberg). PSNR is over L against that mode-1 image; "bytes" is jpegplus's size / Pillow's.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

import jpegplus
from jpegplus.evaluation.metrics import psnr

import measure_args  # tests/measure_args.py

QUALITIES = (10, 30, 50, 75, 90)


def without_segment(data: bytes) -> bytes:
    """`data` with its jpegplus APP9 segment cut out (so that enhance=True runs PostNet on it)."""
    start = data.find(b"\xff\xe9")
    return data[:start] + data[start + 2 + int.from_bytes(data[start + 2:start + 4], "big"):]


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, list(QUALITIES), limit=3).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    rows = {q: [] for q in args.quality}
    for path in paths:
        im = Image.open(path).convert("RGB")
        bw = im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.BOX).convert("1")
        ref = np.asarray(bw.convert("L"))
        for q in args.quality:
            data = jpegplus.encode(bw, q)
            shown = np.asarray(jpegplus.decode(data))
            post = np.asarray(jpegplus.decode(without_segment(data), enhance=True))
            buf = io.BytesIO()
            bw.save(buf, "JPEG", quality=q)
            pillow = np.asarray(Image.open(buf).convert("L"))
            rows[q].append((psnr(ref, shown), psnr(ref, post), psnr(ref, pillow), len(data) / buf.tell()))
    print("| quality | shown as stored dB | through PostNet dB | Pillow dB | bytes / Pillow's |")
    print("|---|---|---|---|---|")
    for q, r in rows.items():
        shown, post, pillow, ratio = np.mean(r, axis=0)
        print(f"| {q} | {shown:.2f} | {post:.2f} | {pillow:.2f} | {ratio:.3f} |")
    print(f"{len(paths)} images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
