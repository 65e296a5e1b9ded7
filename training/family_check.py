"""What a change to the table family (jpegplus.bundle.TableFamily: the tables'
flatness and chroma weight, the requantisation's dead zone, end-of-block weight
and sharp chroma share) is worth, as the plain file and through PostNet.

Whole val/ images are coded as the encoder codes them at scale 1 and 4:2:0
(frozen PreNet, the family's tables and requantisation) at several internal
qualities; each curve (mean bpp, mean PSNR-RGB) is set against the first one by
BD-rate, for the plain decode and for PostNet's output. A PostNet that learnt
from files of one family may restore another's worse, so the second figure
may need a PostNet trained on the new files. Each argument is a PostNet
(train_post checkpoint or weights folder) @ the family fields it changes
(none: the shipped family); `pre=identity` among them codes that run's files
without PreNet (what PreNet at scale 1 earns through the real codec):

    python -m training.family_check weights@ weights@sharp=0.5 runs/post_sharp.pt@sharp=0.5
    python -m training.family_check weights@ weights@flatness=0.1,chroma_weight=0.5
    python -m training.family_check weights@ weights@pre=identity
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from jpegplus.bundle import TableFamily, load_bundle
from jpegplus.evaluation.metrics import bd_rate
from jpegplus.evaluation.peers import base_forward
from jpegplus.tables import quant_level
from training.common import FAMILY, batch_to_tensor, real_jpeg
from training.evaluate_post import load_post, psnr, val_crops

QUALITIES = (10, 20, 35, 50, 65, 80, 90)  # internal JPEG quality, scale 1


@torch.no_grad()
def curves(post, pre, crops: np.ndarray, family: TableFamily) -> dict:
    """{"bpp", "plain", "post"}: per QUALITIES entry the mean bits per pixel and
    mean PSNR-RGB (dB) of the plain decode and of PostNet's output, files of `family`."""
    requant = family.requant
    x = batch_to_tensor(crops)
    out = {"bpp": [], "plain": [], "post": []}
    for q in QUALITIES:
        t = family.tables(q)
        level = torch.full((len(crops),), quant_level(t))
        stored = (pre(x / 255, level, 1).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        decoded, bits = real_jpeg(stored, np.repeat(t[None], len(crops), 0), [requant] * len(crops))
        y = batch_to_tensor(decoded) / 255
        rec = (post(y, level, 1, torch.zeros_like(level)).clamp(0, 1) * 255).round()
        out["bpp"].append(float(np.mean(bits / crops.shape[1] / crops.shape[2])))
        out["plain"].append(float(psnr(y * 255, x).mean()))
        out["post"].append(float(psnr(rec, x).mean()))
    return out


def parse_run(run: str) -> tuple[str, TableFamily, bool]:
    """"SOURCE@flatness=0.1,sharp=0.5" → (SOURCE, the shipped family with those
    fields, whether PreNet runs: False for pre=identity); SystemExit if malformed."""
    source, at, changes = run.rpartition("@")
    fields = {f.name for f in dataclasses.fields(TableFamily)}
    try:
        pairs = dict(c.split("=") for c in changes.split(",") if c)
        with_pre = pairs.pop("pre", "shipped")
        if not source or not at or not set(pairs) <= fields or with_pre not in ("shipped", "identity"):
            raise ValueError
        return source, dataclasses.replace(FAMILY, **{k: float(v) for k, v in pairs.items()}), with_pre == "shipped"
    except ValueError:
        raise SystemExit(f"{run}: expected SOURCE@FIELD=VALUE,... with fields from {sorted(fields)} (and "
                         "pre=identity), e.g. weights@sharp=0.5 or weights@ for the shipped family") from None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="SOURCE@FIELD=VALUE,...: a train_post checkpoint (.pt) or a weights "
                    "folder, and the table family fields its files are coded with; the first is the anchor")
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
        source, family, with_pre = parse_run(run)
        c = curves(load_post(source).eval(), pre if with_pre else base_forward("pre"), crops, family)
        anchor = anchor or c
        bd = {k: round(bd_rate(anchor["bpp"], anchor[k], c["bpp"], c[k]), 2) for k in ("plain", "post")}
        print(json.dumps({"source": source, "tables": family.to_json(), "prenet": with_pre, "bd_rate_vs_first": bd,
                          **c}), flush=True)


if __name__ == "__main__":
    main()
