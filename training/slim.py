"""A checkpoint without its optimiser state, for weights that must travel.

    python -m training.slim runs/post_ceiling.pt --out runs/post_ceiling.slim.pt

Adam's two moments make a train_post checkpoint three times the size of its
weights: the ceiling PostNet's (3.2 M parameters) is 39 MB, over the 16 MiB a
file that a GPU machine sends back may have. The slim copy keeps step, config,
models and training record, so evaluate_post, bands and export read it as
they read the full one; training cannot resume from it (no optimiser state).
"""
from __future__ import annotations

import argparse
import os

from training.common import load_checkpoint, restore_net, save_checkpoint


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    ckpt = load_checkpoint(args.checkpoint)
    if ckpt is None:
        raise SystemExit(f"no checkpoint at {args.checkpoint}")
    models = {k: restore_net(v) for k, v in ckpt["models"].items()}
    save_checkpoint(args.out, ckpt["step"], ckpt["config"], models, None, ckpt["extra"])
    print(f"wrote {args.out}: {os.path.getsize(args.out) / 2**20:.1f} MiB "
          f"(from {os.path.getsize(args.checkpoint) / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
