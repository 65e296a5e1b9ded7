"""Stage a: train FakeCodec to imitate jpegplus's real encoder: its requantisation
(dead zone, end-of-block placement) and libjpeg-turbo (4:2:0, optimised Huffman).

Reads top to bottom: config → rate model fitted to real file sizes, one weight
vector per band of quantisation level → CNN correction trained on real
(x, JPEG(x)) pairs over qualities 1..100 → fidelity on val/ per quality band →
checkpoint. Resumable: rerun the same command. `--requant none` models
libjpeg's own rounding, as the first FakeCodec did.

    python -m training.train_fakecodec --steps 1500
    python -m training.train_fakecodec --steps 0 --out runs/fakecodec_rate.pt   # rate model and fidelity only
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


def fit_rate(codec, images, rng, per_image: int, requant) -> tuple[np.ndarray, np.ndarray]:
    """Rate weights (bands, features) and band edges (bands - 1,) of quantisation level:
    per band, non-negative least squares of real file bits on the rate features.
    Bands hold equal numbers of the sampled files."""
    feats, bits, levels = [], [], []
    for im in images:
        tables = sample_tables(rng, per_image)
        _, real_bits = real_jpeg(np.repeat(im[None], per_image, 0), tables, [requant] * per_image)
        t = torch.from_numpy(tables).float()
        with torch.no_grad():
            _, coeffs, k = codec.jpeg(batch_to_tensor(np.repeat(im[None], per_image, 0)), t)
        feats.append(rate_features(coeffs, k, codec.jpeg.deadzone, codec.entropy).double().numpy())
        bits.append(real_bits)
        levels.append(torch.log2(t[:, 0]).mean((1, 2)).numpy() / 8)
    a, b, lv = np.concatenate(feats), np.concatenate(bits), np.concatenate(levels)
    bands = codec.rate_weights.reshape(-1, a.shape[1]).shape[0]
    edges = np.quantile(lv, np.arange(1, bands) / bands)
    band = np.searchsorted(edges, lv, side="right")
    # relative error matters more than absolute: weight each row by 1/bits
    w = np.stack([nnls(a[band == i] / b[band == i, None], np.ones(int((band == i).sum())))[0] for i in range(bands)])
    return w, edges


def fidelity(codec, images, requant, seed: int = 1) -> dict:
    """Per quality band: PSNR(FakeCodec, real JPEG), PSNR(analytic core, real) and rate error in %."""
    rng = np.random.default_rng(seed)
    rows = {f"q{lo}-{hi}": {"psnr_fake": [], "psnr_core": [], "rate_err": []} for lo, hi in BANDS}
    for im in images:
        for lo, hi in BANDS:
            q = int(rng.integers(lo, hi + 1))
            t = FAMILY.tables(q)[None]
            real, bits = real_jpeg(im[None], t, [requant])
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
    ap.add_argument("--requant", choices=["encoder", "none"], default="encoder",
                    help="imitate the encoder's requantisation (FAMILY), or libjpeg's own rounding")
    ap.add_argument("--rate-bands", type=int, default=4, help="rate models, one per band of quantisation level")
    ap.add_argument("--no-entropy", dest="entropy", action="store_false",
                    help="leave out the Annex K bit estimates from the rate features (the first rate model)")
    ap.add_argument("--train", default="../shared/data/train/cid22", help="images the rate model is fitted on")
    ap.add_argument("--val", default="../shared/data/val/cid22", help="images of the fidelity report")
    cfg = vars(ap.parse_args(argv))
    log, rng = start_run(cfg)
    requant = FAMILY.requant if cfg["requant"] == "encoder" else {"deadzone": 0.5, "eob": 0.0}

    codec = build("FakeCodec", {"channels": cfg["channels"], "depth": cfg["depth"], **requant,
                                "rate_bands": cfg["rate_bands"], "entropy": cfg["entropy"]})
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
        train_images = load_folder(f"{cfg['train']}/*.png")
        w, edges = fit_rate(codec, train_images, rng, per_image=6, requant=requant)
        codec.rate_weights.copy_(torch.from_numpy(w).float().reshape(codec.rate_weights.shape))
        codec.rate_edges.copy_(torch.from_numpy(edges).float())
        log(event="rate_fit", weights=np.round(w, 4).tolist(), edges=np.round(edges, 4).tolist())

    # 2. CNN correction on real pairs.
    crops = Crops(cfg["pack"], cfg["crop"], cfg["seed"] + step)
    t0 = time.time()
    while step < cfg["steps"]:
        lr = cfg["lr"] * (0.1 if step > 0.8 * cfg["steps"] else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = crops.batch(cfg["batch"])
        tables = sample_tables(rng, cfg["batch"], standard_share=0.3)
        real, _ = real_jpeg(batch, tables, [requant] * len(tables))
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
    val = load_folder(f"{cfg['val']}/*.png")
    fid = fidelity(codec, val, requant)
    log(event="fidelity_val", **fid)
    save_checkpoint(cfg["out"], step, cfg, {"fakecodec": codec}, opt,
                    {"wall_s": wall + time.time() - t0, "fidelity_val": fid})


if __name__ == "__main__":
    main()
