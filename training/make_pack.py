"""Cut a pack of random training crops from the training images.

Writes uint8 (N, S, S, 3) crops: a raw .npy (fast, memory-mapped; 6 000 crops of
128² are 295 MB), or with --compact a .npz of lossless WebP crops (about 14 kB
per 128² crop), small enough to carry to a GPU machine (64 MiB per call).
Large images give more crops in proportion to their area. Seeded, so the pack
is reproducible.

    python -m training.make_pack --crops 6000 --size 128
    python -m training.make_pack --crops 3200 --size 128 --compact --out packs/gpu_pack.npz
    python -m training.make_pack --data ../shared/data/val/cid22 --centre 8 --size 256 --compact --out packs/val_crops.npz
"""
from __future__ import annotations

import argparse
import glob
import io
import os

import numpy as np
from PIL import Image


def webp_pack(crops: np.ndarray) -> dict:
    """Arrays of a compact pack: the lossless WebP bytes of each crop, concatenated,
    and where each ends. Every crop is checked to decode to itself."""
    parts = []
    for crop in crops:
        buf = io.BytesIO()
        Image.fromarray(crop).save(buf, "WEBP", lossless=True, quality=100, method=4)
        if not np.array_equal(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")), crop):
            raise SystemExit("lossless WebP did not round-trip a crop")
        parts.append(np.frombuffer(buf.getvalue(), np.uint8))
    return {"blob": np.concatenate(parts), "ends": np.cumsum([len(p) for p in parts])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--out", default="packs/train_crops.npy")
    ap.add_argument("--crops", type=int, default=6000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compact", action="store_true", help="lossless WebP .npz instead of raw .npy")
    ap.add_argument("--centre", type=int, default=0,
                    help="instead: one centre crop of each of the first N images (the val/ check of train_post)")
    args = ap.parse_args(argv)
    if args.centre:
        from training.evaluate_post import val_crops

        return write(val_crops(args.data, args.centre, args.size), args)
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
    write(out, args)


def write(crops: np.ndarray, args) -> None:
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    if args.compact:
        np.savez(args.out, **webp_pack(crops))
    else:
        np.save(args.out, crops)
    mb = os.path.getsize(args.out) / 2**20
    print(f"{len(crops)} crops of {crops.shape[1]}×{crops.shape[2]} from {args.data} → {args.out} ({mb:.1f} MiB)")


if __name__ == "__main__":
    main()
