"""Cut a compact pack of random training crops from ../shared/data/train.

Writes packs/train_crops.npy: uint8 (N, S, S, 3). Large images give more crops
in proportion to their area. Seeded, so the pack is reproducible.

    python -m training.make_pack --crops 6000 --size 128
"""
from __future__ import annotations

import argparse
import glob
import os

import numpy as np
from PIL import Image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--out", default="packs/train_crops.npy")
    ap.add_argument("--crops", type=int, default=6000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    files = sorted(glob.glob(os.path.join(args.data, "**", "*.png"), recursive=True))
    if not files:
        raise SystemExit(f"no PNG under {args.data}")
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    areas = np.array([im.shape[0] * im.shape[1] for im in images], float)
    picks = rng.choice(len(images), size=args.crops, p=areas / areas.sum())
    s = args.size
    out = np.empty((args.crops, s, s, 3), np.uint8)
    for i, k in enumerate(picks):
        im = images[k]
        y = rng.integers(0, im.shape[0] - s + 1)
        x = rng.integers(0, im.shape[1] - s + 1)
        out[i] = im[y:y + s, x:x + s]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    np.save(args.out, out)
    print(f"{args.crops} crops of {s}×{s} from {len(files)} images → {args.out}")


if __name__ == "__main__":
    main()
