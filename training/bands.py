"""Assemble level-band specialists into one BandedPostNet checkpoint.

Each member is a training.train_post checkpoint trained on its band's files
alone (--levels LO HI); the bounds split the quantisation level (tables.quant_level,
0..1) into the bands, lowest level (finest quality) first. The result is a
train_post-style checkpoint that training.evaluate_post and training.export
read like any other:

    python -m training.bands runs/band_hi.pt runs/band_lo.pt --bounds 0.7 --out runs/banded.pt

Each member must have trained on exactly its band (its --levels), and all
must share the BlockPostNet config.
"""
from __future__ import annotations

import argparse

from jpegplus.models.nets import BandedPostNet
from training.common import load_checkpoint, restore_net, save_checkpoint


def band_range(bounds: list[float], band: int) -> tuple[float, float]:
    """The levels band `band` of `bounds` covers: (low, high), 0..1 at the ends."""
    edges = [0.0, *bounds, 1.0]
    return edges[band], edges[band + 1]


def member_of(net, levels) -> tuple[int, object]:
    """(band, member) of BandedPostNet `net` whose band holds the levels range
    `levels` (LO, HI) whole; ValueError when the range straddles a bound."""
    bounds = net.config["bounds"]
    for b, member in enumerate(net.bands):
        lo, hi = band_range(bounds, b)
        if lo - 1e-9 <= levels[0] and levels[1] <= hi + 1e-9:
            return b, member
    raise ValueError(f"levels {tuple(levels)} straddle a bound of {bounds}: pick one band's range, one of "
                     + ", ".join(f"{lo:g} {hi:g}" for lo, hi in (band_range(bounds, b) for b in range(len(net.bands)))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+", help="train_post checkpoints, one per band, lowest level first")
    ap.add_argument("--bounds", type=float, nargs="+", required=True, help="levels between the bands, rising")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if len(args.members) != len(args.bounds) + 1:
        raise SystemExit(f"{len(args.bounds)} bound(s) need {len(args.bounds) + 1} members, got {len(args.members)}")
    ckpts = [load_checkpoint(p) or SystemExit(f"no checkpoint at {p}") for p in args.members]
    nets = [restore_net(c["models"]["post"]) for c in ckpts]
    for b, (path, ckpt, net) in enumerate(zip(args.members, ckpts, nets)):
        trained = tuple(ckpt["config"].get("levels", (0.0, 1.0)))
        if any(abs(a - w) > 1e-9 for a, w in zip(trained, band_range(args.bounds, b))):
            raise SystemExit(f"{path} trained on levels {trained}, not band {b}'s {band_range(args.bounds, b)}")
        if net.config != nets[0].config or type(net).__name__ != "BlockPostNet":
            raise SystemExit(f"{path}: members must be BlockPostNets of one config ({nets[0].config}), got {net.config}")
    banded = BandedPostNet(args.bounds, nets[0].config)
    for member, net in zip(banded.bands, nets):
        member.load_state_dict(net.state_dict())
    inits = {c["config"].get("init") for c in ckpts}
    records = [{"step": c["step"], "config": c["config"], **c["extra"]} for c in ckpts]
    config = {"bounds": banded.config["bounds"], "members": args.members,
              **({"init": inits.pop()} if len(inits) == 1 and None not in inits else {})}
    # wall time and steps summed over the members (they may have run side by side)
    save_checkpoint(args.out, sum(c["step"] for c in ckpts), config, {"post": banded}, None,
                    {"wall_s": sum(r.get("wall_s", 0.0) for r in records), "bands": records})
    print(f"wrote {args.out}: BandedPostNet, bounds {args.bounds}, members " + ", ".join(args.members))


if __name__ == "__main__":
    main()
