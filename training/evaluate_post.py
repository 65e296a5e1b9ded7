"""How much a PostNet restores: dB over the same real JPEG files decoded without it.

A fixed set of val/ centre crops is coded as users' files are (jpegplus files
through the frozen PreNet and the encoder's requantisation, or plain JPEGs with
libjpeg's standard tables), and PSNR-RGB with PostNet is compared with PSNR of
the plain decode (bicubic ×2 for half-size files: PostNet's own base).
Used as the running check of training/train_post.py; whole-image figures at
user quality come from the benchmark. As a command it sets PostNets side by
side (checkpoints of train_post, or weights folders), on whole val/ images by
default (val/cid22's are 512×512: the centre crop of 512 is the image):

    python -m training.evaluate_post runs/post_A.pt runs/post_B.pt weights
    python -m training.evaluate_post weights --views 1 2 4 8    # PostNet's views (jpegplus.views)
    python -m training.evaluate_post weights --fine             # at user quality 80-95 (FINE_SETTINGS)
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from jpegplus.bundle import load_bundle
from jpegplus.tables import quant_level, standard_tables
from jpegplus.views import COUNTS, averaged
from training.common import (FAMILY, REQUANT, batch_to_tensor, load_checkpoint, load_pack, real_jpeg,
                             restore_net)

# (name, scale, standard tables?, internal JPEG quality, chroma subsampling)
VAL_SETTINGS = [("jp20", 1, False, 20, "4:2:0"), ("jp50", 1, False, 50, "4:2:0"), ("jp80", 1, False, 80, "4:2:0"),
                ("jp_half30", 2, False, 30, "4:2:0"), ("std10", 1, True, 10, "4:2:0"), ("std50", 1, True, 50, "4:2:0"),
                ("jp444_60", 1, False, 60, "4:4:4"), ("jp444_85", 1, False, 85, "4:4:4")]
# The fine end, where the ladder puts user quality 80-95 (4:2:0 at internal 88-96, 4:4:4 at 85-94; levels
# 0.26-0.50), Pillow's quality 90, and files at scale 1/2 that fine (the ladder's at user quality 13-14, internal
# 81-83, and a forced scale=2) (`--fine`): the settings a top level band's member is judged by.
FINE_SETTINGS = [("jp88", 1, False, 88, "4:2:0"), ("jp93", 1, False, 93, "4:2:0"), ("jp444_87", 1, False, 87, "4:4:4"),
                 ("jp444_91", 1, False, 91, "4:4:4"), ("std90", 1, True, 90, "4:2:0"),
                 ("jp_half88", 2, False, 88, "4:2:0")]


def val_crops(source: str, n: int = 8, size: int = 256) -> np.ndarray:
    """Centre crops uint8 (n, size, size, 3) of the first n images (sorted) under
    the folder `source`, or the crops of a pack file (training/make_pack.py --centre)."""
    if source.endswith((".npz", ".npy")):
        return np.asarray(load_pack(source))
    files = sorted(glob.glob(os.path.join(source, "**", "*.png"), recursive=True))[:n]
    if not files:
        raise SystemExit(f"no PNG under {source}")
    out = []
    for f in files:
        im = np.asarray(Image.open(f).convert("RGB"))
        y, x = (im.shape[0] - size) // 2, (im.shape[1] - size) // 2
        out.append(im[y:y + size, x:x + size])
    return np.stack(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR-RGB per image (N,) in dB of float batches (N, 3, H, W) in 0..255."""
    return 10 * torch.log10(255 ** 2 / ((a - b) ** 2).mean((1, 2, 3)).clamp_min(1e-6))


@torch.no_grad()
def restored(post, pre, crops: np.ndarray, views: int = 1, settings=VAL_SETTINGS):
    """Per `settings` entry (VAL_SETTINGS' form): (name, original, plain decode, PostNet's output),
    float batches (N, 3, H, W) on 0..255 levels, whole numbers except the
    original's exact ones (the plain decode is bicubic ×2 for half-size files:
    PostNet's own base). PostNet runs whole: engine.postnet_use's luma-only and
    skip rules are not applied; it averages `views` views (jpegplus.views).
    `post` is left in eval mode."""
    post.eval()
    device = next(post.parameters()).device
    x = batch_to_tensor(crops)
    for name, scale, standard, q, subsampling in settings:
        t = standard_tables(q) if standard else FAMILY.tables(int(q), subsampling)
        tables = np.repeat(t[None], len(crops), 0)
        level = torch.full((len(crops),), quant_level(t))
        stored = crops if standard else \
            (pre(x / 255, level, scale).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        decoded, _ = real_jpeg(stored, tables, None if standard else [REQUANT] * len(crops), subsampling)
        y = batch_to_tensor(decoded) / 255
        plain = y if scale == 1 else F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
        flag = torch.full_like(level, float(subsampling == "4:4:4")).to(device)
        level = level.to(device)
        rec = averaged(lambda v: post(v, level, scale, flag).float(), y.to(device), views)
        rec = (rec.cpu().clamp(0, 1) * 255).round()
        yield name, x, (plain.clamp(0, 1) * 255).round(), rec


def gains(post, pre, crops: np.ndarray, views: int = 1, settings=VAL_SETTINGS) -> dict:
    """Mean PSNR gain (dB) of `post` over the plain decode, per `settings` entry (see restored)."""
    was_training = post.training
    out = {name: round(float((psnr(rec, x) - psnr(plain, x)).mean()), 3)
           for name, x, plain, rec in restored(post, pre, crops, views, settings)}
    post.train(was_training)
    return out


def load_post(source: str):
    """A PostNet from a train_post checkpoint (.pt) or a weights folder, on the CPU."""
    if source.endswith(".pt"):
        return restore_net(load_checkpoint(source)["models"]["post"])
    return load_bundle(source, names=("post",), runtime="torch").nets["post"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("post", nargs="+", help="train_post checkpoints (.pt) or weights folders")
    ap.add_argument("--data", default="../shared/data/val/cid22", help="folder of images (or a pack of crops)")
    ap.add_argument("--n", type=int, default=41, help="images: the first n, sorted")
    ap.add_argument("--size", type=int, default=512, help="centre crop side in pixels (a multiple of 16)")
    ap.add_argument("--weights", default=None, help="weights folder of the frozen PreNet (default: shipped)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--views", type=int, nargs="+", default=[1], choices=COUNTS,
                    help="views of each file PostNet averages (jpegplus.views): each count is a row of its own "
                         "(default: 1, the network alone)")
    ap.add_argument("--fine", action="store_true",
                    help="the fine end's settings (FINE_SETTINGS: user quality 80-95) instead of the running check's")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    crops = val_crops(args.data, args.n, args.size)
    pre = load_bundle(args.weights, names=("pre",), runtime="torch").nets["pre"]
    for source in args.post:
        post = load_post(source)
        for views in args.views:
            g = gains(post, pre, crops, views, FINE_SETTINGS if args.fine else VAL_SETTINGS)
            print(json.dumps({"post": source, "views": views, **({"settings": "fine"} if args.fine else {}),
                              "images": len(crops), "size": args.size, "gain_db": g, "mean_db": round(float(np.mean(list(g.values()))), 3)}), flush=True)


if __name__ == "__main__":
    main()
