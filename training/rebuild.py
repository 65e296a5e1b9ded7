"""Rebuild the shipped weights from scratch on this 2-core machine: the `cpu` preset.

Runs every stage in order, each resumable (rerun the command after an
interruption and finished stages are skipped), and records the wall time of
each stage in runs/rebuild.json, which the model card quotes.

    python -m training.rebuild            # ≈ 2 h of stage time on 2 CPU cores (see weights/MODEL_CARD.md)

The table family and the requantisation are constants in training/common.py
(FLATNESS, CHROMA_WEIGHT, REQUANT), chosen on val/ beforehand; the
requantisation by `python -m training.requant_sweep`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

PRESETS = {
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
    ap.add_argument("--log", default="runs/rebuild.json")
    args = ap.parse_args(argv)
    os.makedirs("runs", exist_ok=True)
    done = json.load(open(args.log)) if os.path.exists(args.log) else {}
    for name, cmd, product in PRESETS[args.preset]:
        if name in done or (product and os.path.exists(product)):
            print(f"[{name}] done already", flush=True)
            continue
        print(f"[{name}] python -m {' '.join(cmd)}", flush=True)
        t0 = time.time()
        subprocess.run([sys.executable, "-m", *cmd], check=True)
        done[name] = {"wall_s": round(time.time() - t0, 1), "command": "python -m " + " ".join(cmd)}
        with open(args.log, "w") as f:
            json.dump(done, f, indent=1)
    total = sum(v["wall_s"] for v in done.values())
    print(f"rebuilt in {total / 60:.1f} min ({args.log})")


if __name__ == "__main__":
    main()
