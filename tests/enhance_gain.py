"""PostNet on plain JPEGs (`enhance=True`): the gain in dB over Pillow's own decode of Pillow's own files,
whole images, per quality. The README's "Pillow's own files with enhance=True" row.

    python tests/enhance_gain.py ../shared/data/val/cid22
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

import jpegplus
from jpegplus.evaluation.metrics import psnr

import measure_args  # tests/measure_args.py

QUALITIES = (10, 20, 30, 50, 70, 90)


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, list(QUALITIES)).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    gains = {q: [] for q in args.quality}
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for q in args.quality:
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, "JPEG", quality=q)
            plain = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            enhanced = np.asarray(jpegplus.decode(buf.getvalue(), enhance=True))
            gains[q].append(psnr(rgb, enhanced) - psnr(rgb, plain))
    for q, g in gains.items():
        print(f"Pillow q{q}: enhance=True gain {np.mean(g):+.3f} dB (min {min(g):+.2f}, {len(g)} images)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
