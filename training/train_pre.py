"""Stage e: retrain PreNet through the FakeCodec that imitates the real encoder,
in front of the shipped PostNet.

PreNet (from the shipped one) → FakeCodec (the encoder's requantisation,
straight-through, and its rate estimate in bits) → the shipped PostNet, frozen.
Loss = mean over samples of log(MSE + λ(q)·bpp) (training/losses.rd_loss), MSE
in 0..255² against the original, λ(q) the real codec's exchange rate at the
sample's internal quality q (train_prepost.codec_slopes), so PreNet trades
error for bits at the closed loop's own rate. q is uniform in 1..100 at scale 1
and 1..SCALE2_MAX_Q at scale 2 (every third step, common.scale_at; every step
for a PreNet that passes its input through at scale 1, identity_scales).

Every `--eval-every` steps the real cost is measured on fixed val/ crops: real
libjpeg files (the encoder's requantisation) decoded through the frozen
PostNet, mean log(MSE + λ·bpp) per setting, next to the shipped PreNet's. Only
that real figure says whether the new PreNet is better; the calibration and
the bench on val/ decide whether it ships. Resumable; seeded.

    python -m training.train_pre --minutes 45 --threads 1 --out runs/pre_v3.pt
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from jpegplus.bundle import load_bundle
from jpegplus.tables import quant_level
from training.common import (FAMILY, REQUANT, add_loop_args, batch_to_tensor, cosine_lr, Crops, load_checkpoint,
                             optimiser_step, real_jpeg, restore_net, save_checkpoint, start_run)
from training.evaluate_post import val_crops
from training.losses import rd_loss
from training.train_prepost import codec_slopes, surrogate_batch

EVAL = ((1, 20), (1, 50), (1, 80), (2, 20), (2, 40))  # (scale, internal quality) of the real check


@torch.no_grad()
def real_costs(pre, post, crops: np.ndarray, lam_table: np.ndarray) -> dict:
    """Per EVAL setting: mean over crops of log(MSE + λ·bpp) of real files
    (requantised, libjpeg-turbo) decoded through `post`; lower is better."""
    x = batch_to_tensor(crops) / 255
    out = {}
    for scale, q in EVAL:
        t = FAMILY.tables(q)
        level = torch.full((len(crops),), quant_level(t))
        stored = (pre(x, level, scale).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        decoded, bits = real_jpeg(stored, np.repeat(t[None], len(crops), 0), [REQUANT] * len(crops))
        rec = (post(batch_to_tensor(decoded) / 255, level, scale).clamp(0, 1) * 255).round()
        mse = ((rec - x * 255) ** 2).mean((1, 2, 3))
        bpp = torch.from_numpy(bits).float() / (x.shape[2] * x.shape[3])
        out[f"s{scale}q{q}"] = round(float(rd_loss(mse, bpp, torch.tensor(float(lam_table[q - 1])))), 4)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    add_loop_args(ap, steps=3000, batch=16, crop=128, lr=1e-4, seed=5, out="runs/pre_v3.pt")
    ap.add_argument("--weights", default=None, help="weights folder of the starting PreNet, the PostNet and "
                                                    "the FakeCodec (default: shipped)")
    ap.add_argument("--val", default="../shared/data/val/cid22", help="folder of val/ images for the real check")
    ap.add_argument("--eval-every", type=int, default=300)
    ap.add_argument("--minutes", type=float, default=None, help="wall-time budget, earlier runs included "
                                                                 "(replaces --steps)")
    cfg = vars(ap.parse_args(argv))
    log, rng = start_run(cfg)

    # Networks: PostNet and FakeCodec frozen, PreNet trained (resumed from the checkpoint if there is one).
    shipped = load_bundle(cfg["weights"], names=("pre", "post", "fakecodec"), runtime="torch").nets
    post, codec = shipped["post"].eval().requires_grad_(False), shipped["fakecodec"].eval().requires_grad_(False)
    ckpt = load_checkpoint(cfg["out"])
    pre = restore_net(ckpt["models"]["pre"]) if ckpt else shipped["pre"]
    pre.train().requires_grad_(True)
    only = 2 if 1 in pre.identity_scales else None  # a PreNet that passes through at scale 1 learns at scale 2 alone
    opt = torch.optim.Adam(pre.parameters(), lr=cfg["lr"])
    crops = Crops(cfg["pack"], cfg["crop"], cfg["seed"])
    val = val_crops(cfg["val"], size=128)
    step, wall = 0, 0.0
    if ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        step, wall = ckpt["step"], ckpt["extra"]["wall_s"]
        lam_table = np.array(ckpt["extra"]["lambda"])
        crops.rng = rng = np.random.default_rng(cfg["seed"] + step)
        log(event="resume", step=step)
    else:
        lam_table = codec_slopes(crops)
        base = load_bundle(cfg["weights"], names=("pre",), runtime="torch").nets["pre"].eval()
        log(event="start", lam=[round(float(v), 2) for v in lam_table[::10]],
            shipped_real_cost=real_costs(base, post, val, lam_table))

    def record() -> dict:
        return {"wall_s": wall + time.time() - t0, "lambda": lam_table.tolist()}

    # Loop.
    t0 = last_save = time.time()
    budget = cfg["minutes"] * 60 if cfg["minutes"] else None
    while True:
        progress = (wall + time.time() - t0) / budget if budget else step / cfg["steps"]
        if progress >= 1:
            break
        lr = cosine_lr(cfg["lr"], progress, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, _, _, scale = surrogate_batch(pre, post, codec, crops, rng, lam_table, cfg["batch"], step, only)
        optimiser_step(opt, loss, pre.parameters())
        step += 1
        if step % 25 == 0:
            log(step=step, scale=scale, loss=round(float(loss), 4), lr=round(lr, 7))
        if step % cfg["eval_every"] == 0:
            pre.eval()
            log(step=step, real_cost=real_costs(pre, post, val, lam_table))
            pre.train()
        if time.time() - last_save > 60:
            save_checkpoint(cfg["out"], step, cfg, {"pre": pre}, opt, record())
            last_save = time.time()
    save_checkpoint(cfg["out"], step, cfg, {"pre": pre}, opt, record())
    pre.eval()
    log(event="done", step=step, wall_s=round(record()["wall_s"], 1), real_cost=real_costs(pre, post, val, lam_table))


if __name__ == "__main__":
    main()
