"""What PreNet earns at scale 1, on whole images as users run jpegplus.

Each image is encoded and decoded through jpegplus.encode / jpegplus.decode
twice at each quality, with the shipped PreNet's tensors learned at scale 1
(identity_scales=[]) and passing the image through there (identity_scales=[1];
at scale 2 it stays the learned downsampler), whichever of the two the shipped
config says: the same ladder, tables, closed loop (4:4:4 and scale ½ candidates
included) and PostNet. Both run through torch (float32), so that the two differ
in PreNet at scale 1 alone. Prints each curve (mean bpp, mean PSNR-RGB over
images) and the BD-rate of the second against the first: negative means the
files are better without PreNet at scale 1.

    python -m training.prenet_check --data ../shared/data/val/cid22 --every 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

import jpegplus
from jpegplus.bundle import load_bundle
from jpegplus.evaluation.bench import find_images, load_rgb
from jpegplus.evaluation.metrics import bd_rate, psnr as psnr_rgb
from training.common import reconfigured

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # user quality
ARMS = {"learned at scale 1": [], "identity at scale 1": [1]}  # PreNet's identity_scales


def with_prenet_identity_scales(bundle, scales: list[int]):
    """A torch-runtime `bundle` whose PreNet (same tensors) passes its input through at `scales`."""
    return dataclasses.replace(bundle, nets={**bundle.nets, "pre": reconfigured(bundle.nets["pre"], identity_scales=scales)})


def curve(bundle, paths: list[Path], qualities=QUALITIES) -> tuple[np.ndarray, np.ndarray]:
    """(mean bpp, mean PSNR-RGB dB) per quality over `paths`, through jpegplus.encode / decode with `bundle`."""
    bpp, psnr = np.zeros(len(qualities)), np.zeros(len(qualities))
    for path in paths:
        rgb = load_rgb(path)
        for i, q in enumerate(qualities):
            data = jpegplus.encode(rgb, q, bundle=bundle)
            bpp[i] += 8 * len(data) / (rgb.shape[0] * rgb.shape[1]) / len(paths)
            psnr[i] += psnr_rgb(np.asarray(jpegplus.decode(data, bundle=bundle)), rgb) / len(paths)
    return bpp, psnr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/val/cid22")
    ap.add_argument("--every", type=int, default=1, help="every k-th image")
    args = ap.parse_args(argv)
    paths = find_images(Path(args.data))[::args.every]
    shipped = load_bundle(runtime="torch")
    curves = {}
    for name, scales in ARMS.items():
        curves[name] = curve(with_prenet_identity_scales(shipped, scales), paths)
        print(json.dumps({"prenet": name, "images": len(paths), "bpp": curves[name][0].round(4).tolist(),
                          "psnr": curves[name][1].round(3).tolist()}), flush=True)
    (ab, ap_), (tb, tp) = curves["learned at scale 1"], curves["identity at scale 1"]
    print(json.dumps({"bd_rate_identity_vs_learned_pct": round(bd_rate(ab, ap_, tb, tp), 3),
                      "psnr_change_db": (tp - ap_).round(3).tolist(), "bpp_change_pct": (100 * (tb / ab - 1)).round(2).tolist()}))


if __name__ == "__main__":
    main()
