"""Rebuild the networks from scratch, one preset at a time.

Runs every stage in order, each resumable (rerun the command after an
interruption and finished stages are skipped), and records the wall time of
each stage in <out>/rebuild.json (rebuild-<preset>.json for the other presets),
which the model card quotes.

    python -m training.rebuild                        # cpu: the v1 model, ≈ 2 h on 2 CPU cores (weights/MODEL_CARD.md)
    python -m training.rebuild --preset gpu-pack      # here: the packs the GPU preset reads (packs/, ≈ 48 MiB)
    python -m training.rebuild --preset gpu --out $OUT   # on one H100: PostNet v2 in 5 min (checkpoint every
                                                      # minute), exported to $OUT/weights.tar with the shipped
                                                      # ladder; then here: training.calibrate --weights <it>,
                                                      # export --ladder
    python -m training.rebuild --preset gpu-continue --out $OUT  # on one GPU: the shipped PostNet 5 min further
                                                      # (lr 1e-4), one specialist per level band, side by side
                                                      # (assembled by training.bands), exported with the
                                                      # shipped PreNet and ladder; about 6 min in all
    python -m training.rebuild --preset gpu-more --out /tmp/o    # on the same warm GPU, after gpu-continue --out /tmp/o:
                                                      # every member 4.4 min more at lr 5e-5 (weights2.tar);
                                                      # copy the small files to $OUT after each (README Training)
    python -m training.rebuild --preset gpu-ceiling --out $OUT   # on one GPU: a PostNet with no decode budget
                                                      # (CEILING) beside the shipped shape, both 5 min from
                                                      # scratch side by side; slim copies come back
    python -m training.rebuild --preset smoke --out /tmp/smoke   # the gpu preset in miniature, on the CPU (a test runs it)

The gpu preset needs no ../shared: it reads packs/gpu_pack.npz (lossless
training crops) and packs/val_crops.npz (the val/ check), which travel with the
working tree (carry them), and writes checkpoints, logs and the exported
weights (weights.tar: `tar -xf weights.tar` gives weights/) to --out: at most 7
files, as $OUT brings back at most 8. Calibration runs here afterwards. The
machine is bare (jpegplus not installed): training/__init__.py points
JPEGPLUS_WEIGHTS at the checkout's weights/.
The packs (48 MB) and the tracked tree (18 MB) come to 66 MB of the 67 MB
(64 MiB) that may travel: there is no room to carry more beside them.
The GPU presets train on each batch four times, once per mirror image
(train_post --reuse 4): real JPEG takes about 0.07 s per 16 crops on one core
here, so 14 CPU workers make at most about 50 batches of 64 a second, fewer
than a GPU can train on. Each log line's `waiting` is the share of time the
trainer waited for batches: about 0.1 on the H200, so one trainer is bound by
its own Python and kernel launches, not by the GPU or the batches, and runs
that can go side by side do (a stage of several commands: run_stage).

Training codes with the shipped manifest's table family and requantisation
(training/common.py FAMILY), chosen on val/ beforehand; the requantisation by
`python -m training.requant_sweep`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from training.bands import BAND_MIX, LEVEL_BOUNDS, training_levels

GPU_PACK = "packs/gpu_pack.npz"
VAL_PACK = "packs/val_crops.npz"

# The ceiling PostNet's config: the shipped BlockPostNet's shape, twice as wide and twice as deep in both paths.
CEILING = '{"channels": 64, "context": 192, "detail_depth": 2, "context_depth": 8}'
BANDS = [training_levels(LEVEL_BOUNDS, b) for b in range(len(LEVEL_BOUNDS) + 1)]  # gpu-continue's members' levels
# CPU batch workers of a GPU run (the machine has 16 cores), shared by the runs that go side by side. On the H200,
# runs of the shipped shape made 17 steps a second alone with 14 workers, 37 a second beside the ceiling with 7:
# one trainer does not fill the GPU.
GPU_WORKERS = 14


def gpu_training(out: str, lr: str, minutes: float, *, workers: int = GPU_WORKERS, extra: tuple = ()) -> list:
    """The train_post command of one GPU run: batch 64 of the pack's crops, each batch four times (once per
    mirror), bf16, `workers` CPU processes coding the real JPEG batches, `minutes` of wall time, peak rate `lr`."""
    return ["training.train_post", "--device", "cuda", "--workers", str(workers), "--threads", "1", "--chroma-flag",
            "--film", "9", "--batch", "64", "--reuse", "4", "--lr", lr, "--minutes", f"{minutes:g}",
            "--eval-every", "2000", "--pack", GPU_PACK, "--val", VAL_PACK, *extra, "--out", out]


def banded_round(init: str, lr: str, minutes: float, tag: str) -> list:
    """The stages of one GPU round on a BandedPostNet: each level band's member of `init` (a weights folder)
    trained on for `minutes` at peak rate `lr`, all side by side on the one GPU ({out}/post<tag>_b<band>.pt),
    assembled by training.bands ({out}/post_more<tag>.pt) and exported with `init`'s other networks, ladder and
    training record ({out}/weights<tag>.tar)."""
    members = [f"{{out}}/post{tag}_b{b}.pt" for b in range(len(BANDS))]
    workers = [GPU_WORKERS // len(BANDS) + (b < GPU_WORKERS % len(BANDS)) for b in range(len(BANDS))]  # all of them
    return [
        (f"members{tag}", [gpu_training(out, lr, minutes, workers=w,
                                        extra=("--init", init, "--levels", f"{lo:g}", f"{hi:g}", *mix))
                           for (lo, hi), mix, out, w in zip(BANDS, BAND_MIX, members, workers, strict=True)], None),
        ("bands", ["training.bands", *members, "--out", f"{{out}}/post_more{tag}.pt"], f"{{out}}/post_more{tag}.pt"),
        ("export", ["training.export", "--post", f"{{out}}/post_more{tag}.pt", "--base", init,
                    "--out", f"{{out}}/weights{tag}.tar"], None),
    ]


def side_by_side(stage_cmd) -> list:
    """A stage's commands: one command (a list of strings), or several to run side by side (a list of them)."""
    return stage_cmd if isinstance(stage_cmd[0], list) else [stage_cmd]


