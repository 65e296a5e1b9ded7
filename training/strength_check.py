"""Would a PostNet strength sent by the encoder pay? A measurement, not shipped.

The decoder could scale PostNet's correction, out = plain + A·(PostNet − plain),
with A = YCC_TO_RGB · diag(a_Y, a_Cb, a_Cr) · RGB_TO_YCC, and the encoder, which
holds the original, could choose the three strengths per image (least squares,
in closed form) and store them in its segment (3 bytes). This script measures
on whole val/ images, with the same files as training.evaluate_post
(VAL_SETTINGS), the PSNR-RGB gain over the plain decode of:

- `post`: PostNet as it is (a = 1);
- `global`: one (a_Y, a_Cb, a_Cr) per setting, fitted over all images and not
  quantised (what a fixed calibration, with no side information, could give);
- `image`: one strength per image, the same on every channel;
- `channel`: three strengths per image, quantised to STEP;

and the 10th / 50th / 90th percentiles of the per-image channel strengths.
Per-image strengths are quantised to STEP in [0, 2].

    python -m training.strength_check weights --threads 1
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from jpegplus.bundle import load_bundle
from jpegplus.evaluation.metrics import psnr
from jpegplus.requant import RGB_TO_YCC, YCC_TO_RGB
from training.evaluate_post import load_post, restored, val_crops

STEP = 1 / 16  # strength quantisation


def least_squares(d: np.ndarray, e: np.ndarray) -> float:
    """The strength a that brings a·d closest to e (same shapes), unquantised."""
    return float((d * e).sum() / max((d * d).sum(), 1e-9))


def fit(d: np.ndarray, e: np.ndarray) -> float:
    """least_squares quantised to STEP in [0, 2]."""
    return float(np.clip(np.round(least_squares(d, e) / STEP) * STEP, 0, 2))


def mix(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """3×3 matrix m applied to the channels of v (3, ...)."""
    return np.einsum("ij,j...->i...", m, v)


def apply(plain: np.ndarray, d: np.ndarray, strengths) -> np.ndarray:
    """plain + A·d, rounded and clamped to 0..255: plain (3, H, W), d (3, H, W)
    PostNet's correction in RGB, strengths (a_Y, a_Cb, a_Cr)."""
    return np.clip(np.rint(plain + mix(YCC_TO_RGB @ np.diag(strengths) @ RGB_TO_YCC, d)), 0, 255)


def setting_row(x, plain, rec) -> dict:
    """The figures of one setting: batches (N, 3, H, W) float on 0..255 (restored's)."""
    x, plain, rec = (t.numpy().astype(np.float64) for t in (x, plain, rec))
    d, e = rec - plain, x - plain
    dy, ey = mix(RGB_TO_YCC, d.transpose(1, 0, 2, 3)), mix(RGB_TO_YCC, e.transpose(1, 0, 2, 3))  # (3, N, H, W) YCbCr
    pooled = [least_squares(dy[c], ey[c]) for c in range(3)]
    base = [psnr(plain[i], x[i]) for i in range(len(x))]
    per_channel = [[fit(dy[c, i], ey[c, i]) for c in range(3)] for i in range(len(x))]
    gains = {
        "post": [psnr(rec[i], x[i]) for i in range(len(x))],
        "global": [psnr(apply(plain[i], d[i], pooled), x[i]) for i in range(len(x))],
        "image": [psnr(apply(plain[i], d[i], [fit(d[i], e[i])] * 3), x[i]) for i in range(len(x))],
        "channel": [psnr(apply(plain[i], d[i], per_channel[i]), x[i]) for i in range(len(x))],
    }
    return {**{k: round(float(np.mean(np.subtract(v, base))), 3) for k, v in gains.items()},
            "global_strengths": [round(a, 3) for a in pooled],
            "channel_percentiles": np.round(np.percentile(per_channel, [10, 50, 90], axis=0), 3).tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("post", help="a train_post checkpoint (.pt) or a weights folder")
    ap.add_argument("--data", default="../shared/data/val/cid22", help="folder of images")
    ap.add_argument("--n", type=int, default=41, help="images: the first n, sorted")
    ap.add_argument("--size", type=int, default=512, help="centre crop side in pixels (a multiple of 16)")
    ap.add_argument("--batch", type=int, default=8, help="images coded and restored at a time")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    crops = val_crops(args.data, args.n, args.size)
    pre = load_bundle(None, names=("pre",), runtime="torch").nets["pre"]
    post = load_post(args.post)
    parts: dict[str, list] = {}
    for i in range(0, len(crops), args.batch):
        for name, x, plain, rec in restored(post, pre, crops[i:i + args.batch]):
            parts.setdefault(name, []).append([t.round().byte() for t in (x, plain, rec)])  # whole levels: exact
    for name, batches in parts.items():
        x, plain, rec = (torch.cat(t).float() for t in zip(*batches))
        print(json.dumps({"setting": name, "images": len(x), **setting_row(x, plain, rec)}), flush=True)


if __name__ == "__main__":
    main()
