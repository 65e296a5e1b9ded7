"""Stage a: train FakeCodec to imitate libjpeg-turbo (4:2:0, optimised Huffman).

Reads top to bottom: config → rate model fitted to real file sizes → CNN
correction trained on real (x, JPEG(x)) pairs over qualities 1..100 → fidelity
on val/ per quality band → checkpoint. Resumable: rerun the same command.

    python -m training.train_fakecodec --steps 1500
"""
from __future__ import annotations

import argparse
import glob
import time

import numpy as np
import torch
from PIL import Image
from scipy.optimize import nnls

from jpegplus.evaluation.metrics import psnr
from jpegplus.models import build
from jpegplus.models.fakecodec import rate_features
from training.common import (FAMILY, add_loop_args, Crops, load_checkpoint, real_jpeg,
                             sample_tables, save_checkpoint, start_run, batch_to_tensor)

BANDS = [(1, 25), (26, 50), (51, 75), (76, 100)]


def load_folder(pattern: str, limit: int | None = None) -> list[np.ndarray]:
    files = sorted(glob.glob(pattern, recursive=True))[:limit]
    return [np.asarray(Image.open(f).convert("RGB"))[: 16 * (Image.open(f).height // 16), : 16 * (Image.open(f).width // 16)] for f in files]


def fit_rate(codec, images, rng, per_image: int) -> np.ndarray:
    """Non-negative least squares of real file bits on the rate features."""
    feats, bits = [], []
    for im in images:
        tables = sample_tables(rng, per_image)
        _, real_bits = real_jpeg(np.repeat(im[None], per_image, 0), tables)
        with torch.no_grad():
            _, coeffs = codec.jpeg(batch_to_tensor(np.repeat(im[None], per_image, 0)), torch.from_numpy(tables).float())
        feats.append(rate_features(coeffs).double().numpy())
        bits.append(real_bits)
    a, b = np.concatenate(feats), np.concatenate(bits)
    # relative error matters more than absolute: weight each row by 1/bits
    w, _ = nnls(a / b[:, None], np.ones_like(b))
    return w


def fidelity(codec, images, seed: int = 1) -> dict:
    """Per quality band: PSNR(FakeCodec, real JPEG), PSNR(analytic core, real) and rate error in %."""
    rng = np.random.default_rng(seed)
    rows = {f"q{lo}-{hi}": {"psnr_fake": [], "psnr_core": [], "rate_err": []} for lo, hi in BANDS}
    for im in images:
        for lo, hi in BANDS:
            q = int(rng.integers(lo, hi + 1))
            t = FAMILY.tables(q)[None]
            real, bits = real_jpeg(im[None], t)
            with torch.no_grad():
                out = codec(batch_to_tensor(im[None]), torch.from_numpy(t).float())
            fake = out["x_hat"].clamp(0, 255).round()[0].permute(1, 2, 0).numpy().astype(np.uint8)
            core = out["base"][0].permute(1, 2, 0).numpy().astype(np.uint8)
            r = rows[f"q{lo}-{hi}"]
            r["psnr_fake"].append(psnr(fake, real[0]))
            r["psnr_core"].append(psnr(core, real[0]))
            r["rate_err"].append(100 * (float(out["bits"][0]) - bits[0]) / bits[0])
    return {band: {"psnr_fake_vs_real_db": round(float(np.mean(r["psnr_fake"])), 2),
                   "psnr_core_vs_real_db": round(float(np.mean(r["psnr_core"])), 2),
                   "rate_mean_abs_err_pct": round(float(np.mean(np.abs(r["rate_err"]))), 2),
                   "rate_bias_pct": round(float(np.mean(r["rate_err"])), 2)} for band, r in rows.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    add_loop_args(ap, steps=1500, batch=16, crop=96, lr=1e-3, seed=0, out="runs/fakecodec.pt")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--depth", type=int, default=3)
    cfg = vars(ap.parse_args(argv))
    log, rng = start_run(cfg)

    codec = build("FakeCodec", {"channels": cfg["channels"], "depth": cfg["depth"]})
    opt = torch.optim.Adam(codec.correct.parameters(), lr=cfg["lr"])
    ckpt = load_checkpoint(cfg["out"])
    step, wall = 0, 0.0
    if ckpt:
        codec.load_state_dict(ckpt["models"]["fakecodec"]["state"])
        opt.load_state_dict(ckpt["optimizer"])
        step, wall = ckpt["step"], ckpt["extra"].get("wall_s", 0.0)
        log(event="resume", step=step)

    # 1. Rate model: fitted once on training images at random qualities.
    if not codec.rate_weights.any():
        train_images = load_folder("../shared/data/train/cid22/*.png")
        w = fit_rate(codec, train_images, rng, per_image=6)
        codec.rate_weights.copy_(torch.from_numpy(w).float())
        log(event="rate_fit", weights=[round(float(v), 4) for v in w])

    # 2. CNN correction on real pairs.
    crops = Crops(cfg["pack"], cfg["crop"], cfg["seed"] + step)
    t0 = time.time()
    while step < cfg["steps"]:
        lr = cfg["lr"] * (0.1 if step > 0.8 * cfg["steps"] else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = crops.batch(cfg["batch"])
        tables = sample_tables(rng, cfg["batch"], standard_share=0.3)
        real, _ = real_jpeg(batch, tables)
        out = codec(batch_to_tensor(batch), torch.from_numpy(tables).float())
        loss = torch.mean((out["x_hat"] - batch_to_tensor(real)) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log(step=step, mse=round(float(loss), 3), psnr_vs_real=round(10 * np.log10(255**2 / float(loss)), 2), lr=lr)
        if step % 250 == 0 or step == cfg["steps"]:
            save_checkpoint(cfg["out"], step, cfg, {"fakecodec": codec}, opt, {"wall_s": wall + time.time() - t0})

    # 3. Fidelity on val/ per quality band.
    val = load_folder("../shared/data/val/cid22/*.png")
    fid = fidelity(codec, val)
    log(event="fidelity_val", **fid)
    save_checkpoint(cfg["out"], step, cfg, {"fakecodec": codec}, opt,
                    {"wall_s": wall + time.time() - t0, "fidelity_val": fid})


if __name__ == "__main__":
    main()