def run_stage(cmds: list) -> None:
    """Run `python -m cmd` for each of `cmds` at once and wait for all; then CalledProcessError for the first
    that failed."""
    procs = [subprocess.Popen([sys.executable, "-m", *cmd]) for cmd in cmds]
    codes = [proc.wait() for proc in procs]
    for cmd, code in zip(cmds, codes):
        if code:
            raise subprocess.CalledProcessError(code, ["python", "-m", *cmd])


PRESETS = {
    "gpu-pack": [
        ("pack", ["training.make_pack", "--data", "{train}", "--crops", "3200", "--size", "128", "--compact",
                  "--out", GPU_PACK], GPU_PACK),
        ("val_pack", ["training.make_pack", "--data", "{val}", "--centre", "8", "--size", "256", "--compact",
                      "--out", VAL_PACK], VAL_PACK),
    ],
    "gpu": [
        ("post_v2", gpu_training("{out}/post_v2.pt", "1e-3", 5), None),
        ("export", ["training.export", "--post", "{out}/post_v2.pt", "--out", "{out}/weights.tar"], None),
    ],
    # the shipped PostNet trained on, one specialist per level band (what a GPU session should run)
    "gpu-continue": banded_round("weights", "1e-4", 5, ""),
    # a second round on the same warm machine, right after gpu-continue --out on a local folder (not $OUT; the
    # machine keeps /tmp only while warm): the members trained on at a lower rate from gpu-continue's export
    "gpu-more": [("untar", ["tarfile", "-e", "{out}/weights.tar", "{out}"], "{out}/weights/manifest.json"),
                 *banded_round("{out}/weights", "5e-5", 4.4, "2")],
    # issue 10's "ceiling": a PostNet with no decode budget (6.9x the multiply-adds) beside the shipped shape, both
    # from scratch with the same recipe, side by side on the one GPU; slim copies, as the ceiling's checkpoint is
    # over the 16 MiB a file may have to come back
    "gpu-ceiling": [
        ("pair", [gpu_training("{out}/post_shape.pt", "3e-4", 5, workers=GPU_WORKERS // 2),
                  gpu_training("{out}/post_ceiling.pt", "3e-4", 5, workers=GPU_WORKERS // 2,
                               extra=("--config", CEILING))], None),
        ("slim", [["training.slim", "{out}/post_shape.pt", "--out", "{out}/shape.pt"],
                  ["training.slim", "{out}/post_ceiling.pt", "--out", "{out}/ceiling.pt"]], "{out}/ceiling.pt"),
    ],
    "smoke": [
        ("pack", ["training.make_pack", "--data", "{train}", "--crops", "24", "--size", "64", "--compact",
                  "--out", "{out}/pack.npz"], "{out}/pack.npz"),
        ("val_pack", ["training.make_pack", "--data", "{val}", "--centre", "2", "--size", "64", "--compact",
                      "--out", "{out}/val.npz"], "{out}/val.npz"),
        ("post_v2", ["training.train_post", "--device", "cpu", "--workers", "1", "--threads", "1", "--chroma-flag",
                     "--film", "9", "--batch", "2", "--reuse", "2", "--crop", "64", "--minutes", "0.15",
                     "--eval-every", "1000", "--pack", "{out}/pack.npz", "--val", "{out}/val.npz", "--out", "{out}/post_v2.pt"], None),
        ("export", ["training.export", "--post", "{out}/post_v2.pt", "--out", "{out}/weights"], None),
    ],
    "cpu": [
        ("pack", ["training.make_pack", "--crops", "6000", "--size", "128"], "packs/train_crops.npy"),
        ("fakecodec", ["training.train_fakecodec", "--steps", "1500"], None),
        ("prepost", ["training.train_prepost", "--steps", "2500", "--batch", "16", "--crop", "128"], None),
        ("finetune", ["training.finetune_post", "--init", "runs/prepost.pt", "--out", "runs/prepost_ft.pt",
                      "--steps", "3000", "--lr", "3e-4"], None),
        ("finetune_standard", ["training.finetune_post", "--init", "runs/prepost_ft.pt", "--out", "runs/prepost_ft2.pt",
                               "--steps", "800", "--standard-share", "0.3"], None),
        ("candidate", ["training.export", "--prepost", "runs/prepost_ft2.pt", "--fakecodec", "runs/fakecodec.pt",
                       "--out", "runs/export"], None),
        ("calibrate", ["training.calibrate", "--weights", "runs/export", "--out", "runs/ladder.json"], "runs/ladder.json"),
        ("export", ["training.export", "--prepost", "runs/prepost_ft2.pt", "--fakecodec", "runs/fakecodec.pt",
                    "--ladder", "runs/ladder.json", "--out", "weights"], None),
        ("nofake", ["training.train_prepost", "--codec", "bypass", "--steps", "1500", "--batch", "16", "--crop", "128",
                    "--out", "runs/prepost_nofake.pt"], None),
        ("nofake_finetune", ["training.finetune_post", "--init", "runs/prepost_nofake.pt",
                             "--out", "runs/prepost_nofake_ft.pt", "--steps", "3000", "--lr", "3e-4"], None),
        ("export_ablation", ["training.export", "--prepost", "runs/prepost_nofake_ft.pt", "--ladder", "runs/ladder.json",
                             "--out", "weights/ablation-nofake"], None),
    ],
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    ap.add_argument("--out", default="runs", help="folder of checkpoints and logs")
    ap.add_argument("--train-data", default="../shared/data/train")
    ap.add_argument("--val-data", default="../shared/data/val/cid22")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log = os.path.join(args.out, "rebuild.json" if args.preset == "cpu" else f"rebuild-{args.preset}.json")
    done = json.load(open(log)) if os.path.exists(log) else {}
    paths = {"out": args.out, "train": args.train_data, "val": args.val_data}
    for name, cmd, product in PRESETS[args.preset]:
        cmds = [[c.format(**paths) for c in cmd] for cmd in side_by_side(cmd)]
        product = product and product.format(**paths)
        if name in done or (product and os.path.exists(product)):
            print(f"[{name}] done already", flush=True)
            continue
        commands = " & ".join("python -m " + " ".join(cmd) for cmd in cmds)
        print(f"[{name}] {commands}", flush=True)
        t0 = time.time()
        run_stage(cmds)
        done[name] = {"wall_s": round(time.time() - t0, 1), "command": commands}
        with open(log, "w") as f:
            json.dump(done, f, indent=1)
    total = sum(v["wall_s"] for v in done.values())
    print(f"rebuilt in {total / 60:.1f} min ({log})")


if __name__ == "__main__":
    main()
