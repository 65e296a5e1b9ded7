"""How PostNet should treat 4:4:4 files: whole, on luma alone, or not at all
(jpegplus.engine.postnet_use), measured on whole val/ images.

Each image is encoded as the 4:4:4 candidate at several internal qualities
(engine.encode_candidate: PreNet, requantisation, libjpeg at 4:4:4), then
decoded three ways: the plain decode; PostNet's luma with the file's own
chroma (engine.with_chroma_of); PostNet whole, with each file's 4:4:4 flag
where the PostNet takes one. Prints, per internal quality, the mean level
(tables.quant_level) and the mean PSNR-RGB gain over the plain decode of the
two PostNet uses, in dB.

    python -m training.check_444 --weights runs/export_d --data ../shared/data/val/cid22 --every 3
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

from jpegplus import engine
from jpegplus.bundle import load_bundle
from jpegplus.evaluation.metrics import psnr

QUALITIES = (40, 55, 70, 85, 95)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default=None, help="weights folder (default: shipped)")
    ap.add_argument("--data", default="../shared/data/val/cid22")
    ap.add_argument("--every", type=int, default=3, help="take every n-th image (sorted)")
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)), help="internal JPEG qualities")
    ap.add_argument("--json", default=None, help="also write the table here")
    args = ap.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.data, "*.png")))[::args.every]
    bundle = load_bundle(args.weights)
    qualities = [int(q) for q in args.qualities.split(",")]
    sums = {q: np.zeros(3) for q in qualities}  # level, luma gain, whole gain
    for f in tqdm(files, desc="images"):
        im = np.asarray(Image.open(f).convert("RGB"))
        nets = engine.TiledNets(bundle, [im])
        size = (im.shape[1], im.shape[0])
        for q in qualities:
            [data] = engine.encode_candidate(bundle, nets, False, engine.Candidate(1, q, "4:4:4"), {})
            stored = engine.own_file(data)
            [whole] = nets.post([stored.pixels], [stored.level], 1, size, [stored.full_chroma])
            plain = psnr(im, stored.pixels)
            sums[q] += [stored.level, psnr(im, engine.with_chroma_of(whole, stored.pixels)) - plain,
                        psnr(im, whole) - plain]
    rows = [{"quality": q, "level": round(s[0] / len(files), 3), "luma_db": round(s[1] / len(files), 3),
             "whole_db": round(s[2] / len(files), 3)} for q, s in sums.items()]
    print(f"{len(files)} images, PostNet {'with' if nets.takes_chroma else 'without'} the 4:4:4 flag")
    for r in rows:
        print(json.dumps(r))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"images": len(files), "takes_chroma": nets.takes_chroma, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
