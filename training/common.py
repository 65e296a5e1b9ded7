"""Helpers shared by the training scripts: crops, quality sampling, real JPEG
batches, checkpoints and logging. Nothing here decides anything."""
from __future__ import annotations

import json
import os
import random
import time

import numpy as np
import torch

from jpegplus.bundle import TableFamily, read_manifest
from jpegplus.requant import requantise
from jpegplus.jpeg import decode_array, encode_array
from jpegplus.tables import standard_tables

# The table family and the encoder's requantisation that training codes with:
# the shipped manifest's (chosen on val/ by training/calibrate.py and
# training/requant_sweep.py), read from the one place that holds them.
FAMILY: TableFamily = read_manifest().tables
REQUANT = FAMILY.requant
SCALE2_MAX_Q = 60  # stages b and c: internal qualities 1..60 at scale 2, where halving can pay


def add_loop_args(ap, *, steps: int, batch: int, crop: int, lr: float, seed: int, out: str):
    """The options every training loop takes; defaults are the shipped preset's."""
    ap.add_argument("--steps", type=int, default=steps)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--crop", type=int, default=crop, help="crop side in pixels (a multiple of 16)")
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--pack", default="packs/train_crops.npy")
    ap.add_argument("--out", default=out, help="checkpoint (resumed when it exists)")
    ap.add_argument("--threads", type=int, default=2)


def start_run(cfg: dict):
    """Threads, seeds and the log for a training loop: returns (log, numpy Generator)."""
    torch.set_num_threads(cfg["threads"])
    seed_everything(cfg["seed"])
    return Log(cfg["out"] + ".log"), np.random.default_rng(cfg["seed"])


def restore_net(entry: dict) -> torch.nn.Module:
    """A network from a checkpoint entry {"class", "config", "state"}: MODELS[class](**config)."""
    from jpegplus.models import build

    net = build(entry["class"], entry["config"])
    net.load_state_dict(entry["state"])
    return net


def reconfigured(net: torch.nn.Module, **changes) -> torch.nn.Module:
    """`net` rebuilt with its config updated by `changes` and its own tensors
    (e.g. PreNet with identity_scales=[1]), in the same train/eval mode."""
    again = restore_net({"class": type(net).__name__, "config": {**net.config, **changes}, "state": net.state_dict()})
    return again.train(net.training)


def seed_everything(seed: int):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_pack(path: str) -> np.ndarray:
    """Training crops uint8 (N, S, S, 3) from a pack: a raw .npy (memory-mapped),
    or a compact .npz of lossless WebP crops (training/make_pack.py --compact),
    small enough to travel to a GPU machine."""
    if path.endswith(".npz"):
        import io

        from PIL import Image

        with np.load(path) as z:
            blob, ends = z["blob"], z["ends"]
        starts = np.concatenate([[0], ends[:-1]])
        return np.stack([np.asarray(Image.open(io.BytesIO(blob[a:b].tobytes())).convert("RGB"))
                         for a, b in zip(starts, ends)])
    return np.load(path, mmap_mode="r")


class Crops:
    """Random crops from the pack (N, S, S, 3) uint8, with flips and 90° turns."""

    def __init__(self, path_or_array, size: int, seed: int):
        self.data = load_pack(path_or_array) if isinstance(path_or_array, str) else path_or_array
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> np.ndarray:
        s, full = self.size, self.data.shape[1]
        out = np.empty((n, s, s, 3), np.uint8)
        for i, k in enumerate(self.rng.integers(0, len(self.data), n)):
            y, x = self.rng.integers(0, full - s + 1, 2)
            crop = self.data[k, y:y + s, x:x + s]
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[i] = np.rot90(crop, self.rng.integers(0, 4))
        return out


def sample_tables(rng: np.random.Generator, n: int, standard_share: float = 0.0, *,
                  qualities: tuple[int, int] = (1, 100), flags: bool = False, subsampling: str = "4:2:0"):
    """(n, 2, 8, 8) int tables at qualities uniform in qualities[0]..qualities[1]:
    jpegplus's family (for files of `subsampling`), or libjpeg's standard tables for a `standard_share` of the
    samples. With flags=True also returns which samples got the standard tables (n,) bool."""
    out, std = [], []
    for _ in range(n):
        q = int(rng.integers(qualities[0], qualities[1] + 1))
        std.append(rng.random() < standard_share)
        out.append(standard_tables(q) if std[-1] else FAMILY.tables(q, subsampling))
    return (np.stack(out), np.array(std)) if flags else np.stack(out)


def real_jpeg(batch: np.ndarray, tables: np.ndarray, requant=None,
              subsampling: str = "4:2:0") -> tuple[np.ndarray, np.ndarray]:
    """Real libjpeg-turbo round trip of each image at `subsampling`: (decoded uint8 batch, file bits (n,)).
    `requant`: one jpegplus.requant option dict per image (None: libjpeg's own
    quantiser), applied first as jpegplus's encoder does."""
    dec, bits = np.empty_like(batch), np.empty(len(batch))
    for i, (im, t) in enumerate(zip(batch, tables)):
        if requant is not None and requant[i]:
            im = requantise(im, t, **requant[i], subsampling=subsampling)
        data = encode_array(np.ascontiguousarray(im), t, subsampling=subsampling)
        dec[i], bits[i] = decode_array(data), 8 * len(data)
    return dec, bits


