"""PostNet on plain JPEGs (`enhance=True`): the gain in dB over Pillow's own decode of Pillow's own files,
whole images, per quality. The README's "Pillow's own files with enhance=True" row.

    python tests/enhance_gain.py ../shared/data/val/cid22
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

import jpegplus
from jpegplus.evaluation.metrics import psnr

QUALITIES = (10, 20, 30, 50, 70, 90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("-q", "--qualities", type=int, nargs="+", default=list(QUALITIES))
    args = ap.parse_args(argv)
    paths = sorted(p for p in Path(args.folder).glob("*") if p.suffix.lower() == ".png")
    if not paths:
        print(f"no PNG images in {args.folder}")
        return 2
    gains = {q: [] for q in args.qualities}
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        for q in args.qualities:
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
