"""PostNet v2: train a restoration network from scratch on real JPEG output.

Every batch is coded for real, as users' files are:
- jpegplus files: the shipped (frozen) PreNet, the encoder's requantisation and
  its table family at an internal quality drawn uniformly (Q1 at scale 1, Q2 at
  scale 2, where the ladder may go at low rates), then libjpeg-turbo;
  a `--share-444` of the other scale-1 batches is stored at 4:4:4 (Q444), as
  the encoder's closed loop stores colour detail at high qualities;
- plain JPEGs (`enhance=True`): libjpeg's standard tables at QSTD, for a
  `--standard-share` of the scale-1 batches.
The loss is the mean per-sample RMSE (0..255 levels): finetune_post measured
that a log loss learns nothing and a plain MSE hurts the finest qualities.

Batches are made by `--workers` processes (real JPEG is CPU work), each from
its own seed, so a GPU is not starved and the data do not depend on the number
of workers. `--reuse K` (1..4) trains on each made batch K times, once per
mirror image (none, left-right, up-down, both), for when making batches is
slower than training on them (a GPU fed by CPU workers): a crop side that is a
multiple of 16 keeps the block grid, so a mirrored pair is the pair the mirrored
crop would give, up to libjpeg's rounding (and PreNet's own asymmetry).

`--minutes` gives the training a wall-time budget (a resumed run counts the
time already spent): the learning rate then follows the budget, and the run
stops when it is spent. Resuming a finished checkpoint with a larger budget
goes on with its optimiser state from the point the longer schedule has
reached (103 of 193 minutes: about half the peak rate), unlike `--init`,
which starts a fresh optimiser at the peak rate.

Resumable and seeded: the checkpoint (`--out`) is written every `--save-every`
seconds and at the end, so a run cut off at any moment keeps its progress;
rerunning the same command continues it. Every `--eval-every` steps the gain
in dB over the same files decoded without PostNet is measured on fixed val/
crops, next to the shipped PostNet's gain (training/evaluate_post.py).

    python -m training.train_post --out runs/post_v2.pt --steps 9000 --threads 1
    python -m training.train_post --device cuda --workers 14 --batch 64 --minutes 5 --pack packs/gpu_pack.npz
    python -m training.train_post --init weights --lr 2e-4 --steps 3000 --out runs/post_v2b.pt   # continue the shipped one
    python -m training.train_post --init weights --levels 0.65 1 --out runs/band_lo.pt  # a level band's member
                                                                                          # (training/bands.py)
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import time

import numpy as np
import torch

from jpegplus.bundle import load_bundle
from jpegplus.models import build
from jpegplus.models.nets import BandedPostNet, with_chroma_flag, with_deeper_context, with_film
from jpegplus.tables import quant_level, standard_tables
from training.common import (FAMILY, REQUANT, add_loop_args, batch_to_tensor, cosine_lr, Crops, load_checkpoint, load_pack,
                             optimiser_step, real_jpeg, restore_net, sample_tables, save_checkpoint, start_run)
from training.bands import member_of
from training.evaluate_post import gains, val_crops
from training.losses import restoration_loss

Q1 = (5, 100)    # internal quality range of jpegplus files at scale 1
Q2 = (5, 95)     # and at scale 2: the ladder's bottom (internal quality up to 83 there) and a forced scale=2
                 # at any quality; up to 80 until a member for levels below 0.55 trained on none of them
QSTD = (5, 95)   # standard-table quality of plain JPEGs
Q444 = (24, 100)  # internal quality of 4:4:4 files (calibrate.GRID444: the ladder offers them at high rates)

_maker: dict = {}  # per process: the pack, the frozen PreNet and the options


@functools.lru_cache(maxsize=None)
def qualities_in_band(qualities: tuple[int, int], standard: bool, subsampling: str,
                      levels: tuple[float, float]) -> tuple[int, int]:
    """The sub-range of `qualities` whose tables' quantisation level (tables.quant_level,
    0..1) lies in [levels[0], levels[1]] (a level-band specialist's training); the
    level falls as the quality rises, so the sub-range is contiguous."""
    inside = [q for q in range(qualities[0], qualities[1] + 1)
              if levels[0] <= quant_level(standard_tables(q) if standard else FAMILY.tables(q, subsampling)) <= levels[1]]
    if not inside:
        raise SystemExit(f"no quality in {qualities} ({'standard' if standard else 'jpegplus'} tables, {subsampling}) "
                         f"has a level in {levels}: widen --levels, or leave that kind of file out (--scale2-share 0 "
                         "for scale ½, --standard-share 0, --share-444 0)")
    return inside[0], inside[-1]


def init_maker(pack, weights, options: dict) -> None:
    """Set up batch making in this process (a worker, or the main one)."""
    torch.set_num_threads(1 if multiprocessing.parent_process() else torch.get_num_threads())
    _maker.update(pack=load_pack(pack) if isinstance(pack, str) else pack,
                  pre=load_bundle(weights, names=("pre",), runtime="torch").nets["pre"], **options)


def make_batch(index: int):
    """Training batch number `index`: (originals, decoded) uint8 (N, H, W, 3),
    levels (N,) float32, scale, and whether the files are 4:4:4. Depends only on
    the options and `index`."""
    o = _maker
    rng = np.random.default_rng([o["seed"], index])
    crops = Crops(o["pack"], o["crop"], 0)
    crops.rng = rng
    scale = 2 if rng.random() < o["scale2_share"] else 1
    standard = scale == 1 and rng.random() < o["standard_share"]
    full_chroma = scale == 1 and not standard and o["share_444"] > 0 and rng.random() < o["share_444"]
    subsampling = "4:4:4" if full_chroma else "4:2:0"
    qualities = QSTD if standard else Q444 if full_chroma else Q2 if scale == 2 else tuple(o["q1"])
    qualities = qualities_in_band(qualities, standard, subsampling, tuple(o["levels"]))
    tables = sample_tables(rng, o["batch"], float(standard), qualities=qualities, subsampling=subsampling)
    level = np.array([quant_level(t) for t in tables], np.float32)
    x = crops.batch(o["batch"])
    if standard:
        stored = x
    else:
        with torch.inference_mode():
            y = o["pre"](batch_to_tensor(x) / 255, torch.from_numpy(level), scale)
        stored = (y.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    decoded, _ = real_jpeg(stored, tables, None if standard else [REQUANT] * len(tables), subsampling)
    return x, decoded, level, scale, full_chroma


def batches(cfg: dict, first: int):
    """Batches first, first + 1, ... made in this process or by a pool of workers."""
    options = {k: cfg[k] for k in ("seed", "crop", "batch", "scale2_share", "standard_share", "share_444", "q1", "levels")}
    if cfg["workers"] <= 0:
        init_maker(cfg["pack"], cfg["weights"], options)
        index = first
        while True:
            yield make_batch(index)
            index += 1
    with multiprocessing.get_context("spawn").Pool(cfg["workers"], init_maker,
                                                   (cfg["pack"], cfg["weights"], options)) as pool:
        yield from pool.imap(make_batch, range(first, 1 << 40), chunksize=1)


MIRRORS = ((), (3,), (2,), (2, 3))  # the dims a view flips: none, left-right, up-down, both


def views(made, first: int, reuse: int, device: torch.device):
    """Training steps first, first + 1, ...: (x, y) float (N, 3, H, W) in 0..1 on
    `device`, levels (N,), scale and the 4:4:4 flag, from the batches of `made(index)`
    (an iterator over batches index, index + 1, ...). Steps go in groups of reuse²:
    the group's `reuse` batches, each seen once per mirror in MIRRORS[:reuse], mirror
    by mirror, so a batch's views are `reuse` steps apart. reuse=1: step s is batch s."""
    group, skip = divmod(first, reuse * reuse)
    batches = made(group * reuse)
    while True:
        held = []
        for x, decoded, level, scale, full_chroma in (next(batches) for _ in range(reuse)):
            held.append(((batch_to_tensor(x) / 255).to(device, memory_format=torch.channels_last),
                         (batch_to_tensor(decoded) / 255).to(device, memory_format=torch.channels_last),
                         torch.from_numpy(level).to(device), scale, full_chroma))
        for i in range(skip, reuse * reuse):
            mirror, b = divmod(i, reuse)
            x, y, level, scale, full_chroma = held[b]
            dims = MIRRORS[mirror]
            yield (x.flip(dims), y.flip(dims)) if dims else (x, y), level, scale, full_chroma
        skip = 0


def hardware(device: torch.device, threads: int) -> str:
    """The machine a run trains on, for the model card."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (+ CPU batch workers)"
    import platform

    return f"{platform.machine()} CPU, {threads} torch thread(s)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    add_loop_args(ap, steps=20000, batch=16, crop=128, lr=5e-4, seed=3, out="runs/post_v2.pt")
    ap.add_argument("--net", default="BlockPostNet", help="a class of jpegplus.models.MODELS")
    ap.add_argument("--config", default='{"channels": 32, "context": 96, "detail_depth": 1, "context_depth": 4}')
    ap.add_argument("--standard-share", type=float, default=0.25, help="share of scale-1 batches coded as plain JPEG")
    ap.add_argument("--scale2-share", type=float, default=0.3, help="share of batches stored at half size")
    ap.add_argument("--share-444", type=float, default=0.15,
                    help="share of the other scale-1 jpegplus batches stored at 4:4:4")
    ap.add_argument("--q1", type=int, nargs=2, default=Q1, metavar=("LO", "HI"),
                    help="internal quality range of scale-1 4:2:0 jpegplus batches (a band-specialist's training)")
    ap.add_argument("--levels", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                    help="train on files whose quantisation level (tables.quant_level) lies in LO..HI only "
                         "(a level-band specialist: the decoder picks a band's PostNet by the file's level)")
    ap.add_argument("--chroma-flag", action="store_true",
                    help="a new run's PostNet also takes the 4:4:4 flag (nets.with_chroma_flag: zero-initialised)")
    ap.add_argument("--film", type=int, default=0, metavar="KNOTS",
                    help="a new run's PostNet also gets conditioned per-layer scales and shifts (nets.with_film: "
                         "zero-initialised), KNOTS knots of the level")
    ap.add_argument("--context-depth", type=int, default=0, metavar="N",
                    help="a new run's PostNet gets N residual convolutions in its context path, the added ones "
                         "zero-initialised (nets.with_deeper_context; 0: as it is)")
    ap.add_argument("--weights", default=None, help="weights folder of the frozen PreNet (default: shipped)")
    ap.add_argument("--init", default=None,
                    help="weights folder whose PostNet a new run starts from (instead of --net/--config from scratch)")
    ap.add_argument("--val", default="../shared/data/val/cid22", help="folder of val/ images for the running check")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--save-every", type=float, default=60.0, help="seconds between checkpoints")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true",
                    help="bfloat16 autocast on the CPU too (always on a GPU): where the CPU has AVX-512 BF16 a step of "
                         "the shipped member's shape takes half the time (gradients within 3 %% of float32's)")
    ap.add_argument("--workers", type=int, default=0, help="batch-making processes (0: in this process)")
    ap.add_argument("--reuse", type=int, default=1, choices=range(1, len(MIRRORS) + 1),
                    help="steps per made batch, one per mirror image (for a GPU that batch making cannot keep up with)")
    ap.add_argument("--minutes", type=float, default=None,
                    help="wall-time budget of the training from its first batch, earlier runs of this checkpoint "
                         "included (replaces --steps)")
    cfg = vars(ap.parse_args(argv))
    log, _ = start_run(cfg)
    device = torch.device(cfg["device"])

    # Model, optimiser, resume.
    pre = load_bundle(cfg["weights"], names=("pre",), runtime="torch").nets["pre"]
    ckpt = load_checkpoint(cfg["out"])
    if ckpt:
        post = restore_net(ckpt["models"]["post"])
    elif cfg["init"]:
        post = load_bundle(cfg["init"], names=("post",), runtime="torch").nets["post"]
        if isinstance(post, BandedPostNet):  # go on with the member of the band this run trains on
            try:
                _, post = member_of(post, cfg["levels"])
            except ValueError as e:
                raise SystemExit(f"--init {cfg['init']} is a BandedPostNet: {e} (--levels)") from None
    else:
        post = build(cfg["net"], json.loads(cfg["config"]))
    if cfg["chroma_flag"] and not ckpt:
        post = with_chroma_flag(post)
    if cfg["film"] and not ckpt:
        post = with_film(post, cfg["film"])
    if cfg["context_depth"] and not ckpt:
        post = with_deeper_context(post, cfg["context_depth"])
    post = post.to(device).to(memory_format=torch.channels_last).train().requires_grad_(True)
    opt = torch.optim.Adam(post.parameters(), lr=cfg["lr"])
    step, wall = 0, 0.0
    if ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        step, wall = ckpt["step"], ckpt["extra"]["wall_s"]
        log(event="resume", step=step)
    val = val_crops(cfg["val"])
    if not ckpt:
        # the shipped PostNet's gain, and with --init the gain of the network this run starts from: for a band's
        # member that is the one to compare the running check with (the shipped one routes each setting by band)
        log(event="start", params=sum(p.numel() for p in post.parameters()),
            shipped_gain_db=gains(load_bundle(cfg["weights"], names=("post",), runtime="torch").nets["post"], pre, val),
            **({"init_gain_db": gains(post, pre, val)} if cfg["init"] else {}))

    runs = (ckpt or {}).get("extra", {}).get("runs", [])
    runs.append({"hardware": hardware(device, cfg["threads"]), "from_step": step,  # a resumed run may change these
                 **{k: cfg[k] for k in ("batch", "crop", "reuse", "lr", "minutes", "bf16")}})

    def record(wall_s: float) -> dict:
        return {"wall_s": wall_s, "runs": runs}

    # Loop.
    t0 = None
    waited = 0.0  # seconds spent waiting for batches since the last log line: how starved the trainer is
    budget = cfg["minutes"] * 60 if cfg["minutes"] else None
    for (x, y), level_t, scale, full_chroma in views(lambda first: batches(cfg, first), step, cfg["reuse"], device):
        if t0 is None:  # the budget and the clock start with the first batch, not with the workers' start-up
            t0 = last_save = body_end = window_start = time.time()
        waited += time.time() - body_end
        spent = wall + time.time() - t0
        progress = spent / budget if budget else step / cfg["steps"]
        if progress >= 1:
            break
        lr = cosine_lr(cfg["lr"], progress, 1.0)
        for g in opt.param_groups:
            g["lr"] = lr
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda" or cfg["bf16"]):
            x_hat = post(y, level_t, scale, torch.full_like(level_t, float(full_chroma)))
        loss, _ = restoration_loss(x_hat, x)
        optimiser_step(opt, loss, post.parameters())
        step += 1
        if step % 25 == 0:
            now = time.time()
            log(step=step, scale=scale, rmse=round(loss.item(), 3), lr=round(lr, 7),
                waiting=round(waited / max(now - window_start, 1e-9), 3))
            waited, window_start = 0.0, now
        if step % cfg["eval_every"] == 0:
            log(step=step, gain_db=gains(post, pre, val))
        if time.time() - last_save > cfg["save_every"]:
            save_checkpoint(cfg["out"], step, cfg, {"post": post}, opt, record(wall + time.time() - t0))
            last_save = time.time()
        body_end = time.time()
    save_checkpoint(cfg["out"], step, cfg, {"post": post}, opt, record(wall + time.time() - t0))
    log(event="done", step=step, wall_s=round(wall + time.time() - t0, 1), gain_db=gains(post, pre, val))


if __name__ == "__main__":
    main()