def optimiser_step(opt: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float = 1.0) -> None:
    """One update: gradients of `loss`, clipped to norm `clip` over `params`, then the step."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()


def cosine_lr(peak: float, step: int, steps: int) -> float:
    """Learning rate at `step` of `steps`: half a cosine from `peak` to 0."""
    return float(peak * 0.5 * (1 + np.cos(np.pi * min(step, steps) / steps)))


def scale_at(step: int) -> int:
    """Stages b and c: every third step is trained at scale 2, the others at scale 1."""
    return 2 if step % 3 == 2 else 1


def batch_to_tensor(batch: np.ndarray) -> torch.Tensor:
    """A batch: uint8 (N, H, W, 3) → float (N, 3, H, W) in 0..255 (not 0..1)."""
    return torch.from_numpy(np.array(batch, copy=True)).permute(0, 3, 1, 2).float()


class Log:
    """Prints and appends JSON lines to a log file."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.path, self.t0 = path, time.time()

    def __call__(self, **row):
        row = {"t": round(time.time() - self.t0, 1), **row}
        print(json.dumps(row), flush=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")


def save_checkpoint(path: str, step: int, config: dict, models: dict, optimizer, extra=None):
    """Atomic checkpoint with each model's class and config, so Net(**config) rebuilds it."""
    state = {
        "step": step,
        "config": config,
        "models": {k: {"class": type(m).__name__, "config": m.config, "state": m.state_dict()} for k, m in models.items()},
        "optimizer": optimizer.state_dict() if optimizer else None,
        "extra": extra or {},
    }
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str):
    """The checkpoint dict, or None if there is none. Restricted unpickling
    (weights_only) with numpy scalars allowed, which older optimiser states hold."""
    if not os.path.exists(path):
        return None
    allowed = [np._core.multiarray.scalar, np.dtype, type(np.dtype(np.float64))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


CALIBRATION_QUALITIES = (3, 10, 20, 30, 50, 70, 90)


def postnet_feed(data: bytes, chroma: bool = False) -> dict:
    """A jpegplus file → the inputs of PostNet's ONNX graph: {"image" (1, 3, h, w)
    float32 in 0..1, its stored pixels; "level" (1,); with `chroma` (a graph that
    takes the 4:4:4 flag) "chroma" (1,)}, as jpegplus.runtime.OnnxNet feeds them."""
    import io

    from PIL import Image

    from jpegplus.engine import stored_pixels
    from jpegplus.tiling import image_to_array

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        stored = stored_pixels(im)
    feed = {"image": image_to_array(stored.pixels), "level": np.array([stored.level], np.float32)}
    if chroma:
        feed["chroma"] = np.array([float(stored.full_chroma)], np.float32)
    return feed


def calibration_images(folder: str, count: int, crop: int) -> list[np.ndarray]:
    """Up to `count` images of `folder` (train/, never val/), evenly spaced in
    name order, each its top-left crop×crop pixels, uint8 (h, w, 3)."""
    from pathlib import Path

    from PIL import Image

    paths = sorted(Path(folder).rglob("*.png"))
    return [np.asarray(Image.open(p).convert("RGB"))[:crop, :crop] for p in paths[::max(1, len(paths) // count)][:count]]


def postnet_calibration_feeds(folder: str, scale: int, count: int = 24, crop: int = 256,
                           chroma: bool = False, band: int = 0, bounds=(), bundle=None) -> list[dict]:
    """PostNet graph inputs at `scale` for int8 calibration (postnet_feed): up to
    `count` images of `folder` (calibration_images), cropped to crop·scale pixels,
    coded by the shipped encoder at CALIBRATION_QUALITIES in turn. With level
    `bounds` (a BandedPostNet's), only files whose level falls in `band`
    (tables.level_band) are kept, each image at the first quality in turn that
    gives one: a member's graph is calibrated on the files it will decode, so
    the other band's activations do not widen its ranges. `bundle`: the encoder's
    (None: the shipped one)."""
    import jpegplus
    from jpegplus.tables import level_band

    feeds = []
    for i, rgb in enumerate(calibration_images(folder, count, crop * scale)):
        for k in range(len(CALIBRATION_QUALITIES)):
            quality = CALIBRATION_QUALITIES[(i + k) % len(CALIBRATION_QUALITIES)]
            feed = postnet_feed(jpegplus.encode(rgb, quality, scale=scale, bundle=bundle), chroma)
            if not bounds or level_band(feed["level"], bounds)[0] == band:
                feeds.append(feed)
                break
    if not feeds:
        raise ValueError(f"no calibration file at scale {scale} falls in level band {band} of {list(bounds)}")
    return feeds


def prenet_calibration_feeds(folder: str, scale: int, count: int = 24, crop: int = 256, bundle=None) -> list[dict]:
    """PreNet graph inputs at `scale` for int8 calibration: up to `count` images of
    `folder` (calibration_images), cropped to crop·scale pixels, each with the
    level the encoder hands PreNet at CALIBRATION_QUALITIES in turn (the ladder
    row's candidate at this scale). `bundle`: the encoder's (None: the shipped one)."""
    from jpegplus.bundle import resolve
    from jpegplus.engine import candidates
    from jpegplus.tables import quant_level
    from jpegplus.tiling import image_to_array

    manifest = resolve(bundle).manifest
    feeds = []
    for i, rgb in enumerate(calibration_images(folder, count, crop * scale)):
        row = manifest.ladder.row(CALIBRATION_QUALITIES[i % len(CALIBRATION_QUALITIES)])
        candidate = candidates(row, rgb.shape[1::-1], scale)[0]
        level = quant_level(manifest.tables.tables(candidate.quality, candidate.subsampling))
        feeds.append({"image": image_to_array(rgb), "level": np.array([level], np.float32)})
    return feeds
