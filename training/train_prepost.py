"""Stage b: train PreNet and PostNet end to end through the frozen FakeCodec.

Loss = mean over samples of log(MSE(x, x̂) + λ(q) · bits / pixels), MSE in
0..255². The log weighs every quality alike (a plain mean of costs is ruled by
the coarsest qualities, whose MSE is 50× larger), and its gradient is each
sample's own relative cost change, which is what a BD-rate counts. (Measured:
through this loss PostNet learns almost nothing in 2 500 steps — the fine
qualities' unpredictable noise drowns the coarse ones' signal under Adam — so
stage c trains PostNet on real JPEG with an RMSE loss, see finetune_post.) The quality
q is drawn uniformly (1..100 at scale 1, 1..60 at scale 2, where halving can pay)
so one pair of networks covers the whole range. λ(q) is JPEG's own exchange
rate at that quality: the local slope −dMSE/dbpp of the real codec, measured on
training crops before the loop. Reads top to bottom; resumable; seeded.

--codec bypass is the ablation without a surrogate (Jiang et al. 2017 style):
the codec is skipped (only pixel rounding remains) and there is no rate term,
so the pair learns a resampling that ignores JPEG; stage c then fits PostNet to
the real codec, exactly as for the main model.

    python -m training.train_prepost --steps 6000 --batch 16 --crop 128
    python -m training.train_prepost --codec bypass --out runs/prepost_nofake.pt
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from jpegplus.models import build
from jpegplus.models.diffjpeg import ste_round
from jpegplus.tables import quant_level
from training.common import (FAMILY, SCALE2_MAX_Q, add_loop_args, batch_to_tensor, cosine_lr, Crops, load_checkpoint,
                             optimiser_step, real_jpeg, restore_net, save_checkpoint, scale_at, start_run)
from training.losses import rd_loss, rd_slope


def codec_slopes(crops: Crops, n: int = 48) -> np.ndarray:
    """λ(q) for q = 1..100: −ΔMSE/Δbpp of real JPEG between neighbouring qualities (MSE per bpp)."""
    batch = crops.batch(n)
    qs = np.arange(1, 101)
    mse, bpp = [], []
    for q in qs:
        t = np.repeat(FAMILY.tables(int(q))[None], n, 0)
        dec, bits = real_jpeg(batch, t)
        mse.append(np.mean((dec.astype(float) - batch) ** 2))
        bpp.append(bits.sum() / (n * batch.shape[1] * batch.shape[2]))
    slope = rd_slope(mse, bpp, qs)
    # smooth in log domain and keep positive
    slope = np.exp(np.convolve(np.log(np.clip(slope, 1e-3, None)), np.ones(9) / 9, mode="same"))
    return slope


def tables_for(qs) -> torch.Tensor:
    return torch.from_numpy(np.stack([FAMILY.tables(int(q)) for q in qs])).float()


def surrogate_batch(pre, post, codec, crops: Crops, rng, lam_table: np.ndarray, batch: int, step: int,
                    scale: int | None = None):
    """One batch through PreNet → `codec` (the FakeCodec; None: bypassed, pixel
    rounding only and no rate) → PostNet at `scale` (None: step `step`'s, scale_at), q drawn
    uniformly: (loss = rd_loss, per-sample MSE (N,) in 0..255², bits per original pixel (N,), scale)."""
    scale = scale or scale_at(step)
    qs = rng.integers(1, (SCALE2_MAX_Q if scale == 2 else 100) + 1, batch)
    tables = tables_for(qs)
    level = torch.tensor([quant_level(t.numpy()) for t in tables])
    lam = torch.from_numpy(lam_table[qs - 1]).float()
    x = batch_to_tensor(crops.batch(batch)) / 255
    stored = ste_round(pre(x, level, scale).clamp(0, 1) * 255)
    out = codec(stored, tables) if codec is not None else {"x_hat": stored, "bits": torch.zeros(len(qs))}
    x_hat = post(out["x_hat"].clamp(0, 255) / 255, level, scale)
    mse = ((x_hat - x) * 255).pow(2).mean((1, 2, 3))
    bpp = out["bits"] / (x.shape[2] * x.shape[3])  # bits per original pixel (x is the original)
    return rd_loss(mse, bpp, lam), mse, bpp, scale


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    add_loop_args(ap, steps=2500, batch=16, crop=128, lr=3e-4, seed=0, out="runs/prepost.pt")
    ap.add_argument("--pre", default='{"channels": 32, "depth": 3}')
    ap.add_argument("--post", default='{"channels": 64, "depth": 5}')
    ap.add_argument("--fakecodec", default="runs/fakecodec.pt")
    ap.add_argument("--codec", choices=["fake", "bypass"], default="fake")
    cfg = vars(ap.parse_args(argv))
    log, rng = start_run(cfg)

    # Frozen surrogate codec.
    fc_ckpt = load_checkpoint(cfg["fakecodec"])
    codec = restore_net(fc_ckpt["models"]["fakecodec"])
    codec.eval().requires_grad_(False)

    pre = build("PreNet", json.loads(cfg["pre"]))
    post = build("PostNet", json.loads(cfg["post"]))
    opt = torch.optim.Adam(list(pre.parameters()) + list(post.parameters()), lr=cfg["lr"])
    step, wall = 0, 0.0
    ckpt = load_checkpoint(cfg["out"])
    crops = Crops(cfg["pack"], cfg["crop"], cfg["seed"])
    if ckpt:
        pre.load_state_dict(ckpt["models"]["pre"]["state"])
        post.load_state_dict(ckpt["models"]["post"]["state"])
        opt.load_state_dict(ckpt["optimizer"])
        step, wall = ckpt["step"], ckpt["extra"]["wall_s"]
        lam_table = np.array(ckpt["extra"]["lambda"])
        crops.rng = np.random.default_rng(cfg["seed"] + step)
        log(event="resume", step=step)
    else:
        lam_table = codec_slopes(crops)
        log(event="lambda", lam=[round(float(v), 2) for v in lam_table[::10]])

    t0 = time.time()
    while step < cfg["steps"]:
        lr = cosine_lr(cfg["lr"], step, cfg["steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        loss, mse, bpp, scale = surrogate_batch(pre, post, codec if cfg["codec"] == "fake" else None, crops, rng,
                                                lam_table, cfg["batch"], step)
        optimiser_step(opt, loss, list(pre.parameters()) + list(post.parameters()))
        step += 1
        if step % 25 == 0:
            log(step=step, scale=scale, psnr=round(float(10 * torch.log10(255**2 / mse.mean())), 2),
                bpp=round(float(bpp.mean()), 3), loss=round(float(loss), 4), lr=round(lr, 6))
        if step % 200 == 0 or step == cfg["steps"]:
            save_checkpoint(cfg["out"], step, cfg, {"pre": pre, "post": post}, opt,
                            {"wall_s": wall + time.time() - t0, "lambda": lam_table.tolist()})
    log(event="done", step=step, wall_s=round(wall + time.time() - t0, 1))


if __name__ == "__main__":
    main()
