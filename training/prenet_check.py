"""What PreNet earns at scale 1, on whole images as users run jpegplus.

Each image is encoded and decoded through jpegplus.encode / jpegplus.decode
twice at each quality, with the shipped weights and with the same weights whose
PreNet passes the image through unchanged at scale 1 (ScaleOneIdentity; at
scale 2 it stays the learned downsampler): the same ladder, tables, closed
loop (4:4:4 and scale ½ candidates included) and PostNet. Both run through
torch (float32), so that the two differ in PreNet at scale 1 alone. Prints
each curve (mean bpp, mean PSNR-RGB over images) and the BD-rate of the
second against the first: negative means the files are better without
PreNet at scale 1.

    python -m training.prenet_check --data ../shared/data/val/cid22 --every 2
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

import jpegplus
from jpegplus.bundle import load_bundle
from jpegplus.evaluation.bench import find_images, load_rgb
from jpegplus.evaluation.metrics import bd_rate, psnr as psnr_rgb

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # user quality


class ScaleOneIdentity(torch.nn.Module):
    """A PreNet that returns its input at scale 1 and runs `net` at scale 2."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def reach(self, scale: int) -> int:
        return self.net.reach(scale)

    def forward(self, x, level, scale: int, full_chroma=None):
        return x if scale == 1 else self.net(x, level, scale)


def without_scale_one_prenet(bundle):
    """A torch-runtime `bundle` with its PreNet wrapped in ScaleOneIdentity."""
    return dataclasses.replace(bundle, nets={**bundle.nets, "pre": ScaleOneIdentity(bundle.nets["pre"]).eval()})


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
    for name, bundle in (("shipped", shipped), ("identity at scale 1", without_scale_one_prenet(shipped))):
        curves[name] = curve(bundle, paths)
        print(json.dumps({"prenet": name, "images": len(paths), "bpp": curves[name][0].round(4).tolist(),
                          "psnr": curves[name][1].round(3).tolist()}), flush=True)
    (ab, ap_), (tb, tp) = curves["shipped"], curves["identity at scale 1"]
    print(json.dumps({"bd_rate_identity_vs_shipped_pct": round(bd_rate(ab, ap_, tb, tp), 3),
                      "psnr_change_db": (tp - ap_).round(3).tolist(), "bpp_change_pct": (100 * (tb / ab - 1)).round(2).tolist()}))


if __name__ == "__main__":
    main()
