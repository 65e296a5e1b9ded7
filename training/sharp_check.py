"""What the sharp 4:2:0 chroma (jpegplus.requant, option `sharp`) is worth,
as the plain file and through PostNet.

Whole val/ images are coded as the encoder codes them at scale 1 and 4:2:0
(frozen PreNet, the family's tables and requantisation) at several internal
qualities, with a given sharp share; each curve (mean bpp, mean PSNR-RGB) is
set against the first one by BD-rate, for the plain decode and for PostNet's
output. A PostNet trained on averaged chroma sharpens chroma that is already
sharp, so the second figure needs a PostNet trained on such files. Each
argument is a PostNet (train_post checkpoint or weights folder) @ a share:

    python -m training.sharp_check weights@0 weights@0.5 runs/post_sharp.pt@0.5
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from jpegplus.bundle import load_bundle
from jpegplus.evaluation.metrics import bd_rate
from jpegplus.tables import quant_level
from training.common import FAMILY, batch_to_tensor, real_jpeg
from training.evaluate_post import load_post, psnr, val_crops

QUALITIES = (10, 20, 35, 50, 65, 80, 90)  # internal JPEG quality, scale 1


@torch.no_grad()
def curves(post, pre, crops: np.ndarray, share: float) -> dict:
    """{"bpp", "plain", "post"}: per QUALITIES entry the mean bits per pixel and
    mean PSNR-RGB (dB) of the plain decode and of PostNet's output, at `share`."""
    requant = dataclasses.replace(FAMILY, sharp=share).requant
    x = batch_to_tensor(crops)
    out = {"bpp": [], "plain": [], "post": []}
    for q in QUALITIES:
        t = FAMILY.tables(q)
        level = torch.full((len(crops),), quant_level(t))
        stored = (pre(x / 255, level, 1).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        decoded, bits = real_jpeg(stored, np.repeat(t[None], len(crops), 0), [requant] * len(crops))
        y = batch_to_tensor(decoded) / 255
        rec = (post(y, level, 1, torch.zeros_like(level)).clamp(0, 1) * 255).round()
        out["bpp"].append(float(np.mean(bits / crops.shape[1] / crops.shape[2])))
        out["plain"].append(float(psnr(y * 255, x).mean()))
        out["post"].append(float(psnr(rec, x).mean()))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="SOURCE@SHARE: a train_post checkpoint (.pt) or a weights folder, "
                    "and the sharp share its files are coded with; the first is the anchor")
    ap.add_argument("--data", default="../shared/data/val/cid22")
    ap.add_argument("--n", type=int, default=41)
    ap.add_argument("--weights", default=None, help="weights folder of the frozen PreNet (default: shipped)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    crops = val_crops(args.data, args.n, 512)
    pre = load_bundle(args.weights, names=("pre",), runtime="torch").nets["pre"]
    anchor = None
    for run in args.runs:
        source, _, share = run.rpartition("@")
        if not source:
            raise SystemExit(f"{run}: expected SOURCE@SHARE, e.g. weights@0.5")
        c = curves(load_post(source).eval(), pre, crops, float(share))
        anchor = anchor or c
        bd = {k: round(bd_rate(anchor["bpp"], anchor[k], c["bpp"], c[k]), 2) for k in ("plain", "post")}
        print(json.dumps({"source": source, "share": float(share), "bd_rate_vs_first": bd, **c}), flush=True)


if __name__ == "__main__":
    main()
