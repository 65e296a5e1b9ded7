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
    python -m training.rebuild --preset gpu-continue --out $OUT  # on one H100: the shipped PostNet 5 min further
                                                      # (lr 3e-4), as one specialist per level band (2.5 min
                                                      # each, assembled by training.bands), exported with the
                                                      # shipped PreNet and ladder; 5.7 min in all
    python -m training.rebuild --preset gpu-more --out /tmp/o    # on the same warm H100, after gpu-continue --out /tmp/o:
                                                      # both members 2.2 min more at lr 1e-4 (weights2.tar);
                                                      # copy the small files to $OUT after each (README Training)
    python -m training.rebuild --preset gpu-ceiling --out $OUT   # on one H100: a PostNet with no decode budget
                                                      # (CEILING), 5 min from scratch, beside gpu's for the gap
    python -m training.rebuild --preset smoke --out /tmp/smoke   # the gpu preset in miniature, on the CPU (a test runs it)

The gpu preset needs no ../shared: it reads packs/gpu_pack.npz (lossless
training crops) and packs/val_crops.npz (the val/ check), which travel with the
working tree (carry them), and writes checkpoints, logs and the exported
weights (weights.tar: `tar -xf weights.tar` gives weights/) to --out: at most 7
files, as $OUT brings back at most 8. Calibration runs here afterwards. The
machine is bare (jpegplus not installed): training/__init__.py points
JPEGPLUS_WEIGHTS at the checkout's weights/.
The packs and the tracked tree come to about 64 MB of the 64 MiB that may
travel: there is no room to carry more beside them.
The GPU presets train on each batch four times, once per mirror image
(train_post --reuse 4): real JPEG takes about 0.07 s per 16 crops on one core
here, so 14 CPU workers make at most about 50 batches of 64 a second, fewer
than a GPU can train on.
Each log line's `waiting` is the share of time the trainer waited for batches.

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

from training.bands import LEVEL_BOUNDS, training_levels

GPU_PACK = "packs/gpu_pack.npz"
VAL_PACK = "packs/val_crops.npz"

# The ceiling PostNet's config: the shipped BlockPostNet's shape, twice as wide and twice as deep in both paths.
CEILING = '{"channels": 64, "context": 192, "detail_depth": 2, "context_depth": 8}'
BANDS = [training_levels(LEVEL_BOUNDS, b) for b in range(len(LEVEL_BOUNDS) + 1)]  # gpu-continue's members' levels


def banded_round(init: str, lr: str, minutes: float, tag: str) -> list:
    """The stages of one GPU round on a BandedPostNet: each level band's member of `init` (a weights folder)
    trained on for minutes / len(BANDS) at peak rate `lr` ({out}/post<tag>_b<band>.pt), assembled by
    training.bands ({out}/post_more<tag>.pt) and exported with `init`'s other networks, ladder and training
    record ({out}/weights<tag>.tar)."""
    members = [f"{{out}}/post{tag}_b{b}.pt" for b in range(len(BANDS))]
    return [
        *((f"post{tag}_b{b}", ["training.train_post", "--device", "cuda", "--workers", "14", "--threads", "2",
                               "--chroma-flag", "--film", "9", "--init", init, "--levels", f"{lo:g}", f"{hi:g}",
                               "--batch", "64", "--reuse", "4", "--lr", lr, "--minutes", f"{minutes / len(BANDS):g}",
                               "--share-444", "0.25", "--eval-every", "2000",  # the shipped PostNet's 4:4:4 share
                               "--pack", GPU_PACK, "--val", VAL_PACK, "--out", out], None)
          for b, ((lo, hi), out) in enumerate(zip(BANDS, members))),
        ("bands", ["training.bands", *members, "--out", f"{{out}}/post_more{tag}.pt"], f"{{out}}/post_more{tag}.pt"),
        ("export", ["training.export", "--post", f"{{out}}/post_more{tag}.pt", "--base", init,
                    "--out", f"{{out}}/weights{tag}.tar"], None),
    ]


PRESETS = {
    "gpu-pack": [
        ("pack", ["training.make_pack", "--data", "{train}", "--crops", "3200", "--size", "128", "--compact",
                  "--out", GPU_PACK], GPU_PACK),
        ("val_pack", ["training.make_pack", "--data", "{val}", "--centre", "8", "--size", "256", "--compact",
                      "--out", VAL_PACK], VAL_PACK),
    ],
    "gpu": [
        ("post_v2", ["training.train_post", "--device", "cuda", "--workers", "14", "--threads", "2", "--chroma-flag",
                     "--film", "9", "--batch", "64", "--reuse", "4", "--lr", "1e-3", "--minutes", "5",
                     "--eval-every", "2000", "--pack", GPU_PACK, "--val", VAL_PACK, "--out", "{out}/post_v2.pt"], None),
        ("export", ["training.export", "--post", "{out}/post_v2.pt", "--out", "{out}/weights.tar"], None),
    ],
    # the shipped PostNet trained on, one specialist per level band (what a GPU session should run)
    "gpu-continue": banded_round("weights", "3e-4", 5, ""),
    # a second round on the same warm machine, right after gpu-continue --out on a local folder (not $OUT; the
    # machine keeps /tmp only while warm): the members trained on at a lower rate from gpu-continue's export
    "gpu-more": [("untar", ["tarfile", "-e", "{out}/weights.tar", "{out}"], "{out}/weights/manifest.json"),
                 *banded_round("{out}/weights", "1e-4", 4.4, "2")],
    "gpu-ceiling": [  # issue 10's "ceiling": a PostNet with no decode budget (6.9× the multiply-adds), from scratch
        ("post_ceiling", ["training.train_post", "--device", "cuda", "--workers", "14", "--threads", "2",
                          "--chroma-flag", "--config", CEILING, "--batch", "64", "--reuse", "4", "--lr", "1e-3",
                          "--minutes", "5", "--eval-every", "2000", "--pack", GPU_PACK, "--val", VAL_PACK,
                          "--out", "{out}/post_ceiling.pt"], None),
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
        cmd = [c.format(**paths) for c in cmd]
        product = product and product.format(**paths)
        if name in done or (product and os.path.exists(product)):
            print(f"[{name}] done already", flush=True)
            continue
        print(f"[{name}] python -m {' '.join(cmd)}", flush=True)
        t0 = time.time()
        subprocess.run([sys.executable, "-m", *cmd], check=True)
        done[name] = {"wall_s": round(time.time() - t0, 1), "command": "python -m " + " ".join(cmd)}
        with open(log, "w") as f:
            json.dump(done, f, indent=1)
    total = sum(v["wall_s"] for v in done.values())
    print(f"rebuilt in {total / 60:.1f} min ({log})")


if __name__ == "__main__":
    main()
