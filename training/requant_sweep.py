"""Choose the encoder's requantisation on val/ (jpegplus/requant.py).

For each setting (dead-zone threshold : end-of-block λ factor [: sharp chroma
share, default the family's]): the table
family of the weights in --weights (default: the packaged ones) with that
requantisation (no networks), real libjpeg-turbo, averaged over the images;
BD-rate over PSNR-RGB against Pillow default q10..90 (the benchmark's anchor).

    python -m training.requant_sweep --out runs/requant.json

With --fast-upsampling the files are decoded as viewers that repeat each
chroma sample (libjpeg's do_fancy_upsampling off, through simplejpeg) see them.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import json

import numpy as np
from PIL import Image

from jpegplus.bundle import read_manifest
from jpegplus.evaluation.metrics import bd_rate, psnr
from jpegplus.evaluation.peers import pillow_encode
from jpegplus.jpeg import decode_array, encode_array

ANCHOR_Q = range(10, 100, 10)
GRID = [4, 6, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95]


def fast_upsampling_decode(data: bytes) -> np.ndarray:
    """uint8 RGB as a viewer that repeats each chroma sample shows it (libjpeg-turbo, no fancy upsampling)."""
    import simplejpeg

    return simplejpeg.decode_jpeg(data, colorspace="RGB", fastupsample=True)


def average_curve(images, code) -> tuple[list[float], list[float]]:
    """(mean bpp, mean PSNR) per grid point of `code(rgb, q) -> (bytes, decoded)`."""
    rate, dist = [], []
    for q in GRID:
        rows = [code(im, q) for im in images]
        rate.append(float(np.mean([8 * len(d) / im.shape[0] / im.shape[1] for (d, _), im in zip(rows, images)])))
        dist.append(float(np.mean([psnr(rec, im) for (_, rec), im in zip(rows, images)])))
    return rate, dist


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", default="../shared/data/val/**/*.png")
    ap.add_argument("--settings", default="0.5:0,0.6:0,0.65:0,0.7:0,0.75:0,0.8:0,0.55:0.1,0.6:0.07,0.6:0.1,0.6:0.13",
                    help="comma-separated deadzone:eob[:sharp] settings")
    ap.add_argument("--weights", default=None, help="weights folder whose table family is swept (default: packaged)")
    ap.add_argument("--fast-upsampling", action="store_true",
                    help="decode with chroma samples repeated (simplejpeg, fastupsample=True), anchor included")
    ap.add_argument("--out", default="runs/requant.json")
    args = ap.parse_args(argv)
    decode = fast_upsampling_decode if args.fast_upsampling else decode_array  # Pillow's decoder, as the bench's
    family = read_manifest(args.weights).tables
    images = [np.asarray(Image.open(f).convert("RGB")) for f in sorted(glob.glob(args.images, recursive=True))]

    anchor_rate, anchor_psnr = [], []
    for q in ANCHOR_Q:
        rows = [pillow_encode(im, q) for im in images]
        anchor_rate.append(np.mean([8 * len(d) / im.shape[0] / im.shape[1] for d, im in zip(rows, images)]))
        anchor_psnr.append(np.mean([psnr(decode(d), im) for d, im in zip(rows, images)]))

    results = {}
    for setting in args.settings.split(","):
        deadzone, eob, sharp = ([float(v) for v in setting.split(":")] + [family.sharp])[:3]

        def code(im, q, setting=dataclasses.replace(family, deadzone=deadzone, eob=eob, sharp=sharp)):
            t = setting.tables(q)
            data = encode_array(setting.requantise(im, t), t)
            return data, decode(data)
        rate, dist = average_curve(images, code)
        results[setting] = {"deadzone": deadzone, "eob": eob, "sharp": sharp, "bpp": rate, "psnr": dist,
                            "bd_rate_psnr": bd_rate(anchor_rate, anchor_psnr, rate, dist)}
        print(f"deadzone {deadzone:.2f}, eob {eob:.2f}, sharp {sharp:.2f}: "
              f"BD-rate {results[setting]['bd_rate_psnr']:+.2f} %", flush=True)
    with open(args.out, "w") as f:
        json.dump({"images": len(images), "grid": GRID, "settings": results}, f, indent=1)


if __name__ == "__main__":
    main()
