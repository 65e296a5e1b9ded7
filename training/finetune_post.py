"""Stage c: fine-tune PostNet on the real JPEG output of the frozen PreNet.

At run time PostNet sees libjpeg-turbo's output, not FakeCodec's; this stage
closes that gap. Same quality and scale sampling as stage b; the loss is the
mean RMSE per sample (see LOSSES). The frozen PreNet's output is requantised
as the encoder does (jpegplus/requant.py) before libjpeg. Resumable; seeded.

    python -m training.finetune_post --init runs/prepost.pt --out runs/prepost_ft.pt --steps 3000 --lr 3e-4
    python -m training.finetune_post --init runs/prepost_ft.pt --out runs/prepost_ft2.pt --steps 800 --standard-share 0.3
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from jpegplus.tables import quant_level
from training.common import (REQUANT, SCALE2_MAX_Q, add_loop_args, batch_to_tensor, cosine_lr, Crops,
                             load_checkpoint, optimiser_step, real_jpeg, restore_net, sample_tables, save_checkpoint,
                             scale_at, start_run)
from training.losses import LOSSES, restoration_loss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--init", default="runs/prepost.pt", help="stage-b checkpoint")
    add_loop_args(ap, steps=2000, batch=16, crop=128, lr=1e-4, seed=1, out="runs/prepost_ft.pt")
    ap.add_argument("--standard-share", type=float, default=0.0,
                    help="share of scale-1 samples coded with libjpeg's standard tables (plain JPEGs, enhance=True)")
    ap.add_argument("--loss", choices=sorted(LOSSES), default="rmse")
    ap.add_argument("--requant", default=json.dumps(REQUANT), help="the encoder's requantisation (jpegplus.requant), JSON")
    cfg = vars(ap.parse_args(argv))
    log, rng = start_run(cfg)

    ckpt = load_checkpoint(cfg["out"])
    resumed = ckpt is not None
    ckpt = ckpt or load_checkpoint(cfg["init"])
    if ckpt is None:
        raise SystemExit(f"no stage-b checkpoint at {cfg['init']}")
    pre, post = restore_net(ckpt["models"]["pre"]).eval(), restore_net(ckpt["models"]["post"])
    pre.requires_grad_(False)
    opt = torch.optim.Adam(post.parameters(), lr=cfg["lr"])
    step, wall = 0, 0.0
    history, base_config = dict(ckpt["extra"]), dict(ckpt["config"])
    if not resumed and "finetune" in base_config:  # a second fine-tune on top of a first: keep the first's record
        base_config["earlier_finetunes"] = base_config.get("earlier_finetunes", []) + [
            {**base_config.pop("finetune"), "wall_s": history.pop("finetune_wall_s"), "steps": history.pop("finetune_steps")}]
    if resumed:
        opt.load_state_dict(ckpt["optimizer"])
        step, wall = ckpt["step"], ckpt["extra"]["finetune_wall_s"]
        log(event="resume", step=step)
    crops = Crops(cfg["pack"], cfg["crop"], cfg["seed"] + step)

    t0 = time.time()
    while step < cfg["steps"]:
        lr = cosine_lr(cfg["lr"], step, cfg["steps"])
        for g in opt.param_groups:
            g["lr"] = lr
        scale = scale_at(step)
        tables, standard = sample_tables(rng, cfg["batch"], cfg["standard_share"] if scale == 1 else 0.0,
                                         qualities=(1, SCALE2_MAX_Q if scale == 2 else 100), flags=True)
        requant = [None if s else json.loads(cfg["requant"]) for s in standard]  # plain JPEGs (enhance=True): libjpeg's own
        tables = torch.from_numpy(tables).float()
        level = torch.tensor([quant_level(t.numpy()) for t in tables])
        batch = crops.batch(cfg["batch"])
        x = batch_to_tensor(batch) / 255
        with torch.no_grad():
            stored = (pre(x, level, scale).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        decoded, _ = real_jpeg(stored, tables.long().numpy(), requant)
        x_hat = post(batch_to_tensor(decoded) / 255, level, scale)
        loss, mse = restoration_loss(x_hat, x, cfg["loss"])
        optimiser_step(opt, loss, post.parameters())
        step += 1
        if step % 25 == 0:
            log(step=step, scale=scale, psnr=round(float(10 * torch.log10(255**2 / mse.detach().mean())), 2),
                lr=round(lr, 7))
        if step % 200 == 0 or step == cfg["steps"]:
            extra = {**history, "finetune_steps": step, "finetune_wall_s": wall + time.time() - t0}
            save_checkpoint(cfg["out"], step, {**base_config, "finetune": cfg}, {"pre": pre, "post": post}, opt, extra)
    log(event="done", step=step)


if __name__ == "__main__":
    main()
